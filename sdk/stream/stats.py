"""Stream statistics: per-stage timings (p50/p90/p95/p99), frame counts, drops, source gaps; a table and JSON.

Stages, in ms per frame (a batched stage's time is divided by the batch size): capture = the source's read()
(decoding; for a camera also the wait for its next frame); preprocess = resize + normalise; inference =
runtime.infer (with the mask head it includes the in-graph upsampling and argmax); postprocess = outputs -> results
(the logits head's host upsampling + argmax); render = overlay + legend + HUD; write = mp4 encoding, the window and
on_result; latency = frame available -> written.

Memory stays flat however long a stream runs: each stage keeps its last ``window`` samples in a fixed ring
(percentiles over that window; count, mean and max over the whole run). Each stage is written by one thread.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

STAGES = ("capture", "preprocess", "inference", "postprocess", "render", "write", "latency")
# a multi-stream run also times each batch as a whole, in ms per batch
BATCH_STAGES = ("preprocess", "inference", "postprocess", "render", "write")


class StageTimes:
    """Milliseconds of one stage: a fixed ring of the last ``window`` samples plus running count/sum/max."""

    def __init__(self, window: int = 16384) -> None:
        self._ring = np.full(window, np.nan)  # touched now, so resident memory does not grow while it fills
        self.count, self.total_ms, self.max_ms, self.last_ms = 0, 0.0, 0.0, 0.0
        self.recent_ms = 0.0  # exponential moving average for the HUD

    def add(self, ms: float) -> None:
        self._ring[self.count % len(self._ring)] = ms
        self.count += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)
        self.last_ms = ms
        self.recent_ms = ms if self.count == 1 else 0.9 * self.recent_ms + 0.1 * ms

    def values(self) -> np.ndarray:
        return self._ring[: min(self.count, len(self._ring))]

    def summary(self) -> dict:
        if not self.count:
            return {"count": 0}
        p50, p90, p95, p99 = np.percentile(self.values(), [50, 90, 95, 99])
        return {"count": self.count, "mean_ms": round(self.total_ms / self.count, 3), "p50_ms": round(p50, 3),
                "p90_ms": round(p90, 3), "p95_ms": round(p95, 3), "p99_ms": round(p99, 3),
                "max_ms": round(self.max_ms, 3)}


def write_json(data: dict, path: str | Path) -> Path:
    """``data`` as indented JSON at ``path`` (its folder made if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


@dataclass
class SourceGap:
    """A live source that dropped and was reopened: after which frame, for how long, after how many attempts."""

    after_frame: int
    gap_s: float
    attempts: int
    reason: str


@dataclass
class StreamStats:
    """Everything measured during one run. ``dropped``: live frames read but replaced by a newer one before
    inference; ``skipped_by_source``: frames a paced replay skipped because the reader came late (a camera
    overwrites them); ``discarded_at_stop``: frames read but left unprocessed when the run was stopped."""

    source: str = ""
    mode: str = "file"  # "file" (lossless) or "live" (latest frame)
    batch_size: int = 1
    frames_read: int = 0
    frames_processed: int = 0
    dropped: int = 0
    skipped_by_source: int = 0
    discarded_at_stop: int = 0
    source_frame_count: int | None = None
    ended: str = "running"  # then end_of_stream, max_frames, stopped, interrupted or error
    error: str | None = None
    output: str | None = None
    stats_path: str | None = None
    gaps: list[SourceGap] = field(default_factory=list)
    stages: dict[str, StageTimes] = field(default_factory=lambda: {s: StageTimes() for s in STAGES})
    started_s: float = field(default_factory=time.perf_counter)
    finished_s: float | None = None
    _fps_ema: float = 0.0
    _last_done_s: float | None = None

    def add(self, stage: str, ms: float) -> None:
        self.stages[stage].add(ms)

    def frame_done(self, now_s: float) -> None:
        """One frame rendered and written: counts it and updates the HUD's FPS."""
        self.frames_processed += 1
        if self._last_done_s is not None and now_s > self._last_done_s:
            fps = 1.0 / (now_s - self._last_done_s)
            self._fps_ema = fps if self._fps_ema == 0 else 0.9 * self._fps_ema + 0.1 * fps
        self._last_done_s = now_s

    @property
    def duration_s(self) -> float:
        return (self.finished_s or time.perf_counter()) - self.started_s

    @property
    def source_ended_early(self) -> bool:
        """A file that stopped decoding before its header's frame count: truncated or corrupt."""
        return (self.ended == "end_of_stream" and self.source_frame_count is not None
                and self.mode == "file" and 0 < self.frames_read < self.source_frame_count - 1)

    def hud_lines(self) -> list[str]:
        s = self.stages
        ms = {k: s[k].recent_ms for k in ("capture", "preprocess", "inference", "postprocess", "render")}
        return [f"{self._fps_ema:.1f} FPS  latency {s['latency'].recent_ms:.0f} ms"
                + (f"  dropped {self.dropped + self.skipped_by_source}" if self.mode == "live" else ""),
                "cap {capture} pre {preprocess} inf {inference} post {postprocess} render {render} ms".format(
                    **{k: f"{v:.1f}" if v < 10 else f"{v:.0f}" for k, v in ms.items()})]

    def to_dict(self) -> dict:
        d = {"source": self.source, "mode": self.mode, "batch_size": self.batch_size, "ended": self.ended,
             "error": self.error, "frames_read": self.frames_read, "frames_processed": self.frames_processed,
             "dropped": self.dropped, "skipped_by_source": self.skipped_by_source,
             "discarded_at_stop": self.discarded_at_stop,
             "source_frame_count": self.source_frame_count, "source_ended_early": self.source_ended_early,
             "duration_s": round(self.duration_s, 3),
             "throughput_fps": round(self.frames_processed / self.duration_s, 3) if self.duration_s > 0 else None,
             "stages_ms": {k: v.summary() for k, v in self.stages.items()},
             "gaps": [vars(g) for g in self.gaps], "output": self.output}
        return d

    def write_json(self, path: str | Path) -> Path:
        self.stats_path = str(path)
        return write_json(self.to_dict(), path)

    def table(self) -> str:
        """Per-stage p50/p90/p99 and the frame counts, as printed at the end of ``segedge stream``."""
        rows = [f"{'stage':<12}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'count':>8}"]
        for name, times in self.stages.items():
            s = times.summary()
            if s["count"]:
                rows.append(f"{name:<12}{s['p50_ms']:>9.1f}{s['p90_ms']:>9.1f}{s['p99_ms']:>9.1f}"
                            f"{s['mean_ms']:>9.1f}{s['count']:>8}")
        d = self.to_dict()
        rows.append(f"{d['frames_processed']} of {d['frames_read']} frames processed in {d['duration_s']:.1f} s "
                    f"({d['throughput_fps'] or 0:.2f} FPS, {self.mode} mode); dropped {self.dropped}"
                    + (f" (+{self.skipped_by_source} skipped by the source)" if self.skipped_by_source else "")
                    + f", discarded at stop {self.discarded_at_stop}; ended: {self.ended}")
        for g in self.gaps:
            rows.append(f"source gap after frame {g.after_frame}: {g.gap_s:.1f} s, {g.attempts} attempt(s) "
                        f"({g.reason})")
        if self.source_ended_early:
            rows.append(f"warning: the file ended after {self.frames_read} of its {self.source_frame_count} frames "
                        "(truncated or corrupt?)")
        return "\n".join(rows)


@dataclass
class MultiStreamStats:
    """Per-source stats (``sources[i]``: frames read, processed, dropped, capture and capture-to-mask latency,
    gaps, its end and error) and the run's: batches and their sizes, per-batch stage times (ms per batch), the
    aggregate throughput, and this process's CPU time per processed frame."""

    mode: str
    sources: list[StreamStats]
    batch_sizes: list[int] = field(default_factory=list)
    stages: dict[str, StageTimes] = field(default_factory=lambda: {s: StageTimes() for s in BATCH_STAGES})
    ended: str = "running"
    outputs: list[str] | None = None
    mosaic: str | None = None
    stats_path: str | None = None
    started_s: float = field(default_factory=time.perf_counter)
    finished_s: float | None = None
    cpu_started_s: float = field(default_factory=time.process_time)
    cpu_s: float | None = None

    @property
    def duration_s(self) -> float:
        return (self.finished_s or time.perf_counter()) - self.started_s

    @property
    def frames_processed(self) -> int:
        return sum(s.frames_processed for s in self.sources)

    @property
    def failed(self) -> list[StreamStats]:
        """The sources that ended with an error (the others ran on)."""
        return [s for s in self.sources if s.error]

    def to_dict(self) -> dict:
        d = self.duration_s
        done = self.frames_processed
        sources = []
        for s in self.sources:
            one = s.to_dict()
            one["throughput_fps"] = round(s.frames_processed / d, 3) if d > 0 else None
            sources.append(one)
        sizes = np.bincount(self.batch_sizes).tolist() if self.batch_sizes else []
        cpu = self.cpu_s if self.cpu_s is not None else time.process_time() - self.cpu_started_s
        return {"mode": self.mode, "ended": self.ended, "sources": sources,
                "frames_processed": done, "duration_s": round(d, 3),
                "throughput_fps": round(done / d, 3) if d > 0 else None,
                "batches": len(self.batch_sizes),
                "mean_batch": round(float(np.mean(self.batch_sizes)), 3) if self.batch_sizes else None,
                "batch_size_counts": {str(k): v for k, v in enumerate(sizes) if v},
                "cpu_ms_per_frame": round(cpu * 1e3 / done, 3) if done else None,
                "stages_ms_per_batch": {k: v.summary() for k, v in self.stages.items()},
                "outputs": self.outputs, "mosaic": self.mosaic}

    def write_json(self, path: str | Path) -> Path:
        self.stats_path = str(path)
        return write_json(self.to_dict(), path)

    def table(self) -> str:
        """One row per source (FPS, capture-to-mask p50/p95, read/processed/dropped, gaps, end), then the run's."""
        d = self.to_dict()
        rows = [f"{'#':>2} {'source':<34}{'FPS':>7}{'p50 ms':>8}{'p95 ms':>8}{'read':>7}{'done':>7}{'dropped':>8}"
                f"{'gaps':>5}  ended"]
        for i, s in enumerate(d["sources"]):
            lat = s["stages_ms"]["latency"]
            name = s["source"] if len(s["source"]) <= 34 else "..." + s["source"][-31:]
            rows.append(f"{i:>2} {name:<34}{s['throughput_fps'] or 0:>7.2f}{lat.get('p50_ms', float('nan')):>8.1f}"
                        f"{lat.get('p95_ms', float('nan')):>8.1f}{s['frames_read']:>7}{s['frames_processed']:>7}"
                        f"{s['dropped'] + s['skipped_by_source']:>8}{len(s['gaps']):>5}  {s['ended']}")
        inf = d["stages_ms_per_batch"]["inference"]
        rows.append(f"{d['frames_processed']} frames from {len(self.sources)} sources in {d['duration_s']:.1f} s: "
                    f"{d['throughput_fps'] or 0:.2f} FPS in all ({self.mode} mode), {d['batches']} batches of "
                    f"{d['mean_batch'] or 0:.2f} frames on average, inference p50 {inf.get('p50_ms', 0):.1f} ms a "
                    f"batch, CPU {d['cpu_ms_per_frame'] or 0:.1f} ms a frame; ended: {self.ended}")
        for i, s in enumerate(self.sources):
            for g in s.gaps:
                rows.append(f"source {i} gap after frame {g.after_frame}: {g.gap_s:.1f} s, {g.attempts} attempt(s) "
                            f"({g.reason})")
            if s.error:
                rows.append(f"source {i} failed: {s.error}")
        return "\n".join(rows)
