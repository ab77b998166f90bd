"""The refine head as exported: manifest and graph outputs, the same masks as the in-graph exact head through
``Segmenter`` (ONNX Runtime and OpenVINO), letterboxed frames, and artifacts written before (exact) still running."""
from __future__ import annotations

import json

import numpy as np
import pytest

from converters.onnx_export import export_onnx
from sdk import Segmenter
from sdk.core.manifest import read_manifest
from sdk.core.postprocess import mask_agreement
from sdk.core.preprocess import preprocess, read_rgb


@pytest.fixture(scope="module")
def refine_artifact(tmp_path_factory, hf_model):
    return export_onnx(hf_model, tmp_path_factory.mktemp("refine") / "b0", progress=False)  # the default head


def _frames(camvid, n=2):
    from calibration.datasets import CamVid

    return [read_rgb(p) for p, _ in CamVid(camvid, "val").pairs()[::40][:n]]


def test_default_export_is_refine(refine_artifact):
    m = read_manifest(refine_artifact)
    assert (m.head, m.upsample) == ("refine", "refine")
    assert [t.name for t in m.inputs] == ["pixel_values"]
    assert [(t.name, t.dtype) for t in m.outputs] == [("logits", "float32"), ("argmax", "uint8")]
    assert m.parity["mask_agreement_vs_torch"] >= 0.9999


def test_refine_equals_in_graph_exact_head_at_2x(refine_artifact, hf_artifact, camvid):
    """CamVid frames upscaled 2x (720x960): refine (host) vs the exact head in the ONNX graph."""
    import cv2

    assert read_manifest(hf_artifact).upsample == "exact"  # written the way earlier manifests were
    with Segmenter.from_artifact(refine_artifact) as ref_seg, Segmenter.from_artifact(hf_artifact) as exact_seg:
        for img in _frames(camvid):
            big = cv2.resize(img, (960, 720), interpolation=cv2.INTER_LINEAR)
            got, want = ref_seg(big).mask, exact_seg(big).mask
            logits = ref_seg.runtime.infer({"pixel_values": preprocess(big, ref_seg.manifest.preprocess)})["logits"]
            rep = mask_agreement(got, want, logits[0])
            assert rep["other"] == 0 and rep["identical"] >= 0.9999, rep


def test_refine_on_openvino(tmp_path, refine_artifact, camvid):
    pytest.importorskip("openvino")
    from converters.openvino_export import export_openvino

    ir = export_openvino(refine_artifact, tmp_path / "ir", progress=False)
    assert json.loads((ir / "model.json").read_text())["head"] == "refine"
    img = _frames(camvid, 1)[0]
    with Segmenter.from_artifact(ir, precision="f32") as ov, Segmenter.from_artifact(refine_artifact) as ort:
        assert ov.runtime.name == "openvino"
        assert np.mean(ov(img).mask == ort(img).mask) >= 0.999


def test_letterbox_masks_agree_across_heads(tmp_path, hf_model, camvid):
    """A portrait frame into a landscape network, letterboxed: refine, exact (in-graph, asked for the padded size
    and cropped) and the host logits head give the image-sized mask and agree."""
    img = np.ascontiguousarray(np.rot90(_frames(camvid, 1)[0]))  # 480x360 portrait
    masks = {}
    for head, upsample in (("mask", "refine"), ("mask", "exact"), ("logits", None)):
        art = export_onnx(hf_model, tmp_path / f"{head}-{upsample}", size_hw=(256, 320), aspect="letterbox",
                          head=head, upsample=upsample, progress=False)
        with Segmenter.from_artifact(art) as seg:
            masks[upsample or head] = seg(img).mask
    assert all(m.shape == img.shape[:2] for m in masks.values())
    assert np.mean(masks["refine"] == masks["logits"]) >= 0.9999
    assert np.mean(masks["refine"] == masks["exact"]) >= 0.99  # its output size is rounded to whole pixels
