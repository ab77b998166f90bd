"""segedge quantize times the INT8 artifact against its FP32 on this machine (each runtime alone), records both in
the manifest with the machine's ISA, inspect shows it, and where INT8 is not faster by the margin it says so and
names the faster command (issue 28 item 2). The timing is simulated where the verdict matters; one test times for
real. Real ONNX Runtime and OpenVINO on the tiny real graph from ``tests/tiny_artifacts``."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration import int8_speed, quantize
from sdk.core import cpu
from sdk.core.manifest import read_manifest
from sdk.core.records import SpeedRecord
from tiny_artifacts import write_onnx_artifact

pytest.importorskip("onnxruntime")


def _frames(n: int, hw=(64, 80), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    return [np.clip(base.astype(int) + rng.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)
            for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory):
    return write_onnx_artifact(tmp_path_factory.mktemp("speed") / "fp32", head="refine")


def _simulate(monkeypatch, int8_ms: dict, fp32_ms: dict) -> list:
    """``time_each`` replaced by fixed p50s (INT8 first, then FP32, as measure_speed times them)."""
    calls: list = []

    def fake(artifact, size_hw):
        calls.append((read_manifest(artifact).precision, tuple(size_hw)))
        p50 = int8_ms if len(calls) == 1 else fp32_ms
        return dict(p50), {n: f"{n} (simulated)" for n in p50}

    monkeypatch.setattr(int8_speed, "time_each", fake)
    return calls


def test_int8_slower_than_fp32_is_said_with_the_faster_command(tmp_path, tiny_fp32, monkeypatch, capsys):
    from sdk.cli import main

    calls = _simulate(monkeypatch, {"onnxruntime": 30.0}, {"onnxruntime": 28.0, "openvino": 18.0})
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, frame in enumerate(_frames(24)):
        cv2.imwrite(str(calib / f"{i:02d}.png"), frame)
    out = tmp_path / "int8"
    assert main(["quantize", str(tiny_fp32), "--backend", "onnxruntime", "--calib", str(calib), "--output", str(out),
                 "-q"]) == 0
    assert calls == [("int8", (64, 80)), ("fp32", (64, 80))]  # at the calibration frames' network size
    captured = capsys.readouterr()
    assert "speed here: INT8 30 ms (onnxruntime) vs FP32 18 ms (openvino (simulated)) p50 at 64x80: 0.60x" in \
        captured.out
    warning = captured.err
    assert "WARNING: INT8 is not faster than its FP32 on this machine" in warning
    assert f"segedge predict {tiny_fp32} IMAGES --output masks/ --runtime openvino" in warning
    assert "latency-aware" in warning and f"segedge report {tiny_fp32}" in warning
    record = SpeedRecord.read(read_manifest(out))
    assert record.int8_faster is False and record.speedup == pytest.approx(0.6)
    assert record.fp32_runtime == "openvino" and record.int8_runtime == "onnxruntime"
    assert record.fp32_ms == {"onnxruntime": 28.0, "openvino": 18.0} and record.machine == cpu.host_isa()
    assert "alone" in record.isolation and record.size_hw == [64, 80]
    assert main(["inspect", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "speed      INT8 30 ms (onnxruntime) vs FP32 18 ms" in shown and "NOT faster" in shown
    assert f"on this {cpu.host_isa()['class']} CPU" in shown


def test_int8_faster_by_the_margin_is_recorded_without_a_warning(tmp_path, tiny_fp32, monkeypatch):
    _simulate(monkeypatch, {"onnxruntime": 10.0, "openvino": 12.0}, {"onnxruntime": 20.0})
    result = quantize(tiny_fp32, tmp_path / "q", backend="onnxruntime", calib=_frames(24), speed_check=True,
                      progress=False)
    assert result.speed is not None and result.speed.int8_faster and result.speed.speedup == pytest.approx(2.0)
    assert SpeedRecord.read(read_manifest(result.artifact)) == result.speed
    assert int8_speed.slower_message(result.speed, source=tiny_fp32) is None
    near = _simulate(monkeypatch, {"onnxruntime": 19.0}, {"onnxruntime": 20.0})  # 1.05x: under the 1.10x margin
    result = quantize(tiny_fp32, tmp_path / "q2", backend="onnxruntime", calib=_frames(24), speed_check=True,
                      progress=False)
    assert near and not result.speed.int8_faster
    assert "--runtime onnxruntime" in int8_speed.slower_message(result.speed, source=tiny_fp32)


def test_python_quantize_times_nothing_unless_asked(tmp_path, tiny_fp32, monkeypatch):
    calls = _simulate(monkeypatch, {"onnxruntime": 10.0}, {"onnxruntime": 20.0})
    result = quantize(tiny_fp32, tmp_path / "q", backend="onnxruntime", calib=_frames(24), progress=False)
    assert result.speed is None and calls == [] and SpeedRecord.read(read_manifest(result.artifact)) is None


def test_real_timing_each_runtime_alone(tmp_path, tiny_fp32):
    result = quantize(tiny_fp32, tmp_path / "q", backend="onnxruntime", calib=_frames(24), speed_check=True,
                      progress=False)
    s = result.speed
    expected = {"onnxruntime", "openvino"} if _has("openvino") else {"onnxruntime"}  # a portable graph: both run it
    assert set(s.int8_ms) == set(s.fp32_ms) == expected
    assert all(v > 0 for v in [*s.int8_ms.values(), *s.fp32_ms.values()])
    assert s.speedup == pytest.approx(s.fp32_ms[s.fp32_runtime] / s.int8_ms[s.int8_runtime], rel=1e-2)
    assert s.machine == cpu.host_isa() and s.fp32_artifact == str(tiny_fp32)


def _has(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def test_from_a_checkpoint_the_record_names_the_fp32_kept_inside(tmp_path, hf_model, camvid, monkeypatch):
    """From a checkpoint the FP32 export is kept in OUTPUT/fp32: the record and the faster command name it there
    (not the staging folder it was timed in)."""
    _simulate(monkeypatch, {"onnxruntime": 30.0}, {"onnxruntime": 20.0})
    out = tmp_path / "ort-int8"
    result = quantize(hf_model, out, backend="onnxruntime", calib=camvid / "train.txt", num_samples=4,
                      size_hw=(64, 64), speed_check=True, progress=False)
    record = SpeedRecord.read(read_manifest(out))
    assert record == result.speed and record.fp32_artifact == str(out.resolve() / "fp32")
    assert read_manifest(out / "fp32").precision == "fp32" and record.size_hw == [64, 64]
    assert f"segedge predict {out.resolve() / 'fp32'} IMAGES" in int8_speed.slower_message(record, source=hf_model)
