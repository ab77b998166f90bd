"""Stream pipelines on the real video with real OpenCV decoding and a real exported artifact: end of stream, sources
that fail to open or die, Ctrl-C / stop(), the live drop policy, batching, rendering and the examples."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sdk.core.errors import InputError, OutputError, SourceError
from sdk.stream.pipeline import END, Channel, StreamConfig, StreamPipeline
from sdk.stream.render import Renderer, RenderOptions, VideoSink, Window, display_status
from sdk.core.result import SegmentationResult, default_palette
from sdk.segmenter import Segmenter
from sdk.stream.sources import (CaptureSource, CsiOptions, PacedSource, Source, gstreamer_support, open_source,
                         parse_source)
from helpers import mp4_frames
ROOT = Path(__file__).resolve().parents[2]
VIDEO_FRAMES = 190  # in conftest's video


@pytest.fixture(scope="session")
def small_artifact(tmp_path_factory, hf_model) -> Path:
    """The shared HF checkpoint at a small network size with the fast (argmax, then nearest) head: quick on CPU."""
    from converters.onnx_export import export_onnx

    return export_onnx(hf_model, tmp_path_factory.mktemp("stream") / "b0-small", size_hw=(128, 96),
                       upsample="fast", progress=False)


@pytest.fixture()
def seg(small_artifact):
    with Segmenter.from_artifact(small_artifact, threads=1) as s:
        yield s


class Recorder:
    """on_result callback: records frame indices and latency; optionally slow (a deliberately slow consumer)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.indices: list[int] = []
        self.latency_s: list[float] = []
        self.delay_s = delay_s

    def __call__(self, frame, result, picture) -> None:
        assert result.mask.shape == frame.image.shape[:2]
        self.indices.append(frame.index)
        if self.delay_s:
            time.sleep(self.delay_s)
        self.latency_s.append(time.perf_counter() - frame.captured_s)


# -- sources ------------------------------------------------------------------------------------------------------
def test_csi_options_refuse_bad_values():
    for bad, match in [(dict(size_hw=(16, 640)), r"csi size_hw: expected \(height, width\), both >= 32"),
                       (dict(size_hw=(720,)), "csi size_hw"), (dict(size_hw=("a", 2)), "csi size_hw"),
                       (dict(fps=0), "csi fps"), (dict(flip_method=8), "csi flip_method")]:
        with pytest.raises(SourceError, match=match):
            CsiOptions(**bad)


def test_parse_sources(video, camvid):
    assert parse_source("0") == parse_source(0)
    cam = parse_source("2")
    assert (cam.kind, cam.target, cam.live) == ("camera", 2, True)
    csi = parse_source("csi://1", csi=CsiOptions(size_hw=(720, 1280), fps=60, flip_method=2))
    assert csi.kind == "gstreamer" and csi.live
    assert csi.target.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM), width=1280, height=720")
    assert "framerate=60/1" in csi.target and "flip-method=2" in csi.target and csi.target.endswith("max-buffers=1")
    assert parse_source("rtsp://cam/stream").kind == "url" and parse_source("rtsp://cam/stream").live
    assert parse_source("videotestsrc ! videoconvert ! appsink").kind == "gstreamer"
    assert parse_source(str(camvid / "val")).kind == "folder" and not parse_source(str(camvid / "val")).live
    spec = parse_source(str(video))
    assert (spec.kind, spec.live) == ("file", False)
    assert parse_source(str(video), live=True).live
    with pytest.raises(SourceError, match="csi://N"):
        parse_source("csi://front")
    with pytest.raises(SourceError, match="does not exist"):
        parse_source("no/such/clip.mp4")


@pytest.mark.skipif(gstreamer_support(), reason="this OpenCV has GStreamer: the no-GStreamer error cannot happen")
def test_csi_without_gstreamer_says_how_to_get_it():
    with pytest.raises(SourceError) as info:
        open_source("csi://0")
    msg = str(info.value)
    assert "GStreamer: NO" in msg and "system OpenCV" in msg and "pip uninstall" in msg


def test_sources_that_fail_to_open(tmp_path, seg):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    with pytest.raises(SourceError, match="cannot be opened"):
        open_source(str(garbage))
    with pytest.raises(SourceError, match="cannot be opened"):
        open_source("rtsp://127.0.0.1:9/none")  # nothing listens on the discard port
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="folder with images"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="pace_fps"):
        open_source("rtsp://cam/x", pace_fps=30)


# -- end of stream, files lossless, batching ----------------------------------------------------------------------
def test_file_end_of_stream_writes_mp4_and_stats(tmp_path, video, seg):
    out, stats_path = tmp_path / "run.mp4", tmp_path / "run.stats.json"
    rec = Recorder()
    config = StreamConfig(output=out, stats_path=stats_path, batch_size=2)
    stats = StreamPipeline(seg, open_source(str(video)), config, on_result=rec).run()
    assert rec.indices == list(range(VIDEO_FRAMES))  # every frame once, in order
    assert stats.ended == "end_of_stream" and stats.frames_read == stats.frames_processed == VIDEO_FRAMES
    assert stats.dropped == 0 and not stats.source_ended_early
    assert mp4_frames(out) == VIDEO_FRAMES
    saved = json.loads(stats_path.read_text())
    assert saved["mode"] == "file" and saved["frames_processed"] == VIDEO_FRAMES and saved["output"] == str(out)
    for stage in ("capture", "preprocess", "inference", "postprocess", "render", "write", "latency"):
        s = saved["stages_ms"][stage]
        assert s["count"] == VIDEO_FRAMES and 0 <= s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert "p99 ms" in stats.table() and "ended: end_of_stream" in stats.table()


def test_pipeline_masks_equal_segmenter(video, seg):
    """The pipeline times Segmenter.predict_batch through a runtime proxy: the masks must not change."""
    src = open_source(str(video))
    frames = [src.read() for _ in range(3)]
    src.close()
    masks: list[np.ndarray] = []
    StreamPipeline(seg, open_source(str(video)), StreamConfig(max_frames=3, batch_size=3),
                   on_result=lambda f, r, p: masks.append(r.mask)).run()
    expected = seg.predict_batch([f[..., ::-1] for f in frames])  # the user's Segmenter takes RGB
    assert len(masks) == 3 and all(np.array_equal(m, e.mask) for m, e in zip(masks, expected))


def test_folder_source_names_frames(tmp_path, camvid, seg):
    images = sorted((camvid / "val").iterdir())[:3]
    names: list[str] = []
    stats = StreamPipeline(seg, open_source(str(camvid / "val")), StreamConfig(max_frames=3),
                           on_result=lambda f, r, p: names.append(f.name)).run()
    assert names == [p.name for p in images] and stats.ended == "max_frames"


# -- sources that die mid-stream ----------------------------------------------------------------------------------
def test_truncated_file_ends_early_with_valid_output(tmp_path, video, seg):
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index is at the front: decodes until the data stops
    out = tmp_path / "cut_out.mp4"
    stats = StreamPipeline(seg, open_source(str(cut)), StreamConfig(output=out, stats_path=tmp_path / "s.json")).run()
    assert stats.ended == "end_of_stream" and 0 < stats.frames_processed < VIDEO_FRAMES
    assert stats.source_ended_early and "truncated" in stats.table()
    assert mp4_frames(out) == stats.frames_processed
    assert json.loads((tmp_path / "s.json").read_text())["source_ended_early"] is True


class DyingSource(Source):
    """Wraps a real source; read() raises after ``after`` frames (a file mode disk/USB error)."""

    def __init__(self, inner: Source, after: int) -> None:
        self.inner, self.after, self.spec, self.fps = inner, after, inner.spec, inner.fps
        self.n = 0

    def read(self):
        if self.n >= self.after:
            raise OSError("device disconnected")
        self.n += 1
        return self.inner.read()

    def close(self):
        self.inner.close()


def test_source_that_raises_mid_stream(tmp_path, video, seg):
    out, stats_path = tmp_path / "dies.mp4", tmp_path / "dies.json"
    rec = Recorder()
    pipeline = StreamPipeline(seg, DyingSource(open_source(str(video)), after=12),
                              StreamConfig(output=out, stats_path=stats_path), on_result=rec)
    with pytest.raises(SourceError, match="failed at frame 12 .*device disconnected"):
        pipeline.run()
    assert rec.indices == list(range(12))  # what was read before the failure is processed and written
    assert mp4_frames(out) == 12
    saved = json.loads(stats_path.read_text())
    assert saved["ended"] == "error" and "device disconnected" in saved["error"]


class FlakyLiveSource(Source):
    """A live camera (paced replay of the real video) that drops after ``drop_after`` frames and then refuses
    ``refusals`` reopen attempts (None: forever)."""

    def __init__(self, video: Path, drop_after: int, refusals: int | None) -> None:
        self.video, self.drop_after, self.refusals = video, drop_after, refusals
        self.spec = parse_source(str(video), live=True)
        self.fps, self.opens, self.inner = 30.0, 0, None
        self.dropped_once, self.frames = False, 0

    def open(self):
        self.opens += 1
        if self.dropped_once and (self.refusals is None or self.opens - 2 < self.refusals):
            raise SourceError("camera busy")
        self.inner = PacedSource(CaptureSource(self.spec), 30).open()
        return self

    def read(self):
        if not self.dropped_once and self.frames >= self.drop_after:
            self.dropped_once = True
            return None
        image = self.inner.read()
        self.frames += 1
        self.timestamp_s = self.inner.timestamp_s
        return image

    def close(self):
        if self.inner is not None:
            self.inner.close()


def test_live_source_that_drops_is_reopened_and_the_gap_reported(tmp_path, video, seg):
    src = FlakyLiveSource(video, drop_after=10, refusals=1).open()
    stats = StreamPipeline(seg, src, StreamConfig(max_frames=20, reconnect_timeout_s=10)).run()
    assert stats.ended == "max_frames" and stats.frames_read == 20
    assert len(stats.gaps) == 1
    gap = stats.gaps[0]
    assert gap.after_frame == 9 and gap.attempts == 2 and 0.4 < gap.gap_s < 5 and "camera busy" in gap.reason
    assert "source gap after frame 9" in stats.table()


def test_live_source_that_never_comes_back_fails_clearly(tmp_path, video, seg):
    src = FlakyLiveSource(video, drop_after=5, refusals=None).open()
    out = tmp_path / "gone.mp4"
    pipeline = StreamPipeline(seg, src, StreamConfig(reconnect_timeout_s=1.0, output=out,
                                                     stats_path=tmp_path / "gone.json"))
    t0 = time.perf_counter()
    with pytest.raises(SourceError, match="could not be reopened in 1 s .*--reconnect-timeout"):
        pipeline.run()
    assert time.perf_counter() - t0 < 10
    assert mp4_frames(out) == pipeline.stats.frames_processed > 0
    assert json.loads((tmp_path / "gone.json").read_text())["ended"] == "error"


# -- stop and Ctrl-C ----------------------------------------------------------------------------------------------
def test_stop_from_another_thread(tmp_path, video, seg):
    out, stats_path = tmp_path / "stopped.mp4", tmp_path / "stopped.json"
    rec = Recorder()
    pipeline = StreamPipeline(seg, open_source(str(video), loop=True), StreamConfig(output=out, stats_path=stats_path),
                              on_result=rec)
    timer = threading.Timer(1.5, pipeline.stop)
    timer.start()
    t0 = time.perf_counter()
    stats = pipeline.run()
    assert time.perf_counter() - t0 < 10
    assert stats.ended == "stopped" and stats.frames_processed > 0
    assert rec.indices == list(range(len(rec.indices)))
    assert stats.frames_read == stats.frames_processed + stats.discarded_at_stop
    assert mp4_frames(out) == stats.frames_processed
    assert json.loads(stats_path.read_text())["ended"] == "stopped"
    # the pipeline's own threads end (the process-wide host pool of sdk.core.parallel, like OpenCV's, stays)
    assert not [t for t in threading.enumerate() if t.name.startswith("segedge-") and
                not t.name.startswith("segedge-host")]


CLI = "import sys; from sdk.cli import main; sys.exit(main())"


def run_cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_ctrl_c_shuts_down_cleanly(tmp_path, video, small_artifact):
    out = tmp_path / "cli.mp4"
    proc = run_cli("stream", str(small_artifact), "--source", str(video), "--loop", "--no-display", "--output",
                   str(out), "--threads", "1")
    deadline = time.time() + 120
    while not (out.exists() and out.stat().st_size > 0) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)  # the mp4 appears with the first rendered frame
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    stats = json.loads((tmp_path / "cli.stats.json").read_text())
    assert stats["ended"] == "interrupted" and stats["frames_processed"] > 0
    assert mp4_frames(out) == stats["frames_processed"]
    assert f"output: {out}" in stdout and f"stats: {tmp_path / 'cli.stats.json'}" in stdout


def test_cli_errors_are_one_line(tmp_path, small_artifact):
    proc = run_cli("stream", str(small_artifact), "--source", str(tmp_path / "missing.mp4"), "--no-display")
    _, stderr = proc.communicate(timeout=120)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "segedge stream: error: source" in lines[0], stderr
    proc = run_cli("stream", str(small_artifact), "--source", "csi://0", "--no-display")
    _, stderr = proc.communicate(timeout=120)
    if not gstreamer_support():
        assert proc.returncode == 1 and "GStreamer" in stderr and "Traceback" not in stderr


# -- the live drop policy -----------------------------------------------------------------------------------------
def test_live_drops_stale_frames_and_latency_stays_bounded(video, seg):
    """A paced replay behaves like a 30 fps camera; the consumer takes ~0.1 s a frame, so most frames must be
    dropped, none processed twice, and latency must stay bounded (not grow with a backlog)."""
    rec = Recorder(delay_s=0.1)
    src = open_source(str(video), pace_fps=30)
    stats = StreamPipeline(seg, src, StreamConfig(max_frames=120), on_result=rec).run()
    assert stats.mode == "live" and stats.ended == "max_frames"
    assert stats.frames_read == 120 and stats.dropped > 40
    assert stats.frames_read == stats.frames_processed + stats.dropped  # each frame processed or dropped, once
    assert rec.indices == sorted(set(rec.indices)) and rec.indices[-1] == 119  # strictly increasing: never twice
    lat = np.asarray(rec.latency_s)
    third = len(lat) // 3
    assert lat.max() < 1.0, lat  # a lossless queue would reach ~3 s here
    assert np.median(lat[-third:]) < np.median(lat[:third]) + 0.15  # not growing over the run


def test_file_mode_with_the_same_slow_consumer_drops_nothing(video, seg):
    rec = Recorder(delay_s=0.05)
    stats = StreamPipeline(seg, open_source(str(video)), StreamConfig(max_frames=15), on_result=rec).run()
    assert rec.indices == list(range(15)) and stats.dropped == 0


def test_live_source_rejects_batching(video, seg):
    with pytest.raises(InputError, match="batch_size"):
        StreamPipeline(seg, open_source(str(video), pace_fps=30), StreamConfig(batch_size=4))


def test_channel_policies():
    latest = Channel(1, latest=True)
    for i in range(5):
        assert latest.put(i)
    assert latest.dropped == 4 and latest.get(0) == 4 and latest.get(0) is None
    latest.put(7)
    latest.close()
    assert latest.get() == 7 and latest.get() is END  # the last frame is not lost at the end
    lossless = Channel(2)
    assert lossless.put(1) and lossless.put(2)
    blocked = threading.Thread(target=lossless.put, args=(3,))
    blocked.start()
    time.sleep(0.1)
    assert blocked.is_alive()  # full: the producer waits
    assert lossless.get() == 1
    blocked.join(1)
    assert not blocked.is_alive() and lossless.items == [2, 3]
    assert lossless.cancel() == 2 and lossless.get() is END and lossless.put(4) is False


# -- rendering ----------------------------------------------------------------------------------------------------
def test_renderer_matches_result_colours_and_overlay(video):
    src = open_source(str(video))
    image = src.read()
    src.close()
    names = [f"class{i}" for i in range(11)]
    palette = default_palette(11)
    mask = (np.arange(image.shape[0])[:, None] // 100 % 11 + np.zeros(image.shape[1], int)).astype(np.uint8)
    result = SegmentationResult(mask, names, palette)
    plain = Renderer(names, palette, RenderOptions(legend=False, hud=False))
    assert np.array_equal(plain.colorize(mask), result.colorize()[..., ::-1])
    blended = plain.annotate(image, result)
    ref = result.overlay(np.ascontiguousarray(image[..., ::-1]))[..., ::-1]
    assert np.abs(blended.astype(int) - ref).max() <= 1
    full = Renderer(names, palette, RenderOptions(side_by_side=True)).annotate(image, result, ["9.9 FPS"])
    assert full.shape == (image.shape[0], 2 * image.shape[1], 3) and np.array_equal(full[:, : image.shape[1]][200:],
                                                                                     image[200:])
    with pytest.raises(InputError, match="alpha"):
        RenderOptions(alpha=1.5)


def test_outputs_fail_clearly(tmp_path, monkeypatch):
    with pytest.raises(OutputError, match=r"\.mp4"):
        VideoSink(tmp_path / "run.gif", 30)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    ok, why = display_status()
    assert not ok and "DISPLAY" in why
    with pytest.raises(OutputError, match="--no-display"):
        Window()


# -- examples -----------------------------------------------------------------------------------------------------
def test_examples_run(tmp_path, video, camvid, small_artifact):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    images = tmp_path / "images"
    images.mkdir()
    for p in sorted((camvid / "val").iterdir())[:3]:
        (images / p.name).write_bytes(p.read_bytes())
    res = subprocess.run([sys.executable, "examples/folder_batch.py", str(small_artifact), str(images),
                          str(tmp_path / "masks"), "--batch-size", "2"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert len(list((tmp_path / "masks").glob("*_overlay.jpg"))) == 3
    res = subprocess.run([sys.executable, "examples/rtsp_to_file.py", str(small_artifact), str(video),
                          str(tmp_path / "ex.mp4"), "--minutes", "0.01"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert mp4_frames(tmp_path / "ex.mp4") == 18 and (tmp_path / "ex.stats.json").exists()
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    res = subprocess.run([sys.executable, "examples/camera_to_screen.py", str(small_artifact)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "--output" in res.stderr
