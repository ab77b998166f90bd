"""Load on a real Triton Inference Server vs the in-process Segmenter, same artifact, same CamVid frames, one run.

    python -m benchmarks.triton_bench out/triton/b0-ov-int8 --camvid ../shared/data/camvid --clients 1 4 8 \\
        --seconds 15 --soak-requests 10000 --json docs/benchmarks/triton_bench_ov_int8.json

1. In process: ``Segmenter`` on the frames, one call per frame from 1 thread and from N threads sharing it, and
   ``predict_batch`` in batches of ``--max-batch``: throughput (frames/s) and latency p50/p95; the best is the bar.
2. Served: ``segedge serve``'s repository on nvidia-pytriton's tritonserver (Python backend, dynamic batching);
   for each protocol (gRPC, HTTP) and client count, that many threads each with its own ``TritonSegmenter`` send
   one frame per request for ``--seconds``: throughput, p50/p95 request latency, and the batch sizes Triton formed
   (the difference of its statistics endpoint's ``batch_stats`` before and after the run). Served masks are checked
   against the in-process ones on every frame first.
3. Soak: ``--soak-requests`` requests from 8 gRPC clients with ``--malformed`` of them malformed (2-D, float32,
   16x16, zero-size): every malformed one must get an error, every good one the in-process mask; tritonserver's pid
   unchanged (no restart); RSS of tritonserver and its backend stubs after warm-up vs at the end.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from converters.triton_repo import write_triton_python_repository
from sdk.core.preprocess import read_rgb
from sdk.segmenter import Segmenter
from sdk.serving.client import TritonSegmenter
from sdk.serving.errors import ServingError
from sdk.serving.server import TritonServer
from sdk.timing import environment, latency_stats

SCHEMA = "segedge.triton_bench/1"


def _stats(samples_ms: list[float], frames: int, wall_s: float) -> dict:
    out = latency_stats(samples_ms)
    out["p95_ms"] = float(np.percentile(np.asarray(samples_ms), 95))
    out.update(frames=frames, wall_s=wall_s, fps=frames / wall_s)
    return out


def _threads_loop(worker, clients: int, seconds: float, *, setup=None) -> tuple[list[float], int, float]:
    """``clients`` threads each calling ``worker(k, i, state)`` until ``seconds`` pass, where ``state`` is
    ``setup(k)`` made in that thread before the start (tritonclient's HTTP client works only in the thread that
    made it) and closed after; (latencies ms, calls, wall s)."""
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    t0_stop = [0.0, 0.0]

    def go() -> None:  # runs once, when every thread is set up (connecting may take long on a busy server)
        t0_stop[0] = time.perf_counter()
        t0_stop[1] = t0_stop[0] + seconds

    start_gate = threading.Barrier(clients + 1, action=go)

    def run(k: int) -> None:
        state = None
        try:
            state = setup(k) if setup else None
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        start_gate.wait()
        i = 0
        try:
            while not errors and time.perf_counter() < t0_stop[1]:
                t = time.perf_counter()
                worker(k, i, state)
                lat[k].append((time.perf_counter() - t) * 1e3)
                i += 1
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        finally:
            if state is not None:
                state.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0_stop[0]
    if errors:
        raise errors[0]
    samples = [v for per in lat for v in per]
    return samples, len(samples), wall


def in_process(seg: Segmenter, frames: list[np.ndarray], *, threads: list[int], batch: int, seconds: float) -> dict:
    rows: dict[str, Any] = {}
    for n in threads:
        samples, calls, wall = _threads_loop(lambda k, i, _: seg(frames[(k * 7 + i) % len(frames)]), n, seconds)
        rows[f"{n} thread{'s' if n > 1 else ''}, 1 frame per call"] = _stats(samples, calls, wall)
    groups = [frames[i:i + batch] for i in range(0, len(frames) - batch + 1, batch)] or [frames[:batch]]
    samples, calls, wall = _threads_loop(lambda k, i, _: seg.predict_batch(groups[i % len(groups)], batch_size=batch),
                                         1, seconds)
    row = _stats(samples, calls * batch, wall)
    row["batch"] = batch
    rows[f"1 thread, predict_batch {batch}"] = row
    return rows


def _batch_counts(server: TritonServer, model: str) -> dict[int, int]:
    import tritonclient.http as http

    client = http.InferenceServerClient(server.http_url)
    try:
        stats = client.get_inference_statistics(model)["model_stats"][0]
    finally:
        client.close()
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}


def served(server: TritonServer, model: str, frames: list[np.ndarray], *, protocol: str, clients: int,
           seconds: float) -> dict:
    url = server.grpc_url if protocol == "grpc" else server.http_url

    def connect(k: int) -> TritonSegmenter:
        client = TritonSegmenter(url, model, protocol=protocol)
        client.infer_masks(frames[k % len(frames)][None])  # connected and warm
        return client

    before = _batch_counts(server, model)
    samples, calls, wall = _threads_loop(
        lambda k, i, client: client.infer_masks(frames[(k * 7 + i) % len(frames)][None]), clients, seconds,
        setup=connect)
    after = _batch_counts(server, model)
    formed = {b: after.get(b, 0) - before.get(b, 0) for b in sorted(after) if after.get(b, 0) > before.get(b, 0)}
    row = _stats(samples, calls, wall)
    executions = sum(formed.values())
    row.update(protocol=protocol, clients=clients, batches_formed=formed,
               mean_batch=(sum(b * n for b, n in formed.items()) / executions) if executions else None)
    return row


def _tree_rss_mib(pid: int) -> float:
    """RSS of a process and all its descendants (tritonserver and its Python-backend stubs), MiB."""
    todo, total = [pid], 0
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total / 1024


MALFORMED = {"2-D": lambda f: f[..., 0], "float32": lambda f: f.astype(np.float32),
             "16x16": lambda f: f[:16, :16], "zero-size": lambda f: f[:0, :0]}


def soak(server: TritonServer, model: str, frames: list[np.ndarray], want: list[np.ndarray], *, requests: int,
         malformed: float, seconds: float, clients: int = 8, seed: int = 0) -> dict:
    """``requests`` from ``clients`` gRPC clients, or as many as ``seconds`` allow, a ``malformed`` share of them bad
    (raw tritonclient, so the server sees them); every answer checked. RSS is taken after warm-up (the first 10% of
    the requests, at most 1000, or the first 20% of the time, whichever comes first) and at the end."""
    import tritonclient.grpc as grpc
    from tritonclient.utils import InferenceServerException

    rng = np.random.default_rng(seed)
    kinds = list(MALFORMED)
    plan = [(int(rng.integers(len(frames))), kinds[int(rng.integers(len(kinds)))] if rng.random() < malformed
             else None) for _ in range(requests)]
    pid = server.process.pid
    counts = {"good_ok": 0, "good_wrong": 0, "good_failed": 0, "bad_refused": 0, "bad_answered": 0}
    lock = threading.Lock()
    next_i = [0]
    rss: dict[str, float] = {}
    warm = min(1000, requests // 10)
    messages: dict[str, str] = {}

    t0 = time.perf_counter()

    def worker() -> None:
        client = grpc.InferenceServerClient(server.grpc_url)
        try:
            while True:
                elapsed = time.perf_counter() - t0
                with lock:
                    i = next_i[0]
                    next_i[0] += 1
                    if "after_warmup_mib" not in rss and (i >= warm or elapsed > 0.2 * seconds):
                        rss["after_warmup_mib"] = _tree_rss_mib(pid)
                        rss["warmup_requests"] = i
                if i >= len(plan) or elapsed > seconds:
                    return
                f, bad = plan[i]
                x = frames[f] if bad is None else MALFORMED[bad](frames[f])
                x = np.ascontiguousarray(x[None])
                t = grpc.InferInput("IMAGE", list(x.shape), "UINT8" if x.dtype == np.uint8 else "FP32")
                t.set_data_from_numpy(x)
                try:
                    mask = client.infer(model, [t]).as_numpy("MASK")
                    key = ("good_ok" if np.array_equal(mask[0], want[f]) else "good_wrong") if bad is None else \
                        "bad_answered"
                except InferenceServerException as exc:
                    key = "good_failed" if bad is None else "bad_refused"
                    if bad is not None:
                        messages.setdefault(bad, exc.message()[:200])
                with lock:
                    counts[key] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rss["end_mib"] = _tree_rss_mib(pid)
    alive = server.process is not None and server.process.poll() is None and server.process.pid == pid
    sent = sum(counts.values())
    bad_total = counts["bad_refused"] + counts["bad_answered"]
    return {"requests_planned": requests, "seconds_limit": seconds, "requests": sent, "malformed": bad_total,
            "clients": clients, "wall_s": wall, **counts,
            "server_restarts": 0 if alive else 1, "server_alive": alive, "rss_mib": rss,
            "rss_growth_pct": 100 * (rss["end_mib"] / rss["after_warmup_mib"] - 1) if rss.get("after_warmup_mib")
            else None, "error_messages": messages}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("--camvid", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--protocols", nargs="+", default=["grpc", "http"], choices=["grpc", "http"])
    ap.add_argument("--seconds", type=float, default=15.0, help="per run")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="in-process threads sharing one Segmenter")
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-queue-delay-us", type=int, default=2000)
    ap.add_argument("--soak-requests", type=int, default=10000)
    ap.add_argument("--soak-seconds", type=float, default=240.0, help="the soak stops here if not done before")
    ap.add_argument("--malformed", type=float, default=0.05)
    ap.add_argument("--env", help="Triton model environment (default: sdk.serving.env's)")
    ap.add_argument("--artifact-command", help="how the artifact was made (recorded in the JSON and the docs)")
    ap.add_argument("--json", default="out/triton_bench.json")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    paths = sorted((Path(args.camvid) / args.split).glob("*.png"))[:args.frames]
    if not paths:
        print(f"error: no CamVid frames in {Path(args.camvid) / args.split}", file=sys.stderr)
        return 1
    frames = [read_rgb(p) for p in paths]
    result: dict[str, Any] = {"schema": SCHEMA, "command": "python -m benchmarks.triton_bench " + shlex.join(
                                  argv if argv is not None else sys.argv[1:]),
                              "artifact": args.artifact, "frames": f"CamVid {args.split}, {len(frames)} frames "
                              f"{frames[0].shape[0]}x{frames[0].shape[1]}", "seconds_per_run": args.seconds,
                              "instances": args.instances, "max_batch": args.max_batch,
                              "max_queue_delay_us": args.max_queue_delay_us}
    with Segmenter.from_artifact(args.artifact) as seg:
        result["model"] = {"format": seg.manifest.format, "precision": seg.manifest.precision,
                           "head": seg.manifest.head, "size_hw": seg.manifest.preprocess.size_hw,
                           "runtime": seg.runtime.describe(), "target_cpu": seg.manifest.extra.get("target_cpu"),
                           "made_by": args.artifact_command}
        want = [seg(f).mask for f in frames]
        print("in-process ...", flush=True)
        result["in_process"] = in_process(seg, frames, threads=args.threads, batch=args.max_batch,
                                          seconds=args.seconds)
    with tempfile.TemporaryDirectory(prefix="segedge-triton-bench-") as tmp:
        write_triton_python_repository(args.artifact, tmp, model_name="bench", max_batch_size=args.max_batch,
                                       instance_count=args.instances, max_queue_delay_us=args.max_queue_delay_us)
        server = TritonServer(tmp, env=args.env, http_port=18800, grpc_port=18801, metrics_port=18802)
        with server:
            with TritonSegmenter(server.grpc_url, "bench") as client:
                same = sum(int(np.array_equal(client(f).mask, w)) for f, w in zip(frames, want))
            result["masks_equal_in_process"] = f"{same}/{len(frames)}"
            rows = []
            for protocol in args.protocols:
                for clients in args.clients:
                    print(f"served {protocol} x{clients} ...", flush=True)
                    rows.append(served(server, "bench", frames, protocol=protocol, clients=clients,
                                       seconds=args.seconds))
            result["served"] = rows
            if args.soak_requests:
                print(f"soak {args.soak_requests} requests ...", flush=True)
                result["soak"] = soak(server, "bench", frames, want, requests=args.soak_requests,
                                      malformed=args.malformed, seconds=args.soak_seconds)
            stop_code = server.stop()
        result["server_exit_code"] = stop_code
    best = max(result["in_process"].items(), key=lambda kv: kv[1]["fps"])
    result["in_process_best"] = {"mode": best[0], "fps": best[1]["fps"]}
    result["environment"] = environment()
    result["wall_s"] = time.perf_counter() - t_start
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for r in result.get("served", []):
        print(f"{r['protocol']:4} x{r['clients']}: {r['fps']:.1f} fps, p50 {r['p50_ms']:.1f} ms, p95 "
              f"{r['p95_ms']:.1f} ms, batches {r['batches_formed']}")
    print(f"in-process best: {best[0]} {best[1]['fps']:.1f} fps; wrote {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ServingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
