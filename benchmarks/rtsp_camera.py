"""GStreamer's RTSP server as a real camera for tests and benchmarks (``RtspServer``), run in a subprocess of
Debian's /usr/bin/python3 (``benchmarks/rtsp_server_main.py``, gst-rtsp-server through python3-gi);
``rtsp_missing()`` says why it cannot run here, or None. Imported through ``benchmarks.camera_servers``.

Measured here (2 shared cores, OpenCV 5.1's FFmpeg backend, opened as sdk/stream/sources.py does, 5 s open and
read timeouts):

- OpenCV's default (OPENCV_FFMPEG_CAPTURE_OPTIONS unset: ``rtsp_flags;prefer_tcp``) already carries RTP
  interleaved over the TCP connection; forced UDP (``rtsp_transport;udp``) works on loopback as well, so no option
  is needed. Opening takes ~2.2 s at 10 fps and ~0.75 s at 30 fps (FFmpeg probes ~22 frames), the frames read then
  come from its buffer; after that, frames arrive at the file's rate. At the file's end read() fails ~0.7 s later.
- kill(): read() gives the buffered frames, then fails within ~0.5 s (the connection drops). The restarted server
  accepts ~0.3-0.6 s after the kill and a new capture reads again ~2.3 s after the restart (its open).
- pause() (a hung camera, connection open): read() returns late frames after one or two 5 s read timeouts and fails
  only ~15 s after the stall.
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.camera_base import HOST, CameraServerError, accepts, free_port, install_hint

SYSTEM_PYTHON = Path("/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server_main.py")
RTSP_DEBIAN_PACKAGES = ("python3-gi", "gir1.2-gst-rtsp-server-1.0", "gstreamer1.0-rtsp", "gstreamer1.0-plugins-base",
                        "gstreamer1.0-plugins-good", "gstreamer1.0-plugins-bad")
EXIT_MISSING = 3  # rtsp_server_main.py's exit status when gi / GstRtspServer / a plugin is missing


def rtsp_missing() -> str | None:
    """Why ``RtspServer`` cannot run here (no /usr/bin/python3, or it cannot import GstRtspServer), or None."""
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing (Debian: {install_hint(RTSP_DEBIAN_PACKAGES)})"
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
                f"{install_hint(RTSP_DEBIAN_PACKAGES)}")
    return None


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
                                    f"Debian's Python. Install: {install_hint(RTSP_DEBIAN_PACKAGES)}")
        if accepts(self.host, self.port):
            raise CameraServerError(f"RtspServer: port {self.host}:{self.port} is already taken; pass another port")
        self._log = tempfile.TemporaryFile()
        cmd = [str(SYSTEM_PYTHON), str(SERVER_SCRIPT), "--host", self.host, "--port", str(self.port),
               "--parent-pid", str(os.getpid()), *(["--shared"] if self.shared else []), *map(str, self.files)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
                                      start_new_session=True)
        _LIVE_GROUPS.add(self._proc.pid)
        deadline = time.monotonic() + self.start_timeout_s
        while not accepts(self.host, self.port):
            rc = self._proc.poll()
            if rc is not None:
                _LIVE_GROUPS.discard(self._proc.pid)
                message = self._stderr()
                if rc == EXIT_MISSING:
                    raise CameraServerError(f"RtspServer: {message}. Install the Debian packages: "
                                            f"{install_hint(RTSP_DEBIAN_PACKAGES)}")
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
