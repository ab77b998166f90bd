"""INT8 accuracy per aspect mode (issue 27 items 1 and 18): every path that compares masks (quantize's held-out
agreement, the shipped reference masks, ``segedge verify`` with and without ``--reference``, NNCF's figures) goes
through the inference path's postprocessing, so a letterbox or pad artifact records the agreement that
``Segmenter`` measures. Real ONNX Runtime / OpenVINO / NNCF on the tiny real graph from ``tests/tiny_artifacts``
(a stride-4 conv and a 1x1 classifier: no spatial mixing, so padding changes no content logit and FP32 vs INT8
differs by quantization alone)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration import quantize
from sdk import Segmenter
from sdk.core.manifest import read_manifest
from sdk.core.preprocess import read_rgb
from sdk.core.records import HeldOutAccuracy, ReferenceRecord
from sdk.core.result import pixel_agreement
from tiny_artifacts import write_onnx_artifact

ASPECTS = [("stretch", (64, 64)), ("letterbox", (64, 64)), ("pad", None), ("pad", (64, 96))]


def _frames(n: int, hw=(48, 80), seed: int = 0) -> list[np.ndarray]:
    """Smooth frames (a few blobs of colour, like a street scene's regions), not noise: the masks have regions."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)
        frame = cv2.resize(small, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
        out.append(np.clip(frame.astype(int) + rng.integers(-8, 8, frame.shape), 0, 255).astype(np.uint8))
    return out


def _segmenter_agreement(int8, fp32, frames) -> float:
    """What ``segedge eval --reference`` measures: both artifacts through ``Segmenter``."""
    with Segmenter.from_artifact(int8) as seg, Segmenter.from_artifact(fp32) as ref:
        return pixel_agreement([seg(f).mask for f in frames], [ref(f).mask for f in frames])


@pytest.mark.parametrize("head", ["mask", "logits"])
@pytest.mark.parametrize("aspect, size_hw", ASPECTS, ids=["stretch", "letterbox", "pad", "pad-fixed"])
def test_onnxruntime_int8_records_what_segmenter_measures(tmp_path, aspect, size_hw, head, capsys):
    from sdk.cli import main

    fp32 = write_onnx_artifact(tmp_path / "fp32", head=head, size_hw=size_hw, aspect=aspect)
    result = quantize(fp32, tmp_path / "int8", backend="onnxruntime", calib=_frames(40), progress=False)
    art = result.artifact
    m = read_manifest(art)
    assert m.preprocess.aspect == aspect
    acc, ref = HeldOutAccuracy.read(m), ReferenceRecord.read(m)
    frames = [read_rgb(art / ref.folder / name) for name in ref.frames]
    # the shipped FP32 masks are the FP32 artifact's own masks through Segmenter (un-letterboxed, un-padded)
    with Segmenter.from_artifact(fp32) as seg:
        for frame, name in zip(frames, ref.masks):
            shipped = cv2.imread(str(art / ref.folder / name), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(shipped, seg(frame).mask)
    measured = _segmenter_agreement(art, fp32, frames)
    assert ref.agreement == pytest.approx(measured, abs=1e-9)
    assert acc.agreement == pytest.approx(measured, abs=1e-9) and measured > 0.9
    # verify from the shipped masks and against the FP32 artifact: the same figure, a pass
    for extra in ([], ["--reference", str(fp32)]):
        assert main(["verify", str(art), "--min-agreement", "0.9", "--json", str(tmp_path / "v.json")] + extra) == 0
        out = capsys.readouterr().out
        assert f"{100 * measured:.2f}%" in out and "PASS" in out
    assert main(["inspect", str(art)]) == 0
    assert f"{100 * measured:.2f}%" in capsys.readouterr().out


def test_openvino_int8_from_a_pad_export_runs_at_the_padded_size(tmp_path):
    """Item 18: 120x160 frames on a pad export run the network at 128x160; the static IR is built there (not at the
    unpadded 120x160), and its recorded agreement is what Segmenter measures against the FP32 artifact."""
    pytest.importorskip("nncf", reason="needs nncf (pip install 'segedge[quantize]')")
    fp32 = write_onnx_artifact(tmp_path / "fp32", head="logits", aspect="pad")
    frames = _frames(16, hw=(120, 160))
    result = quantize(fp32, tmp_path / "ov-int8", backend="openvino", calib=frames, progress=False)
    m = read_manifest(result.artifact)
    assert m.preprocess.size_hw == (128, 160) and m.preprocess.aspect == "pad"
    assert m.extra["openvino"]["static_shape"] == [1, 3, 128, 160]
    assert any("128x160" in n and "padded" in n for n in result.notes)
    ref = ReferenceRecord.read(m)
    shipped = [read_rgb(result.artifact / ref.folder / name) for name in ref.frames]
    measured = _segmenter_agreement(result.artifact, fp32, shipped)
    assert result.accuracy.agreement == pytest.approx(measured, abs=1e-9) and measured > 0.9
    assert m.parity["int8_vs_fp32_mask_agreement"] > 0.9


@pytest.mark.parametrize("aspect, size_hw", [("letterbox", (64, 64)), ("pad", (64, 96))], ids=["letterbox", "pad-fixed"])
def test_openvino_int8_records_what_segmenter_measures(tmp_path, aspect, size_hw, capsys):
    """NNCF's path (its calibration feeds, the held-out masks and its sanity figure) per aspect mode, through
    quantize, verify and inspect."""
    pytest.importorskip("nncf", reason="needs nncf (pip install 'segedge[quantize]')")
    from sdk.cli import main

    fp32 = write_onnx_artifact(tmp_path / "fp32", head="logits", size_hw=size_hw, aspect=aspect)
    art = quantize(fp32, tmp_path / "ov-int8", backend="openvino", calib=_frames(24), progress=False).artifact
    m = read_manifest(art)
    assert m.preprocess.aspect == aspect and m.preprocess.size_hw == size_hw
    ref = ReferenceRecord.read(m)
    frames = [read_rgb(art / ref.folder / name) for name in ref.frames]
    measured = _segmenter_agreement(art, fp32, frames)
    assert HeldOutAccuracy.read(m).agreement == pytest.approx(measured, abs=1e-9) and measured > 0.9
    assert m.parity["int8_vs_fp32_mask_agreement"] > 0.9
    assert main(["verify", str(art), "--min-agreement", "0.9"]) == 0
    assert f"{100 * measured:.2f}%" in capsys.readouterr().out
    assert main(["inspect", str(art)]) == 0
    assert f"held-out agreement with FP32 {100 * measured:.2f}%" in capsys.readouterr().out
