"""TensorRT, CPU tier: graph preparation, build plans per TensorRT version, optimization profiles, fingerprints,
engine-inspector parsing, the Q/DQ recipe TensorRT gets, and the artifact layout. The GPU tier is in
``tests/gpu/test_tensorrt_device.py``.

No fake TensorRT module anywhere: what needs TensorRT is planned by plain functions tested here, and where TensorRT
is absent the tests assert the clear refusal. ONNX rewrites are checked against the original graph on ONNX Runtime.
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from converters.tensorrt_build import (AUTO, build_engine, check_qdq, default_timing_cache, plan_profile,
                                       prepare_onnx, rebuild_command)
from converters.tensorrt_graph import float16_tensors
from converters.tensorrt_inspect import (check_built, describe_layers, kept_fp32_layers, layer_precision,
                                         summarize_layers, tensor_dtype)
from converters.tensorrt_plan import plan_build
from runtimes.tensorrt import (JETPACK_ROUTE, ErrorLog, ShapeRange, TensorRTRuntime, engine_manifest_info,
                               require_tensorrt, tensorrt_available)
from runtimes.tensorrt_device import EngineFingerprint, HostInfo, check_compatibility, host_platform, version_tuple
from sdk.core.errors import ArtifactError, ExportError, InputError, MissingDependencyError
from sdk.core.manifest import read_manifest, resolve_artifact
from tiny_artifacts import ORIN, tiny_logits_model, write_engine_artifact, write_onnx_artifact
from tiny_transformer import tiny_transformer_model, write_transformer_artifact

ROOT = Path(__file__).resolve().parents[2]


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
    # item 13: a QuantizeLinear without a zero point quantizes to uint8 (ONNX's default): refused, not let through
    no_zero = tiny_logits_model(qdq=True)
    for node in no_zero.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            del node.input[2]
    with pytest.raises(ExportError, match=r"symmetric int8 Q/DQ .* got 1 of 2 .*\(first: x_q\)"):
        check_qdq(no_zero)


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
    meta = json.loads((onnx_dir / "model.json").read_text())
    meta.setdefault("extra", {})["max_input_pixels"] = 512 * 1024  # segedge export --max-input-pixels
    (onnx_dir / "model.json").write_text(json.dumps(meta))
    profile = plan_profile(read_manifest(onnx_dir), max_batch=2)
    engine_dir = write_engine_artifact(tmp_path / "b0.engine", onnx_dir, profile=profile, dla_core=0)
    m = read_manifest(engine_dir)
    assert m.extra["max_input_pixels"] == 512 * 1024  # the engine keeps the ONNX artifact's input limit
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
                   "--max-hw 720 1280 --opt-batch 1 --max-batch 4")
    # --opt-batch defaults to --max-batch (DeepStream's N sources): said only where it differs
    assert rebuild_command("a", "b", opt_batch=8, max_batch=8).endswith("--output b --max-batch 8")
    from sdk.cli import build_parser

    args = build_parser().parse_args(["build", "a", "--output", "b", "--max-batch", "8"])
    assert (args.opt_batch, args.max_batch) == (None, 8)


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
            "converters.tensorrt_plan, converters.tensorrt_graph, converters.tensorrt_inspect, "
            "converters.deploy_configs, converters.float16_graph; "
            "heavy = [m for m in ('tensorrt', 'pycuda', 'onnx', 'onnxruntime', 'torch') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


# ---------------------------------------------------------------- the support table and its refusals

def test_support_table_refuses_tensorrt_before_8_6_with_one_line():
    from runtimes.tensorrt_support import JETPACK_LINES, line_for_l4t, line_for_tensorrt, unsupported_reason

    for old in ("8.2.1.8", "8.4.1.5", "8.5.2.2"):
        reason = unsupported_reason(old)
        assert reason and reason.startswith(f"TensorRT {old} is not supported") and "\n" not in reason
        assert "JetPack 6.0 or later" in reason and "Python >= 3.10" in reason
        with pytest.raises(ExportError, match="needs TensorRT >= 8.6"):
            plan_build(old, fp16=True, int8=False, onnx_fp16=False)
    for ok in ("8.6.2.3", "10.3.0.30", "10.16.0.1", "11.4.1.2"):
        assert unsupported_reason(ok) is None
    # every supported row of the table is a TensorRT segedge accepts; the JetPack 5 row is the refused one
    assert [line.jetpack for line in JETPACK_LINES if not line.supported] == ["5.x"]
    for line in JETPACK_LINES:
        if line.supported:
            assert unsupported_reason(line.tensorrt) is None and line_for_tensorrt(line.tensorrt) == line
    assert line_for_l4t("R36.4.0").jetpack == "6.1, 6.2" and line_for_l4t("R36.3.0").jetpack == "6.0"
    assert line_for_l4t("R35.4.1").jetpack == "5.x" and line_for_l4t("R32.7.1") is None
    assert line_for_tensorrt("10.16.0.7").jetpack == "7.2" and line_for_tensorrt("11.4.1").jetpack == "7.2.2+"


def test_require_tensorrt_and_the_install_message_are_one():
    from runtimes.tensorrt_support import INSTALL_TENSORRT

    assert JETPACK_ROUTE == INSTALL_TENSORRT
    assert "python3-libnvinfer" in INSTALL_TENSORRT and "segedge[jetson]" not in INSTALL_TENSORRT


def test_docs_support_table_is_the_codes():
    from runtimes.tensorrt_support import support_table_markdown

    assert support_table_markdown() in (ROOT / "docs" / "JETSON.md").read_text()


# ---------------------------------------------------------------- build plans per TensorRT version

def test_plan_weakly_typed_up_to_10_11_int8_implies_fp16_softmax_kept_fp32():
    for version in ("8.6.2.3", "10.3.0.30", "10.11.0.33"):
        plan = plan_build(version, fp16=True, int8=False, onnx_fp16=False)
        assert not plan.strongly_typed and not plan.convert_fp16
        assert plan.builder_flags == ("FP16", "PREFER_PRECISION_CONSTRAINTS") and plan.keep_fp32
        assert plan.network_flags == (("EXPLICIT_BATCH",) if version.startswith("8") else ())
        int8 = plan_build(version, fp16=False, int8=True, onnx_fp16=False)
        assert not int8.strongly_typed and set(int8.builder_flags) == {"FP16", "INT8", "PREFER_PRECISION_CONSTRAINTS"}
        assert int8.precision == "int8+fp16" and any("run FP16" in n for n in int8.notes)
        fp32 = plan_build(version, fp16=False, int8=False, onnx_fp16=False)
        assert (fp32.precision, fp32.builder_flags, fp32.keep_fp32) == ("fp32", (), False)


def test_plan_strongly_typed_from_10_12_the_graph_made_fp16_at_build():
    """Item 9: one FP32 or Q/DQ artifact builds the same way on 10.16 and 11.4.1: strongly typed, its float parts
    made FP16 by segedge build (no FP16/INT8 builder flags, no precision constraints)."""
    for version in ("10.12.0.36", "10.16.0.7", "11.4.1.2"):
        eleven = version.startswith("11")
        fp16 = plan_build(version, fp16=True, int8=False, onnx_fp16=False)
        assert fp16.strongly_typed and fp16.convert_fp16 and fp16.precision == "fp16" and not fp16.keep_fp32
        assert fp16.builder_flags == () and fp16.network_flags == (() if eleven else ("STRONGLY_TYPED",))
        int8 = plan_build(version, fp16=False, int8=True, onnx_fp16=False)
        assert int8.strongly_typed and int8.convert_fp16 and int8.precision == "int8+fp16"
        ready = plan_build(version, fp16=False, int8=True, onnx_fp16=True)  # a --float fp16 Q/DQ graph
        assert ready.strongly_typed and not ready.convert_fp16 and ready.precision == "int8+fp16"
        fp32 = plan_build(version, fp16=False, int8=False, onnx_fp16=False)
        assert fp32.strongly_typed and not fp32.convert_fp16 and fp32.precision == "fp32"
    # TensorRT 10.0 - 10.11: strongly typed only for a graph that is FP16 already
    plan = plan_build("10.3.0.30", fp16=False, int8=True, onnx_fp16=True)
    assert plan.strongly_typed and plan.network_flags == ("STRONGLY_TYPED",) and plan.builder_flags == ()
    assert plan.precision == "int8+fp16" and not plan.keep_fp32 and not plan.convert_fp16


def test_plan_refuses_an_fp16_qdq_graph_before_tensorrt_10():
    with pytest.raises(ExportError, match="needs TensorRT >= 10; this is TensorRT 8.6.2"):
        plan_build("8.6.2", fp16=False, int8=True, onnx_fp16=True)


def test_plan_dla_per_tensorrt_line():
    """Item 2: the DLA takes INT8 only from implicit quantization up to TensorRT 10, so --int8 --dla from a Q/DQ
    artifact is refused there with the route that works; 10.16 (JetPack 7.2) has no Orin DLA; 11.4.1 has it back,
    strongly typed."""
    for version in ("8.6.2.3", "10.3.0.30"):
        with pytest.raises(ExportError, match=r"--int8 --dla would put no INT8 on the DLA.*--fp16 --dla CORE"):
            plan_build(version, fp16=False, int8=True, onnx_fp16=False, dla_core=0)
        fp16 = plan_build(version, fp16=True, int8=False, onnx_fp16=False, dla_core=0)
        assert not fp16.strongly_typed and {"FP16", "GPU_FALLBACK"} <= set(fp16.builder_flags)
    with pytest.raises(ExportError, match=r"10\.3\.0\.30 .*INT8 only from implicit quantization"):
        plan_build("10.3.0.30", fp16=False, int8=True, onnx_fp16=True, dla_core=0)
    for version in ("10.12.0.36", "10.16.0.7"):
        with pytest.raises(ExportError, match="does not support Orin's DLA"):
            plan_build(version, fp16=True, int8=False, onnx_fp16=False, dla_core=0)
    for int8 in (False, True):
        plan = plan_build("11.4.1.2", fp16=not int8, int8=int8, onnx_fp16=False, dla_core=1)
        assert plan.strongly_typed and plan.convert_fp16 and plan.builder_flags == ("GPU_FALLBACK",)
    with pytest.raises(ExportError, match="DLA runs FP16 and INT8 layers only"):
        plan_build("11.4.1.2", fp16=False, int8=False, onnx_fp16=False, dla_core=0)


def test_int8_dla_build_is_refused_before_tensorrt_is_needed(tmp_path):
    """The refusal comes from the plan, which needs the TensorRT version: without TensorRT the missing TensorRT is
    said first (CPU machines), and the plan test above covers the message."""
    qdq = write_onnx_artifact(tmp_path / "qdq", qdq=True, size_hw=(64, 64))
    with pytest.raises((MissingDependencyError, ExportError)):
        build_engine(qdq, tmp_path / "o", int8=True, dla_core=0)
    assert not (tmp_path / "o").exists()


def test_strongly_typed_build_graph_keeps_layernorm_softmax_and_the_head_fp32(tmp_path):
    """What segedge build parses on TensorRT >= 10.12 for --fp16: the prepared graph with its float parts FP16,
    LayerNorm/Softmax and the whole head after the logits FP32 with no cast inside, masks as the FP32 graph's."""
    import onnx
    from onnx import TensorProto

    from converters.tensorrt_build import _float_parts_fp16

    art = write_transformer_artifact(tmp_path / "t")
    model = onnx.load(str(art / "model.onnx"))
    prepared = copy.deepcopy(model)
    changes = prepare_onnx(prepared)
    converted = _float_parts_fp16(prepared, changes)
    assert "float parts -> FP16" in changes[-1] and float16_tensors(converted) > 0
    producer = {o: n for n in converted.graph.node for o in n.output}
    resize = next(n for n in converted.graph.node if n.op_type == "Resize" and "head_sizes" in n.input)
    argmax = next(n for n in converted.graph.node if n.op_type == "ArgMax")
    assert producer[argmax.input[0]] is resize  # one FP32 island: Resize -> ArgMax without a cast between
    cast_in = producer[resize.input[0]]
    assert cast_in.op_type == "Cast" and cast_in.attribute[0].i == TensorProto.FLOAT
    for node in converted.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax"):
            cast = producer[node.input[0]]
            assert cast.op_type == "Cast" and cast.attribute[0].i == TensorProto.FLOAT
    x = np.random.default_rng(4).standard_normal((2, 3, 64, 96)).astype(np.float32)
    want = _session(model).run(["mask"], {"pixel_values": x, "output_size": np.array([80, 100], np.int64)})[0]
    have = _session(converted).run(["mask"], {"pixel_values": x, "output_size": np.array([80, 100], np.int32)})[0]
    assert have.shape == (2, 80, 100) and np.mean(have == want) >= 0.98


# ---------------------------------------------------------------- DLA: static profiles

def test_dla_profile_is_static(tmp_path):
    fixed = read_manifest(write_onnx_artifact(tmp_path / "fixed", size_hw=(256, 512)))
    pixel, out = plan_profile(fixed, max_batch=2, opt_batch=2, static=True)
    assert pixel.min == pixel.opt == pixel.max == (2, 3, 256, 512)
    assert out.values and out.max == (512, 1024)  # the mask head runs on the GPU: its size stays a range
    with pytest.raises(InputError, match="opt_batch == max_batch"):
        plan_profile(fixed, max_batch=4, static=True)
    with pytest.raises(InputError, match="one network size"):
        plan_profile(fixed, opt_hw=(128, 128), static=True)
    dynamic = read_manifest(write_onnx_artifact(tmp_path / "dynamic"))  # the demo model's case: no --size
    with pytest.raises(InputError, match="DLA runs static shapes only.*--opt-hw H W"):
        plan_profile(dynamic, static=True)
    pixel, _ = plan_profile(dynamic, opt_hw=(360, 480), static=True)
    assert pixel.min == pixel.max == (1, 3, 360, 480)


def test_dla_build_of_a_dynamic_artifact_is_refused_before_tensorrt(tmp_path):
    onnx_dir = write_onnx_artifact(tmp_path / "fp32")
    with pytest.raises(InputError, match="DLA runs static shapes only"):
        build_engine(onnx_dir, tmp_path / "o", fp16=True, dla_core=0)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- engine inspector records

# layer records as IEngineInspector.get_layer_information(i, JSON) writes them for a DETAILED engine
CONV_INT8 = {"Name": "/encoder/patch_embed/Conv + /encoder/patch_embed/Reshape", "LayerType": "CaskConvolution",
             "Inputs": [{"Name": "x_q", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}],
             "Outputs": [{"Name": "embed", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]}
MYELIN_HALF = {"Name": "__myl_MulAddMul_myl0_3", "LayerType": "kgen",
               "Inputs": [{"Name": "a", "Format/Datatype": "Half"}],
               "Outputs": [{"Name": "b", "Format/Datatype": "Half"}]}
LN_FLOAT = {"Name": "/encoder/stages.0/blocks.0/norm1/LayerNormalization", "LayerType": "Normalization",
            "Inputs": [{"Name": "c", "Format/Datatype": "Row major linear FP32"}],
            "Outputs": [{"Name": "d", "Format/Datatype": "Row major linear FP32"}]}
SHAPE = {"Name": "output_size cast", "LayerType": "Reformat", "Inputs": [{"Name": "s", "Datatype": "Int32"}],
         "Outputs": [{"Name": "t", "Datatype": "Int64"}]}
DLA = {"Name": "{ForeignNode[/encoder/patch_embed/Conv.../decoder/fuse/Relu]}", "LayerType": "DLA",
       "Inputs": [{"Name": "x", "Format/Datatype": "Channel major FP16 format where channel % 16 == 0"}],
       "Outputs": [{"Name": "y", "Format/Datatype": "Channel major FP16 format where channel % 16 == 0"}]}


def test_tensor_dtype_reads_tensorrt_format_strings():
    assert tensor_dtype("Row major linear FP32") == "fp32" and tensor_dtype("Float") == "fp32"
    assert tensor_dtype("Channel major FP16 format where channel % 8 == 0") == "fp16"
    assert tensor_dtype("Half") == "fp16"
    assert tensor_dtype("Four wide channel vectorized row major Int8 format") == "int8"
    assert tensor_dtype("Row major linear UInt8 format") == "uint8"
    assert tensor_dtype("Row major linear BFloat16 format") == "bf16"
    assert tensor_dtype("Int32") == "int32" and tensor_dtype("Unknown format") == "unknown"
    assert [layer_precision(r) for r in (CONV_INT8, MYELIN_HALF, LN_FLOAT, SHAPE)] == ["int8", "fp16", "fp32", "other"]


def test_layer_summary_and_the_build_check():
    summary = summarize_layers([CONV_INT8, MYELIN_HALF, LN_FLOAT, SHAPE, DLA])
    assert summary["detailed"] and summary["layers"] == 5 and summary["dla_layers"] == 1
    assert summary["by_precision"] == {"int8": 1, "fp16": 2, "bf16": 0, "fp32": 1, "other": 1, "opaque": 0}
    assert summary["int8_compute"] == 1
    # an unfused DequantizeLinear reads int8 but computes nothing in INT8: no proof that INT8 was built
    dequant = {"Name": "DequantizeLinear_3", "LayerType": "Dequantize",
               "Inputs": [{"Name": "q", "Format/Datatype": "Row major Int8 format"}],
               "Outputs": [{"Name": "f", "Format/Datatype": "Row major linear FP16 format"}]}
    lone = summarize_layers([dequant, MYELIN_HALF])
    assert lone["by_precision"]["int8"] == 1 and lone["int8_compute"] == 0
    with pytest.raises(ExportError, match="no layer computes in INT8"):
        check_built(lone, int8=True, fp16=True, dla_core=None, command="CMD")
    assert describe_layers(summary) == "5 engine layers: int8 1, fp16 2, fp32 1, other 1; 1 DLA subgraph(s)"
    assert kept_fp32_layers(summary, ["/norm1/LayerNormalization"]) == {LN_FLOAT["Name"]: "fp32"}
    assert check_built(summary, int8=True, fp16=True, dla_core=0, command="CMD") == []
    gpu_fp32 = summarize_layers([LN_FLOAT, SHAPE])
    with pytest.raises(ExportError) as err:
        check_built(gpu_fp32, int8=True, fp16=True, dla_core=0, command="segedge build q --int8 --dla 0")
    message = str(err.value)
    assert "no layer computes in INT8" in message and "no layer runs FP16" in message
    assert "no layer runs on the DLA" in message
    assert message.endswith("rebuild: segedge build q --int8 --dla 0")
    # TensorRT 8.x shows a Myelin subgraph as one layer: its boundary tensors hide the precision inside
    myelin = {"Name": "{ForeignNode[/encoder/stages.0/blocks.0/norm1/LayerNormalization.../decoder/Add_2]}",
              "LayerType": "Myelin", "Inputs": [{"Name": "x", "Format/Datatype": "Row major linear FP32"}],
              "Outputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32"}]}
    hidden = summarize_layers([myelin, LN_FLOAT, SHAPE])
    assert hidden["by_precision"]["opaque"] == 1
    (warning,) = check_built(hidden, int8=False, fp16=True, dla_core=None, command="CMD")
    assert "no layer runs FP16" in warning and "1 Myelin subgraph(s)" in warning
    # item 7: no FP16 layer without Myelin subgraphs (FP32 kernels won on a small graph) is a warning too; a
    # missing INT8 layer stays an error
    (warning,) = check_built(gpu_fp32, int8=False, fp16=True, dla_core=None, command="CMD")
    assert warning.startswith("engine check: FP16 was asked") and "Myelin" not in warning
    with pytest.raises(ExportError, match="no layer computes in INT8"):
        check_built(gpu_fp32, int8=True, fp16=True, dla_core=None, command="CMD")
    names_only = summarize_layers(["/encoder/patch_embed/Conv", "mask cast"])  # built without DETAILED verbosity
    assert not names_only["detailed"] and check_built(names_only, int8=True, fp16=True, dla_core=None, command="")


# ---------------------------------------------------------------- the logger's errors, the availability check

def test_error_log_is_bounded_and_never_reports_a_stale_error():
    log = ErrorLog(keep=3)
    assert log.last_error() == "no error logged"
    for i in range(5):
        log.add(f"error {i}\nsecond line")
    assert len(log._errors) == 3 and log.last_error() == "error 4"
    mark = log.mark()
    assert log.last_error(since=mark) == "no error logged"  # a later failure without its own error says so
    log.add("parse failed")
    assert log.last_error(since=mark) == "parse failed"


def test_tensorrt_available_gives_the_reason(monkeypatch):
    import importlib.util

    import runtimes.tensorrt_device as device

    ok, reason = tensorrt_available()
    assert isinstance(ok, bool) and reason
    if not _real_tensorrt():
        assert not ok and reason.startswith("tensorrt is not installed") and "docs/JETSON.md" in reason
    # TensorRT present, no pycuda: pycuda is not needed (item 6: the runtime calls the CUDA driver); what is missing
    # here is the driver itself
    monkeypatch.setattr(device, "require_tensorrt", lambda: "10.3.0.30")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pycuda" else real_find_spec(name, *a))
    ok, reason = tensorrt_available()
    assert "pycuda" not in reason
    if not ok:
        assert reason.startswith("CUDA driver: libcuda.so.1 cannot be loaded")


def test_missing_tensorrt_message_gives_the_jetpack_route():
    assert "python3-libnvinfer" in JETPACK_ROUTE and "--system-site-packages" in JETPACK_ROUTE
    assert "--no-deps" in JETPACK_ROUTE and "docs/JETSON.md" in JETPACK_ROUTE


def test_jetson_extra_pulls_no_tensorrt_and_no_pycuda():
    """pip's tensorrt resolves to a CUDA-13 TensorRT that is not JetPack's (and shadows it on JetPack 6); pycuda must
    compile against the device's CUDA: both come from docs/JETSON.md's steps, not from the extra."""
    # pyproject's `jetson = [...]` line read without tomllib (Python 3.11; the package supports 3.10: issue 24 item 5)
    line = re.search(r"^jetson = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert line, "pyproject.toml: expected a one-line jetson = [...] extra"
    reqs = [r.strip().strip('"') for r in line.group(1).split(",") if r.strip()]
    names = [req.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower() for req in reqs]
    assert "tensorrt" not in names and not any(n.startswith("tensorrt") for n in names) and "pycuda" not in names
    assert "onnx" in names  # segedge build prepares the graph with it
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `jetson` |"))
    assert "docs/JETSON.md" in row


def test_a_tensorrt_runtime_option_it_does_not_take_is_one_clear_line(tmp_path):
    """segedge stream ENGINE --threads N: an InputError naming the options, before TensorRT is touched."""
    from sdk.segmenter import Segmenter

    onnx_dir = write_onnx_artifact(tmp_path / "onnx")
    engine_dir = write_engine_artifact(tmp_path / "e", onnx_dir, profile=plan_profile(read_manifest(onnx_dir)))
    with pytest.raises(InputError, match=r"the tensorrt runtime takes \[.*cuda_graph.*\], got \['threads'\]"):
        Segmenter.from_artifact(engine_dir, runtime="tensorrt", threads=2)


# ---------------------------------------------------------------- fingerprints: Orin modules, CPU architecture

def test_fingerprint_tells_orin_modules_apart_and_refuses_another_architecture():
    agx = _fp(sm_count=16, device_model="NVIDIA Jetson AGX Orin Developer Kit")
    nx = _host(sm_count=8, device_model="NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
               platform="aarch64 L4T R36.4.0")
    (warning,) = check_compatibility(agx, nx, rebuild_command=CMD)
    assert "'NVIDIA Jetson AGX Orin Developer Kit' (Orin, 16 SMs)" in warning and "(Orin, 8 SMs)" in warning
    assert "both sm_87" in warning and warning.endswith(CMD)
    # the same board: nothing to say
    assert check_compatibility(agx, _host(sm_count=16, device_model=agx.device_model), rebuild_command=CMD) == []
    with pytest.raises(ArtifactError, match=r"built on aarch64 .* this host is x86_64 .* Rebuild it on the target"):
        check_compatibility(agx, _host(platform="x86_64 Linux"), rebuild_command=CMD)
    # fingerprints written before these fields existed still load (and compare on what they have)
    old = {k: v for k, v in agx.to_dict().items() if k not in ("sm_count", "device_model")}
    assert EngineFingerprint.from_dict(old).sm_count == 0


def test_device_model_reads_the_device_tree(tmp_path, monkeypatch):
    import runtimes.tensorrt_device as device

    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    monkeypatch.setattr(device, "DEVICE_TREE_MODEL", model)
    assert device.device_model() == "NVIDIA Jetson Orin Nano Developer Kit"
    monkeypatch.setattr(device, "DEVICE_TREE_MODEL", tmp_path / "absent")
    assert device.device_model() == ""


# ---------------------------------------------------------------- the Q/DQ recipe TensorRT gets

def _qdq_inputs_only(model) -> None:
    """Every QuantizeLinear reads a graph input, a weight or a tensor that is not a Conv/MatMul output, and every
    Conv/MatMul that has a Q/DQ'd input has all its activation inputs Q/DQ'd."""
    producer = {o: n for n in model.graph.node for o in n.output}
    quantized_outputs = [n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"
                         and n.input[0] in producer and producer[n.input[0]].op_type in ("Conv", "MatMul")]
    assert not quantized_outputs, quantized_outputs[:3]
    from_dq = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[0] in from_dq]
    assert convs and all(n.input[1] in from_dq for n in convs)


def test_segedge_quantize_artifacts_meet_the_preflight_check(tmp_path):
    """The TensorRT recipe keeps biases float (no int32 DequantizeLinear, which TensorRT's parser refuses), puts
    Q/DQ on inputs only and passes the checks segedge build makes; the ONNX Runtime recipe (uint8 activations) is
    refused with the command that makes a TensorRT one."""
    import onnx

    from calibration.quantize_ort import quantize_onnxruntime
    from calibration.sets import load_calibration_set

    fp32 = write_onnx_artifact(tmp_path / "fp32")
    frames = load_calibration_set([np.random.default_rng(i).integers(0, 256, (64, 96, 3), dtype=np.uint8)
                                   for i in range(4)])
    art = quantize_onnxruntime(fp32, frames, tmp_path / "qdq", target="tensorrt", progress=False)
    model = onnx.load(str(art / "model.onnx"))
    inits = {t.name: t.data_type for t in model.graph.initializer}
    assert not any(n.op_type == "DequantizeLinear" and inits.get(n.input[0]) == 6 for n in model.graph.node)
    assert check_qdq(model) >= 4 and float16_tensors(model) == 0
    _qdq_inputs_only(model)
    assert read_manifest(art).extra["quantization"]["qdq_placement"] == "inputs of Conv/MatMul only"
    ort_art = quantize_onnxruntime(fp32, frames, tmp_path / "ort", target="onnxruntime", progress=False)
    with pytest.raises(ExportError, match="segedge quantize .* --backend tensorrt"):
        check_qdq(onnx.load(str(ort_art / "model.onnx")))
    with pytest.raises(InputError, match="float_precision: expected 'fp32', or 'fp16' with target='tensorrt'"):
        quantize_onnxruntime(fp32, frames, tmp_path / "x", target="onnxruntime", float_precision="fp16",
                             progress=False)


def test_fp16_float_parts_keep_io_types_layernorm_softmax_fp32_and_the_masks(tmp_path):
    import onnx
    from onnx import TensorProto

    from converters.float16_graph import float_parts_to_fp16

    qdq = onnx.load(str(_ort_qdq(write_onnx_artifact(tmp_path / "fp32"), tmp_path / "q.onnx", QuantizeBias=False)))
    fp16, record = float_parts_to_fp16(qdq)
    assert record["opset"] == 19 and record["initializers_fp16"] >= 4 and float16_tensors(fp16) > 0
    inputs = {i.name: i.type.tensor_type.elem_type for i in fp16.graph.input}
    assert inputs == {"pixel_values": TensorProto.FLOAT, "output_size": TensorProto.INT64}
    assert fp16.graph.output[0].type.tensor_type.elem_type == TensorProto.UINT8
    scales = [n.input[1] for n in fp16.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    types = {t.name: t.data_type for t in fp16.graph.initializer}
    # DequantizeLinear yields FP16, except in the head after the logits (this raw recipe quantizes them too),
    # which stays an FP32 island: class ids are decided at FP32
    head = {s for s in scales if s.startswith("logits")}
    assert head and all(types[s] == TensorProto.FLOAT for s in head)
    assert all(types[s] == TensorProto.FLOAT16 for s in scales if s not in head)
    x = np.random.default_rng(5).standard_normal((2, 3, 64, 96)).astype(np.float32)
    feeds = {"pixel_values": x, "output_size": np.array([70, 90], np.int64)}
    want, have = _session(qdq).run(["mask"], feeds)[0], _session(fp16).run(["mask"], feeds)[0]
    # a random 5-class tiny net has many near-tied logits: 98.7% with onnxruntime 1.32 (the real model: >= 98.5%
    # on CamVid, test_tensorrt_qdq_of_the_real_model_inputs_only_fp16_variant_and_camvid_agreement)
    assert have.shape == want.shape and np.mean(have == want) >= 0.98
    # LayerNorm and Softmax stay FP32 between two Casts; MatMul and the rest turn FP16
    model, record = float_parts_to_fp16(tiny_transformer_model())
    assert record["kept_fp32"] == ["/block/attn/Softmax", "/block/norm1/LayerNormalization",
                                   "/block/norm2/LayerNormalization"]
    producer = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax"):
            cast = producer[node.input[0]]
            assert cast.op_type == "Cast" and cast.attribute[0].i == TensorProto.FLOAT
    tokens = np.random.default_rng(1).standard_normal((1, 5, 8)).astype(np.float32)
    np.testing.assert_allclose(_session(model).run(None, {"tokens": tokens})[0],
                               _session(tiny_transformer_model()).run(None, {"tokens": tokens})[0], atol=2e-2)


def test_tensorrt_qdq_of_the_real_model_inputs_only_fp16_variant_and_camvid_agreement(tmp_path, hf_artifact, camvid):
    """On the B0 export: Q/DQ on inputs only, biases float, and in ONNX Runtime the Q/DQ model (FP32 and FP16 float
    parts) agrees with FP32 on a few CamVid test frames (the full numbers are in docs/BENCHMARKS.md)."""
    import itertools

    import onnx

    from calibration.datasets import CamVid
    from calibration.evaluate import evaluate
    from calibration.quantize_ort import quantize_onnxruntime
    from calibration.sets import load_calibration_set
    from sdk.segmenter import Segmenter

    calib = load_calibration_set(camvid / "train.txt", num_samples=8, seed=0)
    art = quantize_onnxruntime(hf_artifact, calib, tmp_path / "qdq", target="tensorrt", method="minmax",
                               progress=False)
    art16 = quantize_onnxruntime(hf_artifact, calib, tmp_path / "qdq16", target="tensorrt", method="minmax",
                                 float_precision="fp16", progress=False)
    model = onnx.load(str(art / "model.onnx"))
    _qdq_inputs_only(model)
    assert check_qdq(model) > 100
    m16 = read_manifest(art16)
    assert m16.opset == 19 and m16.extra["quantization"]["float_precision"] == "fp16"
    assert float16_tensors(onnx.load(str(art16 / "model.onnx"))) > 100
    pairs = list(itertools.islice(CamVid(camvid, "test"), 0, 232, 58))
    with Segmenter.from_artifact(hf_artifact) as fp32:
        for q in (art, art16):
            with Segmenter.from_artifact(q) as seg:
                assert evaluate(seg, pairs, reference=fp32, progress=False).agreement >= 0.985


def test_refine_head_export_needs_no_graph_rewrite_and_has_no_mask_profile(tmp_path, hf_model):
    """The default export (refine head: logits + low-resolution argmax, the host refines) goes to TensorRT as is:
    no shape-tensor input, no mask chain to rewrite, a profile for the image input only."""
    import onnx

    from converters.onnx_export import export_onnx

    art = export_onnx(hf_model, tmp_path / "refine", size_hw=(128, 160), progress=False)
    m = read_manifest(art)
    assert m.head == "refine" and [t.name for t in m.inputs] == ["pixel_values"]
    model = onnx.load(str(art / "model.onnx"))
    assert prepare_onnx(copy.deepcopy(model)) == []
    (pixel,) = plan_profile(m, max_batch=2)
    assert pixel.min == (1, 3, 128, 160) and pixel.max == (2, 3, 128, 160)
    assert [r.name for r in plan_profile(m, static=True)] == ["pixel_values"]


def test_engine_carries_the_onnx_artifacts_reference_frames(tmp_path):
    """segedge verify on the device needs only the engine folder: the record and the frames come along."""
    from converters.tensorrt_build import _copy_reference_frames
    from sdk.core.manifest import read_manifest
    from tiny_artifacts import write_engine_artifact, write_onnx_artifact

    src = write_onnx_artifact(tmp_path / "qdq")
    raw = json.loads((src / "model.json").read_text())
    raw["extra"]["reference"] = {"folder": "reference", "frames": ["f0.png"], "masks": ["f0_mask.png"],
                                 "agreement": 0.995, "machine": {}}
    (src / "model.json").write_text(json.dumps(raw))
    (src / "reference").mkdir()
    (src / "reference" / "f0.png").write_bytes(b"png")
    shape = (1, 3, 64, 64)
    engine = write_engine_artifact(tmp_path / "engine", src,
                                   profile=[ShapeRange(name="pixel_values", min=shape, opt=shape, max=shape)])
    _copy_reference_frames(read_manifest(src), src, engine)
    assert read_manifest(engine).extra["reference"]["agreement"] == 0.995
    assert (engine / "reference" / "f0.png").read_bytes() == b"png"


# ---------------------------------------------------------------- segedge report's engines: planner shapes per head

@pytest.mark.parametrize("head,upsample", [("mask", "exact"), ("mask", "fast"), ("refine", "refine"),
                                           ("logits", None)])
@pytest.mark.parametrize("size_hw,aspect", [(None, "stretch"), (None, "pad"), ((288, 512), "stretch"),
                                            ((288, 512), "letterbox")])
def test_report_engine_shapes_plan_for_every_head(tmp_path, head, upsample, size_hw, aspect):
    """Item 3: the shapes segedge report builds its TensorRT engines with are ones the planner accepts, for every
    head (the default export's refine head has no mask-size input) and preprocessing, and the profile holds the
    timing frame (network input at opt; for a mask head, the frame's size as mask size)."""
    from calibration.report.build import engine_shapes
    from sdk.core.manifest import Manifest
    from sdk.core.preprocess import network_size

    base = read_manifest(write_onnx_artifact(tmp_path / "a", head="mask" if head == "mask" else "logits",
                                             upsample=upsample or "exact"))
    raw = base.to_dict()
    raw["preprocess"] = {**raw["preprocess"], "size_hw": list(size_hw) if size_hw else None, "aspect": aspect}
    if head == "refine":
        raw["head"], raw["upsample"] = "refine", "refine"
        raw["outputs"] = raw["outputs"] + [{"name": "argmax", "dtype": "uint8",
                                            "shape": ["batch", "height_4", "width_4"]}]
    manifest = Manifest.from_dict(raw)
    for frame_hw in ((720, 1280), (100, 150), (1080, 1920)):
        latency_hw = network_size(manifest.preprocess, frame_hw)
        shapes = engine_shapes(manifest, latency_hw, frame_hw)
        profile = {r.name: r for r in plan_profile(manifest, max_batch=4, **shapes)}
        pixel = profile["pixel_values"]
        assert pixel.opt == (1, 3, *latency_hw) and pixel.contains((4, 3, *latency_hw))
        if head == "mask":
            assert profile["output_size"].contains(frame_hw) and profile["output_size"].opt == frame_hw
        else:
            assert list(profile) == ["pixel_values"]


# ---------------------------------------------------------------- the runtime's CUDA work (runtimes.cuda_ops)

class _Recorder:
    """Stands in for a ``runtimes.cuda_ops`` backend, pycuda's context and the ctypes driver: records the calls (the
    CUDA-independent logic of buffers and closing; the real calls run in the GPU tier)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.next = 0x1000

    def __getattr__(self, name: str):
        def call(*args):
            self.calls.append(name)
            if name == "host_empty":
                count, dtype = args
                self.next += 1
                return np.empty(max(count, 1), dtype), self.next
            if name == "device_alloc":
                self.next += 1
                return self.next
            return True
        return call


def test_closing_a_runtime_frees_in_order_and_drops_the_context_once():
    """Item 6/13: close frees the graph, the buffers, the TensorRT objects and the stream with the context pushed,
    then pops it and releases the primary context (the driver path does that from any thread)."""
    rt = object.__new__(TensorRTRuntime)
    cuda = _Recorder()
    rt._graph, rt._cuda, rt._stream, rt._generation = None, cuda, 77, 0
    rt._buffers = {}
    from runtimes.tensorrt import _Tensor

    buf = rt._buffer(_Tensor("pixel_values", 0, True, np.dtype(np.float32), False), 12)
    assert buf.host.shape == (12,) and rt._generation == 1
    assert rt._buffer(_Tensor("pixel_values", 0, True, np.dtype(np.float32), False), 6) is buf  # never shrunk
    bigger = rt._buffer(_Tensor("pixel_values", 0, True, np.dtype(np.float32), False), 24)
    assert bigger is not buf and rt._generation == 2  # grown: addresses changed, a captured graph is stale
    cuda.calls.clear()
    rt._release()
    assert cuda.calls == ["synchronize", "free_device", "free_host", "destroy_stream", "pop", "release"]
    assert not hasattr(rt, "_stream")


def test_pycuda_backend_release_from_this_thread_and_another():
    """Item 13: pycuda's detach() in a thread other than the one that retained the primary context releases nothing;
    the pycuda backend then releases it through the driver. In the same thread, detach releases it and the push it
    leaves is popped, as before."""
    import threading
    from types import SimpleNamespace

    from runtimes.cuda_ops import PycudaCuda

    def backend(recorder: _Recorder) -> PycudaCuda:
        b = object.__new__(PycudaCuda)
        b._cuda = SimpleNamespace(Context=SimpleNamespace(get_current=lambda: None))
        b._ctx, b._driver, b._device, b.context_handle = recorder, recorder, 1, 5
        b._thread = threading.get_ident()
        return b

    same = _Recorder()
    backend(same).release()
    assert same.calls == ["detach", "pop_if_current"]
    other = _Recorder()
    worker = threading.Thread(target=backend(other).release)
    worker.start()
    worker.join()
    assert other.calls == ["detach", "release_primary_context"]


def test_driver_backend_host_arrays_are_writable_views_of_the_allocation():
    """The driver path shows page-locked memory to numpy as an array over the allocation: writes land in the memory
    the copies read, reads see what the copies wrote (here on ordinary ctypes memory)."""
    import ctypes

    from runtimes.cuda_ops import host_array

    memory = (ctypes.c_float * 8)()
    arr = host_array(ctypes.addressof(memory), 8, np.dtype(np.float32))
    arr[:] = np.arange(8, dtype=np.float32)
    assert list(memory) == list(range(8))
    memory[3] = 42.0
    assert arr[3] == 42.0 and arr.flags.writeable and arr.dtype == np.float32
    assert host_array(ctypes.addressof(memory), 0, np.dtype(np.uint8)).shape == (1,)  # never an empty buffer


def test_tiny_refine_artifact_for_tensorrt_needs_no_rewrite_and_converts_with_the_argmax_fp32(tmp_path):
    """Item 8 (CPU side): the tiny refine artifact the GPU tier builds is the default export's shape: no shape-tensor
    input, a profile for the image only, no graph rewrite; made FP16 for a strongly typed build its argmax stays an
    FP32 island and its outputs equal the FP32 graph's on ONNX Runtime."""
    import onnx

    from converters.tensorrt_build import _float_parts_fp16

    art = write_onnx_artifact(tmp_path / "refine", head="refine")
    m = read_manifest(art)
    assert (m.head, [t.name for t in m.inputs], [t.name for t in m.outputs]) == ("refine", ["pixel_values"],
                                                                                 ["logits", "argmax"])
    assert [r.name for r in plan_profile(m)] == ["pixel_values"]
    model = onnx.load(str(art / "model.onnx"))
    assert prepare_onnx(copy.deepcopy(model)) == []
    converted = _float_parts_fp16(copy.deepcopy(model), [])
    producer = {o: n for n in converted.graph.node for o in n.output}
    argmax = next(n for n in converted.graph.node if n.op_type == "ArgMax")
    cast = producer[argmax.input[0]]
    assert cast.op_type == "Cast" and cast.attribute[0].i == 1  # FLOAT: the argmax decides on FP32 values
    x = np.random.default_rng(8).standard_normal((2, 3, 64, 96)).astype(np.float32)
    want = _session(model).run(["logits", "argmax"], {"pixel_values": x})
    have = _session(converted).run(["logits", "argmax"], {"pixel_values": x})
    assert have[1].dtype == np.uint8 and np.mean(have[1] == want[1]) >= 0.98
    np.testing.assert_allclose(have[0], want[0], atol=0.05)


# ---------------------------------------------------------------- one TensorRT install message (issue 24 item 10, 27.9)

def test_one_tensorrt_install_message_everywhere(tmp_path, monkeypatch):
    """Opening an engine without TensorRT, segedge doctor and the builder all give the JetPack route; none says
    pip install 'segedge[jetson]', which installs only onnx."""
    import runtimes
    from runtimes import open_runtime
    from runtimes.tensorrt_support import INSTALL_TENSORRT
    from sdk.cli import doctor

    onnx_dir = write_onnx_artifact(tmp_path / "onnx")
    engine_dir = write_engine_artifact(tmp_path / "e", onnx_dir, profile=plan_profile(read_manifest(onnx_dir)))
    real_find_spec = runtimes.find_spec
    monkeypatch.setattr(runtimes, "find_spec", lambda name, *a: None if name == "tensorrt" else real_find_spec(name))
    with pytest.raises(MissingDependencyError) as err:
        open_runtime(engine_dir)
    assert INSTALL_TENSORRT in str(err.value) and "segedge[jetson]" not in str(err.value)
    report = doctor.diagnose()
    (job,) = [j for j in report["jobs"] if j["job"] == "TensorRT engines"]
    assert job["install"] == INSTALL_TENSORRT
    text = doctor.format_report(report)
    assert "segedge[jetson]" not in text
    if not _real_tensorrt():
        assert f"note: {INSTALL_TENSORRT}" in text and "the TensorRT note below" in text
    assert JETPACK_ROUTE == INSTALL_TENSORRT  # what require_tensorrt raises with


def test_doctor_on_a_jetson_names_jetpack_tensorrt_dla_and_the_table_row(monkeypatch):
    """The Also item: on a Jetson, doctor says the L4T release, board, CUDA, TensorRT, DLA cores and Python, and the
    support-table row that applies (a JetPack 5 device is told it is not supported)."""
    import runtimes.tensorrt_device as device
    from sdk.cli import doctor

    monkeypatch.setattr(device, "host_platform", lambda: "aarch64 L4T R36.4.3")
    monkeypatch.setattr(device, "device_model", lambda: "NVIDIA Jetson AGX Orin Developer Kit")
    info = doctor._jetson({"usable": True, "version": "10.3.0.30", "dla_cores": 2})
    assert info["l4t"] == "R36.4.3" and info["row"]["jetpack"] == "6.1, 6.2" and info["dla_cores"] == 2
    report = {**doctor.diagnose(), "jetson": info}
    text = doctor.format_report(report)
    line = next(ln for ln in text.splitlines() if ln.startswith("Jetson: "))
    assert "L4T R36.4.3" in line and "AGX Orin" in line and "TensorRT 10.3.0.30" in line and "DLA cores 2" in line
    assert "support table: JetPack 6.1, 6.2: weakly typed" in text
    monkeypatch.setattr(device, "host_platform", lambda: "aarch64 L4T R35.4.1")
    old = doctor._jetson(None)
    assert old["row"]["jetpack"] == "5.x" and not old["row"]["supported"]
    assert "not supported: Python 3.8" in doctor.format_report({**report, "jetson": old})
    monkeypatch.setattr(device, "host_platform", lambda: "x86_64 Linux")
    assert doctor._jetson(None) is None


def test_strongly_typed_int8_build_graph_from_a_prepared_qdq_mask_graph(tmp_path):
    """--int8 on TensorRT >= 10.12 from an FP32-float Q/DQ artifact: prepare_onnx's rewrites (int32 output_size, float
    class ids), then the float parts made FP16 (opset 19, FP16 scales); the masks stay those of the Q/DQ graph."""
    import onnx

    from converters.tensorrt_build import _float_parts_fp16

    model = onnx.load(str(_ort_qdq(write_onnx_artifact(tmp_path / "fp32"), tmp_path / "q.onnx", QuantizeBias=False)))
    prepared = copy.deepcopy(model)
    changes = prepare_onnx(prepared)
    converted = _float_parts_fp16(prepared, changes)
    assert len(changes) == 3 and converted.opset_import[0].version == 19 and float16_tensors(converted) > 0
    onnx.checker.check_model(converted)
    x = np.random.default_rng(10).standard_normal((2, 3, 64, 96)).astype(np.float32)
    want = _session(model).run(["mask"], {"pixel_values": x, "output_size": np.array([70, 90], np.int64)})[0]
    have = _session(converted).run(["mask"], {"pixel_values": x, "output_size": np.array([70, 90], np.int32)})[0]
    assert have.dtype == np.uint8 and have.shape == want.shape and np.mean(have == want) >= 0.98
