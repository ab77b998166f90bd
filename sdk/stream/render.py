"""Rendering for streams: palette overlay + legend + HUD (``Renderer.annotate``), an mp4 writer (H.264 where
OpenCV can write it, else mp4v) and a display window that opens only where a display exists. Pictures are
(H, W, 3) uint8 BGR, OpenCV's order, throughout.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.core.errors import InputError, OutputError, require_cv2
from sdk.core.result import SegmentationResult, colorize

WRITER_SUFFIXES = (".mp4", ".m4v", ".mov")  # the files VideoSink writes (mp4 containers), not all it could read


@dataclass(frozen=True, kw_only=True)
class RenderOptions:
    """alpha: weight of the colour mask over the frame (0..1). side_by_side: original left, overlay right (output
    twice as wide). legend: swatches of the classes present, largest first, at most legend_max. hud: FPS and
    per-stage latency text."""

    alpha: float = 0.5
    side_by_side: bool = False
    legend: bool = True
    legend_max: int = 12
    hud: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"alpha: expected 0..1, got {self.alpha}")
        if self.legend_max < 1:
            raise InputError(f"legend_max: expected >= 1, got {self.legend_max}")


class Renderer:
    """Draws a result over its frame with the artifact's palette: ``annotate(image_bgr, result, hud_lines)``.

    The colour picture is ``result.colorize()`` with channels reversed to BGR, computed with cv2.applyColorMap and the
    palette as a user colour map (one pass over the mask; ~5x less CPU than cv2.merge + a 3-channel cv2.LUT); the
    blend is ``result.overlay`` in BGR (cv2.addWeighted, rounding may differ by 1). The legend's boxes are opaque, so
    they are drawn once per (classes present, picture size) and copied in while that stays the same."""

    def __init__(self, class_names: list[str], palette: list[list[int]], options: RenderOptions = RenderOptions()):
        if len(palette) != len(class_names):
            raise InputError(f"palette: expected {len(class_names)} colours, got {len(palette)}")
        self.class_names, self.options = list(class_names), options
        self.palette_bgr = np.asarray(palette, np.uint8).reshape(-1, 3)[:, ::-1].copy()
        lut = np.zeros((256, 1, 3), np.uint8)
        lut[: min(256, len(palette)), 0] = self.palette_bgr[:256]
        self._lut = lut
        self._legend_key: tuple = ()
        self._legend_boxes: list[tuple[int, int, int, int, np.ndarray]] = []

    def colorize(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) class ids -> (H, W, 3) uint8 BGR in the palette's colours."""
        cv2 = require_cv2()

        if mask.dtype == np.uint8 and len(self.palette_bgr) <= 256:
            return cv2.applyColorMap(mask, self._lut)
        return colorize(mask, self.palette_bgr)

    def annotate(self, image: np.ndarray, result: SegmentationResult, hud_lines: list[str] | tuple = ()) -> np.ndarray:
        """image: (H, W, 3) uint8 BGR, the frame ``result`` came from. Returns a new picture. The legend and the HUD
        are sized for the frame (the legend takes at most ``LEGEND_MAX_HEIGHT`` of it, in columns when needed; the
        HUD's font shrinks to fit its pane: the overlay's, in side-by-side)."""
        cv2 = require_cv2()

        if image.shape[:2] != result.mask.shape:
            raise InputError(f"image: expected (H, W, 3) with (H, W) = {result.mask.shape}, got {image.shape}")
        a = self.options.alpha
        picture = cv2.addWeighted(image, 1.0 - a, self.colorize(result.mask), a, 0.0)
        if self.options.legend:
            self._legend(picture, result.mask)
        if self.options.hud and hud_lines:
            _text_box(picture, list(hud_lines), (8, 8), max_width=picture.shape[1] - 16)
        if self.options.side_by_side:
            picture = np.hstack([image, picture])
        return picture

    def _legend(self, picture: np.ndarray, mask: np.ndarray) -> None:
        counts = np.bincount(mask[::4, ::4].ravel(), minlength=len(self.class_names))
        present = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0][: self.options.legend_max]
        if not present:
            return
        key = (tuple(present), picture.shape)
        if key != self._legend_key:
            self._legend_boxes = self._draw_legend(picture.shape, present)
            self._legend_key = key
        for x0, y0, x1, y1, patch in self._legend_boxes:
            picture[y0:y1, x0:x1] = patch

    def _draw_legend(self, shape: tuple[int, ...], present: list[int]) -> list[tuple[int, int, int, int, np.ndarray]]:
        """The legend's boxes for a picture of ``shape`` as (x0, y0, x1, y1, pixels), drawn on a blank canvas (the
        boxes are opaque: what lies under them does not show)."""
        canvas = np.zeros(shape, np.uint8)
        h, w = shape[:2]
        _, line_h = _font(canvas)
        rows = max(1, min(len(present), int((LEGEND_MAX_HEIGHT * h - 8) // line_h)))
        columns = [present[i:i + rows] for i in range(0, len(present), rows)]
        x, boxes = 8, []
        for col in columns:
            names = [self.class_names[i] for i in col]
            colours = [(int(b), int(g), int(r)) for b, g, r in self.palette_bgr[col]]
            room = w - 8 - x
            if room < 4 * line_h:  # no room for another column: the smallest classes are left out
                break
            x0, y0, x1, y1 = _text_box(canvas, names, (x, h - 8 - line_h * len(names) - 8), swatches=colours,
                                       max_width=room)
            boxes.append((x0, y0, x1, y1, canvas[y0:y1, x0:x1].copy()))
            x = x1 + 3
        return boxes


# the legend covers at most this fraction of the frame's height (more classes: more columns)
LEGEND_MAX_HEIGHT = 0.25


def _font(picture: np.ndarray) -> tuple[float, int]:
    """(font scale, line height in pixels) for a picture: readable at 360p, not oversized at 4K."""
    scale = min(1.2, max(0.35, min(picture.shape[:2]) / 900.0))
    return scale, int(26 * scale) + 4


def _text_box(picture: np.ndarray, lines: list[str], origin_xy: tuple[int, int],
              swatches: list[tuple[int, int, int]] | None = None,
              max_width: int | None = None) -> tuple[int, int, int, int]:
    """Opaque dark box with white text lines (and colour swatches) drawn in place at origin (x, y); the font shrinks
    so the box is at most ``max_width`` wide (and never leaves the picture). Returns the pixels it covers as
    (x0, y0, x1, y1), end-exclusive and clipped to the picture (the box's right edge is x1 - 1)."""
    cv2 = require_cv2()

    x, y = origin_xy
    if not lines:
        return x, y, x, y
    scale, line_h = _font(picture)
    sw = line_h - 4 if swatches else 0
    font = cv2.FONT_HERSHEY_SIMPLEX
    text_w = max(cv2.getTextSize(t, font, scale, 1)[0][0] for t in lines)
    limit = min(max_width or picture.shape[1], picture.shape[1] - x)
    if text_w + sw + 16 > limit:
        scale = max(0.25, scale * (limit - sw - 16) / max(text_w, 1))
        text_w = max(cv2.getTextSize(t, font, scale, 1)[0][0] for t in lines)
    width = text_w + sw + 16
    y = max(0, y)
    right, bottom = min(picture.shape[1] - 1, x + width), y + line_h * len(lines) + 8
    cv2.rectangle(picture, (x, y), (right, bottom), (32, 32, 32), -1)
    for i, text in enumerate(lines):
        top = y + 4 + i * line_h
        if swatches:
            cv2.rectangle(picture, (x + 6, top + 2), (x + 6 + sw, top + sw), swatches[i], -1)
        cv2.putText(picture, text, (x + 10 + sw, top + line_h - 6), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return x, y, right + 1, min(picture.shape[0], bottom + 1)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (FFmpeg's and OpenCV's C-level logs) for a probe whose failure is expected."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.lru_cache(maxsize=1)
def video_codec() -> str:
    """The fourcc mp4 outputs are written with: "avc1" (H.264, which browsers play) where this OpenCV's FFMPEG has
    an H.264 encoder (probed once on a tiny file), else "mp4v" (MPEG-4 Part 2: players such as VLC/ffplay, not
    browsers). pip's opencv wheels usually lack an H.264 encoder; system OpenCV builds with libx264 have one."""
    cv2 = require_cv2()

    with tempfile.TemporaryDirectory() as tmp, _quiet_stderr():
        writer = cv2.VideoWriter(str(Path(tmp) / "probe.mp4"), cv2.VideoWriter.fourcc(*"avc1"), 10.0, (64, 64))
        ok = writer.isOpened()
        if ok:
            writer.write(np.zeros((64, 64, 3), np.uint8))
        writer.release()
    return "avc1" if ok else "mp4v"


class VideoSink:
    """Writes pictures to an mp4 (cv2.VideoWriter with ``video_codec()``: H.264 where OpenCV can, else mp4v). Opens
    on the first picture, whose size every later picture must have (a different size is resized to it: image
    folders of mixed sizes)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in WRITER_SUFFIXES:
            raise OutputError(f"output {self.path}: expected a video file name ending in {'/'.join(WRITER_SUFFIXES)}, "
                              f"got {self.path.suffix or 'no suffix'!r}")
        if not 0 < fps <= 1000:
            raise OutputError(f"output fps: expected 0 < fps <= 1000, got {fps}")
        self.fps, self.frames, self._size_wh = float(fps), 0, (0, 0)
        self.codec = ""
        self._writer: Any = None

    def write(self, picture: np.ndarray) -> None:
        cv2 = require_cv2()

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._size_wh = (picture.shape[1], picture.shape[0])
            self.codec = video_codec()
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*self.codec), self.fps,
                                           self._size_wh)
            if not self._writer.isOpened():
                self._writer = None
                raise OutputError(f"output {self.path}: OpenCV cannot open a {self.codec} writer there (folder not "
                                  "writable, or this OpenCV has no FFMPEG video writer). Try another path")
        if (picture.shape[1], picture.shape[0]) != self._size_wh:
            picture = cv2.resize(picture, self._size_wh, interpolation=cv2.INTER_AREA)
        self._writer.write(picture)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()  # writes the mp4 index: without it the file does not play
            self._writer = None


def display_status() -> tuple[bool, str]:
    """(True, "") where a window can open: DISPLAY or WAYLAND_DISPLAY is set and this OpenCV has HighGUI;
    else (False, why)."""
    cv2 = require_cv2()

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if match and match.group(1).upper() == "NONE":
        return False, (f"this OpenCV ({cv2.__version__}) has no HighGUI ('GUI: NONE': opencv-python-headless). "
                       "Install opencv-python, or on JetPack use the system OpenCV")
    return True, ""


class Window:
    """A HighGUI window. ``show(picture)`` returns False once the user pressed q or Esc, or closed the window."""

    def __init__(self, title: str = "segedge") -> None:
        ok, why = display_status()
        if not ok:
            raise OutputError(f"display: expected a screen and OpenCV HighGUI, got {why}. Use --no-display "
                              "(and --output FILE.mp4)")
        self.title, self._shown = title, False

    def show(self, picture: np.ndarray) -> bool:
        cv2 = require_cv2()

        cv2.imshow(self.title, picture)
        key = cv2.waitKey(1) & 0xFF
        if self._shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            return False
        self._shown = True
        return key not in (ord("q"), 27)

    def close(self) -> None:
        cv2 = require_cv2()

        if self._shown:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
