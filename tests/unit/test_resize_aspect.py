"""Preprocessing: the checkpoint's own resize (PIL's antialiasing bilinear, as transformers resizes) and
keep-aspect layouts (letterbox, pad to the stride), pinned against PIL, transformers and golden values."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from sdk.core.errors import InputError
from sdk.core.preprocess import (PreprocessSpec, _pil_bilinear_numpy, aspect_mismatch, layout, preprocess,
                                 resize_pil_bilinear)


@pytest.fixture
def PIL():
    """PIL.Image, the reference for pil_bilinear: only the tests that compare with it skip without it (the rest of
    this file runs in the core-only stage too)."""
    return pytest.importorskip("PIL.Image", reason="PIL is the reference for pil_bilinear")


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)


@pytest.mark.parametrize("src, dst", [((1024, 2048), (512, 512)), ((360, 480), (512, 512)),
                                      ((720, 1280), (288, 512)), ((180, 240), (288, 384)),
                                      ((50, 60), (50, 33))])
def test_numpy_fallback_is_bit_identical_to_pil(PIL, src, dst):
    img = _frame(*src)
    ref = np.asarray(PIL.fromarray(img).resize((dst[1], dst[0]), PIL.BILINEAR))
    np.testing.assert_array_equal(_pil_bilinear_numpy(img, dst), ref)
    np.testing.assert_array_equal(resize_pil_bilinear(img, dst), ref)


@pytest.mark.parametrize("src, dst, parts", [((1024, 2048), (512, 512), 2), ((720, 960), (512, 512), 2),
                                             ((360, 480), (512, 512), 2), ((1080, 1920), (288, 512), 3),
                                             ((720, 1280), (288, 512), 4), ((1000, 1500), (300, 450), 2)])
def test_banded_pil_resize_is_bit_identical_to_one_resize(PIL, monkeypatch, src, dst, parts):
    """Frames large enough resize in horizontal bands on several cores; every band's rows equal one full resize's
    (dyadic scales: 2, 45/32, 45/64 up, 15/4, 5/2), and other scales fall back to one resize."""
    import sdk.core.preprocess as pre

    img = _frame(*src, seed=3)
    ref = np.asarray(PIL.fromarray(img).resize((dst[1], dst[0]), PIL.BILINEAR))
    bands = pre._pil_bands(src[0], dst[0], parts)
    assert bool(bands) == (src != (1000, 1500))  # 10/3 is not dyadic
    assert sum(b[2] for b in bands) in (0, dst[0])
    monkeypatch.setattr(pre, "host_parts", lambda: parts)
    np.testing.assert_array_equal(resize_pil_bilinear(img, dst), ref)


def test_banded_pil_resize_of_a_view(PIL, monkeypatch):
    """A cropped, strided view (not C-contiguous) resizes in bands to the same pixels as one resize of it."""
    import sdk.core.preprocess as pre

    view = _frame(1100, 2100, seed=5)[30:1054, 40:2088]  # 1024x2048, rows strided by the full width
    ref = np.asarray(PIL.fromarray(np.ascontiguousarray(view)).resize((512, 512), PIL.BILINEAR))
    monkeypatch.setattr(pre, "host_parts", lambda: 2)
    assert not view.flags["C_CONTIGUOUS"] and pre._pil_bands(1024, 512, 2)
    np.testing.assert_array_equal(resize_pil_bilinear(view, (512, 512)), ref)


def test_numpy_fallback_within_one_grey_level_where_pil_runs_vertical_first(PIL):
    img = _frame(97, 131)
    ref = np.asarray(PIL.fromarray(img).resize((333, 40), PIL.BILINEAR)).astype(int)
    assert np.abs(_pil_bilinear_numpy(img, (40, 333)).astype(int) - ref).max() <= 1


def test_pil_bilinear_antialiases_where_opencv_bilinear_does_not():
    pytest.importorskip("cv2", reason="OpenCV's bilinear is the comparison (the cpu extra)")
    stripes = np.zeros((96, 96, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: a 3x shrink should blur them towards grey
    spec = dict(size_hw=(32, 32), mean=(0, 0, 0), std=(1, 1, 1))
    pil = preprocess(stripes, PreprocessSpec(resize_mode="pil_bilinear", **spec))[0, 0, 4:-4, 4:-4]
    cv = preprocess(stripes, PreprocessSpec(**spec))[0, 0, 4:-4, 4:-4]
    assert np.abs(pil - 127.5).max() < 45  # PIL's triangle filter spans 6 source pixels here
    assert np.abs(cv - 127.5).min() == 127.5  # INTER_LINEAR samples one source pixel: black or white


@pytest.mark.parametrize("frame_hw", [(1024, 2048), (200, 300)])
def test_matches_transformers_image_processor(frame_hw):
    transformers = pytest.importorskip("transformers", reason="transformers is the test-only reference")
    proc = transformers.SegformerImageProcessor(do_resize=True, size={"height": 256, "width": 320})
    img = _frame(*frame_hw, seed=3)
    ref = proc(images=[img], return_tensors="np")["pixel_values"]
    spec = PreprocessSpec(size_hw=(256, 320), resize_mode="pil_bilinear")
    np.testing.assert_allclose(preprocess(img, spec), ref, atol=2e-5)


def test_checkpoint_that_resizes_records_pil_bilinear(tmp_path, hf_model):
    pytest.importorskip("torch", reason="loading a checkpoint needs torch (the convert extra)")
    from converters.checkpoints import load_checkpoint

    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).symlink_to(hf_model / name)
    pp = json.loads((hf_model / "preprocessor_config.json").read_text())
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({**pp, "do_resize": True,
                                                                   "size": {"height": 288, "width": 384}}))
    spec = load_checkpoint(tmp_path).preprocess
    assert spec.size_hw == (288, 384) and spec.resize_mode == "pil_bilinear"
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    assert load_checkpoint(hf_model).preprocess.resize_mode == "bilinear"  # no resize: OpenCV's, unused


def _ramp(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 6) % 256, (y * 8) % 256, (x + y) % 256], axis=2).astype(np.uint8)


def test_letterbox_golden():
    spec = PreprocessSpec(size_hw=(64, 64), aspect="letterbox", resize_mode="nearest", mean=(0, 0, 0),
                          std=(1, 1, 1))
    img = _ramp(32, 64)  # 1:2 -> fills 32x64 of the 64x64 input, top-left; the rest is 0 (the mean)
    assert layout(spec, img.shape[:2]) == ((64, 64), (32, 64))
    out = preprocess(img, spec)
    assert out.shape == (1, 3, 64, 64)
    np.testing.assert_array_equal(out[0, :, :32, :], img.transpose(2, 0, 1).astype(np.float32))
    assert np.all(out[0, :, 32:, :] == 0)
    portrait = layout(spec, (1280, 720))
    assert portrait == ((64, 64), (64, 36))


def test_pad_to_stride_golden():
    spec = PreprocessSpec(aspect="pad", mean=(10, 10, 10), std=(2, 2, 2))
    img = _ramp(40, 70)
    assert layout(spec, img.shape[:2]) == ((64, 96), (40, 70))
    out = preprocess(img, spec)
    assert out.shape == (1, 3, 64, 96)
    np.testing.assert_allclose(out[0, :, :40, :70], (img.transpose(2, 0, 1) - 10.0) / 2.0)
    assert np.all(out[0, :, 40:] == 0) and np.all(out[0, :, :, 70:] == 0)
    assert float(out.sum()) == pytest.approx(float(((img.astype(np.float64) - 10) / 2).sum()), rel=1e-6)


def test_stretch_warns_when_the_aspect_differs_more_than_a_little():
    pytest.importorskip("cv2", reason="preprocess resizes with OpenCV (the cpu extra)")
    spec = PreprocessSpec(size_hw=(360, 480))
    assert aspect_mismatch(spec, (720, 1280)) == pytest.approx((1280 / 720) / (480 / 360))
    with pytest.warns(UserWarning, match=r"720x1280: its aspect differs from the network's 360x480 by 1\.33x.*"
                                         r"letterbox"):
        preprocess(_frame(720, 1280), spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preprocess(_frame(372, 480), spec)  # 3% off: no warning
        preprocess(_frame(720, 1280), PreprocessSpec(size_hw=(360, 480), aspect="letterbox"))


def test_letterbox_needs_a_size_and_aspect_roundtrips():
    with pytest.raises(InputError, match="letterbox' needs a network size"):
        PreprocessSpec(aspect="letterbox")
    with pytest.raises(InputError, match="aspect: expected one of"):
        PreprocessSpec(aspect="crop")
    spec = PreprocessSpec(size_hw=(288, 512), aspect="letterbox", resize_mode="pil_bilinear")
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
