"""Latency-aware per-region INT8 (calibration.quantize(latency_aware=...), implemented in calibration.latency_aware)
on the shared B0 at a small network size: regions, the search's record, and its guarantee: the result is never
slower than the float artifact it was timed against."""
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
    from calibration import quantize
    from calibration.datasets import CamVid
    from calibration.latency_aware import LatencyAwareOptions
    from calibration.sets import load_calibration_set

    calib = load_calibration_set(camvid / "train.txt", num_samples=4, seed=0)
    data = list(CamVid(camvid, "val"))[:3]
    result = quantize(small_fp32, tmp_path / "la", backend="onnxruntime", calib=calib, eval_set=data, max_drop=100.0,
                      latency_aware=LatencyAwareOptions(repeats=3, probe_images=2), holdout=0, progress=False)
    r = result.latency_aware
    assert r.artifact == result.artifact == tmp_path / "la"
    assert result.plan.latency_aware and not result.plan.accuracy_aware and result.speed is None
    assert sorted(t.region for t in r.trials) == ["decoder"] + [f"encoder/stages.{i}" for i in range(4)]
    assert sorted(r.float_regions + r.int8_regions) == sorted(t.region for t in r.trials)
    manifest = read_manifest(tmp_path / "la")
    record = manifest.extra["latency_aware"]
    assert record["winner"] == r.winner and record["verdict"] == r.verdict
    if r.winner == "int8":
        assert r.int8_p50_ms < r.float_p50_ms and manifest.precision == "int8" and r.int8_regions
        assert result.next_command().startswith("segedge predict") and "verify" in result.next_command()
    else:
        assert r.verdict.startswith("FP32 wins here") and manifest.precision == "fp32" and not r.int8_regions
        assert result.calibration is None and "verify" not in result.next_command()
    assert not any(p.name.startswith("segedge-latency-") for p in (tmp_path / "la").iterdir())


def test_refuses_bad_options(tmp_path, small_fp32):
    from calibration import quantize
    from calibration.latency_aware import LatencyAwareOptions
    from calibration.sets import load_calibration_set
    import numpy as np

    calib = load_calibration_set([np.zeros((96, 128, 3), np.uint8)] * 2)
    for kwargs, needle in ((dict(backend="tensorrt", eval_set=[(None, None)], max_drop=0.5), "TensorRT is timed"),
                           (dict(backend="onnxruntime", eval_set=[(None, None)]), "eval_set and max_drop go"),
                           (dict(backend="onnxruntime"), "needs --eval LABELLED and --max-drop"),
                           (dict(backend="onnxruntime", eval_set=[(None, None)], max_drop=-1), "max_drop: expected"),
                           (dict(backend="onnxruntime", eval_set=[(None, None)], max_drop=0.5, keep_float=["x"]),
                            "keep_float and latency_aware contradict")):
        with pytest.raises(InputError, match=needle):
            quantize(small_fp32, tmp_path / "x", calib=calib, latency_aware=True, **kwargs)
    with pytest.raises(InputError, match="eval_data: expected labelled"):
        quantize(small_fp32, tmp_path / "x", backend="onnxruntime", calib=calib, eval_set=[], max_drop=0.5,
                 latency_aware=True, holdout=0)
    for bad in (dict(granularity="layer"), dict(repeats=0)):
        with pytest.raises(InputError):
            LatencyAwareOptions(**bad)
    with pytest.raises(InputError, match="latency_aware: expected True, False"):
        quantize(small_fp32, tmp_path / "x", backend="onnxruntime", calib=calib, latency_aware="yes")


def test_cli_and_report_command(tmp_path):
    """segedge quantize --latency-aware parses, and the report's command for the variant is such a line."""
    from calibration.report.commands import quantize_command
    from calibration.report.plan import BuildContext, Cell, Variant
    from sdk.cli import build_parser

    args = build_parser().parse_args(["quantize", "ckpt", "--backend", "onnxruntime", "--calib", "frames/",
                                      "--eval", "val/", "--max-drop", "0.5", "--latency-aware", "--output", "o"])
    assert args.latency_aware and args.max_drop == 0.5
    assert not build_parser().parse_args(["quantize", "c", "--backend", "openvino", "--calib", "f",
                                          "--output", "o"]).latency_aware
    ctx = BuildContext(source=tmp_path / "ckpt", source_is_artifact=False, fp32=tmp_path / "fp32",
                       portable=tmp_path / "fp32-portable", artifacts=tmp_path, calib=None, calib_arg="frames/",
                       num_samples=50, seed=3, size_hw=(128, 160), ov_size_hw=(128, 160), tune_arg="val/",
                       tune_data=[], max_drop=0.7, latency_hw=(128, 160), frame_hw=(360, 480), batch=2,
                       progress=False)
    v = Variant.of(Cell(backend="onnxruntime", precision="int8", method="minmax", preset="latency-aware"),
                   runtime="onnxruntime")
    line = quantize_command(ctx, v, tmp_path / "out")
    assert line.startswith("segedge quantize ") and "python -c" not in line
    args = build_parser().parse_args(line.split()[1:])
    assert args.latency_aware and args.holdout == 0 and args.max_drop == 0.7 and args.eval_set == "val/"
    assert args.method == "minmax" and args.size == [128, 160]
