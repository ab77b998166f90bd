"""Many-camera benchmark (a command, not a test): one ``segedge stream`` with N sources against N separate
``segedge stream`` processes on the same sources and against the model alone at the same batch, for file sources
(every frame) and live RTSP cameras served by GStreamer's RTSP server on 127.0.0.1; plus reconnects after a killed
camera server.

    python -m benchmarks.multi_stream_bench out/b0-288-ov-int8 out/b0-288-ort-int8 --sources 1 2 4 8 \\
        --json docs/benchmarks/multi_stream.json

Every variant runs in its own process (ONNX Runtime's spinning workers would slow whatever shares theirs), in
alternating rounds; the table gives medians over rounds. files: the landscape 1280x720 camera clip cut from
../shared/video/sidewalk.mp4 (``camera_clip``), ``--frames`` per source, each source's rendered mp4 written (the
separate processes each write theirs); aggregate FPS = frames processed / the pipeline's own run time (for the
separate processes, the sum of each one's FPS: they run at once, so this flatters them slightly). model only: one
process calling ``Segmenter.predict_batch`` on N decoded frames at a time, one call after another, with the runtime
options the pipeline uses ("2 threads": two such loops at once, as file mode's two inference workers run).
live: N RTSP cameras (one server, one mount each, paced at 10 or 30 fps), ``--live-seconds`` per run; per-camera
FPS segmented, capture-to-mask p50/p95 (capture = when read() returned the frame), drops. CPU ms per frame: the
pipeline's process time over the run / frames (in-run); for N processes, their whole lives / frames (start-up
included, marked so). reconnect: two RTSP servers, the pipeline on one camera from each; one server is killed,
restarted after ``--down-s`` seconds, and the time from its return to the first frame segmented from it again is
measured, ``--reconnect-tries`` times; the other camera's frames during the gap are counted.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "video" / "sidewalk.mp4"
SCHEMA = "segedge.multi_stream_bench/1"
CLI = [sys.executable, "-c", "import sys; from sdk.cli import main; sys.exit(main())"]


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(cmd: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:])} failed ({res.returncode}): {res.stderr.strip()[-800:]}")
    return res


def stream_cmd(artifact: str, sources: list[str], stats: Path, *, frames: int | None, output: Path | None,
               extra: list[str] = ()) -> list[str]:
    cmd = [*CLI, "stream", artifact, "--no-display", "--stats", str(stats)]
    if frames is not None:
        cmd += ["--max-frames", str(frames)]
    for s in sources:
        cmd += ["--source", s]
    if output is not None:
        cmd += ["--output", str(output)]
    return cmd + list(extra)


def run_streams(cmds: list[list[str]], seconds: float | None, env: dict | None = None) -> None:
    """Run the commands at once and wait for them; with ``seconds``, each gets Ctrl-C that long after it says it is
    streaming (its model loaded and its sources open), so every run covers the same stretch of camera time."""
    import signal

    logs = [tempfile.TemporaryFile("w+") for _ in cmds]  # a file, not a pipe: FFmpeg's warnings never block it
    procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
                              env={**os.environ, **(env or {})}) for c, log in zip(cmds, logs)]
    if seconds is not None:
        started = []
        for p in procs:
            for line in p.stdout:  # type: ignore[union-attr]
                if line.startswith("streaming"):
                    break
            started.append(time.perf_counter())
        for p, t in zip(procs, started):
            time.sleep(max(0.0, t + seconds - time.perf_counter()))
            p.send_signal(signal.SIGINT)
    for p, log in zip(procs, logs):
        p.communicate(timeout=900)
        log.seek(0)
        err = log.read()
        log.close()
        if p.returncode != 0:
            raise RuntimeError(f"segedge stream failed ({p.returncode}): {err.strip()[-800:]}")


def summary(ds: list[dict]) -> dict:
    per = [s for d in ds for s in (d["sources"] if "sources" in d else [d])]
    lat = [s["stages_ms"]["latency"] for s in per]
    return {"per_source_fps": [s.get("throughput_fps") for s in per],
            "latency_p50_ms": [x.get("p50_ms") for x in lat], "latency_p95_ms": [x.get("p95_ms") for x in lat],
            "dropped": [s["dropped"] + s["skipped_by_source"] for s in per],
            "processed": [s["frames_processed"] for s in per], "read": [s["frames_read"] for s in per],
            "gaps": [len(s["gaps"]) for s in per]}


def multi_row(artifact: str, sources: list[str], tmp: Path, *, frames: int | None, write: bool,
              seconds: float | None = None, extra: list[str] = (), env: dict | None = None) -> dict:
    stats = tmp / "multi.stats.json"
    out = (tmp / "multi" if len(sources) > 1 else tmp / "multi.mp4") if write else None
    run_streams([stream_cmd(artifact, sources, stats, frames=frames, output=out, extra=extra)], seconds, env)
    d = json.loads(stats.read_text())
    return {"fps": d["throughput_fps"], **summary([d]), "cpu_ms_per_frame": d.get("cpu_ms_per_frame"),
            "mean_batch": d.get("mean_batch", 1.0)}


def separate_row(artifact: str, sources: list[str], tmp: Path, *, frames: int | None, write: bool,
                 seconds: float | None = None) -> dict:
    cpu0 = _children_cpu_s()
    paths = [tmp / f"sep{i}.stats.json" for i in range(len(sources))]
    run_streams([stream_cmd(artifact, [s], p, frames=frames, output=tmp / f"sep{i}.mp4" if write else None)
                 for i, (s, p) in enumerate(zip(sources, paths))], seconds)
    cpu = _children_cpu_s() - cpu0
    ds = [json.loads(p.read_text()) for p in paths]
    done = sum(d["frames_processed"] for d in ds)
    return {"fps": round(sum(d["throughput_fps"] for d in ds), 3), **summary(ds),
            "cpu_ms_per_frame_with_startup": round(cpu * 1e3 / done, 3) if done else None}


def model_row(artifact: str, clip: Path, batch: int, *, live: bool, threads: int, runs: int) -> dict:
    res = _run([sys.executable, "-m", "benchmarks.multi_stream_bench", "--model-only", artifact, "--clip", str(clip),
                "--batch", str(batch), "--runs", str(runs), "--workers", str(threads)]
               + (["--live"] if live else []))
    return json.loads(res.stdout.strip().splitlines()[-1])


def model_only(artifact: str, clip: Path, batch: int, *, live: bool, workers: int, runs: int) -> dict:
    """In this process: ``workers`` threads each calling predict_batch on ``batch`` frames, ``runs`` times."""
    import cv2
    import numpy as np

    from sdk.segmenter import Segmenter
    from sdk.stream.pipeline import stream_runtime_options

    cap = cv2.VideoCapture(str(clip))
    frames = [cap.read()[1] for _ in range(batch)]
    cap.release()
    options = stream_runtime_options(artifact, "auto", live=live, sources=batch)
    with Segmenter.from_artifact(artifact, color_order="bgr", **options) as seg:
        for _ in range(3):
            seg.predict_batch(frames, batch_size=batch)
        times: list[float] = []

        def loop() -> None:
            for _ in range(runs):
                t = time.perf_counter()
                seg.predict_batch(frames, batch_size=batch)
                times.append(time.perf_counter() - t)

        cpu0, t0 = time.process_time(), time.perf_counter()
        threads = [threading.Thread(target=loop) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        n = batch * runs * workers
        return {"fps": round(n / wall, 3), "batch_p50_ms": round(float(np.median(times)) * 1e3, 3),
                "cpu_ms_per_frame": round(cpu * 1e3 / n, 3), "runtime": seg.runtime.describe()}


OV_FORMS = ("requests_throughput", "requests_latency", "sequential_latency", "reshaped_static", "reshaped_dynamic")


def openvino_form(artifact: str, batch: int, form: str, runs: int) -> dict:
    """In this process: one batch of ``batch`` preprocessed frames through OpenVINO directly, in one of OV_FORMS:
    one infer request per frame started together (throughput or latency mode: what the runtime ships), one request
    after another, or the IR reshaped to a static batch / a dynamic batch and run as one request."""
    import numpy as np
    import openvino as ov
    import openvino.properties.hint as hints

    from sdk.core.manifest import read_manifest

    folder = Path(artifact)
    manifest = read_manifest(folder)
    core = ov.Core()
    model = core.read_model(str(folder / manifest.model_file))
    shape = model.input("pixel_values").get_partial_shape()
    h, w = shape[2].get_length(), shape[3].get_length()
    if form == "reshaped_static":
        model.reshape({"pixel_values": ov.PartialShape([batch, 3, h, w])})
    elif form == "reshaped_dynamic":
        model.reshape({"pixel_values": ov.PartialShape([-1, 3, h, w])})
    mode = hints.PerformanceMode.THROUGHPUT if form == "requests_throughput" else hints.PerformanceMode.LATENCY
    compiled = core.compile_model(model, "CPU", {hints.performance_mode: mode})
    x = np.random.default_rng(0).standard_normal((batch, 3, h, w)).astype(np.float32)
    requests = [compiled.create_infer_request() for _ in range(batch)]

    def once() -> None:
        if form.startswith("reshaped"):
            requests[0].infer({"pixel_values": x})
        elif form == "sequential_latency":
            for i in range(batch):
                requests[0].infer({"pixel_values": x[i:i + 1]})
        else:
            for i, r in enumerate(requests):
                r.start_async({"pixel_values": x[i:i + 1]})
            for r in requests:
                r.wait()

    for _ in range(3):
        once()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    ms = float(np.median(times)) * 1e3
    return {"form": form, "batch": batch, "batch_p50_ms": round(ms, 3), "fps": round(batch * 1e3 / ms, 3)}


def openvino_forms_section(artifact: str, counts: list[int], *, rounds: int, runs: int) -> list[dict]:
    rows = []
    for n in counts:
        got: dict[str, list[dict]] = {f: [] for f in OV_FORMS}
        for r in range(rounds):
            for form in OV_FORMS if r % 2 == 0 else OV_FORMS[::-1]:
                res = _run([sys.executable, "-m", "benchmarks.multi_stream_bench", "--ov-form", form, artifact,
                            "--batch", str(n), "--runs", str(runs)])
                got[form].append(json.loads(res.stdout.strip().splitlines()[-1]))
        row = {"batch": n, **{f: median_rows(v) for f, v in got.items()}}
        print(f"  openvino batch {n}: " + ", ".join(f"{f} {row[f]['fps']} FPS" for f in OV_FORMS), flush=True)
        rows.append(row)
    return rows


def median_rows(rows: list[dict]) -> dict:
    out: dict[str, Any] = {"rounds": rows}
    for key in ("fps", "cpu_ms_per_frame", "cpu_ms_per_frame_with_startup", "batch_p50_ms"):
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            out[key] = round(statistics.median(vals), 3)
    for key in ("per_source_fps", "latency_p50_ms", "latency_p95_ms"):
        if rows and key in rows[0]:
            cols = list(zip(*[r[key] for r in rows]))
            out[key] = [round(statistics.median([v for v in c if v is not None]), 3) if any(
                v is not None for v in c) else None for c in cols]
    for key in ("dropped", "processed", "read", "gaps"):
        if rows and key in rows[0]:
            out[key] = rows[-1][key]
    return out


def files_section(artifact: str, clip: Path, counts: list[int], *, frames: int, rounds: int, runs: int,
                  write: bool) -> list[dict]:
    rows = []
    for n in counts:
        sources = [str(clip)] * n
        got: dict[str, list[dict]] = {"multi": [], "separate": [], "model": [], "model_2threads": []}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(rounds):
                order = ["multi", "separate", "model", "model_2threads"]
                for variant in order if r % 2 == 0 else order[::-1]:
                    if variant == "multi":
                        got[variant].append(multi_row(artifact, sources, Path(tmp), frames=frames, write=write))
                    elif variant == "separate":
                        got[variant].append(separate_row(artifact, sources, Path(tmp), frames=frames, write=write))
                    else:
                        got[variant].append(model_row(artifact, clip, n, live=False, runs=runs,
                                                      threads=2 if variant == "model_2threads" else 1))
                    print(f"  files n={n} round {r} {variant}: {got[variant][-1]['fps']} FPS", flush=True)
        row = {"sources": n, **{k: median_rows(v) for k, v in got.items()}}
        m, s, o, o2 = (row[k]["fps"] for k in ("multi", "separate", "model", "model_2threads"))
        row["vs_separate"] = round(m / s, 3)
        row["vs_model_only"] = round(m / o, 3)
        row["vs_model_only_2threads"] = round(m / o2, 3)
        rows.append(row)
    return rows


def live_section(artifact: str, video: Path, counts: list[int], rates: list[int], *, seconds: float,
                 clip_dir: Path, runs: int, separate: bool, workers: list[int], niceness: list[int]) -> list[dict]:
    from benchmarks.camera_servers import RtspServer, camera_clip

    rows = []
    for fps in rates:
        clip = camera_clip(video, clip_dir / f"camera-{fps}fps.mp4", seconds=seconds + 20, fps=fps)
        for n in counts:
            with tempfile.TemporaryDirectory() as tmp, RtspServer([clip] * n) as server:
                row: dict[str, Any] = {"camera_fps": fps, "sources": n, "workers": workers[0] if n > 1 else 1}
                row["multi"] = multi_row(artifact, server.urls, Path(tmp), frames=None, write=False, seconds=seconds,
                                         extra=["--workers", str(workers[0])] if n > 1 else [])
                for w in workers[1:] if n > 1 else []:  # the same cameras with another worker count
                    row[f"multi_workers{w}"] = multi_row(artifact, server.urls, Path(tmp), frames=None, write=False,
                                                         seconds=seconds, extra=["--workers", str(w)])
                for nice in niceness if n > 1 else []:  # the same cameras, readers at another priority
                    row[f"multi_niceness{nice}"] = multi_row(
                        artifact, server.urls, Path(tmp), frames=None, write=False, seconds=seconds,
                        extra=["--workers", str(workers[0])], env={"SEGEDGE_READER_NICENESS": str(nice)})
                if separate:
                    row["separate"] = separate_row(artifact, server.urls, Path(tmp), frames=None, write=False,
                                                   seconds=seconds)
            row["model"] = model_row(artifact, clip, n, live=True, threads=1, runs=runs)
            per = row["multi"]["per_source_fps"]
            row["slowest_vs_mean"] = round(min(per) / (sum(per) / len(per)), 3) if per and min(per) else 0.0
            row["p95_vs_batch_latency"] = round(max(row["multi"]["latency_p95_ms"]) / row["model"]["batch_p50_ms"],
                                                3)
            print(f"  live {fps} fps n={n}: per camera {per} FPS, p95 {row['multi']['latency_p95_ms']} ms, "
                  f"dropped {row['multi']['dropped']}", flush=True)
            rows.append(row)
    return rows


def reconnect_section(artifact: str, video: Path, clip_dir: Path, *, tries: int, down_s: float) -> dict:
    """In this process (no timing comparison here): a pipeline on two cameras from two servers; server A is killed,
    restarted ``down_s`` later; the time from its return to A's next segmented frame."""
    from benchmarks.camera_servers import RtspServer, camera_clip
    from sdk.segmenter import Segmenter
    from sdk.stream.multi import MultiStreamConfig, MultiStreamPipeline
    from sdk.stream.sources import open_sources

    clip = camera_clip(video, clip_dir / "camera-10fps.mp4", seconds=60, fps=10)
    results = []
    with Segmenter.from_artifact(artifact) as seg:
        for t in range(tries):
            with RtspServer([clip]) as a, RtspServer([clip]) as b:
                seen: dict[int, list[float]] = {0: [], 1: []}
                sources = open_sources([a.urls[0], b.urls[0]])
                pipe = MultiStreamPipeline(seg, sources, MultiStreamConfig(reconnect_timeout_s=30),
                                           on_result=lambda f, r, p: seen[f.source].append(time.perf_counter()))
                runner = threading.Thread(target=pipe.run)
                runner.start()
                time.sleep(4.0)
                killed = time.perf_counter()
                a.kill()
                time.sleep(down_s)
                a.restart()
                back = time.perf_counter()
                deadline = back + 20
                while time.perf_counter() < deadline and not [x for x in seen[0] if x > back]:
                    time.sleep(0.05)
                pipe.stop()
                runner.join(30)
                again = [x for x in seen[0] if x > back]
                other = [x for x in seen[1] if killed < x < back]
                gaps = [vars(g) for g in pipe.stats.sources[0].gaps]
                results.append({"read_again_after_return_s": round(again[0] - back, 3) if again else None,
                                "other_camera_frames_during_gap": len(other), "gaps": gaps})
                print(f"  reconnect try {t}: {results[-1]['read_again_after_return_s']} s after return; other "
                      f"camera {len(other)} frames in the gap", flush=True)
    ok = [r for r in results if r["read_again_after_return_s"] is not None and r["read_again_after_return_s"] <= 5]
    return {"down_s": down_s, "tries": results, "within_5_s": len(ok), "of": len(results)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("artifacts", nargs="+")
    p.add_argument("--video", default=str(VIDEO))
    p.add_argument("--sources", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--frames", type=int, default=60, help="frames per file source and run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--runs", type=int, default=10, help="model-only calls per run")
    p.add_argument("--no-write", action="store_true", help="file runs write no mp4s")
    p.add_argument("--live-fps", type=int, nargs="*", default=[10, 30])
    p.add_argument("--live-sources", type=int, nargs="*", default=[1, 2, 4, 8])
    p.add_argument("--live-seconds", type=float, default=15.0)
    p.add_argument("--live-separate", action="store_true", help="also N separate processes on the live cameras")
    p.add_argument("--live-artifacts", nargs="*", help="artifacts for the live rows (default: the first)")
    p.add_argument("--live-niceness", type=int, nargs="*", default=[],
                   help="also run the live rows with the readers at these SEGEDGE_READER_NICENESS values")
    p.add_argument("--live-workers", type=int, nargs="+", default=[1],
                   help="inference workers for the live rows (the first is the row's; others recorded beside it)")
    p.add_argument("--reconnect-tries", type=int, default=5)
    p.add_argument("--down-s", type=float, default=3.0)
    p.add_argument("--skip", nargs="*", default=[], choices=["openvino", "files", "live", "reconnect"])
    p.add_argument("--clip-dir", default=str(ROOT / "out" / "clips"))
    p.add_argument("--json")
    # internal: one model-only measurement in this process
    p.add_argument("--model-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--clip", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--live", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ov-form", choices=OV_FORMS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import warnings

    warnings.simplefilter("ignore")  # the stretch warning of a portrait-calibrated artifact, once per process
    if args.ov_form:
        print(json.dumps(openvino_form(args.artifacts[0], args.batch, args.ov_form, args.runs)))
        return 0
    if args.model_only:
        print(json.dumps(model_only(args.artifacts[0], Path(args.clip), args.batch, live=args.live,
                                    workers=args.workers, runs=args.runs)))
        return 0
    from benchmarks.camera_servers import camera_clip
    from sdk.timing import environment

    clip_dir = Path(args.clip_dir)
    clip = camera_clip(args.video, clip_dir / "camera-30fps.mp4", seconds=max(10.0, args.frames / 30 + 1), fps=30)
    result: dict[str, Any] = {"schema": SCHEMA, "environment": environment(), "command": " ".join(
        ["python -m benchmarks.multi_stream_bench", *sys.argv[1:]] if argv is None else argv),
        "clip": "1280x720 H.264 camera clip from " + os.path.relpath(args.video, ROOT),
        "frames_per_source": args.frames, "rounds": args.rounds, "write_outputs": not args.no_write,
        "openvino_batch_forms": {}, "files": {}, "live": {}, "reconnect": None}
    started = time.perf_counter()
    if "openvino" not in args.skip:
        for art in args.artifacts:
            if (Path(art) / "model.xml").exists():
                print(f"openvino batch forms: {art}", flush=True)
                result["openvino_batch_forms"][art] = openvino_forms_section(art, args.sources, rounds=args.rounds,
                                                                             runs=args.runs)
    if "files" not in args.skip:
        for art in args.artifacts:
            print(f"files: {art}", flush=True)
            result["files"][art] = files_section(art, clip, args.sources, frames=args.frames, rounds=args.rounds,
                                                 runs=args.runs, write=not args.no_write)
    if "live" not in args.skip:
        for art in args.live_artifacts or args.artifacts[:1]:
            print(f"live: {art}", flush=True)
            result["live"][art] = live_section(art, Path(args.video), args.live_sources, args.live_fps,
                                               seconds=args.live_seconds, clip_dir=clip_dir, runs=args.runs,
                                               separate=args.live_separate, workers=args.live_workers,
                                               niceness=args.live_niceness)
    if "reconnect" not in args.skip:
        print("reconnect", flush=True)
        result["reconnect"] = reconnect_section(args.artifacts[0], Path(args.video), clip_dir,
                                                tries=args.reconnect_tries, down_s=args.down_s)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
