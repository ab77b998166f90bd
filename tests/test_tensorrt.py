"""TensorRT: graph preparation, optimization profiles, fingerprints, artifact layout, and (on a GPU) real engines.

CPU tier: everything that is plain Python or ONNX (checked with ONNX Runtime). No fake TensorRT module anywhere:
where TensorRT is absent the tests assert the clear refusal. GPU tier (``@pytest.mark.gpu``): builds and runs real
engines; skipped with the reason (no real TensorRT, no pycuda, no CUDA driver/GPU) elsewhere.
"""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from converters.tensorrt_build import (AUTO, build_engine, check_qdq, default_timing_cache, plan_profile,
                                       prepare_onnx, rebuild_command)
from runtimes.tensorrt import ShapeRange, TensorRTRuntime, engine_manifest_info, require_tensorrt
from sdk.core.manifest import resolve_artifact
from runtimes.tensorrt_device import (EngineFingerprint, HostInfo, check_compatibility, host_platform,
                                      version_tuple)
from sdk.core.errors import ArtifactError, ExportError, InputError, MissingDependencyError, SegEdgeError
from sdk.core.manifest import read_manifest
from tiny_artifacts import ORIN, tiny_logits_model, write_engine_artifact, write_onnx_artifact

ROOT = Path(__file__).resolve().parents[1]


def _session(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _real_tensorrt() -> bool:
    try:
        require_tensorrt()
    except MissingDependencyError:
        return False
    return True


# ---------------------------------------------------------------- graph preparation (checked on ONNX Runtime)

@pytest.mark.parametrize("upsample", ["exact", "fast"])
def test_prepare_onnx_mask_head_is_exact_and_tensorrt_shaped(tmp_path, upsample):
    import onnx
    from onnx import TensorProto

    folder = write_onnx_artifact(tmp_path / "a", upsample=upsample)
    original = onnx.load(str(folder / "model.onnx"))
    prepared = copy.deepcopy(original)
    changes = prepare_onnx(prepared)
    onnx.checker.check_model(prepared)
    assert len(changes) == 2 and "int32" in changes[0] and "float32" in changes[1]
    # output_size is an int32 graph input now; no Resize sees an integer tensor; one final Cast makes the mask
    inputs = {i.name: i.type.tensor_type.elem_type for i in prepared.graph.input}
    assert inputs["output_size"] == TensorProto.INT32
    to_uint8 = [n for n in prepared.graph.node if n.op_type == "Cast" and n.attribute[0].i == TensorProto.UINT8]
    assert [n.output[0] for n in to_uint8] == ["mask"]
    ref, got = _session(original), _session(prepared)
    rng = np.random.default_rng(0)
    for shape, out_hw in [((1, 3, 64, 96), (64, 96)), ((2, 3, 96, 64), (131, 47)), ((1, 3, 32, 32), (200, 300))]:
        x = rng.standard_normal(shape).astype(np.float32)
        want = ref.run(["mask"], {"pixel_values": x, "output_size": np.array(out_hw, np.int64)})[0]
        have = got.run(["mask"], {"pixel_values": x, "output_size": np.array(out_hw, np.int32)})[0]
        assert have.dtype == np.uint8 and have.shape == (shape[0], *out_hw)
        np.testing.assert_array_equal(have, want)


def test_prepare_onnx_softmax_keeps_argmax_and_needs_logits_head(tmp_path):
    import onnx

    folder = write_onnx_artifact(tmp_path / "logits", head="logits")
    original = onnx.load(str(folder / "model.onnx"))
    prepared = copy.deepcopy(original)
    assert prepare_onnx(prepared) == []  # nothing to change without a mask head or softmax
    changes = prepare_onnx(prepared, softmax=True)
    assert len(changes) == 1 and "Softmax" in changes[0]
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    logits = _session(original).run(["logits"], {"pixel_values": x})[0]
    probs = _session(prepared).run(["logits"], {"pixel_values": x})[0]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probs.argmax(1), logits.argmax(1))
    mask_model = onnx.load(str(write_onnx_artifact(tmp_path / "mask") / "model.onnx"))
    with pytest.raises(ExportError, match="softmax: expected a logits-head artifact"):
        prepare_onnx(mask_model, softmax=True)


def _ort_qdq(fp32: Path, out: Path, **extra_options) -> Path:
    """Quantize an artifact's graph with ONNX Runtime's quantize_static (QDQ, int8 symmetric, per channel)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.feeds = iter([{"pixel_values": rng.standard_normal((1, 3, 64, 96)).astype(np.float32),
                                "output_size": np.array([64, 96], np.int64)} for _ in range(4)])

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(str(fp32 / "model.onnx"), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, **extra_options})
    return out


def test_check_qdq_counts_symmetric_int8_and_refuses_what_tensorrt_cannot_parse(tmp_path):
    import onnx

    assert check_qdq(tiny_logits_model()) == 0
    assert check_qdq(tiny_logits_model(qdq=True)) == 2
    with pytest.raises(ExportError, match=r"symmetric int8 Q/DQ .* got 2 of 2"):
        check_qdq(tiny_logits_model(qdq=True, zero_point_type="uint8"))
    fp32 = write_onnx_artifact(tmp_path / "fp32")
    with_bias = onnx.load(str(_ort_qdq(fp32, tmp_path / "bias.onnx")))
    with pytest.raises(ExportError, match=r"int32 biases .* QuantizeBias=False"):
        check_qdq(with_bias)
    float_bias = onnx.load(str(_ort_qdq(fp32, tmp_path / "float_bias.onnx", QuantizeBias=False)))
    assert check_qdq(float_bias) >= 4


def test_prepare_onnx_is_exact_on_a_quantized_mask_graph(tmp_path):
    import onnx

    model = onnx.load(str(_ort_qdq(write_onnx_artifact(tmp_path / "fp32"), tmp_path / "q.onnx",
                                   QuantizeBias=False)))
    prepared = copy.deepcopy(model)
    prepare_onnx(prepared)
    onnx.checker.check_model(prepared)
    x = np.random.default_rng(5).standard_normal((2, 3, 64, 96)).astype(np.float32)
    want = _session(model).run(["mask"], {"pixel_values": x, "output_size": np.array([70, 90], np.int64)})[0]
    have = _session(prepared).run(["mask"], {"pixel_values": x, "output_size": np.array([70, 90], np.int32)})[0]
    np.testing.assert_array_equal(have, want)


# ---------------------------------------------------------------- optimization profiles

def test_profile_fixed_size_is_static_and_must_contain_it(tmp_path):
    m = read_manifest(write_onnx_artifact(tmp_path / "a", size_hw=(256, 512)))
    pixel, out = plan_profile(m, max_batch=4)
    assert (pixel.min, pixel.opt, pixel.max) == ((1, 3, 256, 512), (1, 3, 256, 512), (4, 3, 256, 512))
    # the mask comes back at the image's size: 32x32 .. size .. 2 x size
    assert out.values and (out.min, out.opt, out.max) == ((32, 32), (256, 512), (512, 1024))
    with pytest.raises(InputError, match=r"resizes every image to 256x512"):
        plan_profile(m, max_hw=(128, 128))


def test_profile_dynamic_defaults_and_clamping(tmp_path):
    m = read_manifest(write_onnx_artifact(tmp_path / "a"))
    pixel, out = plan_profile(m)
    assert (pixel.min, pixel.opt, pixel.max) == ((1, 3, 128, 128), (1, 3, 512, 512), (1, 3, 1024, 1024))
    assert (out.min, out.opt, out.max) == ((128, 128), (512, 512), (1024, 1024))  # images run at their own size
    pixel, out = plan_profile(m, max_hw=(360, 480), opt_batch=2, max_batch=8)
    assert (pixel.min, pixel.opt, pixel.max) == ((1, 3, 128, 128), (2, 3, 360, 480), (8, 3, 360, 480))
    pixel, _ = plan_profile(m, min_hw=(720, 960))
    assert pixel.opt == (1, 3, 720, 960) and pixel.max == (1, 3, 1024, 1024)
    with pytest.raises(InputError, match="opt_batch <= max_batch"):
        plan_profile(m, opt_batch=4, max_batch=2)
    with pytest.raises(InputError, match="both >= 32"):
        plan_profile(m, min_hw=(16, 16))
    with pytest.raises(InputError, match="min <= opt <= max"):
        plan_profile(m, min_hw=(512, 512), max_hw=(256, 256))


def test_profile_output_sizes_only_for_mask_head(tmp_path):
    m = read_manifest(write_onnx_artifact(tmp_path / "a", head="logits"))
    assert [r.name for r in plan_profile(m)] == ["pixel_values"]
    with pytest.raises(InputError, match="expected none for a 'logits' head"):
        plan_profile(m, max_output_hw=(1080, 1920))


def test_shape_range_round_trip_and_messages():
    r = ShapeRange(name="pixel_values", min=(1, 3, 128, 128), opt=(1, 3, 512, 512), max=(4, 3, 1024, 1024))
    assert ShapeRange.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert r.contains((2, 3, 360, 480)) and not r.contains((1, 3, 1080, 1920)) and not r.contains((1, 3, 64))
    assert r.describe() == "[1..4, 3, 128..1024, 128..1024]"


# ---------------------------------------------------------------- fingerprints

def _fp(**kw) -> EngineFingerprint:
    return EngineFingerprint(**{**ORIN, "dla_core": None, "precision": "int8", **kw})


def _host(**kw) -> HostInfo:
    base = dict(tensorrt_version="10.3.0.30", gpu_name="Orin", compute_capability="8.7", dla_cores=2)
    return HostInfo(**{**base, **kw})


CMD = "segedge build out/b0-trt-qdq --output out/b0.engine --int8"


def test_fingerprint_match_and_gpu_name_warning():
    assert check_compatibility(_fp(), _host(), rebuild_command=CMD) == []
    warnings = check_compatibility(_fp(), _host(gpu_name="NVIDIA Jetson AGX Orin"), rebuild_command=CMD)
    assert len(warnings) == 1 and "both sm_87" in warnings[0] and CMD in warnings[0]


def test_fingerprint_mismatch_is_one_line_with_the_rebuild_command():
    with pytest.raises(ArtifactError) as err:
        check_compatibility(_fp(), _host(tensorrt_version="8.6.2.3", compute_capability="7.2"), rebuild_command=CMD)
    assert str(err.value) == ("engine was built with TensorRT 10.3 for sm_87; this host has TensorRT 8.6 on sm_72. "
                              f"Rebuild it on the target: {CMD}")
    with pytest.raises(ArtifactError, match=r"TensorRT 8\.6\.1 for sm_87; this host has TensorRT 8\.6\.2 on sm_87"):
        check_compatibility(_fp(tensorrt_version="8.6.1.6"), _host(tensorrt_version="8.6.2.3"), rebuild_command=CMD)
    with pytest.raises(ArtifactError, match=r"TensorRT 10\.3 for sm_87; this host has TensorRT 10\.3 on sm_86"):
        check_compatibility(_fp(), _host(compute_capability="8.6"), rebuild_command=CMD)
    # the build number alone does not make engines incompatible
    assert check_compatibility(_fp(), _host(tensorrt_version="10.3.0.26"), rebuild_command=CMD) == []


def test_fingerprint_dla_cores():
    assert check_compatibility(_fp(dla_core=1), _host(), rebuild_command=CMD) == []
    with pytest.raises(ArtifactError, match=r"DLA core 1; this host has no DLA\. Rebuild it for the GPU only"):
        check_compatibility(_fp(dla_core=1), _host(dla_cores=0), rebuild_command=CMD)
    with pytest.raises(ArtifactError, match=r"DLA core 2; this host has DLA cores 0\.\.1"):
        check_compatibility(_fp(dla_core=0), _host(), rebuild_command=CMD, dla_core=2)


def test_fingerprint_round_trip_and_malformed():
    fp = _fp(dla_core=0)
    assert EngineFingerprint.from_dict(json.loads(json.dumps(fp.to_dict()))) == fp and fp.sm == "sm_87"
    with pytest.raises(ArtifactError, match="engine fingerprint: expected tensorrt_version"):
        EngineFingerprint.from_dict({"gpu_name": "Orin"})
    assert version_tuple("10.3.0.30") == (10, 3, 0) and version_tuple("8.6") == (8, 6, 0)
    assert version_tuple("11.0.0rc1") == (11, 0, 0)
    assert host_platform()  # "x86_64 Linux" here, "aarch64 L4T R36.4.0" on a Jetson


# ---------------------------------------------------------------- artifact layout, commands, resolution

def test_engine_artifact_manifest_round_trip(tmp_path):
    onnx_dir = write_onnx_artifact(tmp_path / "b0-fp32")
    profile = plan_profile(read_manifest(onnx_dir), max_batch=2)
    engine_dir = write_engine_artifact(tmp_path / "b0.engine", onnx_dir, profile=profile, dla_core=0)
    m = read_manifest(engine_dir)
    assert (m.format, m.model_file, m.precision, m.head) == ("tensorrt", "model.engine", "fp16", "mask")
    assert [t.dtype for t in m.inputs] == ["float32", "int64"]  # the SDK feeds int64; the engine takes int32
    assert m.source["onnx_artifact"] == str(onnx_dir) and m.versions["tensorrt"] == "10.3.0.30"
    fingerprint, ranges, command = engine_manifest_info(m)
    assert fingerprint.dla_core == 0 and ranges["pixel_values"].max[0] == 2 and command.startswith("segedge build")
    # the engine file stays byte-standard: model.json is separate and nothing is prepended
    assert (engine_dir / "model.engine").read_bytes().startswith(b"placeholder")


def test_engine_manifest_without_fingerprint_is_refused(tmp_path):
    m = read_manifest(write_onnx_artifact(tmp_path / "a"))
    with pytest.raises(ArtifactError, match="expected the engine fingerprint written by segedge build"):
        engine_manifest_info(m)


def test_rebuild_command():
    cmd = rebuild_command("out/b0-trt-qdq", "out/b0 engine", int8=True, dla_core=0, workspace_mib=1024,
                          shapes={"min_hw": None, "max_hw": (720, 1280)}, max_batch=4)
    assert cmd == ("segedge build out/b0-trt-qdq --output 'out/b0 engine' --int8 --dla 0 --workspace-mib 1024 "
                   "--max-hw 720 1280 --max-batch 4")


def test_resolve_artifact_accepts_the_engine_file(tmp_path):
    onnx_dir = write_onnx_artifact(tmp_path / "onnx")
    engine_dir = write_engine_artifact(tmp_path / "b0.engine", onnx_dir, profile=plan_profile(read_manifest(onnx_dir)))
    assert resolve_artifact(engine_dir) == engine_dir
    assert resolve_artifact(engine_dir / "model.engine") == engine_dir
    assert resolve_artifact(engine_dir / "model.json") == engine_dir
    assert resolve_artifact(onnx_dir / "model.onnx") == onnx_dir
    bare = tmp_path / "trtexec.engine"
    bare.write_bytes(b"x")
    with pytest.raises(ArtifactError, match="bare engine has no labels or preprocessing"):
        resolve_artifact(bare)
    assert resolve_artifact(tmp_path / "missing") == tmp_path / "missing"  # read_manifest reports it


def test_default_timing_cache_is_per_version_and_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_timing_cache("10.3.0.30", "8.7") == tmp_path / "segedge" / "tensorrt-10.3.0.30-sm87.timing-cache"
    assert AUTO == "auto"


# ---------------------------------------------------------------- refusals before and without TensorRT

def test_build_refuses_contradictory_options_before_touching_tensorrt(tmp_path):
    fp32 = write_onnx_artifact(tmp_path / "fp32")
    qdq = write_onnx_artifact(tmp_path / "qdq", qdq=True)
    with pytest.raises(ExportError, match="int8: expected a Q/DQ ONNX artifact"):
        build_engine(fp32, tmp_path / "o", int8=True)
    with pytest.raises(ExportError, match=r"is quantized \(2 Q/DQ nodes\); expected --int8"):
        build_engine(qdq, tmp_path / "o")
    with pytest.raises(InputError, match="DLA runs FP16 and INT8 layers only"):
        build_engine(fp32, tmp_path / "o", dla_core=0)
    with pytest.raises(InputError, match="workspace_mib: expected >= 1"):
        build_engine(fp32, tmp_path / "o", workspace_mib=0)
    engine_dir = write_engine_artifact(tmp_path / "e", fp32, profile=plan_profile(read_manifest(fp32)))
    with pytest.raises(ExportError, match="expected an ONNX artifact"):
        build_engine(engine_dir, tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(_real_tensorrt(), reason="real TensorRT is installed: the refusal path does not apply")
def test_without_tensorrt_build_and_runtime_refuse_clearly(tmp_path):
    onnx_dir = write_onnx_artifact(tmp_path / "onnx")
    with pytest.raises(MissingDependencyError) as err:
        build_engine(onnx_dir, tmp_path / "o", fp16=True)
    message = str(err.value)
    assert message.startswith("tensorrt is not installed")
    if find_spec("tensorrt") is not None:  # the tensorrt-stubs namespace package (tests/run.sh installs it)
        assert "only type stubs found" in message
    engine_dir = write_engine_artifact(tmp_path / "e", onnx_dir, profile=plan_profile(read_manifest(onnx_dir)))
    with pytest.raises(MissingDependencyError, match="tensorrt is not installed"):
        TensorRTRuntime(engine_dir / "model.engine")


def test_importing_the_tensorrt_modules_loads_no_heavy_dependency():
    code = ("import sys; import runtimes.tensorrt, runtimes.tensorrt_device, converters.tensorrt_build, "
            "converters.deploy_configs; heavy = [m for m in ('tensorrt', 'pycuda', 'onnx', 'onnxruntime', 'torch') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


# ---------------------------------------------------------------- GPU tier: real engines

def _gpu_skip_reason() -> str | None:
    try:
        require_tensorrt()
    except MissingDependencyError as exc:
        return str(exc)
    if find_spec("pycuda") is None:
        return "pycuda is not installed (pip install pycuda on the device; see docs/JETSON.md)"
    from runtimes.tensorrt_device import CudaDriver

    try:
        CudaDriver().device(0)
    except SegEdgeError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def gpu():
    reason = _gpu_skip_reason()
    if reason:
        pytest.skip(f"needs real TensorRT, pycuda and a CUDA GPU: {reason}")


def _ort(folder: Path, feeds: dict) -> dict:
    from runtimes.onnxruntime import OnnxRuntime

    with OnnxRuntime(folder) as rt:
        return rt.infer(feeds)


@pytest.mark.gpu
@pytest.mark.parametrize("upsample", ["exact", "fast"])
def test_gpu_fp32_mask_engine_matches_onnxruntime(gpu, tmp_path, upsample):
    onnx_dir = write_onnx_artifact(tmp_path / "onnx", upsample=upsample)
    engine_dir = build_engine(onnx_dir, tmp_path / "b0.engine", min_hw=(64, 64), opt_hw=(128, 128),
                              max_hw=(256, 256), max_batch=2, min_output_hw=(32, 32), max_output_hw=(512, 512),
                              timing_cache=tmp_path / "tc.cache")
    m = read_manifest(engine_dir)
    assert m.parity["mask_agreement_vs_onnxruntime"] >= 0.98
    assert (tmp_path / "tc.cache").stat().st_size > 0
    io = {t["name"]: t for t in m.extra["tensorrt"]["io"]}
    assert io["output_size"]["dtype"] == "int32" and io["mask"]["dtype"] == "uint8"
    rng = np.random.default_rng(0)
    with TensorRTRuntime(engine_dir / "model.engine") as rt:  # the engine file path resolves to its folder
        for shape, out_hw in [((1, 3, 128, 128), (128, 128)), ((2, 3, 96, 200), (150, 301)),
                              ((1, 3, 256, 256), (64, 64))]:
            feeds = {"pixel_values": rng.standard_normal(shape).astype(np.float32),
                     "output_size": np.array(out_hw, np.int64)}
            got = rt.infer(feeds)["mask"]
            want = _ort(onnx_dir, feeds)["mask"]
            assert got.dtype == np.uint8 and got.shape == want.shape
            assert np.mean(got == want) >= 0.98
        with pytest.raises(InputError, match=r"expected shape within the engine's profile"):
            rt.infer({"pixel_values": np.zeros((1, 3, 512, 512), np.float32),
                      "output_size": np.array([512, 512], np.int64)})


@pytest.mark.gpu
def test_gpu_logits_softmax_fp16_and_cuda_graph(gpu, tmp_path):
    onnx_dir = write_onnx_artifact(tmp_path / "onnx", head="logits", size_hw=(128, 160))
    engine_dir = build_engine(onnx_dir, tmp_path / "e", fp16=True, softmax=True, timing_cache=None)
    m = read_manifest(engine_dir)
    assert m.precision == "fp16" and m.parity["argmax_agreement_vs_onnxruntime"] >= 0.95
    x = np.random.default_rng(2).standard_normal((1, 3, 128, 160)).astype(np.float32)
    want = _ort(onnx_dir, {"pixel_values": x})["logits"].argmax(1)
    with TensorRTRuntime(engine_dir, cuda_graph=True) as rt:
        first = rt.infer({"pixel_values": x})["logits"]
        again = rt.infer({"pixel_values": x})["logits"]  # replayed graph
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-2)
    np.testing.assert_array_equal(first, again)
    assert np.mean(first.argmax(1) == want) >= 0.95


@pytest.mark.gpu
def test_gpu_int8_qdq_engine_builds_and_runs(gpu, tmp_path):
    onnx_dir = write_onnx_artifact(tmp_path / "qdq", qdq=True)
    engine_dir = build_engine(onnx_dir, tmp_path / "e", int8=True, max_hw=(256, 256), timing_cache=None)
    m = read_manifest(engine_dir)
    assert m.precision == "int8" and m.extra["tensorrt"]["build"]["qdq_nodes"] == 2
    with TensorRTRuntime(engine_dir) as rt:
        out = rt.infer({"pixel_values": np.zeros((1, 3, 128, 128), np.float32),
                        "output_size": np.array([128, 128], np.int64)})
    assert out["mask"].shape == (1, 128, 128)
    # ONNX Runtime's Q/DQ (int8 weights as constants + DequantizeLinear, float biases) builds too
    ortq = tmp_path / "ortq"
    shutil.copytree(write_onnx_artifact(tmp_path / "fp32"), ortq)
    _ort_qdq(tmp_path / "fp32", ortq / "model.onnx", QuantizeBias=False)
    engine_dir = build_engine(ortq, tmp_path / "e2", int8=True, max_hw=(256, 256), timing_cache=None)
    assert read_manifest(engine_dir).parity["mask_agreement_vs_onnxruntime"] >= 0.9


@pytest.mark.gpu
def test_gpu_fingerprint_mismatch_refuses_before_deserializing(gpu, tmp_path):
    onnx_dir = write_onnx_artifact(tmp_path / "onnx", head="logits", size_hw=(64, 64))
    engine_dir = build_engine(onnx_dir, tmp_path / "e", timing_cache=None, check_parity=False)
    raw = json.loads((engine_dir / "model.json").read_text())
    raw["extra"]["tensorrt"]["fingerprint"]["tensorrt_version"] = "7.1.3.0"
    (engine_dir / "model.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match=r"engine was built with TensorRT 7\.1 for sm_\d+; this host has TensorRT"):
        TensorRTRuntime(engine_dir)


@pytest.mark.gpu
def test_gpu_real_b0_fp16_agrees_with_onnxruntime_through_segmenter(gpu, tmp_path, hf_artifact, camvid):
    from calibration.datasets import CamVid
    from runtimes.onnxruntime import OnnxRuntime
    from sdk.core.preprocess import read_rgb
    from sdk.segmenter import Segmenter

    engine_dir = build_engine(hf_artifact, tmp_path / "b0-fp16.engine", fp16=True, timing_cache=None)
    paths = [p for p, _ in CamVid(camvid, "val").pairs()[:3]]
    with Segmenter(TensorRTRuntime(engine_dir)) as engine, Segmenter(OnnxRuntime(hf_artifact)) as ref:
        for path in paths:
            image = read_rgb(path)
            assert np.mean(engine(image).mask == ref(image).mask) >= 0.98


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_segedge_quantize_artifacts_meet_the_preflight_check(tmp_path, target):
    """``segedge quantize``'s artifacts: the ONNX Runtime recipe (uint8 activations) is refused with the command that
    makes a TensorRT one; the TensorRT recipe passes, or is refused for int32 bias DequantizeLinear nodes (which
    ONNX Runtime's quantizer adds unless QuantizeBias=False) with that fix, until the recipe keeps biases float."""
    import onnx

    from calibration.quantize_ort import quantize_onnxruntime
    from calibration.sets import load_calibration_set

    fp32 = write_onnx_artifact(tmp_path / "fp32")
    frames = [np.random.default_rng(i).integers(0, 256, (64, 96, 3), dtype=np.uint8) for i in range(4)]
    art = quantize_onnxruntime(fp32, load_calibration_set(frames), tmp_path / "qdq", target=target, progress=False)
    model = onnx.load(str(art / "model.onnx"))
    if target == "onnxruntime":
        with pytest.raises(ExportError, match="segedge quantize .* --backend tensorrt"):
            check_qdq(model)
        return
    inits = {t.name: t.data_type for t in model.graph.initializer}
    int32_bias = any(n.op_type == "DequantizeLinear" and inits.get(n.input[0]) == 6 for n in model.graph.node)
    if int32_bias:
        with pytest.raises(ExportError, match="QuantizeBias=False"):
            check_qdq(model)
    else:
        assert check_qdq(model) >= 2
        with pytest.raises(MissingDependencyError if not _real_tensorrt() else SegEdgeError):
            build_engine(art, tmp_path / "e", int8=True)  # past the Q/DQ checks, on to TensorRT itself
