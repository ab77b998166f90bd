"""The timing helpers every benchmark uses: latency statistics, in-process alternation (``measure_latency``),
the machine record (``environment``), other processes' load, load time and peak memory in a fresh process."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from sdk.core.errors import InputError, SegEdgeError

VERSIONED = ("segedge", "numpy", "onnxruntime", "openvino", "nncf", "tensorrt", "torch", "transformers", "onnx",
             "opencv-python-headless", "matplotlib")
# the CPU flags that decide which kernels the runtimes use
KEY_CPU_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
                 "avx512_fp16", "amx_bf16", "amx_int8", "amx_tile", "neon", "asimd", "asimddp", "sve")


# ---------------------------------------------------------------------------------------------------------- timing
def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    """n, mean, p50, p90, p99, min, max of latency samples in ms."""
    a = np.asarray(samples_ms, np.float64)
    if a.size == 0:
        raise InputError("latency samples: expected at least one, got none")
    return {"n": int(a.size), "mean_ms": float(a.mean()), "p50_ms": float(np.percentile(a, 50)),
            "p90_ms": float(np.percentile(a, 90)), "p99_ms": float(np.percentile(a, 99)), "min_ms": float(a.min()),
            "max_ms": float(a.max())}


def measure_latency(fns: Mapping[str, Callable[[Any], Any]], feeds_for: Callable[[str], Any], repeats: int, *,
                    warmup: int = 1, pause_s: float = 0.1) -> dict[str, dict[str, float]]:
    """Time several callables side by side: ``warmup`` untimed runs each, then ``repeats`` rounds in which every
    callable runs once, in turn, with ``pause_s`` of sleep before each run (see the module docstring).

    fns: name -> fn(feeds); feeds_for(name) gives that fn's input (built outside the timed region).
    Returns name -> ``latency_stats`` (ms).
    """
    if repeats < 1 or warmup < 0:
        raise InputError(f"repeats/warmup: expected repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    feeds = {name: feeds_for(name) for name in fns}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn(feeds[name])
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if pause_s:
                time.sleep(pause_s)
            t = time.perf_counter()
            fn(feeds[name])
            times[name].append((time.perf_counter() - t) * 1e3)
    return {k: latency_stats(v) for k, v in times.items()}


def throughput_fps(stats: dict[str, float], batch: int) -> float:
    """Images per second at this batch size, from the mean latency of one batch."""
    return 1e3 * batch / stats["mean_ms"]


# ----------------------------------------------------------------------------------------------------- environment
def _cpuinfo() -> dict:
    model, flags = platform.processor() or platform.machine(), list[str]()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {"model": model, "flags": [], "source": "platform (no /proc/cpuinfo)"}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and value.strip():
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = value.split()
    return {"model": model, "flags": sorted(flags), "source": "/proc/cpuinfo"}


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide speed and accuracy (metadata only: imports nothing)."""
    out = {"python": platform.python_version()}
    for pkg in VERSIONED:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def environment(**threads: Any) -> dict:
    """The machine a measurement ran on: CPU model and flags, cores, load, OS, library versions; ``threads``
    records each runtime's thread setting (e.g. onnxruntime="default (one per physical core)")."""
    cpu = _cpuinfo()
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {"cpu_model": cpu["model"], "cpu_flags": cpu["flags"],
            "cpu_key_flags": [f for f in KEY_CPU_FLAGS if f in cpu["flags"]], "logical_cpus": os.cpu_count(),
            "usable_cpus": affinity, "load_average_1_5_15": load, "platform": platform.platform(),
            "threads": {k: v for k, v in threads.items() if v is not None}, "versions": library_versions()}


def cpu_times() -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies over all CPUs from /proc/stat, or None where there is none."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    steal = fields[7] if len(fields) > 7 else 0
    total = sum(fields[:8])
    return total - idle - steal, steal, total


def other_load(seconds: float) -> dict | None:
    """Sleep ``seconds`` and report how busy the machine was meanwhile (while this process idles, that is other
    work): % of all CPUs busy, % stolen by the hypervisor, and the load average. None without /proc/stat."""
    a = cpu_times()
    time.sleep(seconds)
    b = cpu_times()
    if a is None or b is None or b[2] == a[2]:
        return None
    total = b[2] - a[2]
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {"seconds": seconds, "busy_pct": 100 * (b[0] - a[0]) / total, "steal_pct": 100 * (b[1] - a[1]) / total,
            "load_average_1_5_15": load}


# ---------------------------------------------------------------------------------------- load time and peak memory
_PROBE = """
import json, sys, time
spec = json.loads(sys.argv[1])
import numpy as np
from runtimes import open_runtime
from sdk.core.manifest import model_feeds
import importlib; importlib.import_module(spec["module"])
def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * __import__("os").sysconf("SC_PAGE_SIZE") / 2**20
before = rss_mib()
t = time.perf_counter()
rt = open_runtime(spec["artifact"], spec["runtime"], **spec["options"])
load_s = time.perf_counter() - t
after_load = rss_mib()
h, w = spec["input_hw"]
first = None
for n in spec["batches"]:
    feeds = model_feeds(rt.manifest, np.zeros((n, 3, h, w), np.float32), spec["output_hw"])
    t = time.perf_counter()
    rt.infer(feeds)
    first = first if first is not None else time.perf_counter() - t
    rt.infer(feeds)
with open("/proc/self/status") as f:  # VmHWM restarts at exec; ru_maxrss would carry the parent's peak over
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
print(json.dumps({"load_seconds": load_s, "first_inference_seconds": first, "rss_before_load_mib": before,
                  "rss_after_load_mib": after_load, "peak_rss_mib": peak, "model_peak_rss_mib": peak - before,
                  "describe": rt.describe()}))
"""

_RUNTIME_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}


def probe_load_and_memory(artifact: str | Path, runtime: str, options: dict | None, *, input_hw: tuple[int, int],
                          output_hw: tuple[int, int], batches: tuple[int, ...] = (1,), timeout_s: float = 600) -> dict:
    """Open the artifact in a fresh Python process and run it at each batch size (twice); returns load (compile)
    time, the first inference's time, and memory: the process's peak RSS (``VmHWM``, Linux) and that peak minus
    the RSS before loading (with numpy and the runtime's toolkit already imported), in MiB."""
    spec = {"artifact": str(artifact), "runtime": runtime, "options": options or {}, "input_hw": list(input_hw),
            "output_hw": list(output_hw), "batches": list(batches), "module": _RUNTIME_MODULES.get(runtime, "numpy")}
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    res = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(spec)], capture_output=True, text=True,
                         timeout=timeout_s, env=env)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SegEdgeError(f"memory probe of {artifact} on {runtime}: the child process failed ({tail[:300]})")
    return json.loads(res.stdout.strip().splitlines()[-1])
