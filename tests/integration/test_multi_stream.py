"""Several sources in one pipeline, with the real trained model, real OpenCV decoding and real files: each source's
frames land in its own output with the masks a single-source run gives (no cross-talk), a source that dies or drops
does not stop the others, live drops spread fairly, Ctrl-C finalises every output, and a bad source among several
is refused before any work."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sdk.core.errors import InputError, SourceError
from sdk.segmenter import Segmenter
from sdk.stream.mosaic import Mosaic, grid
from sdk.stream.multi import MultiStreamConfig, MultiStreamPipeline
from sdk.stream.pipeline import StreamConfig, StreamPipeline
from sdk.stream.sources import (CaptureSource, PacedSource, Source, open_source, open_sources, parse_source,
                                read_source_list)
from helpers import mp4_frames

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from sdk.cli import main; sys.exit(main())"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, hf_model) -> Path:
    """The shared trained checkpoint at a small network size: quick on a CPU, real masks that differ per scene."""
    from converters.onnx_export import export_onnx

    return export_onnx(hf_model, tmp_path_factory.mktemp("multi") / "b0-small", size_hw=(96, 128),
                       upsample="fast", progress=False)


@pytest.fixture()
def seg(artifact):
    with Segmenter.from_artifact(artifact, threads=1) as s:
        yield s


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, video, camvid) -> list[Path]:
    """Four sources with different content and sizes: the video (720x1280), the video upside down as a second
    mp4, a folder of CamVid val images (360x480) and a folder of CamVid test images."""
    root = tmp_path_factory.mktemp("scenes")
    flipped = root / "flipped.mp4"
    cap = cv2.VideoCapture(str(video))
    writer = None
    for _ in range(12):
        ok, frame = cap.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(flipped), cv2.VideoWriter.fourcc(*"mp4v"), 30.0,
                                     (frame.shape[1], frame.shape[0]))
        writer.write(cv2.flip(frame, -1))
    writer.release()
    cap.release()
    folders = []
    for split in ("val", "test"):
        folder = root / split
        folder.mkdir()
        for p in sorted((camvid / split).glob("*.png"))[:12]:
            (folder / p.name).write_bytes(p.read_bytes())
        folders.append(folder)
    return [video, flipped, *folders]


class Collector:
    """on_result: masks per source, in arrival order, and their frame indices."""

    def __init__(self) -> None:
        self.masks: dict[int, list[np.ndarray]] = {}
        self.indices: dict[int, list[int]] = {}

    def __call__(self, frame, result, picture) -> None:
        assert picture.shape == frame.image.shape  # drawn over its own frame
        self.masks.setdefault(frame.source, []).append(result.mask.copy())
        self.indices.setdefault(frame.source, []).append(frame.index)


def single_run_masks(seg, source: Path, n: int) -> list[np.ndarray]:
    rec = Collector()
    StreamPipeline(seg, open_source(str(source)), StreamConfig(max_frames=n), on_result=rec).run()
    return rec.masks[0]


# -- no cross-talk ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [2, 4])
def test_each_source_lands_in_its_own_output_with_its_own_masks(tmp_path, seg, scenes, count):
    n = 8
    chosen = scenes[:count] if count == 4 else [scenes[0], scenes[2]]  # different content and sizes
    outputs = [tmp_path / f"cam{i}.mp4" for i in range(count)]
    rec = Collector()
    stats = MultiStreamPipeline(seg, open_sources([str(s) for s in chosen]),
                                MultiStreamConfig(max_frames=n, outputs=outputs, mosaic=tmp_path / "wall.mp4",
                                                  stats_path=tmp_path / "stats.json"), on_result=rec).run()
    assert stats.mode == "file" and stats.ended == "max_frames"
    assert stats.batch_sizes == [count] * n  # one model call a step, one frame of each source in it
    for i, source in enumerate(chosen):
        assert rec.indices[i] == list(range(n))
        alone = single_run_masks(seg, source, n)
        assert len(rec.masks[i]) == n
        for got, want in zip(rec.masks[i], alone):
            np.testing.assert_array_equal(got, want)
        assert mp4_frames(outputs[i]) == n
        first = cv2.VideoCapture(str(outputs[i])).read()[1]
        assert first.shape[:2] == cv2.imread(str(sorted(source.glob("*.png"))[0])).shape[:2] if source.is_dir() \
            else first.shape[:2] == (int(cv2.VideoCapture(str(source)).get(cv2.CAP_PROP_FRAME_HEIGHT)),
                                     int(cv2.VideoCapture(str(source)).get(cv2.CAP_PROP_FRAME_WIDTH)))
    assert mp4_frames(tmp_path / "wall.mp4") == n  # one mosaic frame per batch
    saved = json.loads((tmp_path / "stats.json").read_text())
    assert [s["frames_processed"] for s in saved["sources"]] == [n] * count
    assert saved["batch_size_counts"] == {str(count): n} and saved["cpu_ms_per_frame"] > 0
    assert all("p95_ms" in s["stages_ms"]["latency"] for s in saved["sources"])


def test_sources_of_different_lengths_each_run_to_their_end(seg, scenes):
    rec = Collector()
    stats = MultiStreamPipeline(seg, open_sources([str(scenes[1]), str(scenes[2])]), on_result=rec).run()
    assert [s.ended for s in stats.sources] == ["end_of_stream", "end_of_stream"]
    assert [len(rec.indices[0]), len(rec.indices[1])] == [12, 12]
    assert stats.ended == "end_of_stream"


def test_max_batch_below_the_source_count_serves_every_source(seg, scenes):
    rec = Collector()
    stats = MultiStreamPipeline(seg, open_sources([str(s) for s in scenes]),
                                MultiStreamConfig(max_frames=5, max_batch=3), on_result=rec).run()
    assert max(stats.batch_sizes) <= 3 and sum(stats.batch_sizes) == 20
    assert all(rec.indices[i] == list(range(5)) for i in range(4))


# -- sources that die, drop and come back ---------------------------------------------------------------------------
class DyingSource(Source):
    """A file source that raises after ``after`` frames (a decoder or device failure)."""

    def __init__(self, inner: Source, after: int) -> None:
        self.inner, self.after, self.spec, self.n = inner, after, inner.spec, 0
        self.fps, self.frame_count = inner.fps, inner.frame_count

    def read(self):
        if self.n >= self.after:
            raise OSError("device disconnected")
        self.n += 1
        return self.inner.read()

    def close(self):
        self.inner.close()


def test_a_source_that_dies_does_not_stop_the_others(tmp_path, seg, scenes):
    rec = Collector()
    sources = [DyingSource(open_source(str(scenes[1])), after=3), open_source(str(scenes[2]))]
    stats = MultiStreamPipeline(seg, sources, MultiStreamConfig(outputs=[tmp_path / "a.mp4", tmp_path / "b.mp4"]),
                                on_result=rec).run()
    assert stats.sources[0].ended == "error" and "device disconnected" in stats.sources[0].error
    assert stats.sources[1].ended == "end_of_stream" and rec.indices[1] == list(range(12))
    assert rec.indices[0] == [0, 1, 2]  # what it gave before it died is processed and written
    assert [s.error for s in stats.failed] == [stats.sources[0].error]
    assert mp4_frames(tmp_path / "a.mp4") == 3 and mp4_frames(tmp_path / "b.mp4") == 12
    assert "source 0 failed" in stats.table()


class DroppingCamera(Source):
    """A live camera (a paced replay of the real video) that stops delivering after ``drop_after`` frames, refuses
    to reopen for ``down_s`` seconds, then comes back."""

    def __init__(self, video: Path, fps: float, drop_after: int, down_s: float) -> None:
        self.video, self.rate, self.drop_after, self.down_s = video, fps, drop_after, down_s
        self.spec = parse_source(str(video), live=True)
        self.fps, self.inner, self.frames, self.down_since = fps, None, 0, None

    def open(self):
        if self.down_since is not None and time.perf_counter() - self.down_since < self.down_s:
            raise SourceError("connection refused")
        self.inner = PacedSource(CaptureSource(self.spec, loop=True), self.rate).open()
        return self

    def read(self):
        if self.down_since is None and self.frames >= self.drop_after:
            self.down_since = time.perf_counter()
            return None
        image = self.inner.read()
        self.frames += 1
        self.timestamp_s = self.inner.timestamp_s
        return image

    def close(self):
        if self.inner is not None:
            self.inner.close()


def test_a_live_source_that_drops_rejoins_and_the_others_run_on(seg, video):
    dropping = DroppingCamera(video, 15, drop_after=10, down_s=1.5).open()
    steady = open_source(str(video), pace_fps=15, loop=True)
    rec = Collector()
    stats = MultiStreamPipeline(seg, [dropping, steady], MultiStreamConfig(max_frames=45, reconnect_timeout_s=10),
                                on_result=rec).run()
    assert stats.mode == "live" and [s.ended for s in stats.sources] == ["max_frames", "max_frames"]
    gaps = stats.sources[0].gaps
    assert len(gaps) == 1 and gaps[0].after_frame == 9 and 1.4 < gaps[0].gap_s < 5
    assert "connection refused" in gaps[0].reason
    assert not stats.sources[1].gaps
    assert max(rec.indices[0]) > 20  # it came back and was segmented again
    # the steady camera kept being served while the other was down
    assert len(rec.indices[1]) > 0.6 * 45 and stats.sources[1].frames_processed == len(rec.indices[1])


def test_a_live_source_that_never_comes_back_ends_alone(seg, video):
    gone = DroppingCamera(video, 15, drop_after=5, down_s=1e9).open()
    steady = open_source(str(video), pace_fps=15)
    stats = MultiStreamPipeline(seg, [gone, steady], MultiStreamConfig(max_frames=40, reconnect_timeout_s=1.0)).run()
    assert stats.sources[0].ended == "error" and "could not be reopened in 1 s" in stats.sources[0].error
    assert stats.sources[1].ended == "max_frames" and stats.sources[1].frames_processed > 20


# -- the live policy ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_clip(tmp_path_factory, video) -> Path:
    """60 frames of the video at 180x320: four replays of it at 30 fps decode in real time even on a loaded 2-core
    machine (four 720x1280 decoders there fell behind and the replays' catch-up decoding spiralled to minutes)."""
    path = tmp_path_factory.mktemp("small") / "small.mp4"
    cap = cv2.VideoCapture(str(video))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30.0, (180, 320))
    for _ in range(60):
        writer.write(cv2.resize(cap.read()[1], (180, 320), interpolation=cv2.INTER_AREA))
    writer.release()
    cap.release()
    return path


def test_live_drops_spread_fairly_over_the_cameras(seg, small_clip):
    """Four 30 fps cameras and a consumer that takes 50 ms a batch: most frames must be dropped, each camera's
    share of the segmented frames stays even, every frame is processed or dropped once, latency stays bounded."""
    cams = [open_source(str(small_clip), pace_fps=30, loop=True) for _ in range(4)]
    latency: list[float] = []

    def slow(frame, result, picture):
        latency.append(time.perf_counter() - frame.captured_s)
        if frame.source == 3:
            time.sleep(0.05)

    stats = MultiStreamPipeline(seg, cams, MultiStreamConfig(max_frames=90), on_result=slow).run()
    done = [s.frames_processed for s in stats.sources]
    assert min(done) >= 0.8 * np.mean(done), done
    for s in stats.sources:
        assert s.frames_read == s.frames_processed + s.dropped + s.discarded_at_stop
        assert s.dropped + s.skipped_by_source > 0
    assert max(stats.batch_sizes) <= 4
    # no backlog: a frame waits at most for the batch in flight, then its own batch and the slow consumer (a queue
    # would reach ~3 s here); bounded by the slowest batch seen, so a loaded machine does not fail it
    batch_s = sum(stats.stages[k].max_ms for k in ("preprocess", "inference", "postprocess")) / 1e3
    assert max(latency) < 2 * batch_s + 4 * 0.05 + 0.5, (max(latency), batch_s)


def test_sources_must_all_be_live_or_all_files(seg, video, scenes):
    with pytest.raises(InputError, match="all live .* or all files"):
        MultiStreamPipeline(seg, [open_source(str(video), pace_fps=10), open_source(str(scenes[2]))])


# -- bad sources, the CLI, Ctrl-C -----------------------------------------------------------------------------------
def test_a_typo_in_one_of_four_is_refused_before_anything_opens(tmp_path, video):
    with pytest.raises(SourceError, match=r"source 3 of 4: source '.*typo\.mp4'"):
        open_sources([str(video), str(video), str(tmp_path / "typo.mp4"), str(video)])
    lst = tmp_path / "cams.txt"
    lst.write_text(f"# lobby\n{video}\n\n  {video}  \n")
    assert read_source_list(lst) == [str(video), str(video)]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(SourceError, match="one source per line, got none"):
        read_source_list(tmp_path / "empty.txt")


def run_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_cli_refuses_a_bad_source_among_several_before_the_model_loads(tmp_path, artifact, video):
    out = tmp_path / "cams"
    proc = run_cli("stream", str(artifact), "--source", str(video), "--source", str(video), "--source",
                   str(tmp_path / "typo.mp4"), "--source", str(video), "--output", str(out), "--no-display")
    _, stderr = proc.communicate(timeout=120)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "source 3 of 4" in lines[0] and "typo.mp4" in lines[0]
    assert not out.exists()  # nothing was written


def test_cli_ctrl_c_finalises_every_output(tmp_path, artifact, video, scenes):
    out = tmp_path / "cams"
    lst = tmp_path / "sources.txt"
    lst.write_text(f"{scenes[2]}\n")
    proc = run_cli("stream", str(artifact), "--source", str(video), "--sources-file", str(lst), "--loop",
                   "--output", str(out), "--mosaic", str(tmp_path / "wall.mp4"), "--no-display", "--threads", "1")
    deadline = time.time() + 120
    while not (out / "cam1.mp4").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["ended"] == "interrupted" and stats["batches"] > 0
    for i, s in enumerate(stats["sources"]):
        assert s["frames_processed"] > 0 and mp4_frames(out / f"cam{i}.mp4") == s["frames_processed"]
        assert s["frames_read"] == s["frames_processed"] + s["discarded_at_stop"]
    assert mp4_frames(tmp_path / "wall.mp4") == stats["batches"]
    assert "source 1: FolderSource" in stdout and f"stats: {out / 'stats.json'}" in stdout


# -- the mosaic -----------------------------------------------------------------------------------------------------
def test_mosaic_grid_and_tiles():
    assert [grid(n) for n in (1, 2, 3, 4, 5, 8, 9)] == [(1, 1), (1, 2), (2, 2), (2, 2), (2, 3), (3, 3), (3, 3)]
    m = Mosaic(["a", "b", "c"], (640, 360))
    assert m.tile_wh == (320, 180) and m.tile_origin(2) == (0, 180)
    red = np.zeros((720, 1280, 3), np.uint8)
    red[..., 2] = 255
    m.update(1, red)
    tile = m.picture[:180, 320:]
    assert (tile[100, 160] == [0, 0, 255]).all()  # scaled into tile 1, aspect kept (fills it exactly)
    assert not m.picture[180:].any()  # the others stay black until their first frame
    tall = np.full((1280, 720, 3), 255, np.uint8)
    m.update(0, tall)
    assert m.fit((1280, 720)) == (101, 180) and not m.picture[100, 10].any()  # letterboxed sideways
    with pytest.raises(InputError, match="at least 32 px per tile"):
        Mosaic([str(i) for i in range(9)], (64, 64))


def test_a_file_replayed_live_without_loop_ends_at_its_end(seg, scenes):
    """--mode live on a file (no --loop) used to reopen it at its end forever; now its end is the stream's end."""
    stats = StreamPipeline(seg, open_source(str(scenes[1]), live=True), StreamConfig()).run()
    assert stats.mode == "live" and stats.ended == "end_of_stream" and stats.frames_read == 12 and not stats.gaps
    paced = MultiStreamPipeline(seg, [open_source(str(scenes[1]), pace_fps=30)]).run()
    assert paced.sources[0].ended == "end_of_stream" and paced.sources[0].frames_read == 12


def test_camera_wall_example_runs(tmp_path, artifact, scenes):
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "examples/camera_wall.py", str(artifact), str(scenes[1]), str(scenes[2]),
                          "--output", str(tmp_path / "wall"), "--seconds", "0.2"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert mp4_frames(tmp_path / "wall" / "wall.mp4") == 6 and mp4_frames(tmp_path / "wall" / "cam1.mp4") == 6
    res = subprocess.run([sys.executable, "examples/camera_wall.py", str(artifact), str(scenes[1]),
                          str(tmp_path / "nope.mp4"), "--output", str(tmp_path / "w2")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "source 2 of 2" in res.stderr and "Traceback" not in res.stderr


def test_batches_follow_an_engine_profile_limit(seg, scenes):
    """A TensorRT engine takes at most its profile's batch: the pipeline forms batches within it, and refuses a
    larger max_batch with the rebuild command (checked here through the profile record, without a GPU)."""
    from runtimes.tensorrt import ShapeRange
    from sdk.stream.multi import runtime_max_batch

    assert runtime_max_batch(seg.runtime) is None  # ONNX Runtime: any batch
    seg.runtime.profile = {"pixel_values": ShapeRange(name="pixel_values", min=(1, 3, 96, 128), opt=(2, 3, 96, 128),
                                                      max=(2, 3, 96, 128))}
    try:
        sources = open_sources([str(s) for s in scenes[:3]])
        pipeline = MultiStreamPipeline(seg, sources, MultiStreamConfig(max_frames=2))
        assert pipeline.max_batch == 2
        assert max(pipeline.run().batch_sizes) == 2
        with pytest.raises(InputError, match="at most 2,.*--max-batch 3"):
            MultiStreamPipeline(seg, sources, MultiStreamConfig(max_batch=3))
    finally:
        del seg.runtime.profile


def test_cli_says_the_network_size_and_refuses_a_display_it_cannot_open(tmp_path, artifact, video):
    """Issue 27 items 13-14: the stream's header names the network input; --display on a headless machine is one
    line before any work (no empty stats table, no 'stats: None')."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    res = subprocess.run([sys.executable, "-c", CLI, "stream", str(artifact), "--source", str(video), "--display"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(lines) == 1 and "--display: expected a screen" in lines[0], res.stderr
    assert "stats:" not in res.stdout and "frames processed" not in res.stdout
    res = subprocess.run([sys.executable, "-c", CLI, "stream", str(artifact), "--source", str(video), "--no-display",
                          "--max-frames", "2", "--stats", str(tmp_path / "s.json")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "network input 96x128" in res.stdout, res.stderr
