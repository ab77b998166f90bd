"""OpenVINO: the runtime, IR export (FP32/FP16, static shape) and NNCF INT8, with real OpenVINO and NNCF on the
shared checkpoint at a small network size (128x160) and 8 CamVid train frames, to stay fast."""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

ov = pytest.importorskip("openvino", reason="needs openvino (pip install 'segedge[cpu]')")

from calibration.sets import CalibrationSet, load_calibration_set  # noqa: E402
from converters.onnx_export import export_onnx  # noqa: E402
from converters.openvino_export import export_openvino  # noqa: E402
from runtimes.onnxruntime import OnnxRuntime  # noqa: E402
from runtimes.openvino import OpenVINORuntime  # noqa: E402
from sdk import Segmenter  # noqa: E402
from sdk.core.errors import ArtifactError, InputError, MissingDependencyError  # noqa: E402
from sdk.core.manifest import read_manifest  # noqa: E402
from sdk.core.preprocess import read_rgb  # noqa: E402

SIZE = (128, 160)


def _cpu_caps() -> list[str]:
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


@pytest.fixture(scope="module")
def logits_artifact(tmp_path_factory, hf_model):
    return export_onnx(hf_model, tmp_path_factory.mktemp("ov") / "logits", size_hw=SIZE, head="logits",
                       progress=False)


@pytest.fixture(scope="module")
def ir_fp32(tmp_path_factory, hf_artifact):
    return export_openvino(hf_artifact, tmp_path_factory.mktemp("ov") / "ir32", size_hw=SIZE, progress=False)


@pytest.fixture(scope="module")
def calib8(camvid):
    return load_calibration_set(camvid / "train.txt", num_samples=8, seed=0)


@pytest.fixture(scope="module")
def int8_artifact(tmp_path_factory, hf_artifact, calib8):
    pytest.importorskip("nncf", reason="needs nncf (pip install nncf)")
    from calibration.quantize_openvino import quantize_openvino

    return quantize_openvino(hf_artifact, calib8, tmp_path_factory.mktemp("ov") / "int8", size_hw=SIZE,
                             progress=False)


def _val(camvid, i=0):
    from calibration.datasets import CamVid

    image_path, label_path = CamVid(camvid, "val").pairs()[i]
    return read_rgb(image_path)


def test_runtime_matches_onnxruntime_with_f32_hint(logits_artifact, hf_artifact, camvid):
    rng = np.random.default_rng(0)
    with OpenVINORuntime(logits_artifact, precision="f32") as ovr, OnnxRuntime(logits_artifact) as ort:
        for shape in [(1, 3, *SIZE), (2, 3, 96, 128)]:  # the ONNX artifact is dynamic in OpenVINO too
            x = rng.standard_normal(shape).astype(np.float32)
            got, ref = ovr.infer({"pixel_values": x})["logits"], ort.infer({"pixel_values": x})["logits"]
            assert got.shape == ref.shape and got.dtype == np.float32
            assert np.abs(got - ref).max() <= 1e-3
    image = _val(camvid)
    with Segmenter.from_artifact(hf_artifact, runtime="openvino", precision="f32") as seg, \
            Segmenter.from_artifact(hf_artifact, runtime="onnxruntime") as ref_seg:
        a, b = seg(image).mask, ref_seg(image).mask
    assert a.shape == image.shape[:2] and a.dtype == np.uint8
    assert np.mean(a == b) >= 0.999


def test_precision_hint_is_applied_and_described(logits_artifact):
    x = np.random.default_rng(1).standard_normal((1, 3, *SIZE)).astype(np.float32)
    with OpenVINORuntime(logits_artifact, precision="f32") as rt:
        assert rt.effective["precision"] == "f32" and "precision f32" in rt.describe()
        f32 = rt.infer({"pixel_values": x})["logits"]
    with OpenVINORuntime(logits_artifact) as rt:  # OpenVINO's own default, read back from the compiled model
        default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
        assert rt.effective["precision"] == default and f"precision {default} (default)" in rt.describe()
        assert "latency" in rt.describe()
    with OpenVINORuntime(logits_artifact, performance_mode="throughput", threads=1) as rt:
        assert rt.effective["performance_mode"] == "throughput" and rt.effective["threads"] == "1"
    if "BF16" in _cpu_caps():
        with OpenVINORuntime(logits_artifact, precision="bf16") as rt:
            assert rt.effective["precision"] == "bf16"
            bf16 = rt.infer({"pixel_values": x})["logits"]
        assert 0 < np.abs(bf16 - f32).max() < 1.0  # really ran in bf16, and still the same model
    if "FP16" not in _cpu_caps():
        with pytest.raises(ArtifactError, match="asked for f16"):
            OpenVINORuntime(logits_artifact, precision="f16")
    with pytest.raises(InputError, match="precision"):
        OpenVINORuntime(logits_artifact, precision="fp64")
    with pytest.raises(InputError, match="performance_mode"):
        OpenVINORuntime(logits_artifact, performance_mode="fast")


def test_fp32_and_fp16_ir(tmp_path, ir_fp32, hf_artifact, camvid):
    from runtimes import RUNTIMES, open_runtime

    assert RUNTIMES["openvino"] is OpenVINORuntime
    with open_runtime(ir_fp32) as rt:  # auto: an IR goes to OpenVINO
        assert isinstance(rt, OpenVINORuntime)
    m = read_manifest(ir_fp32)
    assert m.format == "openvino" and m.model_file == "model.xml" and m.precision == "fp32"
    assert (ir_fp32 / "model.bin").is_file() and m.preprocess.size_hw == SIZE
    assert m.inputs[0].shape == ["batch", 3, *SIZE] and m.inputs[1].name == "output_size"
    assert m.extra["openvino"]["static_shape"] == [1, 3, *SIZE] and "openvino" in m.versions
    assert m.parity["openvino_vs_onnxruntime_mask_agreement"] >= 0.999
    fp16 = export_openvino(hf_artifact, tmp_path / "ir16", size_hw=SIZE, compress_to_fp16=True, progress=False)
    m16 = read_manifest(fp16)
    assert m16.precision == "fp16" and m16.parity["openvino_vs_onnxruntime_mask_agreement"] >= 0.99
    assert (fp16 / "model.bin").stat().st_size < 0.6 * (ir_fp32 / "model.bin").stat().st_size
    images = [_val(camvid, 0), _val(camvid, 1)]
    with Segmenter.from_artifact(ir_fp32, runtime="openvino", precision="f32") as a, \
            Segmenter.from_artifact(fp16, runtime="openvino", precision="f32") as b:
        ra, rb = a.predict_batch(images, batch_size=2), b.predict_batch(images, batch_size=2)  # static batch 1
        assert "static batch 1" in a.runtime.describe()
    assert [r.mask.shape for r in ra] == [(360, 480)] * 2
    assert np.mean(ra[0].mask == rb[0].mask) >= 0.99


def test_static_shape_is_enforced(ir_fp32, hf_artifact, calib8):
    with OpenVINORuntime(ir_fp32) as rt, pytest.raises(InputError, match=r"expected size 128 on axis 2"):
        rt.infer({"pixel_values": np.zeros((1, 3, 96, 160), np.float32), "output_size": np.array([96, 160])})
    pytest.importorskip("nncf", reason="needs nncf")
    from calibration.quantize_openvino import quantize_openvino

    with pytest.raises(InputError, match="static input size"):
        quantize_openvino(hf_artifact, calib8, ir_fp32.parent / "never", size_hw=None, progress=False)
    with pytest.raises(InputError, match="expected an FP32 ONNX artifact"):
        quantize_openvino(ir_fp32, calib8, ir_fp32.parent / "never", size_hw=SIZE, progress=False)


def test_quantize_input_errors(tmp_path, hf_artifact, calib8):
    pytest.importorskip("nncf", reason="needs nncf")
    from calibration.quantize_openvino import quantize_openvino

    empty = CalibrationSet([], "nothing", "0")
    with pytest.raises(InputError, match="calibration set: expected at least one frame"):
        quantize_openvino(hf_artifact, empty, tmp_path / "q", size_hw=SIZE, progress=False)
    with pytest.raises(InputError, match="match no node"):
        quantize_openvino(hf_artifact, calib8, tmp_path / "q", size_hw=SIZE, ignored_scope=["^/no/such/"],
                          progress=False)
    with pytest.raises(InputError, match="go together"):
        quantize_openvino(hf_artifact, calib8, tmp_path / "q", size_hw=SIZE, max_drop=1.0, progress=False)
    assert not (tmp_path / "q").exists()


def test_int8_artifact_runs_through_segmenter(int8_artifact, ir_fp32, calib8, camvid):
    m = read_manifest(int8_artifact)
    assert m.format == "openvino" and m.precision == "int8" and m.preprocess.size_hw == SIZE
    q = m.extra["quantization"]
    assert q["nncf"] and q["calibration"]["fingerprint"] == calib8.fingerprint and q["calibration"]["frames"] == 8
    assert "GroupConvolution" in q["ignored_scope"]["types"] and q["ignored_scope"]["names"]  # attention
    assert q["recipe"]["model_type"] == "transformer" and q["recipe"]["static_shape"] == [1, 3, *SIZE]
    assert m.parity["int8_vs_fp32_mask_agreement"] >= 0.9
    xml = (int8_artifact / "model.xml").read_text()
    assert "FakeQuantize" in xml or 'element_type="i8"' in xml
    image = _val(camvid, 2)
    with Segmenter.from_artifact(int8_artifact, runtime="openvino") as seg, \
            Segmenter.from_artifact(ir_fp32, runtime="openvino", precision="f32") as ref:
        mask, ref_mask = seg(image).mask, ref(image).mask
        assert "int8" in repr(seg)
    assert mask.shape == (360, 480) and mask.dtype == np.uint8
    assert np.mean(mask == ref_mask) >= 0.9


def test_accuracy_control_impossible_drop_is_marked(tmp_path, hf_artifact, calib8, camvid):
    pytest.importorskip("nncf", reason="needs nncf")
    from calibration.datasets import CamVid
    from calibration.quantize_openvino import AccuracyDropWarning, quantize_openvino

    pairs = CamVid(camvid, "val")
    eval_data = [item for item, _ in zip(pairs, range(2))]
    calib = CalibrationSet(calib8.frames[:4], "4 CamVid train frames", "t4")
    # -100 points cannot be met (INT8 would need 100 mIoU over an FP32 of 0); even -1 can be met by chance on two
    # tiny images. Stages 0-2 stay float so that NNCF ranks few layer groups (fast).
    with pytest.warns(AccuracyDropWarning, match="NOT met"):
        art = quantize_openvino(hf_artifact, calib, tmp_path / "ac", size_hw=(64, 96), eval_data=eval_data,
                                max_drop=-100.0, max_iterations=1, ignored_scope=[r"^/encoder/stages\.[0-2]/"],
                                progress=False)
    extra = read_manifest(art).extra
    acc = extra["accuracy_aware"]
    assert acc["max_drop_met"] is False and extra["quantization"]["max_drop_met"] is False
    assert acc["max_drop_points"] == -100.0 and acc["eval_images"] == 2
    assert len(acc["reverted_to_float"]) >= 1 and not any("stages.0" in n for n in acc["reverted_to_float"])
    assert acc["measured_drop_points"] == pytest.approx(100 * (acc["fp32_miou"] - acc["int8_miou"]), abs=1e-3)
    with Segmenter.from_artifact(art, runtime="openvino") as seg:  # the kept model runs
        assert seg(eval_data[0][0]).mask.shape == (360, 480)


def test_missing_openvino_names_the_extra(monkeypatch, ir_fp32):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(MissingDependencyError, match=r"segedge\[cpu\]"):
        OpenVINORuntime(ir_fp32)


def test_cli_quantize_openvino(tmp_path, hf_artifact, camvid, capsys):
    pytest.importorskip("nncf", reason="needs nncf")
    from sdk.cli import main

    out = tmp_path / "cli-int8"
    code = main(["quantize", str(hf_artifact), "--backend", "openvino", "--calib", str(camvid / "train.txt"),
                 "--num-samples", "4", "--size", "64", "96", "--output", str(out), "-q", "--keep-below-min"])
    assert code == 0 and str(out) in capsys.readouterr().out
    m = read_manifest(out)
    assert m.format == "openvino" and m.precision == "int8" and m.preprocess.size_hw == (64, 96)
    # (--keep-below-min: 3 calibration frames at 64x96 stay under verify's 98% minimum, which would fail quantize)
    # no --size: the calibration frames' own size when they share one (CamVid: 360x480), else a clear error
    assert main(["quantize", str(hf_artifact), "--backend", "openvino", "--calib", str(camvid / "train.txt"),
                 "--num-samples", "2", "--output", str(tmp_path / "no-size"), "-q", "--keep-below-min"]) == 0
    assert "static size 360x480" in capsys.readouterr().out
    assert read_manifest(tmp_path / "no-size").preprocess.size_hw == (360, 480)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i, (h, w) in enumerate([(64, 96), (80, 96)]):
        cv2.imwrite(str(mixed / f"{i}.png"), np.zeros((h, w, 3), np.uint8))
    assert main(["quantize", str(hf_artifact), "--backend", "openvino", "--calib", str(mixed),
                 "--output", str(tmp_path / "mixed-out"), "-q"]) == 1
    assert "give --size H W" in capsys.readouterr().err
