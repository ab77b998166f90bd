"""Real camera servers on 127.0.0.1 for tests and benchmarks (no mocks); not part of the shipped package.

- ``camera_clip(video, out, seconds=...)``: a landscape H.264 camera file cut from a portrait phone video (ffmpeg).
- ``RtspServer(files)``: GStreamer's RTSP server (gst-rtsp-server through Debian's python3-gi) in a subprocess of
  /usr/bin/python3, each file at ``rtsp://127.0.0.1:PORT/cam{i}``, paced in real time; ``kill()`` is a camera that
  dies, ``restart()`` brings it back on the same port.
- ``MjpegServer(video, fps=...)``: an HTTP ``multipart/x-mixed-replace`` MJPEG camera at ``/stream.mjpg``.
- ``SilentServer()``: accepts TCP connections and never answers (a hung camera).

Each is a context manager that starts in ``__enter__`` and stops in ``__exit__``. ``rtsp_missing()`` and
``ffmpeg_missing()`` give the reason a test must skip, or None. The RTSP server lives in ``benchmarks.rtsp_camera``
and the shared basics (host, error, free ports) in ``benchmarks.camera_base``; this module exports all of it.

Measured here (2 shared cores, OpenCV 5.1's FFmpeg backend, opened as sdk/stream/sources.py does, 5 s open and
read timeouts):

- RTSP: see ``benchmarks.rtsp_camera``.
- SilentServer: the open fails after 5.0 s (the open timeout), for rtsp:// and http:// URLs alike.
- MjpegServer: FFmpeg reads it with its mpjpeg demuxer (ffprobe: format mpjpeg); OpenCV gets frames at once, paced;
  after kill() read() fails at once and after restart() a new capture reads within ~10 ms.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.camera_base import HOST, CameraServerError, free_port, install_hint
from benchmarks.rtsp_camera import RtspServer, rtsp_missing

__all__ = ["HOST", "CameraServerError", "free_port", "ffmpeg_missing", "rtsp_missing", "camera_clip", "RtspServer",
           "SilentServer", "MjpegServer"]

FFMPEG_DEBIAN_PACKAGE = "ffmpeg"


def ffmpeg_missing() -> str | None:
    """Why ``camera_clip`` cannot run here (no ffmpeg on PATH), or None."""
    if shutil.which("ffmpeg") is None:
        return (f"ffmpeg is not on PATH (Debian package {FFMPEG_DEBIAN_PACKAGE}: "
                f"{install_hint([FFMPEG_DEBIAN_PACKAGE])})")
    return None


# ---------------------------------------------------------------------------------------------------- camera clips

def camera_clip(video: str | Path, out_path: str | Path, *, seconds: float, fps: int = 10,
                size_wh: tuple[int, int] = (1280, 720)) -> Path:
    """A landscape H.264 mp4 "camera recording" of ``seconds`` at ``fps`` and ``size_wh`` (width, height), made by
    Debian's ffmpeg from a portrait 720x1280 phone video: its middle 16:9 band (crop 720x405), scaled, resampled to
    ``fps``, the video looped (``-stream_loop``) until ``seconds`` are reached; one keyframe a second, yuv420p, no
    audio. Cached: when ``out_path`` exists and was made from the same video with the same parameters (recorded in
    ``<out_path>.json``), it is returned as it is."""
    video, out_path = Path(video), Path(out_path)
    if not video.is_file():
        raise CameraServerError(f"camera_clip video: expected an existing file, got {video}")
    if not seconds > 0 or not fps > 0 or len(size_wh) != 2 or min(size_wh) < 16:
        raise CameraServerError(f"camera_clip: expected seconds > 0, fps > 0, size_wh (w, h) >= 16, got "
                                f"seconds={seconds}, fps={fps}, size_wh={size_wh}")
    stat = video.stat()
    params = {"video": str(video.resolve()), "video_bytes": stat.st_size, "video_mtime_ns": stat.st_mtime_ns,
              "seconds": seconds, "fps": fps, "size_wh": list(size_wh)}
    record = out_path.with_name(out_path.name + ".json")
    if out_path.is_file() and record.is_file():
        try:
            if json.loads(record.read_text()) == params:
                return out_path
        except (OSError, ValueError):
            pass
    missing = ffmpeg_missing()
    if missing:
        raise CameraServerError(f"camera_clip: {missing}")
    w, h = size_wh
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha1(json.dumps(params).encode()).hexdigest()[:8]
    tmp = out_path.with_name(f".{out_path.stem}.{tag}.{os.getpid()}{out_path.suffix or '.mp4'}")
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(video),
           "-t", f"{seconds:g}", "-an", "-vf", f"crop=720:405,scale={w}:{h},fps={fps}", "-c:v", "libx264",
           "-preset", "veryfast", "-g", str(fps), "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(tmp)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise CameraServerError(f"camera_clip: ffmpeg failed (exit {res.returncode}): {res.stderr.strip()[-500:]}")
    os.replace(tmp, out_path)
    record.write_text(json.dumps(params))
    return out_path


# ---------------------------------------------------------------------------------------------------- silent

class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte (a camera that hangs).
    One accept thread; at most ``max_connections`` are held open (the oldest is closed beyond that).
    ``url`` is ``rtsp://127.0.0.1:PORT/cam``; it starts in ``__enter__`` and closes every socket in ``__exit__``."""

    def __init__(self, port: int | None = None, *, max_connections: int = 32) -> None:
        self.port = port if port is not None else free_port()
        self.max_connections = max_connections
        self.accepted = 0
        self._sock: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"rtsp://{HOST}:{self.port}/cam"

    def start(self) -> "SilentServer":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self.port))
        sock.listen(16)
        sock.settimeout(0.1)
        self._sock, self._stop = sock, threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"silent-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)
            while len(self._conns) > self.max_connections:
                self._conns.pop(0).close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        for conn in self._conns:
            conn.close()
        self._conns.clear()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "SilentServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------------- MJPEG

BOUNDARY = "segedgeframe"


def _jpeg_frames(video: Path, *, size_wh: tuple[int, int] | None, max_frames: int, quality: int) -> list[bytes]:
    import cv2  # the project's Python has it (opencv-python-headless); imported where used

    cap = cv2.VideoCapture(str(video))
    frames: list[bytes] = []
    try:
        while len(frames) < max_frames:
            ok, image = cap.read()
            if not ok or image is None:
                break
            if size_wh is not None:
                image = cv2.resize(image, size_wh, interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                frames.append(buf.tobytes())
    finally:
        cap.release()
    if not frames:
        raise CameraServerError(f"MjpegServer video: expected a video OpenCV can decode, got no frames from {video}")
    return frames


class MjpegServer:
    """An IP camera's MJPEG over HTTP: ``GET /stream.mjpg`` answers ``multipart/x-mixed-replace;
    boundary=segedgeframe``, one JPEG part (with Content-Type and Content-Length) per frame, paced at ``fps`` on
    one clock shared by all clients (as a camera: a client that connects late gets the current frame), looping over
    the video's frames, decoded with OpenCV and JPEG-encoded once up front (``size_wh`` (w, h) resizes them, at
    most ``max_frames``). A ThreadingHTTPServer in a thread, at most ``max_clients`` streams at once (503 beyond).
    ``kill()`` closes the listener and every open stream at once; ``restart()`` serves again on the same port."""

    def __init__(self, video: str | Path, *, fps: float, port: int | None = None,
                 size_wh: tuple[int, int] | None = None, max_frames: int = 300, quality: int = 80,
                 max_clients: int = 8) -> None:
        if not fps > 0:
            raise CameraServerError(f"MjpegServer fps: expected > 0, got {fps}")
        self.fps, self.max_clients = float(fps), max_clients
        self.frames = _jpeg_frames(Path(video), size_wh=size_wh, max_frames=max_frames, quality=quality)
        self.port = port if port is not None else free_port()
        self.frames_sent = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._dead = threading.Event()
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/stream.mjpg"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner, dead = self, self._dead

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/stream.mjpg":
                    self.send_error(404, "the stream is at /stream.mjpg")
                    return
                with owner._lock:
                    full = len(owner._clients) >= owner.max_clients
                    if not full:
                        owner._clients.add(self.connection)
                if full:
                    self.send_error(503, f"at most {owner.max_clients} streams at once")
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                    self.send_header("Cache-Control", "no-cache, no-store")
                    self.send_header("Pragma", "no-cache")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    owner._stream(self.wfile, dead)
                except OSError:  # the client went away, or kill() closed the socket
                    pass
                finally:
                    with owner._lock:
                        owner._clients.discard(self.connection)

        return Handler

    def _stream(self, out: Any, dead: threading.Event) -> None:
        period = 1.0 / self.fps
        tick = int((time.monotonic() - self._t0) / period)
        while not dead.is_set():
            jpeg = self.frames[tick % len(self.frames)]
            out.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                      + jpeg + b"\r\n")
            out.flush()
            self.frames_sent += 1
            tick += 1
            wait = self._t0 + tick * period - time.monotonic()
            if wait > 0:
                dead.wait(wait)
            else:  # a slow client: skip to the current frame, as a camera would
                tick = int((time.monotonic() - self._t0) / period)

    def start(self) -> "MjpegServer":
        if self._server is not None:
            return self
        self._dead = threading.Event()
        server = ThreadingHTTPServer((HOST, self.port), self._handler())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"mjpeg-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def kill(self) -> None:
        """Drop the listener and every open stream at once (a camera that dies)."""
        self._dead.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            for conn in self._clients:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._clients.clear()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    stop = kill

    def restart(self) -> "MjpegServer":
        """Kill the server if it runs, and serve again on the same port."""
        self.kill()
        return self.start()

    def __enter__(self) -> "MjpegServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()


if __name__ == "__main__":  # a quick manual check: serve a clip until Ctrl-C
    clip = camera_clip(sys.argv[1], Path(tempfile.gettempdir()) / "segedge-camera-30s.mp4", seconds=30)
    with RtspServer([clip, clip]) as rtsp:
        print("\n".join(rtsp.urls))
        signal.pause()
