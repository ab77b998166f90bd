"""Many sources, one model: a reader thread per source, one batch per model call, per-source outputs and a mosaic.

>>> from sdk import Segmenter
>>> from sdk.stream.multi import MultiStreamConfig, MultiStreamPipeline
>>> from sdk.stream.sources import open_sources
>>> with Segmenter.from_artifact("out/b0-int8") as seg:
...     sources = open_sources(["rtsp://cam0/stream", "rtsp://cam1/stream"])
...     stats = MultiStreamPipeline(seg, sources, MultiStreamConfig(mosaic="wall.mp4")).run()

Live sources (cameras, network streams, paced replays): each source keeps only its newest frame; the inference
loop takes the newest frame of every source that has one and runs them as one batch, so a camera is never served
twice before another that is waiting, and drops spread evenly when the model is slower than the cameras (a frame
replaced by a newer one before inference is dropped and counted against its source). Files and folders: every
frame, in lockstep (batch k = frame k of every file still running), two inference workers fed batch by batch so one
batch's host work overlaps the other's model call, as in the single-source pipeline.

A source that drops is reopened with backoff while the others run on (the gap is in its stats); one that cannot be
reopened within ``reconnect_timeout_s``, or a file that fails to decode, ends alone with its error in its stats.
``run()`` renders and writes in the calling thread: one mp4 per source (``outputs``) and/or one tiled mosaic
(``mosaic``, shown in the window with ``display``). Ctrl-C (first: stop reading; second: stop writing too),
``stop()``, q/Esc in the window, every source's end or ``max_frames`` end it with every output finalised.
"""
from __future__ import annotations

import contextlib
import heapq
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from sdk.core.errors import InputError, SegEdgeError, SourceError, require_cv2
from sdk.core.parallel import lower_thread_priority, reader_niceness, serial_host_work
from sdk.stream.mosaic import Mosaic
from sdk.stream.pipeline import END, Channel, model_call_gate, render_until_done, timed_predict
from sdk.stream.reader import Frame, read_loop
from sdk.stream.render import Renderer, RenderOptions, VideoSink, Window
from sdk.stream.stats import MultiStreamStats, StreamStats

if TYPE_CHECKING:
    from sdk.core.result import SegmentationResult
    from sdk.segmenter import Segmenter
    from sdk.stream.sources import Source

log = logging.getLogger("segedge")


@dataclass(frozen=True, kw_only=True)
class MultiStreamConfig:
    """outputs: one .mp4 per source, in the sources' order (None: none). mosaic: one tiled .mp4 of every source
    (None: none), ``mosaic_size_wh`` pixels. display: show the mosaic in a window. max_frames: per source.
    max_batch: most frames per model call (None: one per source). workers: inference threads, each forming and
    running its own batches (None: 1 for live sources, 2 for files). queue_size: frames held per file source.
    reconnect_timeout_s: how long a live source that dropped is retried before it ends alone with an error."""

    outputs: Sequence[str | Path] | None = None
    mosaic: str | Path | None = None
    mosaic_size_wh: tuple[int, int] = (1280, 720)
    display: bool = False
    output_fps: float | None = None
    stats_path: str | Path | None = None
    max_frames: int | None = None
    max_batch: int | None = None
    workers: int | None = None
    queue_size: int = 4
    reconnect_timeout_s: float = 30.0
    render: RenderOptions = RenderOptions()

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise InputError(f"queue_size: expected >= 1, got {self.queue_size}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"max_frames: expected >= 1 or None, got {self.max_frames}")
        if self.max_batch is not None and self.max_batch < 1:
            raise InputError(f"max_batch: expected >= 1 or None, got {self.max_batch}")
        if self.workers is not None and not 1 <= self.workers <= 8:
            raise InputError(f"workers: expected 1..8 or None, got {self.workers}")
        if self.reconnect_timeout_s < 0:
            raise InputError(f"reconnect_timeout_s: expected >= 0 (0: never reopen), got {self.reconnect_timeout_s}")
        if self.outputs is not None and len({str(Path(p)) for p in self.outputs}) != len(self.outputs):
            raise InputError(f"outputs: expected one distinct file per source, got {list(map(str, self.outputs))}")


def runtime_max_batch(runtime) -> int | None:
    """The largest batch one call of ``runtime`` takes: a TensorRT engine's profile maximum, or None (ONNX Runtime
    and OpenVINO take any batch)."""
    rng = (getattr(runtime, "profile", None) or {}).get("pixel_values")
    return int(rng.max[0]) if rng is not None and getattr(rng, "max", None) else None


class MultiStreamPipeline:
    """Segment several sources with one model. ``on_result(frame, result, picture)`` is called in the render thread
    for every frame after it is drawn (``frame.source`` is the source's position; picture: its rendered (H, W, 3)
    uint8 BGR image). ``run()`` closes the sources when it returns."""

    def __init__(self, segmenter: "Segmenter", sources: Sequence["Source"],
                 config: MultiStreamConfig = MultiStreamConfig(), *,
                 on_result: Callable[[Frame, "SegmentationResult", np.ndarray], None] | None = None) -> None:
        sources = list(sources)
        if not sources:
            raise InputError("sources: expected at least one opened source, got none")
        kinds = {s.live for s in sources}
        if len(kinds) > 1:
            live = [s.spec.text for s in sources if s.live]
            files = [s.spec.text for s in sources if not s.live]
            raise InputError(f"sources: expected all live (cameras, streams) or all files/folders, got live {live} "
                             f"and files {files}. Replay the files as cameras with --pace-fps, or run them apart")
        if config.outputs is not None and len(config.outputs) != len(sources):
            raise InputError(f"outputs: expected one per source ({len(sources)}), got {len(config.outputs)}")
        self.live = kinds.pop()
        self.sources, self.config, self.on_result = sources, config, on_result
        self.workers = config.workers or (1 if self.live else 2)
        limit = runtime_max_batch(segmenter.runtime)
        if config.max_batch is not None and limit is not None and config.max_batch > limit:
            raise InputError(f"max_batch: expected at most {limit}, the largest batch {segmenter.runtime.artifact} "
                             f"takes (its engine's profile), got {config.max_batch}. Rebuild the engine with "
                             f"segedge build ... --max-batch {config.max_batch}, or lower max_batch")
        self.max_batch = config.max_batch or min(len(sources), limit or len(sources))
        self._seg, self._gate = segmenter, model_call_gate(segmenter.runtime, self.workers)
        self.renderers = [Renderer(segmenter.class_names, segmenter.palette, config.render) for _ in sources]
        mode = "live" if self.live else "file"
        self.stats = MultiStreamStats(
            mode=mode, sources=[StreamStats(source=s.spec.text, mode=mode, batch_size=1,
                                            source_frame_count=s.frame_count,
                                            output=str(config.outputs[i]) if config.outputs else None)
                                for i, s in enumerate(sources)],
            outputs=[str(p) for p in config.outputs] if config.outputs else None,
            mosaic=str(config.mosaic) if config.mosaic else None)
        self._slots = [Channel(1, latest=True) if self.live else Channel(config.queue_size) for _ in sources]
        self._results = Channel(2 * self.workers)
        self._arrived = threading.Condition()  # readers notify it after each frame (and at their end)
        self._batch_lock = threading.Lock()
        self._active = list(range(len(sources)))  # sources whose slot has not ended; guarded by _batch_lock
        self._next_batch, self._rotate = 0, 0
        self._stop, self._stats_lock = threading.Event(), threading.Lock()
        self._errors: list[BaseException] = []
        self._workers_left = self.workers
        self._interrupts, self._started = 0, False

    # -- control -----------------------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped") -> None:
        """End the run soon, from any thread: frames not yet inferred are discarded, the rest written."""
        if self.stats.ended == "running":
            self.stats.ended = reason
        self._stop.set()
        self._cancel_inputs()

    def _cancel_inputs(self) -> None:
        for i, ch in enumerate(self._slots):
            self.stats.sources[i].discarded_at_stop += ch.cancel()
        with self._arrived:
            self._arrived.notify_all()

    def _on_sigint(self, *_) -> None:
        """First Ctrl-C: stop reading, write what was already inferred. Second: stop writing too."""
        self._interrupts += 1
        self.stop("interrupted")
        if self._interrupts > 1:
            self._results.cancel()

    def _fail(self, exc: BaseException) -> None:
        """A failure that is not one source's own (the model, an output): ends the whole run."""
        self._errors.append(exc)
        if self.stats.ended == "running":
            self.stats.ended = "error"

    # -- one reader thread per source --------------------------------------------------------------------------
    def _read(self, i: int) -> None:
        src, stats, slot = self.sources[i], self.stats.sources[i], self._slots[i]
        lower_thread_priority(reader_niceness())  # a reopen's decoder threads inherit it too

        def deliver(frame: Frame) -> bool:
            ok = slot.put(frame)
            stats.dropped, stats.skipped_by_source = slot.dropped, getattr(src, "skipped", 0)
            with self._arrived:
                self._arrived.notify_all()
            return ok

        def set_ended(reason: str) -> None:
            if stats.ended == "running":
                stats.ended = reason

        try:
            read_loop(src, stats, deliver, self._stop, max_frames=self.config.max_frames,
                      reconnect_timeout_s=self.config.reconnect_timeout_s, set_ended=set_ended, source_index=i)
        except SourceError as exc:  # this source alone ends; the others run on
            stats.error, stats.ended = str(exc), "error"
            log.warning("%s; the other sources run on", exc)
        except BaseException as exc:  # noqa: BLE001
            stats.error, stats.ended = f"{type(exc).__name__}: {exc}", "error"
            self._fail(exc)
        finally:
            if stats.ended == "running":
                stats.ended = self.stats.ended if self.stats.ended != "running" else "stopped"
            slot.close()
            with self._arrived:
                self._arrived.notify_all()

    # -- batches -----------------------------------------------------------------------------------------------
    def _next_frames(self) -> tuple[int, list[Frame]] | None:
        """The next batch as (number, frames), or None when every source has ended. Live: the newest frame of each
        source that has one (waiting for the first), at most max_batch, starting from a rotating source. Files:
        the next frame of each running source, in lockstep."""
        with self._batch_lock:
            frames: list[Frame] = []
            if self.live:
                with self._arrived:
                    while self._active and not frames:
                        order = self._active[self._rotate % len(self._active):] + \
                            self._active[:self._rotate % len(self._active)]
                        for i in order:
                            if len(frames) >= self.max_batch:
                                break
                            item = self._slots[i].get(timeout=0)
                            if item is END:
                                self._active.remove(i)
                            elif item is not None:
                                frames.append(item)
                        if not frames and self._active:
                            self._arrived.wait(0.2)
                    self._rotate += 1
            else:
                order = self._active[self._rotate % len(self._active):] + \
                    self._active[:self._rotate % len(self._active)] if self._active else []
                for i in order:
                    if len(frames) >= self.max_batch:
                        break
                    item = self._slots[i].get()
                    if item is END:
                        self._active.remove(i)
                    else:
                        frames.append(item)
                if len(self._active) > self.max_batch:  # the sources left out start the next batch
                    self._rotate += self.max_batch
            if not frames:
                return None
            number = self._next_batch
            self._next_batch += 1
            return number, frames

    def _infer(self) -> None:
        try:
            with serial_host_work() if self.workers > 1 else contextlib.nullcontext():
                while True:
                    got = self._next_frames()
                    if got is None:
                        break
                    number, frames = got
                    results, pre, inf, post = self._predict(frames)
                    with self._stats_lock:  # the other worker adds to the same stages
                        self.stats.batch_sizes.append(len(frames))
                        for name, ms in (("preprocess", pre), ("inference", inf), ("postprocess", post)):
                            self.stats.stages[name].add(ms)
                            for f in frames:  # each frame's share of its batch, in its source's stats and HUD
                                self.stats.sources[f.source].add(name, ms / len(frames))
                    if not self._results.put((number, frames, results)):  # the render side is gone
                        for f in frames:
                            self.stats.sources[f.source].discarded_at_stop += 1
                        return
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
            self._stop.set()
            self._cancel_inputs()
        finally:
            with self._stats_lock:
                self._workers_left -= 1
                if not self._workers_left:
                    self._results.close()

    def _predict(self, frames: list[Frame]) -> tuple[list, float, float, float]:
        """One model call for the frames (frames of the same size together), results in the frames' order, and
        preprocess / inference / postprocess ms for the batch."""
        order = sorted(range(len(frames)), key=lambda k: frames[k].image.shape)
        ordered, pre, inf, post = timed_predict(self._seg, [frames[k].image for k in order], self._gate)
        results: list = [None] * len(frames)
        for k, r in zip(order, ordered):
            results[k] = r
        return results, pre, inf, post

    # -- render/writer: the calling thread ---------------------------------------------------------------------
    def run(self) -> MultiStreamStats:
        """Process every source to its end (or stop()/Ctrl-C/max_frames) and return the stats. A source that fails
        ends alone (its error in ``stats.sources[i].error``, listed by ``stats.failed``); a failure of the model or
        an output raises after everything is shut down and finalised."""
        if self._started:
            raise InputError("run: a MultiStreamPipeline runs once, got a second run(). Make a new one (and sources)")
        self._started = True
        cfg = self.config
        fps = cfg.output_fps or next((s.fps for s in self.sources if s.fps), None) or 30.0
        sinks: list[VideoSink | None] = [None] * len(self.sources)
        mosaic_sink, window, mosaic = None, None, None
        try:
            if cfg.outputs:
                sinks = [VideoSink(p, cfg.output_fps or s.fps or fps) for p, s in zip(cfg.outputs, self.sources)]
            if cfg.mosaic or cfg.display:
                mosaic = Mosaic([f"{i}: {s.spec.text}" for i, s in enumerate(self.sources)], cfg.mosaic_size_wh)
            if cfg.mosaic:
                mosaic_sink = VideoSink(cfg.mosaic, fps)
            if cfg.display:
                window = Window(f"segedge: {len(self.sources)} sources")
        except SegEdgeError:
            for s in self.sources:
                s.close()
            raise
        threads = [threading.Thread(target=self._read, args=(i,), name=f"segedge-reader-{i}", daemon=True)
                   for i in range(len(self.sources))]
        threads += [threading.Thread(target=self._infer, name=f"segedge-inference-{w}", daemon=True)
                    for w in range(self.workers)]
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if main else None
        cv2 = require_cv2()
        cv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # the stages already run side by side; restored when the run ends
        self.stats.started_s, self.stats.cpu_started_s = time.perf_counter(), time.process_time()
        for s in self.stats.sources:
            s.started_s = self.stats.started_s
        for t in threads:
            t.start()
        try:
            render_until_done(lambda: self._render_loop(sinks, mosaic, mosaic_sink, window), self._on_sigint,
                              self._fail)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
            self._shutdown(threads, [*sinks, mosaic_sink], window)
            cv2.setNumThreads(cv_threads)
        if self._errors:
            raise self._errors[0]
        return self.stats

    def _render_loop(self, sinks: list[VideoSink | None], mosaic: Mosaic | None, mosaic_sink: VideoSink | None,
                     window: Window | None) -> None:
        pending: list[tuple[int, int, list[Frame], list]] = []  # batches that came before their turn
        expected, tie = 0, 0
        draw = any(s is not None for s in sinks) or self.on_result is not None or mosaic is not None
        while True:
            item = self._results.get(timeout=0.2)  # a timeout lets Ctrl-C in while waiting
            if item is None:
                continue
            if item is END:
                return
            number, frames, results = item
            heapq.heappush(pending, (number, tie, frames, results))
            tie += 1
            while pending and pending[0][0] == expected:
                _, _, frames, results = heapq.heappop(pending)
                expected += 1
                self._render_batch(frames, results, sinks, mosaic, mosaic_sink, window, draw)

    def _render_batch(self, frames: list[Frame], results: list, sinks: list[VideoSink | None], mosaic: Mosaic | None,
                      mosaic_sink: VideoSink | None, window: Window | None, draw: bool) -> None:
        """Draw and write one batch (the mosaic once, after its frames); a window closed with q/Esc stops the run."""
        render_ms = write_ms = 0.0
        for frame, result in zip(frames, results):
            stats = self.stats.sources[frame.source]
            t1 = time.perf_counter()
            picture = self.renderers[frame.source].annotate(frame.image, result, stats.hud_lines()) if draw else None
            t2 = time.perf_counter()
            sink = sinks[frame.source]
            if sink is not None:
                sink.write(picture)
            if mosaic is not None:
                mosaic.update(frame.source, picture)
            if self.on_result is not None:
                self.on_result(frame, result, picture)
            t3 = time.perf_counter()
            render_ms, write_ms = render_ms + (t2 - t1) * 1e3, write_ms + (t3 - t2) * 1e3
            stats.add("render", (t2 - t1) * 1e3)
            stats.add("write", (t3 - t2) * 1e3)
            stats.add("latency", (t3 - frame.captured_s) * 1e3)
            stats.frame_done(t3)
        stop = False
        if mosaic is not None:
            t4 = time.perf_counter()
            if mosaic_sink is not None:
                mosaic_sink.write(mosaic.picture)
            if window is not None and not window.show(mosaic.picture):
                stop = True
            write_ms += (time.perf_counter() - t4) * 1e3
        self.stats.stages["render"].add(render_ms)
        self.stats.stages["write"].add(write_ms)
        if stop:
            self.stop("stopped")

    def _shutdown(self, threads: list[threading.Thread], sinks: list[VideoSink | None], window: Window | None) -> None:
        self._stop.set()
        self._cancel_inputs()
        readers, workers = threads[:len(self.sources)], threads[len(self.sources):]
        deadline = time.perf_counter() + 10.0  # for every thread together: a reader may sit in a network read
        while True:  # batches inferred but never written are counted; a worker never blocks on a full queue
            while (item := self._results.get(timeout=0)) not in (None, END):
                for f in item[1]:
                    self.stats.sources[f.source].discarded_at_stop += 1
            if not any(t.is_alive() for t in workers) or time.perf_counter() > deadline:
                break
            for t in workers:
                t.join(timeout=0.01)
        self._results.cancel()
        for t in readers:
            t.join(timeout=max(0.0, deadline - time.perf_counter()))
        for sink in sinks:
            if sink is not None:
                sink.close()
        if window is not None:
            window.close()
        for i, (src, t) in enumerate(zip(self.sources, readers)):
            if t.is_alive():
                log.warning("source %s: the reader is still blocked in read(); leaving it open", src.spec.text)
            else:
                src.close()
            s = self.stats.sources[i]
            if s.ended == "running":
                s.ended = self.stats.ended if self.stats.ended != "running" else "stopped"
        if self.stats.ended == "running":
            ends = {s.ended for s in self.stats.sources}
            self.stats.ended = "max_frames" if ends == {"max_frames"} else "end_of_stream"
        self.stats.finished_s = time.perf_counter()
        self.stats.cpu_s = time.process_time() - self.stats.cpu_started_s
        for s in self.stats.sources:
            s.finished_s = self.stats.finished_s
        if self.config.stats_path:
            self.stats.write_json(self.config.stats_path)


