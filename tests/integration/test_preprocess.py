"""The one preprocessing function: pinned output, colour order, resizing, and clear errors on bad images."""
from __future__ import annotations

import numpy as np
import pytest

from sdk.core.errors import InputError
from sdk.core.preprocess import PreprocessSpec, check_image, check_size_hw, preprocess


def _ramp(h=32, w=40) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 6) % 256, (y * 8) % 256, (x + y) % 256], axis=2).astype(np.uint8)


def test_golden_values_imagenet_spec():
    img = _ramp()
    out = preprocess(img, PreprocessSpec())
    assert out.shape == (1, 3, 32, 40) and out.dtype == np.float32 and out.flags.c_contiguous
    # pinned: (pixel - mean) / std with ImageNet statistics on the 0..255 scale
    assert out[0, 0, 0, 0] == pytest.approx(-2.117904, abs=1e-5)          # R=0
    assert out[0, 1, 5, 3] == pytest.approx((40 - 116.28) / 57.12, abs=1e-5)  # G=y*8
    assert out[0, 2, 31, 39] == pytest.approx((70 - 103.53) / 57.375, abs=1e-5)  # B=x+y
    assert float(out.sum()) == pytest.approx(-1502.18, abs=0.05)  # float64 reference: -1502.18


def test_bgr_input_equals_rgb_input():
    img = _ramp()
    a = preprocess(img, PreprocessSpec())
    b = preprocess(np.ascontiguousarray(img[..., ::-1]), PreprocessSpec(), color_order="bgr")
    np.testing.assert_array_equal(a, b)


def test_resize_to_spec_size_and_batch():
    spec = PreprocessSpec(size_hw=(64, 48))
    out = preprocess([_ramp(), _ramp(50, 70)], spec)
    assert out.shape == (2, 3, 64, 48)


def test_native_size_batch_must_share_size():
    with pytest.raises(InputError, match="Batch images of one size"):
        preprocess([_ramp(), _ramp(50, 70)], PreprocessSpec())


@pytest.mark.parametrize("bad, fragment", [
    (np.zeros((480, 640)), r"expected \(H, W, 3\) uint8, got \(480, 640\) float64.*grayscale"),
    (np.zeros((64, 64, 4), np.uint8), r"got \(64, 64, 4\) uint8.*alpha"),
    (np.zeros((64, 64, 3), np.float32), r"got \(64, 64, 3\) float32.*np.asarray"),
    (np.zeros((2, 64, 64, 3), np.uint8), r"got \(2, 64, 64, 3\).*predict_batch"),
    ([[1, 2, 3]], r"expected a numpy array"),
])
def test_bad_images_are_refused_with_a_clear_message(bad, fragment):
    with pytest.raises(InputError, match=fragment):
        check_image(bad)


def test_spec_validation_and_roundtrip():
    with pytest.raises(InputError, match="size_hw"):
        PreprocessSpec(size_hw=(10, 10))
    with pytest.raises(InputError, match="resize_mode"):
        PreprocessSpec(resize_mode="cubic")
    spec = PreprocessSpec(size_hw=(512, 512), resize_mode="area")
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("value, message", [
    ((31, 64), "opt_hw: expected \\(height, width\\), both >= 32"), ((64,), "both >= 32"), ((64, 64, 3), "both >= 32"),
    ("ab", "opt_hw: expected \\(height, width\\), got 'ab'"), (None, "got None")])
def test_one_size_check(value, message):
    """Every size option (network input, static shapes, engine profiles, timing sizes) goes through check_size_hw."""
    assert check_size_hw((32, 64.0)) == (32, 64)
    with pytest.raises(InputError, match=message):
        check_size_hw(value, "opt_hw")
