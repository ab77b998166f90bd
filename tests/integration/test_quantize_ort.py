"""INT8 with ONNX Runtime's quantizer: the CPU recipe and the TensorRT-ready Q/DQ model, plus calibration sets."""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from calibration.datasets import CamVid
from calibration.evaluate import evaluate
from calibration.quantize_ort import quantize_onnxruntime
from calibration.sets import load_calibration_set
from conftest import VIDEO
from converters.onnx_export import export_onnx
from sdk import Segmenter
from sdk.cli import main
from sdk.core.errors import InputError
from sdk.core.manifest import read_manifest

@pytest.fixture(scope="module")
def small_fp32(tmp_path_factory, hf_model):
    return export_onnx(hf_model, tmp_path_factory.mktemp("q") / "fp32", size_hw=(180, 240), progress=False)


@pytest.fixture(scope="module")
def calib(camvid):
    return load_calibration_set(camvid / "train.txt", num_samples=8, seed=0)


def _int8_ops(path) -> dict[str, str]:
    """Nodes ONNX Runtime will run on int8 inputs: every activation input comes from a DequantizeLinear (the QDQ
    pattern it turns into QLinear* / MatMulIntegerToFloat kernels). name -> op type."""
    graph = onnx.load(str(path)).graph
    inits = {i.name for i in graph.initializer}
    from_dq = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    out = {}
    for n in graph.node:
        acts = [i for i in n.input if i and i not in inits]
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and acts and all(i in from_dq for i in acts):
            out[n.name] = n.op_type
    return out


def test_cpu_recipe_keeps_sensitive_ops_float(tmp_path, small_fp32, calib, camvid):
    art = quantize_onnxruntime(small_fp32, calib, tmp_path / "int8", progress=False)
    m = read_manifest(art)
    assert m.precision == "int8" and m.extra["calibration"]["frames"] == 8
    assert m.extra["quantization"]["target"] == "onnxruntime" and m.extra["quantization"]["quantized_nodes"] > 40
    assert m.extra["quantization"]["method"] == "minmax"  # the CPU target's default
    int8 = _int8_ops(art / "model.onnx")
    # LayerNorm, Softmax, GELU, residual Adds, the attention matmuls and the mask head stay float; the decoder
    # (convs, Resize, branch sum, ReLU, classifier) runs in int8; data movement may ride along. The refine head's
    # low-res ArgMax reads the classifier's int8 output: DequantizeLinear is increasing, so it picks the same class
    # (first index on ties) as an argmax of the float logits the same graph returns
    assert set(int8.values()) <= {"MatMul", "Conv", "Resize", "Add", "Relu", "Reshape", "Transpose", "Slice",
                                  "Gather", "Squeeze", "Shape", "ArgMax"}, int8
    assert all(name.startswith("/decoder/") for name, op in int8.items() if op in ("Add", "Resize", "Relu")), int8
    assert "/decoder/classifier/Conv" in int8 and "/decoder/Add_2" in int8
    relus = [n.name for n in onnx.load(str(art / "model.onnx")).graph.node if n.op_type == "Relu"]
    assert all(r in int8 for r in relus)  # the quantizer folds the ReLU into the sum's uint8 range, or runs it int8
    assert not any("attn/MatMul" in name for name in int8)  # q @ k and attn @ v stay float
    graph = onnx.load(str(art / "model.onnx")).graph
    weights_dq = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    assert all(c.input[1] not in weights_dq for name, c in convs.items() if "dwconv" in name)
    # MatMul outputs are left float (ONNX Runtime runs MatMulIntegerToFloat, no dequantization pass)
    matmul_outputs = {n.output[0] for n in graph.node if n.op_type == "MatMul"}
    assert not any(n.input[0] in matmul_outputs for n in graph.node if n.op_type == "QuantizeLinear")
    # it runs through Segmenter and agrees with FP32 on held-out frames
    pairs = list(itertools.islice(CamVid(camvid, "val"), 0, 101, 25))
    with Segmenter.from_artifact(small_fp32) as fp32, Segmenter.from_artifact(art) as int8:
        result = evaluate(int8, pairs, reference=fp32, progress=False)
    assert result.agreement >= 0.95


def test_tensorrt_qdq_is_symmetric_int8_per_channel(tmp_path, small_fp32, calib):
    art = quantize_onnxruntime(small_fp32, calib, tmp_path / "qdq", target="tensorrt", progress=False)
    assert read_manifest(art).extra["quantization"]["method"] == "percentile"  # the TensorRT target's default
    graph = onnx.load(str(art / "model.onnx")).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    qs = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qs
    for node in qs:
        if len(node.input) > 2 and node.input[2] in inits:
            zp = inits[node.input[2]]
            assert not zp.any(), node.name  # symmetric: zero points 0
            assert zp.dtype == np.int8, node.name  # no int32 (bias) Q/DQ: TensorRT's parser rejects it
    # weights per output channel: a DQ of a Conv weight has one scale per output channel
    conv = next(n for n in graph.node if n.op_type == "Conv" and "patch_embed" in n.name)
    dq = next(n for n in graph.node if n.output[0] == conv.input[1])
    q = next(n for n in graph.node if n.output[0] == dq.input[0])  # float weight -> Q -> DQ (TensorRT's form)
    assert inits[q.input[0]].dtype == np.float32
    assert inits[dq.input[1]].shape == (inits[q.input[0]].shape[0],)
    assert any("dwconv" in n.name for n in graph.node if n.op_type == "Conv")
    with Segmenter.from_artifact(art) as seg:
        assert seg(np.zeros((90, 120, 3), np.uint8)).mask.shape == (90, 120)


def test_keep_float_must_match(tmp_path, small_fp32, calib):
    with pytest.raises(InputError, match="matches none"):
        quantize_onnxruntime(small_fp32, calib, tmp_path / "x", keep_float=("nothing-like-this",), progress=False)
    art = quantize_onnxruntime(small_fp32, calib, tmp_path / "y", keep_float=("/encoder/stages.0/",),
                               progress=False)
    kept = read_manifest(art).extra["quantization"]["kept_float_by_user"]
    assert kept and all("/encoder/stages.0/" in k for k in kept)


def test_calibration_sources(tmp_path, camvid):
    with pytest.raises(InputError, match="expected images"):
        load_calibration_set(tmp_path)  # empty folder
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot be read or decoded"):
        load_calibration_set(tmp_path)
    video = VIDEO
    if video.exists():
        cs = load_calibration_set(video, num_samples=5)
        assert len(cs) == 5 and cs.frames[0].shape == (1280, 720, 3) or cs.frames[0].shape == (720, 1280, 3)
        assert "spread over" in cs.description
        broken = tmp_path / "broken.mp4"
        broken.write_bytes(video.read_bytes()[:2000])
        with pytest.raises(InputError, match="calibration video"):
            load_calibration_set(broken, num_samples=5)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((40, 50, 3), i * 20, np.uint8))
    a = load_calibration_set(folder, num_samples=3, seed=1)
    b = load_calibration_set(folder, num_samples=3, seed=1)
    assert len(a) == 3 and a.fingerprint == b.fingerprint
    arrays = load_calibration_set(iter([np.zeros((40, 40, 3), np.uint8)] * 4), num_samples=2)
    assert len(arrays) == 2
    with pytest.raises(InputError):
        load_calibration_set(iter([np.zeros((40, 40), np.uint8)]))


def test_cli_quantize_from_checkpoint(tmp_path, hf_model, camvid, capsys):
    out = tmp_path / "ort-int8"
    assert main(["quantize", str(hf_model), "--backend", "onnxruntime", "--calib", str(camvid / "train.txt"),
                 "--num-samples", "4", "--size", "128", "160", "--output", str(out), "-q"]) == 0
    assert "next: segedge predict" in capsys.readouterr().out
    assert read_manifest(out).precision == "int8" and read_manifest(out / "fp32").precision == "fp32"


def test_max_drop_that_cannot_be_met_keeps_best_and_marks_it(tmp_path, small_fp32, calib, camvid):
    """An impossible --max-drop (negative): the search runs, says so, and marks the artifact."""
    from calibration.sensitivity import quantize_with_max_drop

    data = list(itertools.islice(CamVid(camvid, "val"), 0, 101, 50))  # 3 images keep it quick
    art = quantize_with_max_drop(small_fp32, calib, data, tmp_path / "aa", max_drop=-100.0, probe_frames=4,
                                 probe_images=3, progress=False)
    report = read_manifest(art).extra["accuracy_aware"]
    assert report["max_drop_met"] is False and report["sensitivity"]
    assert {r["block"] for r in report["sensitivity"]} >= {"decoder", "encoder/stages.0/blocks.0"}
    with Segmenter.from_artifact(art) as seg:
        assert seg(data[0][0]).mask.shape == data[0][1].shape


def test_labelled_sets_ade20k_and_errors(camvid, tmp_path):
    from calibration.datasets import open_labelled_set

    ade = open_labelled_set(camvid.parents[0] / "ade20k-samples")
    image, label = next(iter(ade))
    assert image.shape[:2] == label.shape and label.max() == 255  # 0 (other) became the ignore index
    with pytest.raises(InputError, match="expected a CamVid root"):
        open_labelled_set(tmp_path)


def test_calibration_in_slices_gives_the_same_ranges(tmp_path, small_fp32, calib):
    """Calibrating slice by slice (so histogram calibrators never hold every frame's tensors) merges min/max
    exactly: the same quantization parameters as one pass; entropy runs in slices too."""
    from calibration.quantize_ort import calibration_stride

    assert [calibration_stride(n) for n in (300, 367, 8, 1, 48)] == [15, 1, 8, 1, 16]
    one = quantize_onnxruntime(small_fp32, calib, tmp_path / "one", target="tensorrt", method="minmax",
                               progress=False, slice_frames=16)
    four = quantize_onnxruntime(small_fp32, calib, tmp_path / "four", target="tensorrt", method="minmax",
                                progress=False, slice_frames=2)
    scales = [{i.name: numpy_helper.to_array(i) for i in onnx.load(str(a / "model.onnx")).graph.initializer
               if i.name.endswith("_scale") or i.name.endswith("_zero_point")} for a in (one, four)]
    assert scales[0].keys() == scales[1].keys() and scales[0]
    for name, value in scales[0].items():
        np.testing.assert_array_equal(value, scales[1][name], err_msg=name)
    quantize_onnxruntime(small_fp32, calib, tmp_path / "entropy", method="entropy", progress=False, slice_frames=4)


def test_cpu_minmax_ranges_are_the_mean_of_per_frame_ranges(tmp_path, small_fp32, calib):
    """The CPU target's minmax: each range is the mean over frames of the frame's min and max (checked on the network
    input, whose per-frame values we can compute), not the global min/max."""
    from sdk.core.preprocess import preprocess

    art = quantize_onnxruntime(small_fp32, calib, tmp_path / "q", progress=False)
    assert read_manifest(art).extra["quantization"]["ranges"] == "mean of per-frame min/max"
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(art / "model.onnx")).graph.initializer}
    spec = read_manifest(small_fp32).preprocess
    x = [preprocess(f, spec) for f in calib.frames]
    lo, hi = min(np.mean([a.min() for a in x]), 0.0), max(np.mean([a.max() for a in x]), 0.0)
    np.testing.assert_allclose(inits["pixel_values_scale"], (hi - lo) / 255, rtol=1e-5)
    assert (hi - lo) < max(a.max() for a in x) - min(a.min() for a in x)  # narrower than the global range


def test_uniform_histogram_path_gives_the_same_model(tmp_path, small_fp32, calib, monkeypatch):
    """The percentile calibration's histogram shortcut (numpy's uniform-bin path) changes time, not results, and
    ONNX Runtime's module is left as it was."""
    import contextlib

    import calibration.quantize_ort as q
    from onnxruntime.quantization import calibrate

    fast = q.quantize_onnxruntime(small_fp32, calib, tmp_path / "fast", target="tensorrt", method="percentile",
                                  progress=False, slice_frames=2)
    assert calibrate.np is np
    monkeypatch.setattr(q, "_uniform_histograms", contextlib.nullcontext)
    slow = q.quantize_onnxruntime(small_fp32, calib, tmp_path / "slow", target="tensorrt", method="percentile",
                                  progress=False, slice_frames=2)
    scales = [{i.name: numpy_helper.to_array(i) for i in onnx.load(str(a / "model.onnx")).graph.initializer
               if i.name.endswith("_scale")} for a in (fast, slow)]
    assert scales[0].keys() == scales[1].keys() and scales[0]
    for name, value in scales[0].items():
        np.testing.assert_allclose(value, scales[1][name], rtol=1e-6, err_msg=name)
    edges = np.linspace(0, 4, 2049, dtype=np.float32)
    data = np.abs(np.random.default_rng(0).standard_normal(100_000)).astype(np.float32)
    hist, returned = q._UniformHistogramNumpy.histogram(data, bins=edges)
    assert returned is edges and hist.sum() == np.histogram(data, bins=edges)[0].sum()
