"""The speed menu's axes (calibration.speed_menu): parsing, scaled sizes, the pruning rule, and the scale axis end to
end: an artifact exported at a scale of the frame returns masks at the frame's own size."""
from __future__ import annotations

import numpy as np
import pytest

from calibration.speed_menu import (MenuPoint, menu, pareto, parse_scales, parse_token_merges, prune_for_int8,
                                    scaled_size_hw)
from converters.token_merge_spec import TokenMerge
from sdk.core.errors import InputError


def test_parse_axes():
    assert parse_scales("1.0,0.75,0.5") == (1.0, 0.75, 0.5)
    assert [m.spec for m in parse_token_merges("none,2x2,2x2:1+2+3+4")] == ["none", "2x2", "2x2:1+2+3+4"]
    for bad in ("", "0", "1,1", "x", "3"):
        with pytest.raises(InputError):
            parse_scales(bad)
    with pytest.raises(InputError):
        parse_token_merges("2x2,2x2")


def test_scaled_size_and_tags():
    assert scaled_size_hw((360, 480), 0.75) == (270, 360) and scaled_size_hw((360, 480), 0.5) == (180, 240)
    with pytest.raises(InputError):
        scaled_size_hw((360, 480), 0.05)
    points = menu("1.0,0.5", "none,2x2")
    assert [p.tag for p in points] == ["", "tm2x2", "s0.5", "s0.5-tm2x2"]
    assert points[3].export_args((360, 480)) == "--size 180 240 --token-merge 2x2"
    assert MenuPoint(scale=1.0, merge=TokenMerge(mode="2x2", stages=(1, 2, 3))).tag == "tm2x2-123"


def test_pareto_and_prune():
    rows = [{"name": "full", "p50_ms": 80, "drop_points": 0.0}, {"name": "merge", "p50_ms": 70, "drop_points": 0.3},
            {"name": "slow-bad", "p50_ms": 90, "drop_points": 0.5}, {"name": "half", "p50_ms": 30, "drop_points": 3.7},
            {"name": "untimed", "p50_ms": None, "drop_points": 0.0}]
    assert [r["name"] for r in pareto(rows)] == ["full", "merge", "half"]
    assert [r["name"] for r in prune_for_int8(rows, 0.5)] == ["full", "merge"]  # half is over the budget


def test_scale_axis_masks_at_frame_size(tmp_path, hf_model, camvid):
    import cv2

    from converters.onnx_export import export_onnx
    from sdk.segmenter import Segmenter

    image = np.ascontiguousarray(cv2.imread(str(sorted((camvid / "val").glob("*.png"))[0]))[..., ::-1])
    full = export_onnx(hf_model, tmp_path / "full", graph="onnxruntime", progress=False)
    half = export_onnx(hf_model, tmp_path / "half", graph="onnxruntime",
                       size_hw=scaled_size_hw(image.shape[:2], 0.5), progress=False)
    with Segmenter.from_artifact(full, runtime="onnxruntime") as a, \
            Segmenter.from_artifact(half, runtime="onnxruntime") as b:
        assert tuple(b.manifest.preprocess.size_hw) == (180, 240)
        ma, mb = a(image).mask, b(image).mask
    assert ma.shape == mb.shape == image.shape[:2]
    agreement = float(np.mean(ma == mb))
    assert 0.7 < agreement < 1.0  # the same scene at half the resolution: close, not identical
