"""INT8 you can trust on the machine it runs on: CPU classes, the recipe per target, the load-time warning,
held-out agreement and reference frames in the artifact, ``segedge verify``, bounded calibration memory and the
scale-aware export parity. Real ONNX Runtime on the tiny real graph from ``tests/tiny_artifacts``."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from calibration import quantize
from calibration.int8 import plan, split_holdout
from calibration.sets import load_calibration_set
from sdk.core import cpu
from sdk.core.errors import InputError
from sdk.core.manifest import read_manifest
from sdk.core.records import HeldOutAccuracy, ReferenceRecord, TargetCpuRecord
from tiny_artifacts import write_onnx_artifact

ROOT = Path(__file__).resolve().parents[2]
AVX2_HOST = {"class": "avx2", "machine": "x86_64", "flags": ["avx2"]}
VNNI_HOST = {"class": "vnni", "machine": "x86_64", "flags": ["avx2", "avx512f", "avx512bw", "avx512_vnni"]}


def _frames(n: int, hw=(64, 80), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    return [np.clip(base.astype(int) + rng.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)
            for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory):
    return write_onnx_artifact(tmp_path_factory.mktemp("tiny") / "fp32")


@pytest.mark.parametrize("flags, machine, expected", [
    ({"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "x86_64", "vnni"),
    ({"avx2", "avx_vnni"}, "x86_64", "vnni"),  # AVX-VNNI (no AVX-512)
    ({"avx2", "avx512f", "avx512bw"}, "x86_64", "avx512"),  # AVX-512 without VNNI
    ({"avx2", "fma"}, "x86_64", "avx2"),
    ({"sse4_2"}, "x86_64", "avx2"),
    ({"asimd", "asimddp"}, "aarch64", "arm64"),
])
def test_cpu_class_from_flags(flags, machine, expected):
    assert cpu.cpu_class(frozenset(flags), machine) == expected
    assert cpu.saturates(expected) == (expected in ("avx2", "avx512"))


def test_host_isa_is_one_of_the_classes():
    host = cpu.host_isa()
    assert host["class"] in cpu.CPU_CLASSES and set(host["flags"]) <= set(cpu.ISA_FLAGS)
    assert cpu.resolve_target_cpu("auto") == host["class"]


@pytest.mark.parametrize("backend, target, recipe", [
    ("onnxruntime", "avx2", "reduce_range"), ("onnxruntime", "avx512", "reduce_range"),
    ("onnxruntime", "vnni", "8-bit weights"), ("onnxruntime", "arm64", "8-bit weights"),
    ("openvino", "avx2", "overflow_fix"), ("openvino", "vnni", "8-bit weights"),
])
def test_plan_picks_the_recipe_per_target(backend, target, recipe):
    p = plan(backend=backend, target_cpu=target)
    assert (p.target_cpu, p.recipe) == (target, recipe)
    assert p.graph == ("onnxruntime" if backend == "onnxruntime" else "portable")
    assert p.method == ("minmax" if backend == "onnxruntime" else None)


def test_plan_refuses_contradictions_before_any_work(tmp_path):
    with pytest.raises(InputError, match="GPU"):
        plan(backend="tensorrt", target_cpu="avx2")
    assert plan(backend="tensorrt").target_cpu == "gpu" and plan(backend="tensorrt").method == "percentile"
    with pytest.raises(InputError, match="NNCF"):
        plan(backend="openvino", method="entropy")
    with pytest.raises(InputError, match="target_cpu"):
        plan(backend="onnxruntime", target_cpu="pentium")
    # checked before the calibration source is even looked at (it does not exist)
    with pytest.raises(InputError, match="contradict"):
        quantize(tmp_path / "nothing", tmp_path / "out", backend="onnxruntime", calib=tmp_path / "missing",
                 keep_float=("x",), eval_set=tmp_path, max_drop=1.0)
    with pytest.raises(InputError, match="go together"):
        quantize(tmp_path / "nothing", tmp_path / "out", backend="openvino", calib=tmp_path / "missing",
                 max_drop=1.0)


def test_split_holdout_keeps_frames_apart():
    calib = load_calibration_set(iter(_frames(24)), num_samples=24)
    kept, held = split_holdout(calib, None)
    assert len(held) == 3 and len(kept) == 21
    assert not any(any(np.array_equal(h, k) for k in kept.frames) for h in held)
    with pytest.raises(InputError, match="holdout"):
        split_holdout(calib, 24)


def _weight_range(art) -> int:
    """Largest |int8 weight| in the quantized graph (weights are the int8 initializers of rank >= 2)."""
    inits = onnx.load(str(art / "model.onnx")).graph.initializer
    ws = [numpy_helper.to_array(i) for i in inits if i.data_type == onnx.TensorProto.INT8 and len(i.dims) >= 2]
    assert ws
    return max(int(np.abs(w.astype(int)).max()) for w in ws)


def test_target_recorded_and_recipe_applied(tmp_path, tiny_fp32, caplog):
    frames = _frames(20)
    caplog.set_level(logging.WARNING, logger="segedge")
    avx2 = quantize(tiny_fp32, tmp_path / "avx2", backend="onnxruntime", calib=frames, target_cpu="avx2",
                    progress=False)
    assert "fewer than 32" in caplog.text  # 18 calibration frames
    vnni = quantize(tiny_fp32, tmp_path / "vnni", backend="onnxruntime", calib=frames, target_cpu="vnni",
                    progress=False)
    m = read_manifest(avx2.artifact)
    target = TargetCpuRecord.read(m)
    assert target.cpu == "avx2" and target.recipe == "reduce_range" and target.calibrated_on == cpu.host_isa()
    assert m.extra["quantization"]["reduce_range"] is True
    assert _weight_range(avx2.artifact) <= 64 < _weight_range(vnni.artifact)  # 7-bit vs 8-bit weights
    assert TargetCpuRecord.read(read_manifest(vnni.artifact)).recipe == "8-bit weights"


def test_held_out_agreement_and_reference_frames_recorded(tmp_path, tiny_fp32):
    result = quantize(tiny_fp32, tmp_path / "q", backend="onnxruntime", calib=_frames(40), progress=False)
    m = read_manifest(result.artifact)
    acc = HeldOutAccuracy.read(m)
    assert acc == result.accuracy and acc.frames == 5 and acc.machine == cpu.host_isa()
    assert 0.5 < acc.agreement <= 1.0 and acc.runtime
    assert result.calibration.frames == 35 and result.calibration.held_out == 5
    ref = ReferenceRecord.read(m)  # every held-out frame ships: one figure, what verify checks (issue 27 item 3)
    assert len(ref.frames) == 5 and ref.agreement == acc.agreement
    mask = cv2.imread(str(result.artifact / ref.folder / ref.masks[0]), cv2.IMREAD_UNCHANGED)
    frame = cv2.imread(str(result.artifact / ref.folder / ref.frames[0]))
    assert mask.shape == frame.shape[:2] == (64, 80) and mask.max() < m.num_classes


def test_load_warns_on_a_saturating_cpu_when_not_made_for_it(tmp_path, tiny_fp32, monkeypatch, caplog):
    from sdk import Segmenter

    frames = _frames(12)
    vnni = quantize(tiny_fp32, tmp_path / "vnni", backend="onnxruntime", calib=frames, target_cpu="vnni",
                    progress=False).artifact
    avx2 = quantize(tiny_fp32, tmp_path / "avx2", backend="onnxruntime", calib=frames, target_cpu="avx2",
                    progress=False).artifact
    msg = cpu.saturation_warning(read_manifest(vnni), vnni, host=AVX2_HOST)
    assert "made for CPU class 'vnni'" in msg and "saturate" in msg and "--target-cpu avx2" in msg
    assert cpu.saturation_warning(read_manifest(avx2), avx2, host=AVX2_HOST) is None
    assert cpu.saturation_warning(read_manifest(vnni), vnni, host=VNNI_HOST) is None
    assert cpu.saturation_warning(read_manifest(tiny_fp32), tiny_fp32, host=AVX2_HOST) is None  # FP32
    # opening it logs it once, on a simulated AVX2 host
    monkeypatch.setattr(cpu, "host_isa", lambda: AVX2_HOST)
    caplog.set_level(logging.WARNING, logger="segedge")
    for _ in range(2):
        Segmenter.from_artifact(vnni).close()
        Segmenter.from_artifact(avx2).close()
    assert caplog.text.count("--target-cpu avx2") == 1 and str(vnni) in caplog.text


def test_verify_passes_then_fails_when_the_reference_disagrees(tmp_path, tiny_fp32, capsys):
    from sdk.cli import main

    art = quantize(tiny_fp32, tmp_path / "q", backend="onnxruntime", calib=_frames(40), progress=False).artifact
    assert main(["verify", str(art), "--min-agreement", "0.5", "--json", str(tmp_path / "v.json")]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "shipped" in out
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["passed"] and report["agreement"] == pytest.approx(report["recorded_agreement"])
    # against the FP32 artifact itself on the shipped frames: same numbers, another path
    assert main(["verify", str(art), "--reference", str(tiny_fp32), "--min-agreement", "0.5"]) == 0
    # a reference that no longer matches: exit 1 with the reason
    ref = ReferenceRecord.read(read_manifest(art))
    for name in ref.masks:
        path = art / ref.folder / name
        cv2.imwrite(str(path), (cv2.imread(str(path), cv2.IMREAD_UNCHANGED) + 1) % 5)
    capsys.readouterr()
    assert main(["verify", str(art), "--min-agreement", "0.5"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["verify", str(tiny_fp32)]) == 1  # no reference at all: a one-line error
    assert "--reference" in capsys.readouterr().err


def test_verify_default_margin_catches_a_few_tenths(tmp_path, tiny_fp32, capsys):
    """0.4% of the reference pixels changed: under the default margin (0.3 points: a CPU class the artifact was not
    made for measured 0.47-0.83 points under on B0), a pass with a margin of 0.5."""
    from calibration.verify import MARGIN_POINTS
    from sdk.cli import main

    assert MARGIN_POINTS == 0.3
    art = quantize(tiny_fp32, tmp_path / "q", backend="onnxruntime", calib=_frames(40), progress=False).artifact
    ref = ReferenceRecord.read(read_manifest(art))
    for name in ref.masks:
        path = art / ref.folder / name
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        flat = mask.reshape(-1)
        n = int(0.004 * flat.size) + 1
        flat[:n] = (flat[:n] + 1) % 5
        cv2.imwrite(str(path), mask)
    assert main(["verify", str(art), "--min-agreement", "0.5"]) == 1
    assert "margin 0.3" in capsys.readouterr().out
    assert main(["verify", str(art), "--min-agreement", "0.5", "--margin-points", "0.5"]) == 0


_MEMORY_RUN = """
import resource, sys, numpy as np
from calibration import quantize
from sdk.core.manifest import read_manifest
rng = np.random.default_rng(0)
frames = (rng.integers(0, 256, (1440, 1920, 3), dtype=np.uint8) for _ in range(16))
art = quantize(sys.argv[1], sys.argv[2], backend="onnxruntime", calib=frames, method="percentile", holdout=0,
               calib_memory_mib=int(sys.argv[3]), progress=False).artifact
print(read_manifest(art).extra["quantization"]["calib_slice_frames"],
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_histogram_calibration_memory_is_bounded_at_large_frames(tmp_path, tiny_fp32):
    """16 frames of 1440x1920 (about 150 MB of float tensors each in the tiny graph) with percentile: a 200 MiB
    budget slices them one or two at a time, and the process stays far under what 16 at once would hold."""
    run = subprocess.run([sys.executable, "-c", _MEMORY_RUN, str(tiny_fp32), str(tmp_path / "q"), "200"],
                         capture_output=True, text=True, check=True, cwd=str(ROOT))
    slice_frames, peak_mib = map(int, run.stdout.split()[-2:])
    assert slice_frames <= 2
    # frames themselves: 16 x 8 MB; the model's tensors for one frame ~150 MB; 16 at once would be ~2.4 GB. The
    # peak varies run to run with the allocator (1258 MiB seen once in a full suite run, under 1200 alone)
    assert peak_mib < 1400, run.stdout


def test_export_parity_tolerance_follows_the_logits_scale():
    from converters.onnx_export import logit_parity

    ok, record = logit_parity(0.000164, 400.0)  # the mmseg case: logits in the hundreds, exact to ~4e-7
    assert ok and record["onnxruntime_vs_torch_rel_logit"] == pytest.approx(4.1e-7)
    assert record["onnxruntime_vs_torch_max_abs_logit"] == 0.000164 and record["parity_tolerance"] > 0.000164
    assert not logit_parity(0.000164, 3.0)[0]  # the same difference on small logits is a real mismatch
    assert not logit_parity(0.5, 400.0)[0]
