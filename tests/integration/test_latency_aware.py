"""Latency-aware per-region INT8 (calibration.latency_aware) on the shared B0 at a small network size: regions,
the search's record, and its guarantee: the result is never slower than the float artifact it was timed against."""
from __future__ import annotations


import pytest

from sdk.core.errors import InputError
from sdk.core.manifest import read_manifest


@pytest.fixture(scope="module")
def small_fp32(tmp_path_factory, hf_model):
    from converters.onnx_export import export_onnx

    return export_onnx(hf_model, tmp_path_factory.mktemp("la") / "fp32", size_hw=(96, 128), graph="onnxruntime",
                       progress=False)


def test_regions_per_stage_and_per_block(small_fp32):
    from calibration.latency_aware import regions

    stage = regions(small_fp32, "onnxruntime", "stage")
    assert sorted(stage) == ["decoder"] + [f"encoder/stages.{i}" for i in range(4)]
    block = regions(small_fp32, "onnxruntime", "block")
    assert "encoder/stages.0/blocks.1" in block and "encoder/stages.3/patch_embed" in block and len(block) == 13
    with pytest.raises(InputError):
        regions(small_fp32, "onnxruntime", "layer")


def test_search_records_and_is_never_slower_than_float(tmp_path, small_fp32, camvid):
    from calibration.datasets import CamVid
    from calibration.latency_aware import latency_aware_quantize
    from calibration.sets import load_calibration_set

    calib = load_calibration_set(camvid / "train.txt", num_samples=4, seed=0)
    data = list(CamVid(camvid, "val"))[:3]
    r = latency_aware_quantize(small_fp32, tmp_path / "la", backend="onnxruntime", calib=calib, eval_data=data,
                               max_drop=100.0, repeats=3, probe_images=2, progress=False)
    assert sorted(t.region for t in r.trials) == ["decoder"] + [f"encoder/stages.{i}" for i in range(4)]
    assert sorted(r.float_regions + r.int8_regions) == sorted(t.region for t in r.trials)
    manifest = read_manifest(tmp_path / "la")
    record = manifest.extra["latency_aware"]
    assert record["winner"] == r.winner and record["verdict"] == r.verdict
    if r.winner == "int8":
        assert r.int8_p50_ms < r.float_p50_ms and manifest.precision == "int8" and r.int8_regions
    else:
        assert r.verdict.startswith("FP32 wins here") and manifest.precision == "fp32" and not r.int8_regions
    assert not any(p.name.startswith("segedge-latency-") for p in (tmp_path / "la").iterdir())


def test_refuses_bad_options(tmp_path, small_fp32):
    from calibration.latency_aware import latency_aware_quantize
    from calibration.sets import load_calibration_set
    import numpy as np

    calib = load_calibration_set([np.zeros((96, 128, 3), np.uint8)] * 2)
    for kwargs in (dict(backend="tensorrt", eval_data=[(None, None)], max_drop=0.5),
                   dict(backend="onnxruntime", eval_data=[], max_drop=0.5),
                   dict(backend="onnxruntime", eval_data=[(None, None)], max_drop=-1)):
        with pytest.raises(InputError):
            latency_aware_quantize(small_fp32, tmp_path / "x", calib=calib, **kwargs)
