"""Several real network cameras in one pipeline: GStreamer's RTSP server and an MJPEG-over-HTTP camera on 127.0.0.1
(benchmarks/camera_servers.py), read by OpenCV's FFmpeg as `segedge stream` reads them. Frames from every camera
are segmented; a camera server killed midway and restarted is read again with the gap in its stats while the other
camera runs on; a camera that hangs with its connection open is reopened; one that accepts but never sends is
refused within a bounded wait, named. No mocks; the RTSP tests skip with the reason where Debian's ffmpeg or
gst-rtsp-server are missing (.ci/run installs them)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from benchmarks.camera_servers import MjpegServer, RtspServer, SilentServer, camera_clip, ffmpeg_missing, rtsp_missing
from conftest import VIDEO, need
from sdk.core.errors import SourceError
from sdk.segmenter import Segmenter
from sdk.stream.multi import MultiStreamConfig, MultiStreamPipeline
from sdk.stream.sources import open_sources


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory) -> Path:
    """A 40 s landscape 640x360 camera at 10 fps cut from the shared portrait video."""
    need(VIDEO)
    for reason in (ffmpeg_missing(), rtsp_missing()):
        if reason:
            pytest.skip(reason)
    return camera_clip(VIDEO, tmp_path_factory.mktemp("cams") / "camera.mp4", seconds=40, fps=10, size_wh=(640, 360))


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, hf_model) -> Path:
    from converters.onnx_export import export_onnx

    return export_onnx(hf_model, tmp_path_factory.mktemp("rtsp") / "b0-small", size_hw=(96, 128),
                       upsample="fast", progress=False)


@pytest.fixture()
def seg(artifact):
    with Segmenter.from_artifact(artifact, threads=1) as s:
        yield s


class Arrivals:
    """on_result: when each camera's frames were segmented (perf_counter)."""

    def __init__(self) -> None:
        self.at: dict[int, list[float]] = {}
        self.lock = threading.Lock()

    def __call__(self, frame, result, picture) -> None:
        assert result.mask.shape == frame.image.shape[:2] == (360, 640)
        with self.lock:
            self.at.setdefault(frame.source, []).append(time.perf_counter())

    def count(self, i: int, after: float = 0.0, before: float = float("inf")) -> int:
        with self.lock:
            return sum(after < t < before for t in self.at.get(i, []))


def start(pipeline: MultiStreamPipeline) -> threading.Thread:
    out: dict = {}
    runner = threading.Thread(target=lambda: out.setdefault("stats", pipeline.run()), daemon=True)
    runner.start()
    return runner


def wait_for(condition, timeout_s: float) -> bool:
    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_two_rtsp_cameras_and_an_mjpeg_camera_are_segmented(seg, camera_file):
    # FFmpeg's RTSP open reads ~22 frames ahead (measured in benchmarks/camera_servers.py): they arrive in a burst, and
    # the live policy drops all but the newest of them, so 60 frames read give ~4 s of real camera time
    with RtspServer([camera_file, camera_file]) as rtsp, MjpegServer(camera_file, fps=10) as mjpeg:
        arrivals = Arrivals()
        stats = MultiStreamPipeline(seg, open_sources([*rtsp.urls, mjpeg.url]), MultiStreamConfig(max_frames=60),
                                    on_result=arrivals).run()
    assert stats.mode == "live" and [s.ended for s in stats.sources] == ["max_frames"] * 3
    for i, s in enumerate(stats.sources):
        assert s.frames_processed == arrivals.count(i) >= 10, (i, s.to_dict())
        assert s.frames_read == s.frames_processed + s.dropped + s.discarded_at_stop
        assert s.stages["latency"].count == s.frames_processed and s.stages["latency"].summary()["p95_ms"] > 0


def test_a_killed_and_restarted_camera_server_is_read_again_while_the_other_runs_on(seg, camera_file):
    with RtspServer(camera_file) as a, RtspServer(camera_file) as b:
        arrivals = Arrivals()
        pipeline = MultiStreamPipeline(seg, open_sources([a.urls[0], b.urls[0]]),
                                       MultiStreamConfig(reconnect_timeout_s=30), on_result=arrivals)
        runner = start(pipeline)
        assert wait_for(lambda: arrivals.count(0) >= 5 and arrivals.count(1) >= 5, 20)
        killed = time.perf_counter()
        a.kill()
        time.sleep(3.0)
        a.restart()
        back = time.perf_counter()
        assert wait_for(lambda: arrivals.count(0, after=back) >= 3, 15), "camera 0 was not read again"
        again = min(t for t in arrivals.at[0] if t > back) - back
        pipeline.stop()
        runner.join(30)
    assert not runner.is_alive()
    assert again < 5.0  # read again within 5 s of the server's return
    gaps = pipeline.stats.sources[0].gaps
    assert len(gaps) == 1 and 2.5 < gaps[0].gap_s < 10 and gaps[0].attempts >= 1
    assert not pipeline.stats.sources[1].gaps
    assert arrivals.count(1, after=killed + 0.5, before=back) >= 10  # the other camera ran on through the gap
    assert pipeline.stats.ended == "stopped" and pipeline.stats.sources[0].ended == "stopped"


def test_a_camera_that_hangs_with_its_connection_open_is_reopened(seg, camera_file):
    with RtspServer(camera_file) as hung, RtspServer(camera_file) as other:
        arrivals = Arrivals()
        pipeline = MultiStreamPipeline(seg, open_sources([hung.urls[0], other.urls[0]]),
                                       MultiStreamConfig(reconnect_timeout_s=30), on_result=arrivals)
        runner = start(pipeline)
        assert wait_for(lambda: arrivals.count(0) >= 5, 20)
        hung.pause()  # SIGSTOP: the TCP connection stays open, nothing is sent
        time.sleep(7.0)
        hung.resume()
        resumed = time.perf_counter()
        assert wait_for(lambda: pipeline.stats.sources[0].gaps and arrivals.count(0, after=resumed) >= 3, 25)
        pipeline.stop()
        runner.join(30)
    gap = pipeline.stats.sources[0].gaps[0]
    assert "read() gave no frame" in gap.reason and gap.gap_s < 20


def test_a_camera_that_accepts_but_never_sends_is_refused_with_its_name(seg, camera_file):
    with RtspServer(camera_file) as good, SilentServer() as silent:
        t0 = time.perf_counter()
        with pytest.raises(SourceError, match=r"source 2 of 2: source .*127\.0\.0\.1.* cannot be opened"):
            open_sources([good.urls[0], silent.url])
        assert time.perf_counter() - t0 < 12  # the 5 s open timeout, plus the good camera's open
