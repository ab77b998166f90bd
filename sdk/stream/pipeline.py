"""Stream pipeline: reader -> inference -> render/writer, each in its own thread, joined by bounded queues.

>>> from sdk import Segmenter
>>> from sdk.stream.pipeline import StreamConfig, StreamPipeline
>>> from sdk.stream.sources import open_source
>>> with Segmenter.from_artifact("out/b0-fp32") as seg:
...     stats = StreamPipeline(seg, open_source("clip.mp4"), StreamConfig(output="run.mp4")).run()

Live sources (cameras, network streams, paced replays) hand over only their newest frame: a frame still waiting
when a newer one arrives is dropped and counted, so latency stays bounded. Files and folders are lossless and
may be batched; they run two inference workers, fed batch by batch in turn, so one batch's host work
(preprocessing, the refine head's masks) overlaps the other's model call, and the frames are rendered in order. The
workers' model calls take turns, except on a runtime whose ``parallel_calls`` is 2 or more (OpenVINO in throughput
mode, which ``stream_runtime_options`` picks for files on OpenVINO): then both run at once, each on its own stream.
Each worker keeps its frames' host work on its own thread (``serial_host_work``): a live source's single worker
splits it over the cores instead.
OpenCV runs single-threaded while they run (cv2.setNumThreads(1), the caller's setting restored at the end), as
the stages already keep the cores busy. ``run()`` renders and writes in the calling
thread; Ctrl-C there, ``stop()`` from any thread, a display's q/Esc, the end of the stream or ``max_frames`` end it
cleanly: the mp4 is finalised, the stats JSON written. A live source that drops is reopened with backoff and the gap recorded. ``segedge stream`` wraps this.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from sdk.core.errors import InputError, SegEdgeError, require_cv2
from sdk.core.parallel import serial_host_work
from sdk.stream.reader import Frame, read_loop
from sdk.stream.render import Renderer, RenderOptions, VideoSink, Window
from sdk.stream.stats import StreamStats

if TYPE_CHECKING:
    from sdk.core.result import SegmentationResult
    from sdk.segmenter import Segmenter
    from sdk.stream.sources import Source

log = logging.getLogger("segedge")
END = object()  # end-of-stream marker passed through the queues


@dataclass(frozen=True, kw_only=True)
class StreamConfig:
    """batch_size: frames per inference call for files/folders (live sources run their newest frame alone).
    queue_size: frames held between stages for files. max_frames: stop after this many frames read (None: to the
    end). output: an .mp4 to write (None: none). output_fps: its rate (None: the source's, else 30). display: show
    a window (needs a screen and OpenCV HighGUI). stats_path: JSON written at the end (None: not written).
    reconnect_timeout_s: how long a live source that dropped is retried, with backoff, before the run fails."""

    batch_size: int = 1
    queue_size: int = 4
    max_frames: int | None = None
    output: str | Path | None = None
    output_fps: float | None = None
    display: bool = False
    stats_path: str | Path | None = None
    reconnect_timeout_s: float = 30.0
    render: RenderOptions = RenderOptions()

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.queue_size < 1:
            raise InputError(f"batch_size, queue_size: expected >= 1, got {self.batch_size}, {self.queue_size}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"max_frames: expected >= 1 or None, got {self.max_frames}")
        if self.reconnect_timeout_s < 0:
            raise InputError(f"reconnect_timeout_s: expected >= 0 (0: never reopen), got {self.reconnect_timeout_s}")


PERFORMANCE_MODES = ("auto", "latency", "throughput")


def stream_runtime_options(artifact: str | Path, runtime: str, *, live: bool, performance_mode: str = "auto",
                           sources: int = 1) -> dict:
    """Runtime options for streaming ``artifact`` on ``runtime`` ("auto" or a name). performance_mode "auto":
    OpenVINO's throughput mode for files and folders (every frame is kept, so frames in flight cost nothing: two
    streams, one per inference worker, at less CPU per frame than one request on all cores) and for several live
    sources (each model call is a batch of frames, one infer request each, run side by side on the streams), its
    latency mode for one live source; other runtimes keep their defaults. "latency" / "throughput": that OpenVINO mode (an error on
    other runtimes, which have no such switch)."""
    from sdk.core.manifest import read_manifest, resolve_artifact

    if performance_mode not in PERFORMANCE_MODES:
        raise InputError(f"performance_mode: expected one of {PERFORMANCE_MODES}, got {performance_mode!r}")
    on_openvino = runtime == "openvino" or (
        runtime == "auto" and read_manifest(resolve_artifact(artifact)).format == "openvino")
    if performance_mode == "auto":
        return {"performance_mode": "throughput"} if on_openvino and (not live or sources > 1) else {}
    if not on_openvino:
        raise InputError(f"performance mode {performance_mode!r}: expected an artifact that runs on OpenVINO (an IR "
                         f"artifact, or --runtime openvino), got {artifact} on runtime {runtime!r}. Leave it at "
                         "auto for this runtime")
    return {"performance_mode": performance_mode}


class Channel:
    """A bounded hand-off between two threads. ``latest=True``: put() never blocks; when full the oldest item is
    dropped (``dropped`` counts them). Else put() waits while full (lossless). close(): get() gives END once
    empty. cancel(): contents discarded, put() returns False, get() returns END."""

    def __init__(self, maxsize: int, *, latest: bool = False) -> None:
        self.maxsize, self.latest = maxsize, latest
        self.items: list[Any] = []
        self.dropped = 0
        self._closed = self._cancelled = False
        self._cond = threading.Condition()

    def put(self, item: Any) -> bool:
        with self._cond:
            while not self.latest and len(self.items) >= self.maxsize and not self._cancelled:
                self._cond.wait()
            if self._cancelled or self._closed:
                return False
            if len(self.items) >= self.maxsize:
                self.items.pop(0)
                self.dropped += 1
            self.items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Any:
        """The next item, END at the end, or None if ``timeout`` seconds passed first."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.items or self._closed or self._cancelled, timeout):
                return None
            if self._cancelled or not self.items:
                return END
            item = self.items.pop(0)
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def cancel(self) -> int:
        """Discard the contents (returns how many) and wake everyone."""
        with self._cond:
            n = 0 if self._cancelled else len(self.items)
            self.items.clear()
            self._cancelled = True
            self._cond.notify_all()
            return n


def render_until_done(render: Callable[[], None], on_sigint: Callable[[], None],
                      fail: Callable[[BaseException], None]) -> None:
    """Run ``render`` (a pipeline's render loop) to its end in this thread. A KeyboardInterrupt raised in it (not
    the main thread, or another handler raised it) counts as Ctrl-C and the loop resumes, so what was inferred is
    still written; any other error goes to ``fail``, and the caller's cleanup runs after."""
    try:
        while True:
            try:
                render()
                return
            except KeyboardInterrupt:
                on_sigint()
    except BaseException as exc:  # noqa: BLE001 -- handed to fail(); run() raises it after a clean shutdown
        fail(exc)


def timed_predict(segmenter: "Segmenter", images: list[np.ndarray],
                  gate: threading.Semaphore) -> tuple[list, float, float, float]:
    """``segmenter.predict_batch(images)`` on BGR frames (one batch) in this thread, with its preprocess / inference /
    postprocess ms split at the runtime's recorded calls (``Runtime.recording``); ``gate`` limits how many workers'
    model calls run at once, and the wait for it is in none of the three."""
    with segmenter.runtime.recording(gate) as rec:
        t0 = time.perf_counter()
        results = segmenter.predict_batch(images, batch_size=len(images), color_order="bgr")
        t1 = time.perf_counter()
    calls = rec.calls
    inf = sum(c.end - c.start for c in calls)
    pre = sum(c.asked - (calls[i - 1].end if i else t0) for i, c in enumerate(calls))
    return results, pre * 1e3, inf * 1e3, (t1 - calls[-1].end) * 1e3


def model_call_gate(runtime, workers: int) -> threading.BoundedSemaphore:
    """How many inference workers' model calls may run at once: the runtime's ``parallel_calls`` (workers take
    turns where one call already uses every core)."""
    return threading.BoundedSemaphore(max(1, min(workers, getattr(runtime, "parallel_calls", 1))))


class StreamPipeline:
    """Segment a stream. ``on_result(frame, result, picture)`` is called in the render thread for every frame
    after it is drawn and written (picture: the rendered (H, W, 3) or (H, 2W, 3) uint8 BGR image).
    ``run()`` closes the source when it returns."""

    def __init__(self, segmenter: "Segmenter", source: "Source", config: StreamConfig = StreamConfig(), *,
                 on_result: Callable[[Frame, "SegmentationResult", np.ndarray], None] | None = None) -> None:
        live = source.live
        if live and config.batch_size > 1:
            raise InputError(f"batch_size: expected 1 for the live source {source.spec.text} (it runs the newest "
                             f"frame alone), got {config.batch_size}. Batch files or folders instead")
        self.source, self.config, self.on_result = source, config, on_result
        # one inference worker for live sources (the newest frame, at once); two for files/folders, fed batch by
        # batch in turn: worker w gets frames i with (i // batch_size) % workers == w, and the render loop reads
        # them back in that order
        self.workers = 1 if live else 2
        self._seg, self._gate = segmenter, model_call_gate(segmenter.runtime, self.workers)
        self.renderer = Renderer(segmenter.class_names, segmenter.palette, config.render)
        self.stats = StreamStats(source=source.spec.text, mode="live" if live else "file",
                                 batch_size=config.batch_size, source_frame_count=source.frame_count,
                                 output=str(config.output) if config.output else None)
        self._ins = [Channel(1, latest=True) if live else Channel(config.queue_size) for _ in range(self.workers)]
        self._outs = [Channel(1 if live else config.queue_size) for _ in range(self.workers)]
        self._stop, self._stats_lock = threading.Event(), threading.Lock()
        self._errors: list[BaseException] = []
        self._interrupts, self._started = 0, False

    def stop(self, reason: str = "stopped") -> None:
        """End the run soon, from any thread: frames not yet inferred are discarded, the rest written."""
        self._set_ended(reason)
        self._stop.set()
        self.stats.discarded_at_stop += self._cancel_inputs()

    def _cancel_inputs(self) -> int:
        return sum(ch.cancel() for ch in self._ins)

    def _on_sigint(self, *_) -> None:
        """First Ctrl-C: stop reading, write what was already inferred. Second: stop writing too."""
        self._interrupts += 1
        self.stop("interrupted")
        if self._interrupts > 1:
            self.stats.discarded_at_stop += sum(ch.cancel() for ch in self._outs)

    def _set_ended(self, reason: str) -> None:
        if self.stats.ended == "running":
            self.stats.ended = reason

    def _fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self.stats.error = str(exc)
        self._set_ended("error")

    # -- reader thread ---------------------------------------------------------------------------------------------
    def _read(self) -> None:
        src, stats, batch, ins = self.source, self.stats, self.config.batch_size, self._ins

        def deliver(frame: Frame) -> bool:
            ok = ins[(frame.index // batch) % len(ins)].put(frame)
            stats.dropped, stats.skipped_by_source = ins[0].dropped, getattr(src, "skipped", 0)
            return ok

        try:
            read_loop(src, stats, deliver, self._stop, max_frames=self.config.max_frames,
                      reconnect_timeout_s=self.config.reconnect_timeout_s, set_ended=self._set_ended)
        except BaseException as exc:  # noqa: BLE001 -- handed to run(), which raises it after a clean shutdown
            self._fail(exc)
        finally:
            for ch in ins:
                ch.close()

    # -- inference thread ------------------------------------------------------------------------------------------
    def _infer(self, worker: int) -> None:
        # files/folders: the workers already run frames side by side, so each frame's host work stays on its worker
        with serial_host_work() if self.workers > 1 else contextlib.nullcontext():
            self._infer_frames(worker)

    def _infer_frames(self, worker: int) -> None:
        stats, size = self.stats, self.stats.batch_size
        source, sink = self._ins[worker], self._outs[worker]
        try:
            done = False
            while not done:
                item = source.get()
                if item is END:
                    break
                batch = [item]
                while len(batch) < size:
                    item = source.get()
                    if item is END:
                        done = True
                        break
                    batch.append(item)
                results, pre, inf, post = self._predict(batch)
                for i, (frame, result) in enumerate(zip(batch, results)):
                    with self._stats_lock:  # the other worker adds to the same stages
                        stats.add("preprocess", pre / len(batch))
                        stats.add("inference", inf / len(batch))
                        stats.add("postprocess", post / len(batch))
                    if not sink.put((frame, result)):  # the render side is gone (second Ctrl-C, error)
                        stats.discarded_at_stop += len(batch) - i
                        return
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
            self._stop.set()
            self._cancel_inputs()
        finally:
            sink.close()

    def _predict(self, frames: list[Frame]) -> tuple[list, float, float, float]:
        """Segmenter.predict_batch on the frames; returns results and preprocess/inference/postprocess ms."""
        return timed_predict(self._seg, [f.image for f in frames], self._gate)

    # -- render/writer: the calling thread -------------------------------------------------------------------------
    def run(self) -> StreamStats:
        """Process the stream to its end (or stop()/Ctrl-C/max_frames) and return the stats. Raises the first error
        of any stage (a SourceError for a source that failed) after shutting everything down cleanly."""
        if self._started:
            raise InputError("run: a StreamPipeline runs once, got a second run(). Make a new one (and source)")
        self._started = True
        cfg = self.config
        fps = cfg.output_fps or self.source.fps or 30.0
        try:
            sink = VideoSink(cfg.output, fps) if cfg.output else None
            window = Window(f"segedge: {self.source.spec.text}") if cfg.display else None
        except SegEdgeError:
            self.source.close()
            raise
        threads = [threading.Thread(target=self._read, name="segedge-reader", daemon=True)]
        threads += [threading.Thread(target=self._infer, args=(w,), name=f"segedge-inference-{w}", daemon=True)
                    for w in range(self.workers)]
        # Ctrl-C as a flag, not an exception, so it cannot land between writing a frame and counting it
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if main else None
        # files/folders: the stages already run side by side, so OpenCV's own pool (resize, colour map, blend)
        # would only compete with them and the runtime for the cores; restored when the run ends
        cv2 = require_cv2() if self.workers > 1 else None
        cv_threads = cv2.getNumThreads() if cv2 is not None else None
        if cv2 is not None:
            cv2.setNumThreads(1)
        self.stats.started_s = time.perf_counter()
        for t in threads:
            t.start()
        try:
            render_until_done(lambda: self._render_loop(sink, window), self._on_sigint, self._fail)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
            self._shutdown(threads, sink, window)
            if cv2 is not None:
                cv2.setNumThreads(cv_threads)
        if self._errors:
            raise self._errors[0]
        return self.stats

    def _render_loop(self, sink: VideoSink | None, window: Window | None) -> None:
        stats, on_result, outs, batch = self.stats, self.on_result, self._outs, self.config.batch_size
        rendered = 0
        draw = sink is not None or window is not None or on_result is not None  # else nobody sees the picture
        while True:  # frame k comes from worker (k // batch) % workers: in order
            item = outs[(rendered // batch) % len(outs)].get(timeout=0.2)  # a timeout lets Ctrl-C in while waiting
            if item is None:
                continue
            if item is END:  # the next frame will not come: the stream ended, or it stopped (later frames in the
                return  # other worker's queue are counted as discarded when it is cancelled)
            rendered += 1
            frame, result = item
            t0 = time.perf_counter()
            picture = self.renderer.annotate(frame.image, result, stats.hud_lines()) if draw else None
            t1 = time.perf_counter()
            if sink is not None:
                sink.write(picture)
            if window is not None and not window.show(picture):
                self.stop("stopped")
            if on_result is not None:
                on_result(frame, result, picture)
            t2 = time.perf_counter()
            if draw:
                stats.add("render", (t1 - t0) * 1e3)
                stats.add("write", (t2 - t1) * 1e3)
            stats.add("latency", (t2 - frame.captured_s) * 1e3)
            stats.frame_done(t2)

    def _shutdown(self, threads: list[threading.Thread], sink: VideoSink | None, window: Window | None) -> None:
        self._stop.set()
        self.stats.discarded_at_stop += self._cancel_inputs() + sum(ch.cancel() for ch in self._outs)
        for t in threads:  # the reader may sit in a blocking camera/network read: bounded wait
            t.join(timeout=10.0)
        if sink is not None:
            sink.close()
        if window is not None:
            window.close()
        if threads[0].is_alive():
            log.warning("source %s: the reader is still blocked in read(); leaving it open", self.source.spec.text)
        else:
            self.source.close()
        self.stats.finished_s = time.perf_counter()
        if self.config.stats_path:
            self.stats.write_json(self.config.stats_path)
