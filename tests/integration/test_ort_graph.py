"""The ONNX Runtime graph form (``export_onnx(graph="onnxruntime")``): the same function in ONNX Runtime's fused
kernels, its INT8 recipe, and clear refusals where OpenVINO or TensorRT would be handed it."""
from __future__ import annotations

import collections
import itertools
import json
import shutil

import numpy as np
import onnx
import pytest

from calibration.datasets import CamVid
from calibration.evaluate import evaluate
from calibration.quantize_ort import quantize_onnxruntime
from calibration.sensitivity import node_groups
from calibration.sets import load_calibration_set
from converters.onnx_export import export_onnx
from sdk import Segmenter
from sdk.cli import main
from sdk.core.errors import ArtifactError, ExportError, InputError
from sdk.core.manifest import read_manifest

SIZE = (180, 240)


@pytest.fixture(scope="module")
def ort_fp32(tmp_path_factory, hf_model):
    return export_onnx(hf_model, tmp_path_factory.mktemp("og") / "fp32", size_hw=SIZE, graph="onnxruntime",
                       progress=False)


@pytest.fixture(scope="module")
def portable_fp32(tmp_path_factory, hf_model):
    return export_onnx(hf_model, tmp_path_factory.mktemp("og") / "portable", size_hw=SIZE, progress=False)


@pytest.fixture(scope="module")
def val_pairs(camvid):
    return list(itertools.islice(CamVid(camvid, "val"), 0, 101, 25))


def _ops(artifact) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load(str(artifact / "model.onnx")).graph.node)


def test_same_function_in_fused_kernels(ort_fp32, portable_fp32, val_pairs):
    m = read_manifest(ort_fp32)
    assert m.graph == "onnxruntime" and m.opset == 20 and read_manifest(portable_fp32).graph == "portable"
    assert m.parity["onnxruntime_vs_torch_max_abs_logit"] <= 1e-4
    ops, blocks = _ops(ort_fp32), sum(m.architecture["depths"])
    assert ops["MultiHeadAttention"] == blocks and ops["Gelu"] == blocks and ops["Softmax"] == 0
    assert ops["MatMul"] == 4 * blocks  # q, k, v, proj; fc1/fc2 are 1x1 convs
    assert _ops(portable_fp32)["MultiHeadAttention"] == 0
    with Segmenter.from_artifact(portable_fp32) as a, Segmenter.from_artifact(ort_fp32) as b:
        for image, _ in val_pairs:
            assert np.mean(a(image).mask == b(image).mask) >= 0.999


def test_int8_recipe_quantizes_the_whole_ffn(tmp_path, ort_fp32, camvid, val_pairs):
    calib = load_calibration_set(camvid / "train.txt", num_samples=8, seed=0)
    art = quantize_onnxruntime(ort_fp32, calib, tmp_path / "int8", progress=False)
    q = read_manifest(art).extra["quantization"]
    assert q["graph"] == "onnxruntime" and q["target"] == "onnxruntime"
    graph = onnx.load(str(art / "model.onnx")).graph
    from_dq = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    ffn = [c for name, c in convs.items() if "/ffn/" in name]
    assert len(ffn) == 3 * 8  # fc1, depthwise, fc2 per block
    assert all(c.input[0] in from_dq and c.input[1] in from_dq for c in ffn)  # int8 activations and weights
    for op in ("MultiHeadAttention", "LayerNormalization"):  # float inputs (GELU runs float between DQ and Q)
        assert not any(i in from_dq for n in graph.node if n.op_type == op for i in n.input[:1]), op
    with Segmenter.from_artifact(ort_fp32) as fp32, Segmenter.from_artifact(art) as int8:
        assert evaluate(int8, val_pairs, reference=fp32, progress=False).agreement >= 0.95
    dq_out = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    assert not any(n.input[0] in dq_out for n in graph.node if n.op_type == "Shape")  # Shapes read int8 tensors
    groups = node_groups(ort_fp32, "onnxruntime")  # the sensitivity analysis sees the same blocks
    assert "encoder/stages.0/blocks.0" in groups and "decoder" in groups


def test_shapes_from_quantized_changes_no_result(tmp_path, ort_fp32, camvid, val_pairs, monkeypatch):
    import calibration.quantize_ort as q

    calib = load_calibration_set(camvid / "train.txt", num_samples=2, seed=0)
    monkeypatch.setattr(q, "shapes_from_quantized", lambda model: 0)
    plain = q.quantize_onnxruntime(ort_fp32, calib, tmp_path / "plain", progress=False)
    monkeypatch.undo()
    model = onnx.load(str(plain / "model.onnx"))
    assert q.shapes_from_quantized(model) > 0
    rewired = shutil.copytree(plain, tmp_path / "rewired")
    onnx.save(model, str(rewired / "model.onnx"))
    with Segmenter.from_artifact(plain) as a, Segmenter.from_artifact(rewired) as b:
        for image, _ in val_pairs:
            np.testing.assert_array_equal(a(image).mask, b(image).mask)


def test_other_backends_refuse_it(tmp_path, ort_fp32, camvid):
    calib = load_calibration_set(camvid / "train.txt", num_samples=2, seed=0)
    with pytest.raises(InputError, match="TensorRT cannot parse"):
        quantize_onnxruntime(ort_fp32, calib, tmp_path / "qdq", target="tensorrt", progress=False)
    from converters.tensorrt_build import build_engine

    with pytest.raises(ExportError, match="--graph portable"):
        build_engine(ort_fp32, tmp_path / "engine", fp16=True)
    assert not (tmp_path / "qdq").exists() and not (tmp_path / "engine").exists()
    pytest.importorskip("openvino", reason="needs openvino")
    from converters.openvino_export import export_openvino

    with pytest.raises(InputError, match="OpenVINO does not read"):
        export_openvino(ort_fp32, tmp_path / "ir", progress=False)
    with pytest.raises(ArtifactError, match="OpenVINO does not read"):
        Segmenter.from_artifact(ort_fp32, runtime="openvino")


def test_export_options_and_manifest(tmp_path, hf_model, portable_fp32):
    with pytest.raises(ExportError, match="needs opset >= 20"):
        export_onnx(hf_model, tmp_path / "a", graph="onnxruntime", opset=17, progress=False)
    with pytest.raises(ExportError, match="graph: expected one of"):
        export_onnx(hf_model, tmp_path / "b", graph="tensorrt", progress=False)
    old = shutil.copytree(portable_fp32, tmp_path / "old")  # manifests written before the graph field
    raw = json.loads((old / "model.json").read_text())
    del raw["graph"]
    (old / "model.json").write_text(json.dumps(raw))
    assert read_manifest(old).graph == "portable"
    (old / "model.json").write_text(json.dumps({**raw, "graph": "fast"}))
    with pytest.raises(ArtifactError, match="manifest graph: expected one of"):
        read_manifest(old)


def test_cli_export_graph(tmp_path, hf_model, capsys):
    assert main(["export", str(hf_model), "--graph", "onnxruntime", "--output", str(tmp_path / "o"), "-q"]) == 0
    assert read_manifest(tmp_path / "o").graph == "onnxruntime"
    assert main(["export", str(hf_model), "--graph", "onnxruntime", "--opset", "17",
                 "--output", str(tmp_path / "p"), "-q"]) != 0
    assert "needs opset >= 20" in capsys.readouterr().err


def test_cli_quantize_points_portable_artifacts_to_the_faster_graph(tmp_path, portable_fp32, ort_fp32, camvid,
                                                                   capsys):
    common = ["--backend", "onnxruntime", "--calib", str(camvid / "train.txt"), "--num-samples", "2", "-q"]
    assert main(["quantize", str(portable_fp32), *common, "--output", str(tmp_path / "a")]) == 0
    assert "--graph onnxruntime" in capsys.readouterr().out
    assert main(["quantize", str(ort_fp32), *common, "--output", str(tmp_path / "b")]) == 0
    assert "note:" not in capsys.readouterr().out
