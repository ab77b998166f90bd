"""Test helper: a placeholder ``mmcv.ops`` so mmsegmentation 1.x imports with ``mmcv-lite`` on a CPU-only machine.

``mmcv-lite`` ships ``mmcv/ops/*.py`` but not the compiled ``mmcv._ext``, and ``import mmcv.ops`` fails on it. The
parity test only needs ``mmseg.models.backbones.mit.MixVisionTransformer`` and
``mmseg.models.decode_heads.segformer_head.SegformerHead``, but importing either runs ``mmseg/models/__init__.py``
(every backbone, head and loss) and ``mmseg/utils/__init__.py``, which do, at import time:

- ``mmseg/utils/mask_classification.py``, ``mmseg/models/utils/point_sample.py``, ``decode_heads/san_head.py``:
  ``from mmcv.ops import point_sample``
- ``mmseg/models/losses/focal_loss.py``: ``from mmcv.ops import sigmoid_focal_loss``
- ``decode_heads/cc_head.py``, ``point_head.py``, ``psa_head.py`` (guarded by try/except ModuleNotFoundError):
  ``CrissCrossAttention``, ``point_sample``, ``PSAMask``
- ``mmcv/cnn/bricks/transformer.py``: ``from mmcv.ops.multi_scale_deform_attn import ...`` inside
  ``try/except ImportError`` (our stub is a plain module, not a package, so that import raises ImportError and mmcv
  only warns).

Lazily, only when building those layers / optimizers (never in the parity test): ``DeformConv2d``,
``ModulatedDeformConv2d`` (optimizer constructors), ``SyncBatchNorm`` (mmengine's ``revert_sync_batchnorm``).

Every placeholder raises ``NotImplementedError`` when called, so a test that strays into compiled ops fails loudly
instead of computing something wrong. ``install()`` does nothing when a real, compiled mmcv is importable.

Usage (before importing mmseg), from a test module in tests/ (pytest puts tests/ on sys.path; note that the
mmsegmentation wheel installs a top-level ``tests`` package of its own, which shadows ``tests.mmcv_ops_stub``)::

    from mmcv_ops_stub import install
    install()
"""
from __future__ import annotations

import importlib.util
import sys
import types

STUB_NAMES = (
    "CrissCrossAttention", "DeformConv", "DeformConv2d", "ModulatedDeformConv2d", "PSAMask", "SyncBatchNorm",
    "MultiScaleDeformableAttention", "point_sample", "sigmoid_focal_loss",
    "get_compiler_version", "get_compiling_cuda_version",
)


def _placeholder(name: str) -> type:
    def _refuse(*_args, **_kwargs):
        raise NotImplementedError(
            f"mmcv.ops.{name} is a test stub (tests/mmcv_ops_stub.py): the compiled mmcv ops are not installed"
        )

    # A class, so both ``name(...)`` (function style) and subclassing / isinstance checks behave predictably.
    return type(name, (), {"__new__": staticmethod(lambda cls, *a, **k: _refuse()), "__module__": "mmcv.ops",
                           "__doc__": f"Placeholder for the compiled mmcv.ops.{name}."})


def _has_compiled_mmcv() -> bool:
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except (ImportError, ValueError):
        return False


def make_stub() -> types.ModuleType:
    mod = types.ModuleType("mmcv.ops", "Placeholder for mmcv.ops (tests/mmcv_ops_stub.py); nothing here runs.")
    mod.__mmcv_ops_stub__ = True
    for name in STUB_NAMES:
        setattr(mod, name, _placeholder(name))
    mod.__all__ = list(STUB_NAMES)
    return mod


def install() -> bool:
    """Register the stub as ``mmcv.ops`` unless a compiled mmcv is present. Returns True when the stub is in use."""
    existing = sys.modules.get("mmcv.ops")
    if existing is not None:
        return bool(getattr(existing, "__mmcv_ops_stub__", False))
    if importlib.util.find_spec("mmcv") is None or _has_compiled_mmcv():
        return False
    stub = make_stub()
    sys.modules["mmcv.ops"] = stub
    import mmcv

    mmcv.ops = stub  # so ``import mmcv; mmcv.ops.X`` resolves too
    return True
