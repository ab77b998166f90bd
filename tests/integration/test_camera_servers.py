"""Real camera servers on 127.0.0.1 (benchmarks/camera_servers.py) read through sdk.stream.sources.open_source, as
`segedge stream` reads cameras: GStreamer's RTSP server (two mounts at once; killed and restarted), an MJPEG-over-HTTP
camera, and a camera that accepts the connection but never answers. No mocks. The RTSP tests need Debian's ffmpeg
and python3-gi with gst-rtsp-server (.ci/run installs them) and skip with the reason elsewhere."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.camera_servers import MjpegServer, RtspServer, SilentServer, camera_clip, ffmpeg_missing, rtsp_missing
from conftest import VIDEO, need
from sdk.core.errors import SourceError
from sdk.stream.sources import URL_TIMEOUT_MS, Source, open_source

pytest.importorskip("cv2")
CLIP_FPS, CLIP_WH = 10, (640, 360)


def _read_frames(source: Source, n: int, *, deadline_s: float = 10.0) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    end = time.monotonic() + deadline_s
    while len(frames) < n and time.monotonic() < end:
        image = source.read()
        if image is None:
            break
        frames.append(image)
    return frames


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory) -> Path:
    """A 12 s landscape 640x360 camera at 10 fps cut from the shared portrait video (each RTSP client gets it from
    its start, so 12 s outlasts every read below)."""
    for reason in (ffmpeg_missing(), rtsp_missing()):
        if reason:
            pytest.skip(reason)
    return camera_clip(need(VIDEO), tmp_path_factory.mktemp("camera") / "camera.mp4", seconds=12, fps=CLIP_FPS,
                       size_wh=CLIP_WH)


def test_camera_clip_is_cached(camera_file):
    before = camera_file.stat().st_mtime_ns
    start = time.monotonic()
    again = camera_clip(VIDEO, camera_file, seconds=12, fps=CLIP_FPS, size_wh=CLIP_WH)
    assert again == camera_file and camera_file.stat().st_mtime_ns == before and time.monotonic() - start < 1


def test_rtsp_two_mounts_at_once(camera_file):
    with RtspServer([camera_file, camera_file]) as server:
        assert server.urls == [f"rtsp://127.0.0.1:{server.port}/cam{i}" for i in (0, 1)]
        with open_source(server.urls[0]) as cam0, open_source(server.urls[1]) as cam1:
            assert cam0.live and cam1.live and cam0.fps == pytest.approx(CLIP_FPS, abs=0.5)
            for _ in range(5):  # interleaved: both streams flow at once
                for cam in (cam0, cam1):
                    image = cam.read()
                    assert image is not None and image.shape == (CLIP_WH[1], CLIP_WH[0], 3)
        port = server.port
    assert not _accepts(port), "the RTSP server outlived its with-block"


def test_rtsp_kill_and_restart_is_readable_again(camera_file):
    with RtspServer(camera_file) as server:
        source = open_source(server.urls[0])
        assert len(_read_frames(source, 3)) == 3
        server.kill()  # a camera that loses power: the connection drops
        start = time.monotonic()
        while source.read() is not None:  # frames already buffered, then the drop
            assert time.monotonic() - start < 3 * URL_TIMEOUT_MS / 1000 + 2, "read() never noticed the dead server"
        source.close()
        with pytest.raises(SourceError):
            open_source(server.urls[0])  # nobody listens while it is down
        server.restart()
        start = time.monotonic()
        while True:  # reconnect as a stream loop would
            try:
                source = open_source(server.urls[0])
                break
            except SourceError:
                assert time.monotonic() - start < 15, "the restarted server never became readable"
                time.sleep(0.2)
        with source:
            assert len(_read_frames(source, 3)) == 3
        assert time.monotonic() - start < 15


def test_silent_camera_open_fails_within_the_timeout():
    with SilentServer() as silent:
        start = time.monotonic()
        with pytest.raises(SourceError, match="cannot be opened"):
            open_source(silent.url)
        elapsed = time.monotonic() - start
        assert silent.accepted >= 1, "the client never connected, so the timeout was not exercised"
    assert elapsed < URL_TIMEOUT_MS / 1000 + 3, f"open of a silent camera took {elapsed:.1f} s"


def test_mjpeg_camera_frames_paced_and_back_after_restart():
    fps, size_wh = 20, (320, 180)
    with MjpegServer(need(VIDEO), fps=fps, size_wh=size_wh, max_frames=40) as camera:
        assert camera.url == f"http://127.0.0.1:{camera.port}/stream.mjpg"
        with open_source(camera.url) as source:
            start = time.monotonic()
            frames = _read_frames(source, 11)
            elapsed = time.monotonic() - start
            assert len(frames) == 11 and all(f.shape == (size_wh[1], size_wh[0], 3) for f in frames)
            assert elapsed >= 10 / fps * 0.7, f"11 frames at {fps} fps came in {elapsed:.2f} s: not paced"
            camera.kill()
            end = time.monotonic() + 3
            while source.read() is not None:
                assert time.monotonic() < end, "read() never noticed the dead MJPEG camera"
        with pytest.raises(SourceError):
            open_source(camera.url)
        camera.restart()
        with open_source(camera.url) as source:
            assert len(_read_frames(source, 3)) == 3
