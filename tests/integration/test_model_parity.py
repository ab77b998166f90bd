"""Our SegFormer, loaded with ``load_checkpoint``, against transformers' SegformerForSemanticSegmentation.

Fast CPU tier: random-weight B0, B2 and a small custom architecture at small inputs, plus the real trained B0 in
../shared/models (skipped with the reason when that folder is absent). Run with ``-s`` to read the measured
differences.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

pytest.importorskip("transformers", reason="transformers (a test-only dependency) is needed as the reference")

from converters.checkpoints import load_checkpoint  # noqa: E402
from converters.model import SegFormer  # noqa: E402
from sdk.core.preprocess import preprocess  # noqa: E402

from conftest import HF_MODEL, NVLABS_MODEL  # noqa: E402

try:  # tests/ may or may not become a package; a `tests` package in site-packages shadows a namespace one
    from tests.helpers import (first_val_image, hf_logits, max_abs, pixels, random_hf_model,  # noqa: E402
                               save_hf_bin_folder, save_hf_folder)
except ImportError:
    from helpers import (first_val_image, hf_logits, max_abs, pixels, random_hf_model,  # noqa: E402
                         save_hf_bin_folder, save_hf_folder)

TOL = 1e-4
SHAPES = [(1, 3, 128, 160), (1, 3, 100, 132), (2, 3, 64, 96)]
NUM_LABELS = {"b0": 5, "b2": 7, "custom": 3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["b0", "b2", "custom"])
def random_pair(request, tmp_path_factory):
    """(variant, transformers model, its save_pretrained folder)."""
    variant = request.param
    hf = random_hf_model(variant, NUM_LABELS[variant], seed=sorted(NUM_LABELS).index(variant))
    folder = save_hf_folder(hf, tmp_path_factory.mktemp(f"hf-{variant}"))
    return variant, hf, folder


def _check(tag: str, ours: SegFormer, hf, x: torch.Tensor) -> float:
    with torch.no_grad():
        got = ours(x)
    want = hf_logits(hf, x)
    diff = max_abs(got, want)
    print(f"\n[parity] {tag} input {tuple(x.shape)}: max|ours - transformers| = {diff:.3g} "
          f"(logits std {want.std().item():.3g}, max |logit| {want.abs().max().item():.3g})")
    assert diff <= TOL, f"{tag}: max abs logit difference {diff:.3g} > {TOL}"
    return diff


# ------------------------------------------------------------------------------------- random weights
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_safetensors_folder_matches_transformers(random_pair, shape):
    variant, hf, folder = random_pair
    ck = load_checkpoint(folder)
    assert ck.layout == "huggingface"
    assert not ck.model.training
    x = pixels(shape, seed=shape[2])
    _check(f"{variant} model.safetensors", ck.model, hf, x)
    with torch.no_grad():
        out = ck.model(x)
    assert out.shape == (shape[0], NUM_LABELS[variant], -(-shape[2] // 4), -(-shape[3] // 4))


def test_safetensors_file_path_matches_transformers(random_pair):
    """The .safetensors file itself (config.json read from beside it) loads like the folder."""
    variant, hf, folder = random_pair
    ck = load_checkpoint(folder / "model.safetensors")
    _check(f"{variant} model.safetensors (file path)", ck.model, hf, pixels((1, 3, 100, 132), seed=1))


@pytest.mark.parametrize("names", ["hub", "v5"])
def test_pytorch_model_bin_matches_transformers(random_pair, names, tmp_path):
    """pytorch_model.bin beside config.json, with hub key names and with transformers-5 in-memory names."""
    variant, hf, _ = random_pair
    folder = save_hf_bin_folder(hf, tmp_path / "bin", names=names)
    assert not (folder / "model.safetensors").exists()
    x = pixels((1, 3, 100, 132), seed=2)
    ck = load_checkpoint(folder)
    _check(f"{variant} pytorch_model.bin ({names} names)", ck.model, hf, x)
    # The .bin file itself: config.json beside it gives heads/strides (the custom variant differs from the defaults)
    ck_file = load_checkpoint(folder / "pytorch_model.bin")
    assert ck_file.config == ck.config
    assert ck_file.class_names == ck.class_names
    _check(f"{variant} pytorch_model.bin ({names} names, file path)", ck_file.model, hf, x)


def test_fp16_safetensors_loads_as_float32(tmp_path):
    """The demo trainer ships fp16 weights: they load into a float32 model equal to the fp16-rounded reference."""
    from safetensors.torch import load_file, save_file

    hf = random_hf_model("b0", 4, seed=5)
    folder = save_hf_folder(hf, tmp_path / "fp32")
    sd = load_file(str(folder / "model.safetensors"))
    half = tmp_path / "fp16"
    half.mkdir()
    (half / "config.json").write_text((folder / "config.json").read_text())
    save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, str(half / "model.safetensors"))
    ck = load_checkpoint(half)
    assert all(p.dtype == torch.float32 for p in ck.model.parameters())
    hf_rounded = random_hf_model("b0", 4, seed=5)
    with torch.no_grad():
        for p in list(hf_rounded.parameters()) + list(hf_rounded.buffers()):
            if p.is_floating_point():
                p.copy_(p.half().float())
    _check("b0 fp16 safetensors", ck.model, hf_rounded, pixels((1, 3, 64, 96), seed=3))


# --------------------------------------------------------------------------------- real trained weights
needs_shared = pytest.mark.skipif(
    not (HF_MODEL / "config.json").is_file() or not NVLABS_MODEL.is_file(),
    reason=f"the reference models are not in {HF_MODEL.parent} (../shared/models seen from the repository root)",
)


@pytest.fixture(scope="module")
def real():
    """(HF-folder checkpoint, NVlabs checkpoint, (1, 3, 360, 480) input): the first CamVid val image at its native
    size, preprocessed with sdk.core.preprocess.preprocess and the HF folder's own spec."""
    if not (HF_MODEL / "config.json").is_file() or not NVLABS_MODEL.is_file():
        pytest.skip(f"the reference models are not in {HF_MODEL.parent}")
    path, image = first_val_image()
    hf_ck = load_checkpoint(HF_MODEL)
    nv_ck = load_checkpoint(NVLABS_MODEL)
    assert hf_ck.preprocess.size_hw is None, "the shared HF folder runs at the image's own size (do_resize false)"
    x = torch.from_numpy(preprocess(image, hf_ck.preprocess))
    assert x.shape == (1, 3, 360, 480)
    print(f"\n[real] input: {path.name} at native 360x480")
    return hf_ck, nv_ck, x


@needs_shared
def test_real_hf_folder_matches_transformers(real):
    from transformers import SegformerForSemanticSegmentation

    hf_ck, _, x = real
    ref = SegformerForSemanticSegmentation.from_pretrained(str(HF_MODEL)).eval()
    diff = _check("real B0 HF folder", hf_ck.model, ref, x)
    with torch.no_grad():
        same = (hf_ck.model(x).argmax(1) == hf_logits(ref, x).argmax(1)).float().mean().item()
    print(f"[real] HF folder vs transformers: argmax agreement {same:.6f}, max abs {diff:.3g}")
    assert same >= 0.9999


@needs_shared
def test_real_nvlabs_weights_equal_hf_weights(real):
    """After key remapping the two files hold bit-identical tensors and the same architecture."""
    hf_ck, nv_ck, _ = real
    a, b = hf_ck.model.state_dict(), nv_ck.model.state_dict()
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"tensors differ after remapping: {differing[:5]}"
    assert nv_ck.config == hf_ck.config


@needs_shared
def test_real_nvlabs_matches_hf_folder(real):
    """NVlabs .pth vs the HF folder, both through load_checkpoint: identical logits (same weights, same eps).

    With layer_norm_eps=1e-6 (the NVlabs training code's eps in blocks and stage norms) the logits move by ~1e-4 and
    the masks stay the same.
    """
    hf_ck, nv_ck, x = real
    with torch.no_grad():
        lh, ln = hf_ck.model(x), nv_ck.model(x)
    diff = max_abs(ln, lh)
    print(f"\n[real] NVlabs .pth vs HF folder: max abs {diff:.3g}")
    assert diff == 0.0

    nv_code = load_checkpoint(NVLABS_MODEL, layer_norm_eps=1e-6)
    assert nv_code.config.layer_norm_eps == 1e-6
    with torch.no_grad():
        l6 = nv_code.model(x)
    up = [torch.nn.functional.interpolate(t, size=x.shape[2:], mode="bilinear", align_corners=False) for t in (l6, lh)]
    same_full = (up[0].argmax(1) == up[1].argmax(1)).float().mean().item()
    print(f"[real] NVlabs eps 1e-6 vs HF: max abs {max_abs(l6, lh):.3g}, argmax agreement at 360x480 {same_full:.6f}")
    assert max_abs(l6, lh) <= 5e-4 and same_full >= 0.9999
