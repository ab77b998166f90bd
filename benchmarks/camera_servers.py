"""Real camera servers on 127.0.0.1 for tests and benchmarks (no mocks); not part of the shipped package.

- ``camera_clip(video, out, seconds=...)``: a landscape H.264 camera file cut from a portrait phone video (ffmpeg).
- ``RtspServer(files)``: GStreamer's RTSP server (gst-rtsp-server through Debian's python3-gi) in a subprocess of
  /usr/bin/python3, each file at ``rtsp://127.0.0.1:PORT/cam{i}``, paced in real time; ``kill()`` is a camera that
  dies, ``restart()`` brings it back on the same port.
- ``MjpegServer(video, fps=...)``: an HTTP ``multipart/x-mixed-replace`` MJPEG camera at ``/stream.mjpg``.
- ``SilentServer()``: accepts TCP connections and never answers (a hung camera).

Each is a context manager that starts in ``__enter__`` and stops in ``__exit__``. ``rtsp_missing()`` and
``ffmpeg_missing()`` give the reason a test must skip, or None.

Measured here (2 shared cores, OpenCV 5.1's FFmpeg backend, opened as sdk/stream/sources.py does, 5 s open and
read timeouts):

- RTSP: OpenCV's default (OPENCV_FFMPEG_CAPTURE_OPTIONS unset: ``rtsp_flags;prefer_tcp``) already carries RTP
  interleaved over the TCP connection; forced UDP (``rtsp_transport;udp``) works on loopback as well, so no option
  is needed. Opening takes ~2.2 s at 10 fps and ~0.75 s at 30 fps (FFmpeg probes ~22 frames), the frames read then
  come from its buffer; after that, frames arrive at the file's rate. At the file's end read() fails ~0.7 s later.
- kill(): read() gives the buffered frames, then fails within ~0.5 s (the connection drops). The restarted server
  accepts ~0.3-0.6 s after the kill and a new capture reads again ~2.3 s after the restart (its open).
- pause() (a hung camera, connection open): read() returns late frames after one or two 5 s read timeouts and fails
  only ~15 s after the stall.
- SilentServer: the open fails after 5.0 s (the open timeout), for rtsp:// and http:// URLs alike.
- MjpegServer: FFmpeg reads it with its mpjpeg demuxer (ffprobe: format mpjpeg); OpenCV gets frames at once, paced;
  after kill() read() fails at once and after restart() a new capture reads within ~10 ms.
"""
from __future__ import annotations

import atexit
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

SYSTEM_PYTHON = Path("/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server_main.py")
RTSP_DEBIAN_PACKAGES = ("python3-gi", "gir1.2-gst-rtsp-server-1.0", "gstreamer1.0-rtsp", "gstreamer1.0-plugins-base",
                        "gstreamer1.0-plugins-good", "gstreamer1.0-plugins-bad")
FFMPEG_DEBIAN_PACKAGE = "ffmpeg"
EXIT_MISSING = 3  # rtsp_server_main.py's exit status when gi / GstRtspServer / a plugin is missing
HOST = "127.0.0.1"


class CameraServerError(RuntimeError):
    """A camera server or clip could not be made; the message says what is missing and how to get it."""


def _install_hint(packages: tuple[str, ...] | list[str]) -> str:
    return "sudo apt-get install -y --no-install-recommends " + " ".join(packages)


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it; another process could take it
    before you bind, which is rare enough for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _accepts(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def ffmpeg_missing() -> str | None:
    """Why ``camera_clip`` cannot run here (no ffmpeg on PATH), or None."""
    if shutil.which("ffmpeg") is None:
        return (f"ffmpeg is not on PATH (Debian package {FFMPEG_DEBIAN_PACKAGE}: "
                f"{_install_hint([FFMPEG_DEBIAN_PACKAGE])})")
    return None


def rtsp_missing() -> str | None:
    """Why ``RtspServer`` cannot run here (no /usr/bin/python3, or it cannot import GstRtspServer), or None."""
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing (Debian: {_install_hint(RTSP_DEBIAN_PACKAGES)})"
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "missing = [p for p in ('coreelements', 'isomp4', 'videoparsersbad', 'rtp') "
             "if Gst.Registry.get().find_plugin(p) is None]; print(' '.join(missing))")
    try:
        res = subprocess.run([str(SYSTEM_PYTHON), "-c", probe], capture_output=True, text=True, timeout=30,
                             check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} cannot probe GStreamer ({exc})"
    if res.returncode != 0 or res.stdout.strip():
        detail = (res.stderr.strip().splitlines() or [""])[-1] or f"plugins missing: {res.stdout.strip()}"
        return (f"{SYSTEM_PYTHON} cannot run GStreamer's RTSP server ({detail}). Install the Debian packages: "
                f"{_install_hint(RTSP_DEBIAN_PACKAGES)}")
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


# ---------------------------------------------------------------------------------------------------- RTSP

_LIVE_GROUPS: set[int] = set()  # process groups of running RTSP servers, killed at interpreter exit


@atexit.register
def _kill_live_groups() -> None:
    for pgid in list(_LIVE_GROUPS):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    _LIVE_GROUPS.clear()


class RtspServer:
    """GStreamer's RTSP server in a subprocess of /usr/bin/python3, file i at ``urls[i]`` =
    ``rtsp://HOST:PORT/cam{i}``, H.264 as stored (``filesrc ! qtdemux ! h264parse ! rtph264pay``), paced in real
    time. ``shared=False`` (default): every client gets its own pipeline and the file from its start, which begins
    with a keyframe, so it decodes at once; the stream ends with the file (make a long one with ``camera_clip``).

    The server runs in its own process group, quits when this process is gone, and is killed at exit; it stops in
    ``__exit__``. ``kill()`` SIGKILLs it (a camera that dies); ``restart()`` starts it again on the same port;
    ``pause()`` / ``resume()`` SIGSTOP / SIGCONT it (a camera that hangs with its connections open).
    ``shared=True`` gives the clients of one mount one pipeline (a late client joins at the next keyframe).
    """

    def __init__(self, video_files: list[Path] | Path, *, port: int | None = None, host: str = HOST,
                 shared: bool = False, start_timeout_s: float = 15.0) -> None:
        files = [Path(video_files)] if isinstance(video_files, (str, Path)) else [Path(f) for f in video_files]
        if not files:
            raise CameraServerError("RtspServer video_files: expected at least one H.264 mp4, got none")
        for f in files:
            if not f.is_file():
                raise CameraServerError(f"RtspServer video file: expected an existing H.264 mp4, got {f}")
        self.files, self.host, self.shared, self.start_timeout_s = files, host, shared, start_timeout_s
        self.port = port if port is not None else free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def urls(self) -> list[str]:
        return [f"rtsp://{self.host}:{self.port}/cam{i}" for i in range(len(self.files))]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "RtspServer":
        """Start the server and wait (at most ``start_timeout_s``) until its port accepts connections."""
        if self.running:
            return self
        if not SYSTEM_PYTHON.exists():
            raise CameraServerError(f"RtspServer: {SYSTEM_PYTHON} is missing; GStreamer's RTSP server runs in "
                                    f"Debian's Python. Install: {_install_hint(RTSP_DEBIAN_PACKAGES)}")
        if _accepts(self.host, self.port):
            raise CameraServerError(f"RtspServer: port {self.host}:{self.port} is already taken; pass another port")
        self._log = tempfile.TemporaryFile()
        cmd = [str(SYSTEM_PYTHON), str(SERVER_SCRIPT), "--host", self.host, "--port", str(self.port),
               "--parent-pid", str(os.getpid()), *(["--shared"] if self.shared else []), *map(str, self.files)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
                                      start_new_session=True)
        _LIVE_GROUPS.add(self._proc.pid)
        deadline = time.monotonic() + self.start_timeout_s
        while not _accepts(self.host, self.port):
            rc = self._proc.poll()
            if rc is not None:
                _LIVE_GROUPS.discard(self._proc.pid)
                message = self._stderr()
                if rc == EXIT_MISSING:
                    raise CameraServerError(f"RtspServer: {message}. Install the Debian packages: "
                                            f"{_install_hint(RTSP_DEBIAN_PACKAGES)}")
                raise CameraServerError(f"RtspServer: the server exited ({rc}) before listening: {message}")
            if time.monotonic() > deadline:
                self.kill()
                raise CameraServerError(f"RtspServer: not listening on {self.host}:{self.port} after "
                                        f"{self.start_timeout_s:g} s: {self._stderr()}")
            time.sleep(0.05)
        return self

    def _stderr(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-800:] or "(no output)"

    def _signal(self, sig: int, wait_s: float) -> bool:
        proc = self._proc
        if proc is None:
            return True
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return False
        _LIVE_GROUPS.discard(proc.pid)
        return True

    def kill(self) -> None:
        """SIGKILL the server at once (a camera that loses power): clients see their connection drop."""
        self._signal(signal.SIGKILL, 10.0)
        self._proc = None

    def pause(self) -> None:
        """SIGSTOP the server (a camera that hangs): connections stay open and nothing more arrives."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 3 s); a paused one too."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGCONT)  # a stopped process holds SIGTERM until continued
            except OSError:
                pass
        if not self._signal(signal.SIGTERM, 3.0):
            self._signal(signal.SIGKILL, 10.0)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> "RtspServer":
        """Kill the server if it runs, and start it again on the same port."""
        self.kill()
        return self.start()

    def __enter__(self) -> "RtspServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __del__(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self.kill()


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
