"""Parity: an mmsegmentation 1.x SegFormer checkpoint loaded by ``converters.checkpoints.load_checkpoint`` computes
the same logits as mmsegmentation's own ``MixVisionTransformer`` + ``SegformerHead`` with the same (random) weights.

Needs the reference implementation as test-only dependencies (mmseg 1.2.2 + mmengine + mmcv-lite, see CI); skips
where mmseg is absent. ``mmcv-lite`` has no compiled ops, so ``tests/mmcv_ops_stub.py`` stands in for ``mmcv.ops``.

Run from the repository root: ``python -m pytest tests/integration/test_parity_mmseg.py -q``.
"""
from __future__ import annotations

import math
import re

import pytest
import torch

pytest.importorskip("mmcv", reason="mmcv(-lite) not installed: mmsegmentation parity test needs the reference")
# tests/ has no __init__.py, so pytest (prepend import mode) puts tests/ itself on sys.path. Do not rely on
# ``tests.mmcv_ops_stub``: the mmsegmentation wheel installs its own top-level ``tests`` package into site-packages,
# which shadows this folder as a namespace package.
try:
    from mmcv_ops_stub import install as _install_mmcv_ops_stub
except ImportError:  # tests/ became a package (tests/__init__.py): imported as tests.*
    from tests.mmcv_ops_stub import install as _install_mmcv_ops_stub

_install_mmcv_ops_stub()
pytest.importorskip("mmseg", reason="mmsegmentation 1.x not installed: it is the reference for this parity test")

from mmseg.models.backbones.mit import MixVisionTransformer  # noqa: E402
from mmseg.models.decode_heads.segformer_head import SegformerHead  # noqa: E402

from converters.checkpoints import load_checkpoint  # noqa: E402

TOL = 1e-4
NUM_CLASSES = 7
CLASSES = ("road", "building", "tree", "sky", "car", "person", "bicycle")
PALETTE = [[128, 64, 128], [70, 70, 70], [107, 142, 35], [70, 130, 180], [0, 0, 142], [220, 20, 60], [119, 11, 32]]

# mmseg's configs/_base_/models/segformer_mit-b0.py and configs/segformer/segformer_mit-b{1,2}_*.py
VARIANTS = {
    "b0": dict(embed_dims=32, num_layers=[2, 2, 2, 2], in_channels=[32, 64, 160, 256], channels=256),
    "b1": dict(embed_dims=64, num_layers=[2, 2, 2, 2], in_channels=[64, 128, 320, 512], channels=256),
    "b2": dict(embed_dims=64, num_layers=[3, 4, 6, 3], in_channels=[64, 128, 320, 512], channels=768),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _build_mmseg(variant: str) -> tuple[MixVisionTransformer, SegformerHead]:
    v = VARIANTS[variant]
    backbone = MixVisionTransformer(
        in_channels=3, embed_dims=v["embed_dims"], num_stages=4, num_layers=v["num_layers"],
        num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1], out_indices=(0, 1, 2, 3),
        mlp_ratio=4, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.1,
    )
    head = SegformerHead(
        in_channels=v["in_channels"], in_index=[0, 1, 2, 3], channels=v["channels"], dropout_ratio=0.1,
        num_classes=NUM_CLASSES, norm_cfg=dict(type="BN", requires_grad=True), align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    )
    return backbone, head


# mmseg MiT tensors that write into a LayerNorm's input: patch-embedding conv and LN (the residual stream starts
# there), the spatial-reduction conv, the attention output projection and the Mix-FFN's last 1x1 conv.
_FEEDS_A_LAYERNORM = re.compile(r"layers\.\d\.(0\.(projection|norm)|1\.\d+\.(attn\.sr|attn\.attn\.out_proj|ffn\.layers\.4))\.")


@torch.no_grad()
def _randomize(module: torch.nn.Module, gen: torch.Generator, *, tiny_norm_inputs: bool = False) -> None:
    """Every parameter and BN running stat gets non-trivial random values with sane magnitudes: matrices/kernels
    ~ N(0, 1/fan_in), norm scales ~ 1 + N(0, 0.2), biases ~ N(0, 0.2), running mean ~ N(0, 0.5), var ~ U(0.5, 2).

    ``tiny_norm_inputs`` scales everything that feeds a LayerNorm by 1e-3, so every encoder LayerNorm sees inputs of
    variance ~1e-6, the size of its eps: the logits then depend on each eps (1e-6 vs 1e-5 is an O(1) change), which
    unit-variance activations would hide below the tolerance."""
    for name, t in module.state_dict(keep_vars=True).items():
        if not t.is_floating_point():
            continue  # num_batches_tracked
        leaf = name.rsplit(".", 1)[1]
        if leaf == "running_mean":
            t.copy_(0.5 * torch.randn(t.shape, generator=gen))
        elif leaf == "running_var":
            t.copy_(0.5 + 1.5 * torch.rand(t.shape, generator=gen))
        elif t.ndim >= 2:
            fan_in = t[0].numel()
            t.copy_(torch.randn(t.shape, generator=gen) / math.sqrt(fan_in))
        elif leaf == "weight":  # LayerNorm / BatchNorm scale
            t.copy_(1.0 + 0.2 * torch.randn(t.shape, generator=gen))
        else:  # biases (incl. in_proj_bias)
            t.copy_(0.2 * torch.randn(t.shape, generator=gen))
        if tiny_norm_inputs and _FEEDS_A_LAYERNORM.match(name):
            t.mul_(1e-3)


def _save_mmseg_checkpoint(path, backbone, head) -> None:
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state.update({f"decode_head.{k}": v for k, v in head.state_dict().items()})
    meta = {  # what mmengine's CheckpointHook writes (minus bookkeeping), dataset_meta as mmseg datasets set it
        "mmengine_version": "0.10.7", "epoch": 0, "iter": 160000, "seed": 0,
        "dataset_meta": {"classes": CLASSES, "palette": PALETTE, "reduce_zero_label": False},
    }
    torch.save({"meta": meta, "state_dict": state}, path)


@pytest.fixture(scope="module")
def mmseg_model_cache():
    return {}


def _reference(variant: str, cache: dict, profile: str = "unit"):
    if (variant, profile) not in cache:
        torch.manual_seed(0)
        backbone, head = _build_mmseg(variant)
        _randomize(backbone, torch.Generator().manual_seed(1234), tiny_norm_inputs=profile == "tiny_norm_inputs")
        _randomize(head, torch.Generator().manual_seed(5678))
        cache[variant, profile] = (backbone.eval(), head.eval())
    return cache[variant, profile]


@pytest.mark.parametrize(
    "variant, shape, profile",
    [
        ("b0", (1, 3, 128, 160), "unit"),
        ("b0", (1, 3, 100, 132), "unit"),  # odd size: stage sizes 25x33, 13x17, 7x9, 4x5; sr convs drop rows
        ("b0", (2, 3, 64, 64), "unit"),    # batch of 2
        ("b0", (1, 3, 128, 160), "tiny_norm_inputs"),  # pins every LayerNorm eps
        ("b0", (1, 3, 100, 132), "tiny_norm_inputs"),
        ("b1", (1, 3, 64, 96), "unit"),
        ("b1", (1, 3, 64, 96), "tiny_norm_inputs"),
        ("b2", (1, 3, 64, 96), "unit"),    # deeper stages and a 768-wide decoder
    ],
)
def test_mmseg_checkpoint_parity(tmp_path, mmseg_model_cache, variant, shape, profile):
    backbone, head = _reference(variant, mmseg_model_cache, profile)
    path = tmp_path / f"segformer_mit-{variant}_mmseg.pth"
    _save_mmseg_checkpoint(path, backbone, head)

    loaded = load_checkpoint(path)
    assert loaded.layout == "mmseg"
    assert loaded.config.variant == variant
    assert loaded.config.num_classes == NUM_CLASSES
    assert loaded.config.decoder_branch_norm
    assert not loaded.model.training

    x = torch.randn(shape, generator=torch.Generator().manual_seed(42))
    with torch.no_grad():
        ref = head(backbone(x))
        ours = loaded.model(x)
    assert ref.shape == (shape[0], NUM_CLASSES, math.ceil(shape[2] / 4), math.ceil(shape[3] / 4))
    assert ours.shape == ref.shape
    diff = (ours - ref).abs().max().item()
    scale = ref.abs().max().item()
    print(f"mmseg parity {variant} {tuple(shape)} {profile}: max|diff|={diff:.3e} (max|logit|={scale:.3g})")
    assert scale > 1e-2, "degenerate reference logits: the test would prove nothing"
    assert diff <= TOL, f"{variant} {shape}: max abs logit difference {diff:.3e} > {TOL}"
    # Identical predictions too (where the reference's top-2 margin is not within numerical noise).
    top2 = ref.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 10 * TOL
    assert torch.equal(ours.argmax(1)[clear], ref.argmax(1)[clear])


def test_mmseg_checkpoint_labels_from_meta(tmp_path, mmseg_model_cache):
    backbone, head = _reference("b0", mmseg_model_cache)
    path = tmp_path / "segformer_mit-b0_mmseg.pth"
    _save_mmseg_checkpoint(path, backbone, head)
    loaded = load_checkpoint(path)
    assert loaded.class_names == list(CLASSES)
    assert loaded.palette == PALETTE


def test_mmseg_segmentor_from_shipped_config(tmp_path):
    """The checkpoint layout above is what mmseg's own ``EncoderDecoder`` (built from the B0 config mmseg ships)
    saves, and its ``mode="tensor"`` output (the 1/4-resolution logits) matches ours after loading."""
    import os

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import mmseg

    cfg_file = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs", "_base_", "models",
                            "segformer_mit-b0.py")
    if not os.path.exists(cfg_file):
        pytest.skip(f"mmseg's shipped configs are not installed ({cfg_file})")
    cfg = Config.fromfile(cfg_file)
    cfg.model.decode_head.norm_cfg = dict(type="BN", requires_grad=True)  # SyncBN needs a process group
    cfg.model.decode_head.num_classes = NUM_CLASSES
    init_default_scope("mmseg")
    torch.manual_seed(0)
    segmentor = MODELS.build(cfg.model)
    _randomize(segmentor, torch.Generator().manual_seed(99), tiny_norm_inputs=True)
    segmentor.eval()

    backbone, head = _build_mmseg("b0")
    emulated = {f"backbone.{k}" for k in backbone.state_dict()} | {f"decode_head.{k}" for k in head.state_dict()}
    assert set(segmentor.state_dict()) == emulated

    path = tmp_path / "segmentor.pth"
    torch.save({"meta": {"dataset_meta": {"classes": CLASSES, "palette": PALETTE}},
                "state_dict": segmentor.state_dict()}, path)
    loaded = load_checkpoint(path)
    x = torch.randn((1, 3, 100, 132), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = segmentor(x, mode="tensor")
        ours = loaded.model(x)
    diff = (ours - ref).abs().max().item()
    print(f"mmseg parity EncoderDecoder b0 (1, 3, 100, 132) tiny_norm_inputs: max|diff|={diff:.3e} "
          f"(max|logit|={ref.abs().max().item():.3g})")
    assert ours.shape == ref.shape == (1, NUM_CLASSES, 25, 33)
    assert diff <= TOL
