"""Calibration memory is bounded in bytes, not frames (issue 11, item 5): calibration sets read frames from files
and videos when indexed, the histogram calibrators hold only the quantized nodes' tensors of a budgeted slice, and
neither changes a result: the same frames in the same order, the same ranges as ONNX Runtime's own calibrators, the
same Q/DQ model bytes as frames held in memory. Real ONNX Runtime and OpenCV on the tiny graph of
``tests/tiny_artifacts``."""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.quantize_ort import (_histogram_calibration, calibrated_tensors, quantizable_nodes,
                                      quantize_onnxruntime)
from calibration.sets import CalibrationSet, Frames, load_calibration_set
from tiny_artifacts import write_onnx_artifact

ROOT = Path(__file__).resolve().parents[2]


def _scene(i: int, hw: tuple[int, int]) -> np.ndarray:
    """A smooth street-like frame (gradients, a moving box, mild noise): compresses and decodes like footage."""
    h, w = hw
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:h, 0:w]
    frame = np.stack([(x * 255 // w + 7 * i) % 256, (y * 255 // h) % 256, ((x + y) * 127 // (h + w)) % 256], -1)
    frame[h // 3:h // 2, (i * w // 20) % w:(i * w // 20) % w + w // 8] = (200, 40, 40)
    return np.clip(frame + rng.integers(-8, 9, frame.shape), 0, 255).astype(np.uint8)


def _write_video(path: Path, n: int, hw: tuple[int, int]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (hw[1], hw[0]))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write mp4v video")
    for i in range(n):
        writer.write(_scene(i, hw)[..., ::-1])
    writer.release()
    return path


def _one_pass(path: Path) -> list[np.ndarray]:
    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(np.ascontiguousarray(frame[..., ::-1]))
    cap.release()
    return out


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory):
    return write_onnx_artifact(tmp_path_factory.mktemp("tiny") / "fp32")


def test_video_frames_are_read_when_indexed_and_equal_one_decoding_pass(tmp_path):
    video = _write_video(tmp_path / "clip.mp4", 12, (72, 96))
    decoded = _one_pass(video)
    cs = load_calibration_set(video, num_samples=5)
    assert isinstance(cs.frames, Frames) and len(cs) == 5
    want = np.linspace(0, len(decoded) - 1, 5).round().astype(int)
    assert all(np.array_equal(f, decoded[i]) for f, i in zip(cs.frames, want))  # in order, one pass
    # out of order, backwards, slices and views: still the frames of that pass
    assert np.array_equal(cs.frames[3], decoded[want[3]]) and np.array_equal(cs.frames[1], decoded[want[1]])
    assert np.array_equal(cs.frames[-1], decoded[want[-1]])
    assert [np.array_equal(f, decoded[i]) for f, i in zip(cs.frames[::2], want[::2])] == [True] * 3
    assert np.array_equal(cs.frames.take([4, 0])[0], decoded[want[4]])
    video.unlink()  # frames are not held: once the file is gone, reading one fails with a clear error
    with pytest.raises(Exception, match="decoded when the set was made but not now"):
        cs.frames[0]


def test_folder_frames_are_read_when_indexed(tmp_path):
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"{i}.png"), _scene(i, (40, 56))[..., ::-1])
    cs = load_calibration_set(tmp_path, num_samples=4)
    assert [np.array_equal(f, _scene(i, (40, 56))) for i, f in enumerate(cs.frames)] == [True] * 4
    wrapped = CalibrationSet([_scene(0, (40, 56))], "one", "x")  # a list given directly is wrapped, not copied
    assert isinstance(wrapped.frames, Frames) and np.array_equal(wrapped.frames[0], _scene(0, (40, 56)))


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_bounded_calibrators_give_onnxruntime_s_own_ranges(tmp_path, tiny_fp32, method):
    """The same tensors' ranges as ONNX Runtime's stock calibrator (every Conv/MatMul tensor, memory arena on)."""
    import onnx
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    from sdk.core.manifest import model_feeds, read_manifest
    from sdk.core.preprocess import preprocess

    manifest = read_manifest(tiny_fp32)
    model = onnx.load(str(tiny_fp32 / "model.onnx"))
    tensors = calibrated_tensors(model, quantizable_nodes(model, "tensorrt"))
    frames = [_scene(i, (64, 80)) for i in range(4)]
    feeds = [model_feeds(manifest, preprocess(f, manifest.preprocess), f.shape[:2]) for f in frames]
    ranges = []
    for bounded in (False, True):
        with _histogram_calibration(tensors) if bounded else contextlib.nullcontext():
            cal = create_calibrator(tiny_fp32 / "model.onnx", ["Conv", "MatMul"],
                                    augmented_model_path=str(tmp_path / f"aug{bounded}.onnx"),
                                    calibrate_method={"percentile": CalibrationMethod.Percentile,
                                                      "entropy": CalibrationMethod.Entropy}[method],
                                    extra_options={"symmetric": True})
            for start in (0, 2):  # two slices of two frames, as the strided collection feeds them
                cal.collect_data(_Feeds(feeds[start:start + 2]))
            ranges.append(cal.compute_data())
    stock, ours = ranges
    # the recipe's nodes only (here the classifier conv, float for TensorRT, is left out), each range unchanged
    assert set(ours.keys()) == tensors & set(stock.keys()) and 2 <= len(ours.keys()) < len(stock.keys())
    for name in ours.keys():
        assert np.array_equal(stock[name].range_value, ours[name].range_value), name


class _Feeds:
    """ONNX Runtime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict]) -> None:
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


@pytest.mark.parametrize("method, target", [("percentile", "tensorrt"), ("entropy", "onnxruntime")])
def test_frames_read_lazily_give_the_same_model_as_frames_in_memory(tmp_path, tiny_fp32, method, target):
    video = _write_video(tmp_path / "clip.mp4", 9, (64, 80))
    lazy = load_calibration_set(video, num_samples=6)
    decoded = _one_pass(video)
    eager_set = CalibrationSet([decoded[i] for i in np.linspace(0, 8, 6).round().astype(int)], "in memory", "y")
    arts = [quantize_onnxruntime(tiny_fp32, calib, tmp_path / name, target=target, method=method, progress=False,
                                 calib_memory_mib=1)  # a tiny budget: the slices' histograms are merged
            for name, calib in (("lazy", lazy), ("eager", eager_set))]
    assert (arts[0] / "model.onnx").read_bytes() == (arts[1] / "model.onnx").read_bytes()
    assert json.loads((arts[0] / "model.json").read_text())["extra"]["quantization"]["calib_slice_frames"] < 6


_MEMORY_RUN = """
import json, resource, sys
from calibration import quantize
from sdk.core.manifest import read_manifest
def run(frames, out):
    art = quantize(sys.argv[1], out, backend="tensorrt", calib=sys.argv[2], num_samples=frames, holdout=0,
                   reference_frames=0, calib_memory_mib=int(sys.argv[3]), progress=False).artifact
    q = read_manifest(art).extra["quantization"]
    return {"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "slice": q["calib_slice_frames"],
            "frame_mib": q["calib_frame_mib"], "method": q["method"]}
print(json.dumps([run(2, sys.argv[4] + "/two"), run(20, sys.argv[4] + "/twenty")]))
"""


def test_twenty_1080p_frames_calibrate_within_the_budget_not_frames_times_size(tmp_path, tiny_fp32):
    """Frames of 1080x1920 from a folder through ``calibration.quantize`` with the TensorRT target's percentile (the
    default histogram path of ``segedge quantize``) and a 96 MiB budget, in one process: calibrating on 20 frames
    raises its peak over the 2-frame run (imports, sessions and one frame's work already counted) by less than the
    budget, while holding 18 more frames' pixels and tensors would take over 600 MiB."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(20):
        cv2.imwrite(str(folder / f"{i:02d}.jpg"), _scene(i, (1080, 1920))[..., ::-1])
    budget = 96
    run = subprocess.run([sys.executable, "-c", _MEMORY_RUN, str(tiny_fp32), str(folder), str(budget),
                          str(tmp_path)], capture_output=True, text=True, cwd=str(ROOT), timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    two, twenty = json.loads(run.stdout.strip().splitlines()[-1])
    frame = twenty["frame_mib"]
    assert twenty["method"] == "percentile" and twenty["slice"] * frame <= budget
    held_more = 18 * (frame + 1080 * 1920 * 3 / 2**20)  # 18 more frames' pixels and calibrated tensors at once
    assert held_more > 6 * budget, "the test must tell the two apart"
    assert twenty["peak"] - two["peak"] < budget, (two, twenty)
