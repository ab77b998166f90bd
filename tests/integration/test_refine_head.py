"""The refine head against the full computation: identical masks except at exact float ties, on random and real
logits, ties, one-class frames, 150 classes, outputs smaller than the logits and letterboxed extents."""
from __future__ import annotations

import numpy as np
import pytest

from sdk.core.errors import ArtifactError
from sdk.core.manifest import Manifest
from sdk.core.postprocess import interpolated_logits_at, logits_to_mask, mask_agreement, refine_mask


def _smooth_logits(k: int, h: int, w: int, seed: int = 0, sigma: float = 3.0) -> np.ndarray:
    import cv2

    raw = np.random.default_rng(seed).standard_normal((k, h, w)).astype(np.float32)
    return np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in raw]) * 10


def _full(logits: np.ndarray, out_hw, extent=None) -> np.ndarray:
    """The full computation in float64 at every pixel: argmax of the bilinear interpolation of all K channels."""
    iy, ix = np.divmod(np.arange(out_hw[0] * out_hw[1]), out_hw[1])
    return interpolated_logits_at(logits, out_hw, iy, ix, extent_hw=extent).argmax(0).reshape(out_hw)


@pytest.mark.parametrize("k, hw, out_hw", [
    (11, (90, 120), (720, 960)),     # CamVid-like, 2x the network's input
    (150, (64, 64), (512, 1024)),    # ADE-like class count, aspect change
    (5, (20, 30), (77, 131)),        # non-integer scales
    (11, (90, 120), (45, 50)),       # output smaller than the logits
    (3, (7, 5), (7, 5)),             # same size
])
def test_refine_equals_full_computation_on_smooth_logits(k, hw, out_hw):
    logits = _smooth_logits(k, *hw)
    got = refine_mask(logits, logits.argmax(0), out_hw)
    full = _full(logits, out_hw)
    report = mask_agreement(got, full, logits)
    assert report["other"] == 0, report
    assert report["identical"] >= 0.9999, report
    # and against the float32 OpenCV full computation the Segmenter's logits head uses
    assert mask_agreement(got, logits_to_mask(logits, out_hw), logits)["other"] == 0


@pytest.mark.parametrize("parts", [2, 3])
def test_refine_split_over_cores_equals_one_part(monkeypatch, parts):
    """The candidate search runs in runs of cells on several cores where the frame is large: same mask."""
    import sdk.core.postprocess as post

    logits = _smooth_logits(150, 64, 64, seed=4)
    monkeypatch.setattr(post, "host_parts", lambda: 1)
    one = refine_mask(logits, logits.argmax(0), (1024, 2048))
    monkeypatch.setattr(post, "host_parts", lambda: parts)
    np.testing.assert_array_equal(refine_mask(logits, logits.argmax(0), (1024, 2048)), one)
    assert mask_agreement(one, logits_to_mask(logits, (1024, 2048)), logits)["other"] == 0


def test_refine_on_noise_logits_many_candidates():
    logits = np.random.default_rng(1).standard_normal((40, 16, 16)).astype(np.float32)
    got = refine_mask(logits, None, (100, 90))
    assert mask_agreement(got, _full(logits, (100, 90)), logits)["other"] == 0


def test_ties_follow_argmax_first_index_rule():
    # classes 1 and 2 equal everywhere, class 0 lower: the first index (1) wins, as torch/ONNX argmax give
    logits = np.zeros((3, 6, 6), np.float32)
    logits[0] = -1.0
    logits[1, :, :3] = 2.0
    logits[2, :, :3] = 2.0
    logits[1, :, 3:] = 0.5
    logits[2, :, 3:] = 3.0
    got = refine_mask(logits, logits.argmax(0), (24, 25))
    full = _full(logits, (24, 25))
    np.testing.assert_array_equal(got, full)
    assert set(np.unique(got)) == {1, 2}


def test_one_class_frame_is_that_class_everywhere():
    logits = _smooth_logits(4, 12, 16)
    logits[2] += 1000.0
    got = refine_mask(logits, logits.argmax(0), (97, 130))
    assert got.dtype == np.uint8 and got.shape == (97, 130) and np.all(got == 2)


def test_more_than_256_classes_give_int32():
    logits = _smooth_logits(300, 10, 12, sigma=2.0)
    got = refine_mask(logits, None, (40, 50))
    assert got.dtype == np.int32
    assert mask_agreement(got, _full(logits, (40, 50)), logits)["other"] == 0


def test_letterbox_extent_equals_cropping_the_full_upsampling():
    logits = _smooth_logits(6, 32, 32)
    extent = (32.0, 18.0)  # content covers the left 18 of 32 logit columns
    got = refine_mask(logits, None, (128, 72), extent_hw=extent)
    full = _full(logits, (128, 72), extent)
    assert mask_agreement(got, full, logits, extent_hw=extent)["other"] == 0
    # the same mapping as upsampling all logits to (128, 128) and keeping the left 72 columns
    np.testing.assert_array_equal(full, _full(logits, (128, 128))[:, :72])


@pytest.mark.slow
def test_real_logits_camvid_2x_and_1024x2048(hf_model, camvid):
    """The trained B0's logits on CamVid val frames: refine vs the full computation at 2x and at 1024x2048."""
    import torch

    from calibration.datasets import CamVid
    from converters.checkpoints import load_checkpoint
    from sdk.core.preprocess import preprocess

    ck = load_checkpoint(hf_model)
    pairs = CamVid(camvid, "val").pairs()[::25][:3]
    from sdk.core.preprocess import read_rgb

    total = {"pixels": 0, "differing": 0, "other": 0}
    for path, _ in pairs:
        img = read_rgb(path)
        with torch.no_grad():
            logits = ck.model(torch.from_numpy(preprocess(img, ck.preprocess))).numpy()[0]
        for out_hw in ((2 * img.shape[0], 2 * img.shape[1]), (1024, 2048)):
            got = refine_mask(logits, logits.argmax(0), out_hw)
            rep = mask_agreement(got, logits_to_mask(logits, out_hw), logits)
            for key in total:
                total[key] += rep[key]
    assert total["other"] == 0, total
    assert 1 - total["differing"] / total["pixels"] >= 0.9999, total


def _manifest(**kw) -> dict:
    d = dict(format="onnx", model_file="model.onnx", precision="fp32", class_names=["a", "b"], palette=None,
             preprocess={"size_hw": None, "mean": [0, 0, 0], "std": [1, 1, 1]},
             inputs=[{"name": "pixel_values", "dtype": "float32", "shape": ["batch", 3, "height", "width"]}],
             outputs=[{"name": "logits", "dtype": "float32", "shape": ["batch", 2, "height_4", "width_4"]},
                      {"name": "argmax", "dtype": "uint8", "shape": ["batch", "height_4", "width_4"]}],
             head="refine", upsample="refine", architecture={}, source={})
    if kw.get("head") == "mask":  # the graph a mask head has
        d["inputs"] = d["inputs"] + [{"name": "output_size", "dtype": "int64", "shape": [2]}]
        d["outputs"] = [{"name": "mask", "dtype": "uint8", "shape": ["batch", "out_h", "out_w"]}]
    elif kw.get("head") == "logits":
        d["outputs"] = d["outputs"][:1]
    d.update(kw)
    return d


def test_manifest_head_and_upsample_fields():
    m = Manifest.from_dict(_manifest())
    assert (m.head, m.upsample) == ("refine", "refine")
    assert m.preprocess.aspect == "stretch" and m.preprocess.resize_mode == "bilinear"  # older manifests
    assert Manifest.from_dict(_manifest(head="mask", upsample="exact")).upsample == "exact"  # written before
    assert Manifest.from_dict(_manifest(head="logits", upsample=None)).head == "logits"
    with pytest.raises(ArtifactError, match="expected 'refine' for a refine head"):
        Manifest.from_dict(_manifest(upsample="exact"))
    with pytest.raises(ArtifactError, match="'exact' or 'fast' for a mask head"):
        Manifest.from_dict(_manifest(head="mask", upsample="refine"))
