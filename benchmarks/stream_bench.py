"""Stream benchmark (a command, not a test): file-mode end-to-end throughput side by side with the model-only
throughput of the same artifact, live-mode latency with the video paced at 30 fps, and a memory soak.

    python -m benchmarks.stream_bench out/b0-fp32 --video ../shared/video/sidewalk.mp4 --frames 300 --soak-frames 10000

model only: ``Segmenter.predict_batch`` on frames already decoded in memory (preprocess + runtime + postprocess),
one call after another, with the artifact's default runtime options (what a loop over ``seg(frame)`` gets);
runtime only: ``runtime.infer`` on one preprocessed tensor. file mode: the full pipeline (decode, inference,
overlay + legend + HUD, mp4 write) on the video, looped to ``--frames``, with the runtime options ``segedge stream``
picks for a file (``stream_runtime_options``: OpenVINO in throughput mode, two streams). model only, as file mode
runs it: the same runtime as file mode, two threads calling ``predict_batch`` at once as the pipeline's two
inference workers do, without decode, render or write (what the pipeline costs beyond the model in its own
configuration). The two are measured alternately
``--repeats`` times in one process, and the medians compared. live: the video replayed as a 30 fps camera through
the latest-frame policy; latency = frame available -> rendered and written. soak: file mode looped for
``--soak-frames``, VmRSS from /proc/self/status sampled every 100 frames, growth measured from after warm-up.
Each throughput run also records this process's CPU time per frame (all its threads; ``cpu_ms_per_frame``): on
a machine whose cores the model already fills, file mode's throughput is bounded by that budget, not by any
one stage.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sdk.timing import cpu_times, environment
from sdk.core.errors import SegEdgeError
from sdk.core.parallel import serial_host_work
from sdk.stream.pipeline import StreamConfig, StreamPipeline, stream_runtime_options
from sdk.segmenter import Segmenter
from sdk.stream.sources import open_source

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "video" / "sidewalk.mp4"


def rss_mib() -> float:
    """This process's resident memory (VmRSS) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise SegEdgeError("VmRSS: expected a line in /proc/self/status, got none (Linux only)")


class OtherLoad:
    """CPU used by other processes while a block runs, in cores (from /proc/stat minus this process's own time):
    benchmarks on a shared machine say how much of it they had."""

    def __enter__(self) -> "OtherLoad":
        self._start = (self._busy(), self._own(), time.perf_counter())
        return self

    def __exit__(self, *exc) -> None:
        busy, own, wall = self._busy(), self._own(), time.perf_counter()
        ticks = os.sysconf("SC_CLK_TCK")
        self.cores = max(0.0, ((busy - self._start[0]) - (own - self._start[1])) / ticks / (wall - self._start[2]))

    @staticmethod
    def _busy() -> int:
        times = cpu_times()
        if times is None:
            raise SegEdgeError("/proc/stat: expected CPU times, found none (Linux only)")
        return times[0] + times[1]  # busy + stolen: all but idle and iowait

    @staticmethod
    def _own() -> int:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime


def wait_idle(max_s: float, threshold_cores: float = 0.3) -> float:
    """Wait (up to max_s) until other processes use less than threshold_cores over 2 s; returns the last load."""
    deadline, cores = time.perf_counter() + max_s, 0.0
    while True:
        with OtherLoad() as load:
            time.sleep(2.0)
        cores = load.cores
        if cores < threshold_cores or time.perf_counter() >= deadline:
            return cores


THROUGHPUT_RUNS = ("runtime_only", "model_only", "model_only_parallel", "file_mode")


def _decode(video: str, n: int) -> list[np.ndarray]:
    src = open_source(video)
    frames = [f for f in (src.read() for _ in range(n)) if f is not None]
    src.close()
    return frames


def model_only(seg: Segmenter, frames: list[np.ndarray], n: int, batch_size: int) -> dict:
    """Segmenter.predict_batch over in-memory BGR frames (cycled) for n frames."""
    bgr = Segmenter(seg.runtime, color_order="bgr")
    bgr.predict_batch(frames[:batch_size], batch_size=batch_size)  # warm-up
    t0, c0, done = time.perf_counter(), time.process_time(), 0
    while done < n:
        chunk = [frames[(done + i) % len(frames)] for i in range(min(batch_size, n - done))]
        bgr.predict_batch(chunk, batch_size=batch_size)
        done += len(chunk)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": n, "seconds": round(dt, 3), "fps": round(n / dt, 3), "cpu_ms_per_frame": round(cpu / n * 1e3, 2)}


def model_only_parallel(seg: Segmenter, frames: list[np.ndarray], n: int, batch_size: int, workers: int = 2) -> dict:
    """model_only with ``workers`` threads calling predict_batch at once on the same Segmenter (frames split
    between them), as the stream pipeline's inference workers do."""
    import threading

    bgr = Segmenter(seg.runtime, color_order="bgr")
    bgr.predict_batch(frames[:batch_size], batch_size=batch_size)  # warm-up
    share = [n // workers + (w < n % workers) for w in range(workers)]

    def work(w: int) -> None:
        done = 0
        with serial_host_work():  # as the pipeline's file-mode workers run
            while done < share[w]:
                chunk = [frames[(w + done + i) % len(frames)] for i in range(min(batch_size, share[w] - done))]
                bgr.predict_batch(chunk, batch_size=batch_size)
                done += len(chunk)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": n, "seconds": round(dt, 3), "fps": round(n / dt, 3), "cpu_ms_per_frame": round(cpu / n * 1e3, 2),
            "workers": workers}


def runtime_only(seg: Segmenter, frame: np.ndarray, n: int, batch_size: int) -> dict:
    """runtime.infer on one preprocessed batch, repeated: the model alone."""
    from sdk.core.manifest import model_feeds
    from sdk.core.preprocess import preprocess

    x = preprocess([frame] * batch_size, seg.manifest.preprocess, color_order="bgr")
    feeds = model_feeds(seg.manifest, x, frame.shape[:2])
    seg.runtime.infer(feeds)
    calls = max(1, n // batch_size)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        seg.runtime.infer(feeds)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": calls * batch_size, "seconds": round(dt, 3), "fps": round(calls * batch_size / dt, 3),
            "cpu_ms_per_frame": round(cpu / (calls * batch_size) * 1e3, 2)}


def file_mode(seg: Segmenter, video: str, n: int, batch_size: int, out_dir: Path) -> dict:
    """The whole pipeline, lossless, writing an mp4 (deleted afterwards)."""
    out = out_dir / "file_mode.mp4"
    c0 = time.process_time()
    stats = StreamPipeline(seg, open_source(video, loop=True),
                           StreamConfig(max_frames=n, batch_size=batch_size, output=out)).run()
    cpu = time.process_time() - c0
    d = stats.to_dict()
    out.unlink(missing_ok=True)
    return {"frames": d["frames_processed"], "seconds": d["duration_s"], "fps": d["throughput_fps"],
            "cpu_ms_per_frame": round(cpu / max(1, d["frames_processed"]) * 1e3, 2), "stages_ms": d["stages_ms"],
            "table": stats.table()}


def live_mode(seg: Segmenter, video: str, n: int, fps: float) -> dict:
    """The video as a live camera at ``fps``: latency (available -> rendered) and drops."""
    latency: list[float] = []
    stats = StreamPipeline(seg, open_source(video, loop=True, pace_fps=fps), StreamConfig(max_frames=n),
                           on_result=lambda f, r, p: latency.append((time.perf_counter() - f.captured_s) * 1e3)).run()
    lat = np.asarray(latency)
    third = max(1, len(lat) // 3)
    p = np.percentile(lat, [50, 90, 99])
    return {"pace_fps": fps, "frames_read": stats.frames_read, "processed": stats.frames_processed,
            "dropped": stats.dropped, "skipped_by_source": stats.skipped_by_source,
            "processed_fps": round(stats.frames_processed / stats.duration_s, 3),
            "latency_ms": {"p50": round(p[0], 1), "p90": round(p[1], 1), "p99": round(p[2], 1),
                           "max": round(float(lat.max()), 1)},
            "latency_p50_first_third_ms": round(float(np.median(lat[:third])), 1),
            "latency_p50_last_third_ms": round(float(np.median(lat[-third:])), 1),
            "table": stats.table()}


def soak(seg: Segmenter, video: str, n: int, out_dir: Path, *, write: bool = True) -> dict:
    """File mode looped for n frames; VmRSS every 100 frames while it runs; growth from the sample after warm-up
    to the last sample in the run (and the largest)."""
    samples: list[tuple[int, float]] = []
    warm = min(max(100, n // 20), n - 1)

    def sample(frame, result, picture) -> None:
        if frame.index % 100 == 0 or frame.index in (warm, n - 1):
            samples.append((frame.index, rss_mib()))

    out = out_dir / "soak.mp4" if write else None
    stats = StreamPipeline(seg, open_source(video, loop=True), StreamConfig(max_frames=n, output=out),
                           on_result=sample).run()
    after_run = rss_mib()  # threads joined, writer and source released
    if out is not None:
        out.unlink(missing_ok=True)
    base = next(m for i, m in samples if i >= warm)
    after = [m for i, m in samples if i >= warm]
    return {"frames": stats.frames_processed, "seconds": round(stats.duration_s, 1),
            "fps": round(stats.frames_processed / stats.duration_s, 3), "warmup_frames": warm,
            "rss_mib_baseline": round(base, 1), "rss_mib_end": round(after[-1], 1), "rss_mib_max": round(max(after), 1),
            "rss_growth_pct": round(100 * (after[-1] - base) / base, 2),
            "rss_max_growth_pct": round(100 * (max(after) - base) / base, 2), "rss_mib_after_run": round(after_run, 1),
            "rss_samples": [(i, round(m, 1)) for i, m in samples]}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.stream_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("artifact")
    ap.add_argument("--video", default=str(DEFAULT_VIDEO))
    ap.add_argument("--frames", type=int, default=300, help="frames per throughput run and for the live run")
    ap.add_argument("--repeats", type=int, default=2, help="alternating model-only / file-mode rounds")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    ap.add_argument("--live-fps", type=float, default=30.0)
    ap.add_argument("--soak-frames", type=int, default=0, help="memory soak length (0: skip), e.g. 10000")
    ap.add_argument("--soak-no-output", action="store_true", help="soak without writing the mp4")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before each measurement wait up to this many seconds for other processes to go quiet "
                         "(shared machines); the load seen during each one is reported either way")
    ap.add_argument("--json", default="out/stream_bench.json")
    args = ap.parse_args(argv)

    options = {"threads": args.threads} if args.threads else {}
    report: dict = {"schema": "segedge.stream_bench/1",  # benchmarks/make_docs.py renders it (docs/BENCHMARKS.md)
                    "command": "python -m benchmarks.stream_bench " + shlex.join(sys.argv[1:] if argv is None
                                                                                 else argv),
                    "environment": environment(), "artifact": args.artifact, "video": args.video,
                    "batch_size": args.batch_size, "cpu": _cpu(),
                    "cpu_count": os.cpu_count(), "threads": args.threads,
                    "python": sys.version.split()[0], "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    file_options = {**options, **stream_runtime_options(args.artifact, "auto", live=False)}
    with contextlib.ExitStack() as stack:
        seg = stack.enter_context(Segmenter.from_artifact(args.artifact, **options))
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        # file mode's own runtime only where its options differ (OpenVINO: throughput mode), else the same one
        file_seg = seg if file_options == options else stack.enter_context(
            Segmenter.from_artifact(args.artifact, **file_options))
        m = seg.manifest
        size = m.preprocess.size_hw
        report["model"] = {"runtime": seg.runtime.describe(), "precision": m.precision, "head": m.head,
                           "upsample": m.upsample, "network_hw": list(size) if size else "frame size",
                           "file_mode_runtime": file_seg.runtime.describe()}
        frames = _decode(args.video, 32)
        report["frame_hw"] = list(frames[0].shape[:2])
        rounds: list[dict[str, Any]] = []
        for _ in range(args.repeats):
            rnd: dict[str, Any] = {}
            if args.wait_idle:
                wait_idle(args.wait_idle)
            for name, fn in (("runtime_only", lambda: runtime_only(seg, frames[0], args.frames, args.batch_size)),
                             ("model_only", lambda: model_only(seg, frames, args.frames, args.batch_size)),
                             ("model_only_parallel", lambda: model_only_parallel(file_seg, frames, args.frames,
                                                                                 args.batch_size)),
                             ("file_mode", lambda: file_mode(file_seg, args.video, args.frames, args.batch_size,
                                                             Path(tmp)))):
                with OtherLoad() as load:
                    rnd[name] = fn()
                rnd[name]["other_load_cores"] = round(load.cores, 2)
            rnd["file_vs_model_only"] = round(rnd["file_mode"]["fps"] / rnd["model_only"]["fps"], 3)
            rnd["file_vs_model_only_parallel"] = round(rnd["file_mode"]["fps"] / rnd["model_only_parallel"]["fps"], 3)
            rounds.append(rnd)
        med = {k: statistics.median(r[k]["fps"] for r in rounds) for k in THROUGHPUT_RUNS}
        report["throughput"] = {
            "rounds": [{k: ({kk: vv for kk, vv in v.items() if kk != "table"} if isinstance(v, dict) else v)
                        for k, v in r.items()} for r in rounds],
            "median_fps": med, "file_vs_model_only_median_of_rounds": statistics.median(
                r["file_vs_model_only"] for r in rounds),
            "file_vs_model_only": round(med["file_mode"] / med["model_only"], 3),
            "file_vs_model_only_parallel": round(med["file_mode"] / med["model_only_parallel"], 3),
            "file_vs_runtime_only": round(med["file_mode"] / med["runtime_only"], 3)}
        if args.wait_idle:
            wait_idle(args.wait_idle)
        with OtherLoad() as load:
            report["live"] = live_mode(seg, args.video, args.frames, args.live_fps)
        report["live"]["other_load_cores"] = round(load.cores, 2)
        if args.soak_frames:
            if args.wait_idle:
                wait_idle(args.wait_idle)
            with OtherLoad() as load:
                report["soak"] = soak(file_seg, args.video, args.soak_frames, Path(tmp), write=not args.soak_no_output)
            report["soak"]["other_load_cores"] = round(load.cores, 2)

    print(_table(report, rounds))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    report["live"].pop("table")
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"json: {path}")
    return 0


def _table(r: dict, rounds: list[dict]) -> str:
    t, lv = r["throughput"], r["live"]
    model = r["model"]
    lines = [f"stream benchmark: {r['artifact']} ({model['precision']}, {model['head']} head {model['upsample']}, "
             f"network {model['network_hw']}, {model['runtime']})",
             f"on {r['cpu']} ({r['cpu_count']} cores); video {r['video']} {r['frame_hw'][0]}x{r['frame_hw'][1]}",
             f"{'throughput, batch ' + str(r['batch_size']):<34}"
             + "".join(f"{'round ' + str(i + 1):>10}" for i in range(len(rounds))) + f"{'median':>10}"]
    names = {"runtime_only": "runtime only (infer), FPS", "model_only": "model only (Segmenter), FPS",
             "model_only_parallel": "model only, 2 workers as file, FPS", "file_mode": "file mode end-to-end, FPS"}
    for k, label in names.items():
        if k not in rounds[0]:  # JSON from before the parallel row
            continue
        lines.append(f"{label:<34}" + "".join(f"{rd[k]['fps']:>10.2f}" for rd in rounds)
                     + f"{t['median_fps'][k]:>10.2f}")
        lines.append(f"{'  CPU ms per frame (this process)':<34}" + "".join(f"{rd[k]['cpu_ms_per_frame']:>10.2f}"
                                                                           for rd in rounds))
        lines.append(f"{'  other processes, cores':<34}" + "".join(f"{rd[k]['other_load_cores']:>10.2f}"
                                                                  for rd in rounds))
    lines.append(f"{'file mode / model only':<34}" + "".join(f"{rd['file_vs_model_only']:>9.3f}x" for rd in rounds)
                 + f"{t['file_vs_model_only_median_of_rounds']:>9.3f}x")
    lines.append(f"ratio of the medians: file mode / model only {t['file_vs_model_only']:.3f}x, file mode / model only "
                 f"with 2 workers {t.get('file_vs_model_only_parallel', float('nan')):.3f}x, file mode / runtime "
                 f"only {t['file_vs_runtime_only']:.3f}x")
    lines.append(f"runtime: {model['runtime']}; file mode and its model-only row: "
                 f"{model.get('file_mode_runtime', model['runtime'])}")
    lines.append("file mode stages (last round):")
    lines.append(rounds[-1]["file_mode"]["table"])
    lat = lv["latency_ms"]
    lines.append(f"live, paced at {lv['pace_fps']:g} fps: {lv['processed']} of {lv['frames_read']} frames processed "
                 f"({lv['processed_fps']:.2f} FPS), dropped {lv['dropped']} (+{lv['skipped_by_source']} skipped by the "
                 f"source); latency capture->rendered p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max "
                 f"{lat['max']} ms; p50 first third {lv['latency_p50_first_third_ms']} ms, last third "
                 f"{lv['latency_p50_last_third_ms']} ms (other processes {lv['other_load_cores']:.2f} cores)")
    if "soak" in r:
        s = r["soak"]
        lines.append(f"soak: {s['frames']} frames in {s['seconds']} s ({s['fps']:.2f} FPS); VmRSS after "
                     f"{s['warmup_frames']} warm-up frames {s['rss_mib_baseline']} MiB, end {s['rss_mib_end']} MiB, "
                     f"max {s['rss_mib_max']} MiB (after the run {s['rss_mib_after_run']} MiB): growth "
                     f"{s['rss_growth_pct']:+.2f} % (max "
                     f"{s['rss_max_growth_pct']:+.2f} %; other processes {s['other_load_cores']:.2f} cores)")
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SegEdgeError as exc:
        print(f"stream_bench: error: {exc}", file=sys.stderr)
        sys.exit(1)
