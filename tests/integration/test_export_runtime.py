"""ONNX export, the ONNX Runtime backend and ``Segmenter`` on the real trained checkpoint."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from converters.checkpoints import load_checkpoint
from converters.onnx_export import export_onnx
from runtimes import RUNTIMES, OnnxRuntime, open_runtime
from sdk import Segmenter
from sdk.core.errors import ArtifactError, ExportError, InputError
from sdk.core.manifest import read_manifest
from sdk.core.preprocess import preprocess, read_rgb


def _val_image(camvid, i=0):
    from calibration.datasets import CamVid

    return read_rgb(CamVid(camvid, "val").pairs()[i][0])


def test_artifact_layout_and_manifest(hf_artifact, hf_model):
    m = read_manifest(hf_artifact)
    assert (hf_artifact / "model.onnx").is_file()
    assert m.format == "onnx" and m.precision == "fp32" and m.head == "mask" and m.upsample == "exact"
    assert m.class_names[:3] == ["sky", "building", "pole"] and m.num_classes == 11
    assert m.opset >= 17 and m.source["layout"] == "huggingface" and len(m.source["sha256"]) == 64
    assert m.parity["onnxruntime_vs_torch_max_abs_logit"] <= 1e-4
    assert m.preprocess.size_hw is None and m.preprocess.mean[0] == pytest.approx(123.675, abs=1e-3)
    assert {"torch", "onnx", "onnxruntime"} <= set(m.versions)
    graph = onnx.load(str(hf_artifact / "model.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert "LayerNormalization" in ops and "ArgMax" in ops
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


def test_logits_artifact_matches_torch_at_several_sizes(tmp_path, hf_model):
    art = export_onnx(hf_model, tmp_path / "logits", head="logits", progress=False)
    model = load_checkpoint(hf_model).model
    with OnnxRuntime(art) as rt:
        for shape in [(1, 3, 360, 480), (2, 3, 128, 160), (1, 3, 100, 132)]:
            x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
            with torch.no_grad():
                ref = model(torch.from_numpy(x)).numpy()
            got = rt.infer({"pixel_values": x})["logits"]
            assert got.shape == ref.shape
            assert np.abs(got - ref).max() <= 1e-4


def test_mask_head_equals_host_postprocessing(tmp_path, hf_model, hf_artifact, camvid):
    """In-graph resize+argmax == torch bilinear+argmax on the logits artifact's output, at the image size."""
    image = _val_image(camvid)
    logits_art = export_onnx(hf_model, tmp_path / "logits", head="logits", progress=False)
    x = preprocess(image, read_manifest(hf_artifact).preprocess)
    with OnnxRuntime(logits_art) as rt:
        logits = rt.infer({"pixel_values": x})["logits"]
    ref = F.interpolate(torch.from_numpy(logits), size=image.shape[:2], mode="bilinear",
                        align_corners=False).argmax(1)[0].numpy()
    with Segmenter.from_artifact(hf_artifact) as seg:
        mask = seg(image).mask
    with Segmenter.from_artifact(logits_art) as seg:
        host = seg(image).mask
    assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
    assert np.mean(mask == ref) >= 0.9999
    assert np.mean(host == ref) >= 0.999  # OpenCV's float bilinear vs PyTorch's


def test_fast_upsampling_on_a_resized_network(tmp_path, hf_model, camvid):
    """Large frames: network at a fixed size, mask to full size. fast ~= exact, and both have the image's size."""
    image = _val_image(camvid)
    big = np.ascontiguousarray(np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))  # 720x960
    exact = export_onnx(hf_model, tmp_path / "exact", size_hw=(360, 480), progress=False)
    fast = export_onnx(hf_model, tmp_path / "fast", size_hw=(360, 480), upsample="fast", progress=False)
    with Segmenter.from_artifact(exact) as a, Segmenter.from_artifact(fast) as b:
        ma, mb = a(big).mask, b(big).mask
    assert ma.shape == mb.shape == big.shape[:2]
    assert np.mean(ma == mb) >= 0.97


def test_batches_group_images_by_size(hf_artifact, camvid):
    a, b = _val_image(camvid, 0), _val_image(camvid, 1)
    small = np.ascontiguousarray(a[::2, ::2])
    with Segmenter.from_artifact(hf_artifact) as seg:
        singles = [seg(im).mask for im in (a, b, small)]
        batch = seg.predict_batch([a, b, small], batch_size=4)
    for s, r in zip(singles, batch):
        assert r.mask.shape == s.shape and np.mean(r.mask == s) >= 0.9999
    assert batch[0].class_names == seg.class_names and len(batch[0].palette) == 11


def test_bgr_color_order(hf_artifact, camvid):
    image = _val_image(camvid)
    with Segmenter.from_artifact(hf_artifact) as rgb, Segmenter.from_artifact(hf_artifact, color_order="bgr") as bgr:
        np.testing.assert_array_equal(rgb(image).mask, bgr(np.ascontiguousarray(image[..., ::-1])).mask)


def test_wrong_images_are_refused(hf_artifact):
    with Segmenter.from_artifact(hf_artifact) as seg:
        with pytest.raises(InputError, match=r"expected \(H, W, 3\) uint8, got \(360, 480\) float64"):
            seg(np.zeros((360, 480)))
        with pytest.raises(InputError, match="float32"):
            seg(np.zeros((64, 64, 3), np.float32))
        with pytest.raises(InputError, match="pixel_values: expected float32"):
            seg.runtime.infer({"pixel_values": np.zeros((1, 3, 64, 64), np.float64),
                               "output_size": np.array([64, 64])})
        with pytest.raises(InputError, match="expected inputs"):
            seg.runtime.infer({"x": np.zeros((1, 3, 64, 64), np.float32)})


def test_missing_or_broken_artifact_files(tmp_path, hf_artifact):
    with pytest.raises(ArtifactError, match="does not exist"):
        Segmenter.from_artifact(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(hf_artifact, broken)
    (broken / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match="model file 'model.onnx' named in model.json is missing"):
        Segmenter.from_artifact(broken)
    (broken / "model.onnx").write_bytes((hf_artifact / "model.onnx").read_bytes()[:5000])
    with pytest.raises(ArtifactError, match="ONNX Runtime cannot load"):
        Segmenter.from_artifact(broken)
    (broken / "model.json").unlink()
    with pytest.raises(ArtifactError, match="model.json is missing"):
        Segmenter.from_artifact(broken)
    bad = tmp_path / "badjson"
    shutil.copytree(hf_artifact, bad)
    manifest = json.loads((bad / "model.json").read_text())
    del manifest["class_names"]
    (bad / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="incomplete or malformed"):
        Segmenter.from_artifact(bad)


def test_runtime_choice(hf_artifact):
    assert "onnxruntime" in RUNTIMES
    with open_runtime(hf_artifact, "auto") as rt:
        assert isinstance(rt, OnnxRuntime)
    with pytest.raises(ArtifactError, match="expected 'auto' or one of"):
        open_runtime(hf_artifact, "tflite")
    with pytest.raises(ArtifactError, match="not in this onnxruntime build"):
        OnnxRuntime(hf_artifact, providers=["TensorrtExecutionProvider"]) if "TensorrtExecutionProvider" not in \
            __import__("onnxruntime").get_available_providers() else pytest.skip("TensorRT EP present")


def test_export_refuses_bad_options(tmp_path, hf_model):
    with pytest.raises(ExportError, match="opset: expected >= 17"):
        export_onnx(hf_model, tmp_path / "a", opset=13, progress=False)
    with pytest.raises(ExportError, match="needs head='mask'"):
        export_onnx(hf_model, tmp_path / "b", head="logits", upsample="fast", progress=False)
