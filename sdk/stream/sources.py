"""Video sources behind one reader: camera index, video file, RTSP/HTTP URL, image folder, GStreamer pipeline, and
``csi://N`` (a Jetson CSI camera through nvarguscamerasrc).

``parse_source("0" | "clip.mp4" | "rtsp://..." | "frames/" | "csi://0" | "... ! appsink")`` says what a string
means; ``open_source(text)`` returns an opened ``Source`` whose ``read()`` gives (H, W, 3) uint8 BGR frames
(OpenCV's order) and None at the end of the stream (or, for a live source, when it dropped). Live sources can be
closed and opened again. OpenCV is imported where used, so importing this module stays light.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.core.errors import InputError, SourceError, require_cv2
from sdk.core.parallel import lower_thread_priority, reader_niceness
from sdk.core.media import IMAGE_SUFFIXES
from sdk.core.preprocess import check_size_hw

log = logging.getLogger("segedge")

SOURCE_KINDS = ("camera", "file", "url", "folder", "gstreamer")
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
URL_TIMEOUT_MS = 5000  # open and read timeouts for network streams
# video files up to this many pixels a frame are decoded by one FFmpeg thread: one core decodes 1080p H.264 far
# faster than any model here runs, and FFmpeg's frame threads cost CPU (and frames of delay) that the other stages
# need on small machines (720p on a 2-core Xeon: ~1.4 ms less CPU a frame in file mode); larger frames keep them
SINGLE_THREAD_DECODE_PIXELS = 1920 * 1088
# The usual JetPack pipeline: Argus camera -> NVMM NV12 -> nvvidconv (flip) -> BGRx -> BGR for OpenCV's appsink.
CSI_PIPELINE = ("nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={w}, height={h}, "
                "framerate={fps}/1, format=NV12 ! nvvidconv flip-method={flip} ! video/x-raw, width={w}, "
                "height={h}, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1")
JETPACK_OPENCV_HINT = (
    "pip's opencv-python wheels are built without GStreamer. On JetPack use the system OpenCV, which has it: "
    "pip uninstall -y opencv-python opencv-python-headless, then run with the system python3 (or a venv made with "
    "python3 -m venv --system-site-packages) that imports cv2 from /usr/lib/python3/dist-packages (JetPack "
    "installs it; if removed: sudo apt install nvidia-opencv, or python3-opencv). Check: "
    "python3 -c \"import cv2; print(cv2.getBuildInformation())\" | grep GStreamer")


def _build_info_value(key: str) -> str | None:
    cv2 = require_cv2()

    match = re.search(rf"^\s*{re.escape(key)}:\s*(.+?)\s*$", cv2.getBuildInformation(), re.MULTILINE)
    return match.group(1) if match else None


def gstreamer_support() -> bool:
    """True when this OpenCV was built with GStreamer (``GStreamer: YES`` in cv2.getBuildInformation())."""
    return (_build_info_value("GStreamer") or "NO").upper().startswith("YES")


@dataclass(frozen=True, kw_only=True)
class CsiOptions:
    """The ``csi://N`` camera mode: sensor size as (height, width), frame rate, nvvidconv flip-method (0..7)."""

    size_hw: tuple[int, int] = (1080, 1920)
    fps: int = 30
    flip_method: int = 0

    def __post_init__(self) -> None:
        try:  # the one (height, width) check, as a camera's error
            check_size_hw(self.size_hw, "csi size_hw")
        except InputError as exc:
            raise SourceError(str(exc)) from None
        if not 0 < self.fps <= 240:
            raise SourceError(f"csi fps: expected 1..240, got {self.fps}")
        if self.flip_method not in range(8):
            raise SourceError(f"csi flip_method: expected 0..7 (nvvidconv flip-method), got {self.flip_method}")


def csi_pipeline(sensor: int, options: CsiOptions = CsiOptions()) -> str:
    """The GStreamer pipeline string that ``csi://<sensor>`` expands to."""
    h, w = options.size_hw
    return CSI_PIPELINE.format(sensor=sensor, w=w, h=h, fps=options.fps, flip=options.flip_method)


@dataclass(frozen=True, kw_only=True)
class SourceSpec:
    """What a source string means. kind: one of SOURCE_KINDS. target: what OpenCV opens (an int camera index, a
    path, a URL, a GStreamer pipeline) or the image folder. live: frames arrive on the source's clock (camera,
    network stream) rather than on demand (file, folder), so a slow consumer must drop frames. text: as given."""

    kind: str
    target: int | str
    live: bool
    text: str

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise SourceError(f"source kind: expected one of {SOURCE_KINDS}, got {self.kind!r}")
        if self.kind == "camera" and not (isinstance(self.target, int) and self.target >= 0):
            raise SourceError(f"camera index: expected an int >= 0, got {self.target!r}")
        if self.kind != "camera" and not (isinstance(self.target, str) and self.target):
            raise SourceError(f"source {self.kind}: expected a non-empty string target, got {self.target!r}")


def parse_source(text: str | int, *, csi: CsiOptions = CsiOptions(), live: bool | None = None) -> SourceSpec:
    """Camera index ("0"), ``csi://N``, URL (rtsp/http/...), GStreamer pipeline (has " ! "), folder or file.
    ``live`` overrides whether frames may be dropped (default: cameras and network streams are live)."""
    s = str(text).strip()
    if s.isdigit():
        spec = SourceSpec(kind="camera", target=int(s), live=True, text=s)
    elif s.startswith("csi://"):
        sensor = s[len("csi://"):]
        if not sensor.isdigit():
            raise SourceError(f"source {s!r}: expected csi://N with N the sensor id (csi://0), got {sensor!r}")
        spec = SourceSpec(kind="gstreamer", target=csi_pipeline(int(sensor), csi), live=True, text=s)
    elif "://" in s and s.split("://", 1)[0].lower() in URL_SCHEMES:
        spec = SourceSpec(kind="url", target=s, live=True, text=s)
    elif "!" in s and not Path(s).exists():
        spec = SourceSpec(kind="gstreamer", target=s, live="filesrc" not in s, text=s)
    elif Path(s).is_dir():
        spec = SourceSpec(kind="folder", target=s, live=False, text=s)
    elif Path(s).is_file():
        spec = SourceSpec(kind="file", target=s, live=False, text=s)
    else:
        raise SourceError(f"source {s!r}: expected a camera index (0), csi://N, an rtsp/http URL, a GStreamer "
                          "pipeline ending in appsink, an image folder or a video file, got a path that does not "
                          "exist. Check the spelling, or list cameras with: v4l2-ctl --list-devices")
    return spec if live is None else SourceSpec(kind=spec.kind, target=spec.target, live=live, text=s)


class Source:
    """An opened source. ``read()`` -> (H, W, 3) uint8 BGR or None (end of stream, or a live source dropped).

    fps: nominal frames per second (None if unknown); frame_count: frames in a file (None if unknown or live);
    name: the current frame's file name (folders); timestamp_s: when the last frame became available on the
    ``time.perf_counter()`` clock, where the source knows better than "when read() returned" (paced replay);
    ended: read() gave None because a file or folder reached its end (not because a live source dropped), so a
    file replayed as a live camera ends there instead of being reopened.
    """

    spec: SourceSpec
    fps: float | None = None
    frame_count: int | None = None
    name: str | None = None
    timestamp_s: float | None = None
    ended: bool = False

    @property
    def live(self) -> bool:
        return self.spec.live

    def open(self) -> "Source":
        return self

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.kind}: {self.spec.text}{', live' if self.live else ''})"


class CaptureSource(Source):
    """Anything cv2.VideoCapture opens: camera index, file, URL, GStreamer pipeline. ``loop`` replays a file."""

    def __init__(self, spec: SourceSpec, *, loop: bool = False) -> None:
        if spec.kind == "folder":
            raise SourceError(f"source {spec.text}: a folder is read by FolderSource, not cv2.VideoCapture")
        if loop and spec.kind != "file":
            raise SourceError(f"loop: expected a video file source, got a {spec.kind} ({spec.text})")
        self.spec, self.loop = spec, loop
        self._cap: Any = None
        self._since_open = 0
        self._pending: np.ndarray | None = None  # a file's first frame, decoded at open() to prove it has one

    def open(self) -> "CaptureSource":
        cv2 = require_cv2()

        self.close()
        spec = self.spec
        if spec.kind == "gstreamer" and not gstreamer_support():
            raise SourceError(f"source {spec.text}: expected an OpenCV built with GStreamer, got cv2 "
                              f"{cv2.__version__} with 'GStreamer: NO'. {JETPACK_OPENCV_HINT}")
        if spec.kind == "url":  # bounded waits, so a stream that stalls is noticed and reopened
            cap = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, URL_TIMEOUT_MS,
                                                                 cv2.CAP_PROP_READ_TIMEOUT_MSEC, URL_TIMEOUT_MS])
        else:
            cap = cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER if spec.kind == "gstreamer" else cv2.CAP_ANY)
        if spec.kind == "file" and cap.isOpened():
            cap = _single_thread_decoder(cap, spec.target)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"source {spec.text}: cannot be opened ({_open_hint(spec)})")
        if spec.kind == "camera":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # V4L2: keep one buffer, so read() gives a fresh frame
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if spec.kind == "file" else 0
        self.frame_count = count if count > 0 else None
        self._pending = None
        if spec.kind == "file":
            ok, first = cap.read()
            if not ok or first is None:
                cap.release()
                raise SourceError(f"source {spec.text}: the file opens but no frame can be decoded (its header "
                                  f"reports {count} frames); it is empty, cut before its first frame, or uses a "
                                  "codec this OpenCV lacks. Check it with: ffprobe FILE")
            self._pending = first
        self._cap, self._since_open, self.ended = cap, 0, False
        return self

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceError(f"source {self.spec.text}: read() before open(). Use open_source(), or call open()")
        if self._pending is not None:
            ok, image, self._pending = True, self._pending, None
        else:
            t0 = time.perf_counter()
            ok, image = self._cap.read()
            if ok and self.spec.kind == "url" and time.perf_counter() - t0 >= 0.9 * URL_TIMEOUT_MS / 1e3:
                # FFmpeg's read timed out and then handed over a late frame: the camera hangs with its connection
                # open (it would go on like this for ~15 s). Treat it as a drop, so it is reopened now
                log.warning("source %s: read() blocked %.1f s; treating the camera as dropped", self.spec.text,
                            time.perf_counter() - t0)
                return None
        if not ok and self.loop and self._since_open > 0:
            self.open()  # reopening is more reliable than seeking across containers and codecs
            ok, image, self._pending = True, self._pending, None  # open() decoded the first frame again
        if not ok or image is None:
            self.ended = self.spec.kind == "file"  # a camera or stream that gives nothing has dropped
            return None
        self._since_open += 1
        if image.ndim == 2:
            cv2 = require_cv2()

            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return image

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _single_thread_decoder(cap: Any, path: str) -> Any:
    """``cap`` reopened with one FFmpeg decoding thread when its frames are at most SINGLE_THREAD_DECODE_PIXELS
    (same frames: H.264/HEVC decoding is bit-exact whatever the thread count); else ``cap`` as it is."""
    cv2 = require_cv2()

    pixels = cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    if cap.getBackendName() != "FFMPEG" or not 0 < pixels <= SINGLE_THREAD_DECODE_PIXELS \
            or not hasattr(cv2, "CAP_PROP_N_THREADS"):
        return cap
    single = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not single.isOpened():
        single.release()
        return cap
    cap.release()
    return single


def _open_hint(spec: SourceSpec) -> str:
    if spec.kind == "camera":
        return (f"no /dev/video{spec.target}, busy, or no permission. List cameras with v4l2-ctl --list-devices; "
                "for a Jetson CSI camera use csi://0")
    if spec.kind == "url":
        return "unreachable, wrong path or credentials, or a codec this OpenCV lacks. Check it with: ffprobe URL"
    if spec.kind == "gstreamer":
        return ("the pipeline did not start. Test it with gst-launch-1.0, replacing appsink with fakesink; "
                "it must end in appsink and give BGR")
    return "not a video OpenCV can decode, or truncated before its header. Check it with: ffprobe FILE"


class FolderSource(Source):
    """The images of a folder, sorted by name (not live). ``name`` is the current file's name."""

    def __init__(self, spec: SourceSpec, *, loop: bool = False) -> None:
        self.spec, self.loop = spec, loop
        self.paths: list[Path] = []
        self._next = 0

    def open(self) -> "FolderSource":
        folder = Path(str(self.spec.target))
        self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise SourceError(f"source {folder}: expected a folder with images ({', '.join(sorted(IMAGE_SUFFIXES))})"
                              ", got none")
        self.frame_count, self._next, self.ended = len(self.paths), 0, False
        return self

    def read(self) -> np.ndarray | None:
        cv2 = require_cv2()

        if self._next >= len(self.paths):
            if not (self.loop and self.paths):
                self.ended = True
                return None
            self._next = 0
        path = self.paths[self._next]
        self._next += 1
        try:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error:  # a header claiming more pixels than OpenCV allows
            image = None
        if image is None:
            raise SourceError(f"image {path}: cannot be decoded (truncated or not an image). Remove or replace it")
        self.name = path.name
        return image


class PacedSource(Source):
    """Replays another source at ``fps`` as a live camera would: frame i becomes available at start + i / fps,
    whether or not anyone is ready for it (so a slow consumer drops frames). ``timestamp_s`` is that moment."""

    def __init__(self, inner: Source, fps: float) -> None:
        if not fps > 0:
            raise SourceError(f"pace fps: expected > 0, got {fps}")
        self.inner, self.fps, self.rate = inner, float(fps), float(fps)
        self.spec = SourceSpec(kind=inner.spec.kind, target=inner.spec.target, live=True, text=inner.spec.text)
        self._start: float | None = None
        self._index = 0
        self.skipped = 0  # frames the "camera" delivered while nobody was reading: overwritten, never read

    def open(self) -> "PacedSource":
        self.inner.open()
        self._start, self._index = None, 0
        return self

    def read(self) -> np.ndarray | None:
        now = time.perf_counter()
        if self._start is None:
            self._start = now
        due = self._start + self._index / self.rate
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0 / self.rate:  # we were away for longer than a frame: the camera kept going
            skipped = int((now - due) * self.rate)
            for _ in range(skipped):  # frames the camera delivered meanwhile, overwritten in its buffer
                if self.inner.read() is None:
                    return None
            self._index += skipped
            self.skipped += skipped
            due = self._start + self._index / self.rate
        self._index += 1
        self.timestamp_s = due
        image = self.inner.read()
        self.name = self.inner.name
        return image

    @property  # type: ignore[override]
    def ended(self) -> bool:  # the replayed file's end
        return self.inner.ended

    def close(self) -> None:
        self.inner.close()


def open_source(text: str | int | SourceSpec, *, live: bool | None = None, loop: bool = False,
                pace_fps: float | None = None, csi: CsiOptions = CsiOptions()) -> Source:
    """Parse and open a source. ``pace_fps`` replays a file or folder at that rate as a live camera (for tests and
    benchmarks of the drop policy); ``loop`` replays a file or folder from the start at its end."""
    spec = text if isinstance(text, SourceSpec) else parse_source(text, csi=csi, live=live)
    if pace_fps is not None and spec.live:
        raise SourceError(f"pace_fps: expected a file or folder to replay, got the live source {spec.text}; "
                          "a live source already runs on its own clock")
    source: Source = FolderSource(spec, loop=loop) if spec.kind == "folder" else CaptureSource(spec, loop=loop)
    if pace_fps is not None:
        source = PacedSource(source, pace_fps)
    return source.open()


def read_source_list(path: str | Path) -> list[str]:
    """The sources listed in a text file, one per line; blank lines and lines starting with # are skipped."""
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"sources file {p}: cannot be read ({type(exc).__name__}: {exc}). Expected a text file "
                          "with one source per line") from None
    sources = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not sources:
        raise SourceError(f"sources file {p}: expected one source per line, got none")
    return sources


def open_sources(texts: list[str | int | SourceSpec], *, live: bool | None = None, loop: bool = False,
                 pace_fps: float | None = None, csi: CsiOptions = CsiOptions()) -> list[Source]:
    """Parse every source first (a typo in one is refused before anything opens), then open them all at once; if
    one fails to open, the others are closed and the error names the first failing source's position."""
    if not texts:
        raise SourceError("sources: expected at least one source, got none")
    specs = []
    for i, t in enumerate(texts):
        try:
            specs.append(t if isinstance(t, SourceSpec) else parse_source(t, csi=csi, live=live))
        except SourceError as exc:
            raise SourceError(f"source {i + 1} of {len(texts)}: {exc}") from None
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.kind == "camera" and spec.text in seen:
            raise SourceError(f"source {i + 1} of {len(texts)}: camera {spec.text} is already source "
                              f"{seen[spec.text] + 1}; a camera can be opened once. Give each camera once")
        seen.setdefault(spec.text, i)
    # opened side by side: a network camera's open takes seconds (FFmpeg reads ~2 s of frames ahead), and one
    # opened early would pile up stale frames while the others open one after another
    from concurrent.futures import ThreadPoolExecutor

    # at the readers' priority: the decoder threads a capture starts when it opens inherit it
    with ThreadPoolExecutor(max_workers=min(16, len(specs)), thread_name_prefix="segedge-open",
                            initializer=lower_thread_priority, initargs=(reader_niceness(),)) as pool:
        futures = [pool.submit(open_source, spec, loop=loop, pace_fps=pace_fps, csi=csi) for spec in specs]
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result())
            except BaseException as exc:  # noqa: BLE001 -- reported below, after every open has finished
                outcomes.append(exc)
    failed = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
    if failed:
        for o in outcomes:
            if isinstance(o, Source):
                o.close()
        i, exc = failed[0]
        if isinstance(exc, SourceError):
            raise SourceError(f"source {i + 1} of {len(texts)}: {exc}") from None
        raise exc
    return [o for o in outcomes if isinstance(o, Source)]
