"""One source's read loop, shared by the single- and multi-source pipelines: frames with capture timestamps, the end
of a file, and a live source that drops reopened with backoff and the gap recorded.

``read_loop(source, stats, deliver, stop, ...)`` runs in the source's reader thread until the stream ends, ``stop``
is set or ``deliver`` refuses a frame; it raises ``SourceError`` for a file that fails to decode or a live source
that could not be reopened within ``reconnect_timeout_s``. The caller closes its queues and records the error.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from sdk.core.errors import SourceError
from sdk.stream.stats import SourceGap

if TYPE_CHECKING:
    from sdk.stream.sources import Source
    from sdk.stream.stats import StreamStats

log = logging.getLogger("segedge")
# the longest wait between two reopen attempts: a closed port refuses at once, so retrying often costs nothing
MAX_RETRY_DELAY_S = 2.0


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: index (0-based count of frames read from the source), image (H, W, 3) uint8 BGR, captured_s
    (when it became available, time.perf_counter() clock), name (file name for image folders, else None), source
    (the source's position in a multi-source pipeline; 0 for a single source)."""

    index: int
    image: np.ndarray
    captured_s: float
    name: str | None = None
    source: int = 0


def read_loop(src: "Source", stats: "StreamStats", deliver: Callable[[Frame], bool], stop: threading.Event, *,
              max_frames: int | None, reconnect_timeout_s: float, set_ended: Callable[[str], None],
              source_index: int = 0) -> None:
    """Read ``src`` into ``deliver`` (returns False when the consumer is gone) until its end, ``max_frames``, or
    ``stop``; ``set_ended`` gets "max_frames" or "end_of_stream". A live source whose read() gives nothing (or
    raises) is closed and reopened at once, then after 0.5, 1, 2, 2 ... s (a network camera back from a restart is
    read again within ~2 s plus its open time), each gap appended to
    ``stats.gaps``; a live replay of a file that reached its end (``src.ended``) ends the stream instead."""
    index, down_since, attempts, delay, reason, last = 0, None, 0, 0.0, "", ""
    while not stop.is_set():
        if max_frames is not None and index >= max_frames:
            set_ended("max_frames")
            return
        t0 = time.perf_counter()
        try:
            image, why = src.read(), "read() gave no frame"
        except Exception as exc:  # noqa: BLE001 -- a live source is reopened; a file's error ends the run
            if not src.live:
                raise SourceError(f"source {src.spec.text}: failed at frame {index} ({type(exc).__name__}: "
                                  f"{exc}). The frames before it were processed and written") from exc
            image, why = None, f"{type(exc).__name__}: {exc}"
        t1 = time.perf_counter()
        if image is None:
            if not src.live or getattr(src, "ended", False):
                set_ended("end_of_stream")
                return
            if down_since is None:  # reopen at once, then after 0.5, 1, 2, 2 ... s
                down_since, reason, last, attempts, delay = t1, why, "", 0, 0.0
                log.warning("source %s dropped after frame %d (%s); reopening", src.spec.text, index - 1, why)
            if t1 - down_since > reconnect_timeout_s:
                raise SourceError(f"source {src.spec.text}: dropped after frame {index - 1} ({reason}) and could "
                                  f"not be reopened in {reconnect_timeout_s:g} s ({attempts} attempts"
                                  f"{'; last: ' + last if last else ''}). Check the camera or network; allow "
                                  "longer with --reconnect-timeout")
            if stop.wait(delay):
                return
            attempts, delay = attempts + 1, min(max(0.5, delay * 2), MAX_RETRY_DELAY_S)
            try:
                src.close()
                src.open()
            except SourceError as exc:
                last = str(exc)
            continue
        if down_since is not None:
            stats.gaps.append(SourceGap(after_frame=index - 1, gap_s=round(t1 - down_since, 3), attempts=attempts,
                                        reason=f"{reason}; reopen failed with: {last}" if last else reason))
            log.warning("source %s back after %.1f s (%d attempts)", src.spec.text, t1 - down_since, attempts)
            down_since = None
        due = src.timestamp_s  # set by sources that know when the frame became available
        captured = due if due is not None else t1
        stats.add("capture", (t1 - (t0 if due is None else min(max(t0, due), t1))) * 1e3)
        frame = Frame(index, image, captured, src.name, source_index)
        index += 1
        stats.frames_read = index
        if not deliver(frame):  # stopped while waiting to hand it over
            stats.discarded_at_stop += 1
            return
