"""Reading checkpoint files without running pickled code: safetensors, ``torch.load(weights_only=True)``, and
mmengine training checkpoints whose bookkeeping globals are replaced by inert placeholders (never imported or run).

Used by ``converters.checkpoints``; every failure is a one-line CheckpointError.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from sdk.core.errors import CheckpointError

StateDict = dict[str, torch.Tensor]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def read_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path}: not a readable safetensors file ({exc}); it may be truncated or corrupt. "
            "Download or copy it again."
        ) from None


def _load_error_reason(exc: Exception) -> str:
    """One short line from a torch.load error, prefixed by its type: the line naming the refused global if there is
    one (torch's first line is generic advice), without terminal colour codes."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    named = [line for line in lines if re.search(r"GLOBAL|Unsupported|truncated", line)]
    line = (named or lines or [""])[0][:200]
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


# Training checkpoints written by mmengine's CheckpointHook (mmsegmentation 1.x ``iter_*.pth``) carry bookkeeping
# objects beside the weights (message hub, history buffers, numpy scalars). Globals from these packages only are
# replaced by inert placeholders while unpickling: their code is never imported or run, and only the tensors in
# ``state_dict`` and plain ``meta`` values are kept. Any other global is refused.
_BOOKKEEPING_GLOBALS = re.compile(r"^((mmengine|numpy|_codecs)\.|builtins\.getattr$)")


class _Inert:
    """Stands in for a bookkeeping class or function while unpickling; does nothing with what it is given."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(_Inert)

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass


def _plain(value):
    """Drop placeholders from metadata: keep only plain JSON-like values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not isinstance(v, _Inert)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value if not isinstance(v, _Inert)]
    return value


def _load_with_inert_bookkeeping(path: Path) -> dict | None:
    """Second try for mmengine training checkpoints; None when a global outside the bookkeeping set is needed."""
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:
        return None
    if not unsafe or not all(_BOOKKEEPING_GLOBALS.match(g) for g in unsafe):
        return None
    try:
        with torch.serialization.safe_globals([(_Inert, name) for name in unsafe]):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a crafted pickle that uses the allowed names in ways no mmengine file does
        raise CheckpointError(
            f"checkpoint {path}: its mmengine/numpy bookkeeping cannot be read safely ({_load_error_reason(exc)}); "
            "expected an mmsegmentation training checkpoint. Re-save only the weights: "
            "torch.save({'state_dict': model.state_dict(), 'meta': {...}}, path)."
        ) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        return None
    return {"state_dict": {k: v for k, v in obj["state_dict"].items() if isinstance(v, torch.Tensor)},
            "meta": _plain(obj.get("meta") or {})}


def read_torch(path: Path) -> dict:
    import pickle

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _load_error_reason(exc)
        if re.search(r"Unsupported operand|truncated", reason):  # not a pickle at all, or cut short
            raise CheckpointError(
                f"checkpoint {path}: cannot be read ({reason}); expected a PyTorch checkpoint, it may be corrupt "
                "or not a PyTorch file. Download or copy it again."
            ) from None
        obj = _load_with_inert_bookkeeping(path)
        if obj is not None:
            return obj
        raise CheckpointError(
            f"checkpoint {path}: refusing to load it, because reading it would run arbitrary code "
            f"(weights_only unpickling failed: {reason}). Expected only tensors and plain containers: "
            "re-save only the tensors, e.g. torch.save({'state_dict': model.state_dict(), 'meta': {...}}, path), "
            "or convert it to safetensors."
        ) from None
    except Exception as exc:  # truncated or corrupt files surface as EOFError, RuntimeError, KeyError, ...
        raise CheckpointError(
            f"checkpoint {path}: cannot be read ({_load_error_reason(exc)}); expected a PyTorch checkpoint, it may "
            "be truncated or not a PyTorch file. Download or copy it again."
        ) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj


def hf_config(folder: Path, name: str = "config.json") -> dict:
    from sdk.core.manifest import read_json

    raw = read_json(folder / name, error=CheckpointError, what=f"checkpoint {folder}: {name}",
                    fix="Expected the JSON file transformers writes; download or copy the checkpoint again.")
    if not isinstance(raw, dict):
        raise CheckpointError(f"checkpoint {folder}: {name}: expected a JSON object, got {type(raw).__name__}")
    return raw
