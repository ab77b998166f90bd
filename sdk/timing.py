"""Latency benchmarks: ``segedge bench`` and the timing helpers every benchmark in this project uses.

    segedge bench out/b0-ov-int8 --size 512 512 --json bench.json
    segedge bench out/b0-fp32 --end-to-end --size 360 480 --size 1024 2048 \
        --baseline pytorch ../shared/models/segformer-b0-camvid-hf --json e2e.json

Two modes:
- model (default): a preprocessed (N, 3, H, W) float32 input -> the (N, H, W) mask at the same size (the in-graph
  head, or a logits head upsampled + argmaxed on the host). ``--size`` is the network input size.
- end-to-end (``--end-to-end``): (H, W, 3) uint8 frames -> ``Segmenter`` (the artifact's preprocessing, inference)
  -> full-resolution masks. ``--size`` is the frame size.

Baseline (``--baseline pytorch CHECKPOINT``, a Hugging Face folder): transformers' SegformerForSemanticSegmentation
in PyTorch eager, with HF-style post-processing (bilinear upsample of the logits to the frame size, argmax); in
end-to-end mode the whole transformers pipeline (the checkpoint's image processor, the model,
``post_process_semantic_segmentation``). It runs in the same process, alternating run by run with the artifact, so
the ratio is measured under the same machine load.

``measure_latency`` alternates the variants run by run and pauses between runs: ONNX Runtime's intra-op threads
spin-wait after each run and slowed whatever ran next by ~1.6x on this project's 2-core machine; a 0.1 s pause made
alternated p50s agree with each variant timed alone (within 5%). Timings on a shared machine are noisy: compare
variants measured side by side in one run, by their medians.
"""
from __future__ import annotations

import dataclasses
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

from sdk.core.errors import InputError, MissingDependencyError, SegEdgeError
from sdk.core.result import pixel_agreement

SCHEMA = "segedge.bench/1"
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
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    res = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(spec)], capture_output=True, text=True,
                         timeout=timeout_s, env=env)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SegEdgeError(f"memory probe of {artifact} on {runtime}: the child process failed ({tail[:300]})")
    return json.loads(res.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------- the baseline
BASELINE_INSTALL = "pip install 'segedge[convert,baseline]'"  # torch; transformers and Pillow


def _require_transformers():
    """transformers, with torch and Pillow (its image processors resize with PIL): one line naming what is missing
    and the extra that installs it, before the baseline's image processor fails inside transformers."""
    missing = []
    for module in ("torch", "transformers", "PIL"):
        try:
            __import__(module)
        except ImportError:
            missing.append({"PIL": "Pillow"}.get(module, module))
    if missing:
        raise MissingDependencyError(f"--baseline pytorch needs torch, transformers and Pillow; {', '.join(missing)} "
                                     f"{'is' if len(missing) == 1 else 'are'} not installed. Install them: "
                                     f"{BASELINE_INSTALL}")
    import transformers

    return transformers


class TransformersBaseline:
    """transformers' SegformerForSemanticSegmentation in PyTorch eager (FP32, eval, inference_mode) from a Hugging
    Face folder; ``model_masks`` (tensor in, HF-style post-processing) and ``pipeline_masks`` (uint8 frames in, the
    image processor and ``post_process_semantic_segmentation``)."""

    def __init__(self, checkpoint: str | Path) -> None:
        folder = Path(checkpoint)
        if not (folder / "config.json").is_file():
            raise InputError(f"--baseline pytorch {folder}: expected a Hugging Face folder (config.json + "
                             "model.safetensors or pytorch_model.bin) that transformers can load; convert other "
                             "layouts with segedge export and use the HF folder of the same weights")
        transformers = _require_transformers()
        import torch

        transformers.logging.disable_progress_bar()
        t = time.perf_counter()
        self.processor = transformers.AutoImageProcessor.from_pretrained(folder)
        self.model = transformers.SegformerForSemanticSegmentation.from_pretrained(folder).eval()
        self.load_seconds = time.perf_counter() - t
        self.torch = torch
        self.description = (f"transformers {transformers.__version__} SegformerForSemanticSegmentation, PyTorch "
                            f"{torch.__version__} eager FP32, {torch.get_num_threads()} threads; "
                            f"{type(self.processor).__name__}")

    def model_masks(self, pixel_values: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
        """(N, 3, h, w) float32 -> (N, H, W) int64 class ids: logits upsampled bilinearly to ``out_hw``, argmax."""
        torch = self.torch
        with torch.inference_mode():
            logits = self.model(pixel_values=torch.from_numpy(pixel_values)).logits
            up = torch.nn.functional.interpolate(logits, size=out_hw, mode="bilinear", align_corners=False)
            return up.argmax(1).numpy()

    def pipeline_masks(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """RGB uint8 frames -> full-resolution masks through the whole transformers pipeline."""
        with self.torch.inference_mode():
            out = self.model(**self.processor(images=frames, return_tensors="pt"))
            masks = self.processor.post_process_semantic_segmentation(
                out, target_sizes=[f.shape[:2] for f in frames])
        return [m.numpy() for m in masks]

    def network_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """The size the image processor feeds the network for a frame of ``frame_hw``."""
        x = self.processor(images=[np.zeros((*frame_hw, 3), np.uint8)], return_tensors="np")["pixel_values"]
        return int(x.shape[2]), int(x.shape[3])


# ------------------------------------------------------------------------------------------------------ the bench
def synthetic_frame(hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A deterministic (H, W, 3) uint8 RGB test frame: smooth gradients plus noise. The refine head's cost depends on
    content (it interpolates only where classes meet), so time it on real frames too (``bench(frame=...)``)."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([255 * xx / max(w - 1, 1), 255 * yy / max(h - 1, 1), 127 + 100 * np.sin((xx + yy) / 23)], -1)
    noise = np.random.default_rng(seed).normal(0, 12, (h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _static_input_hw(manifest) -> tuple[int, int] | None:
    shape = next(t.shape for t in manifest.inputs if t.name == "pixel_values")
    return (shape[2], shape[3]) if isinstance(shape[2], int) and isinstance(shape[3], int) else None


def bench(artifact: str | Path, *, sizes_hw: list[tuple[int, int]], batch: int = 1, repeats: int = 50,
          warmup: int = 5, runtime: str = "auto", runtime_options: dict | None = None, end_to_end: bool = False,
          baseline: str | Path | None = None, pause_s: float = 0.1, settle_s: float = 2.0,
          frame: str | Path | None = None) -> dict:
    """Latency of an artifact (and optionally the transformers baseline, side by side) at each size.

    sizes_hw: model mode: network input sizes; end-to-end: frame sizes. batch: images per call. baseline: a Hugging
    Face checkpoint folder for the PyTorch/transformers baseline. settle_s: idle seconds before timing, during which
    the load from other processes is sampled (recorded as ``other_load``). frame: an image file used (resized
    bilinearly to each size) instead of the synthetic frame. End to end with a baseline, the pixel agreement of the
    two pipelines' masks on the timed frames is recorded too. Returns the JSON-ready result.
    """
    from sdk.core.manifest import model_feeds
    from sdk.core.postprocess import masks_from_logits
    from sdk.core.preprocess import check_size_hw, network_size, preprocess
    from sdk.segmenter import Segmenter

    sizes = [check_size_hw(s, "sizes_hw") for s in sizes_hw]
    if not sizes:
        raise InputError(f"sizes_hw: expected at least one (height, width), both >= 32, got {sizes_hw}")
    if batch < 1:
        raise InputError(f"batch: expected >= 1, got {batch}")
    source = cv2 = None
    if frame is not None:
        from sdk.core.errors import require_cv2
        from sdk.core.preprocess import read_rgb

        cv2, source = require_cv2(), read_rgb(frame)
    t = time.perf_counter()
    seg = Segmenter.from_artifact(artifact, runtime=runtime, **(runtime_options or {}))
    load_s = time.perf_counter() - t
    ref = TransformersBaseline(baseline) if baseline is not None else None
    m = seg.manifest
    static = _static_input_hw(m)
    busy = other_load(settle_s) if settle_s > 0 else None
    results = []
    fns: dict[str, Callable[[Any], Any]]
    feeds_for: Callable[[str], Any]
    try:
        for hw in sizes:
            frames = [synthetic_frame(hw, seed=i) for i in range(batch)] if source is None else \
                [cv2.resize(source, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)] * batch
            if end_to_end:
                net_hw = network_size(m.preprocess, hw)
                fns = {"artifact": lambda fr: seg.predict_batch(fr, batch_size=batch)}
                if ref is not None:
                    fns["baseline"] = ref.pipeline_masks
                feeds_for = lambda name: frames  # noqa: E731
            else:
                if static is not None and static != hw:
                    raise InputError(f"--size {hw[0]} {hw[1]}: artifact {artifact} has a static input "
                                     f"{static[0]}x{static[1]}; bench it with --size {static[0]} {static[1]}, or "
                                     "use --end-to-end to feed frames of any size through its preprocessing")
                net_hw = hw
                spec = dataclasses.replace(m.preprocess, size_hw=hw)
                x = preprocess(frames, spec)
                feeds = model_feeds(m, x, hw)
                if m.head == "mask":
                    fns = {"artifact": lambda f: seg.runtime.infer(f)["mask"]}
                else:
                    # logits head: the full computation on the host; refine head: refined from logits + argmax
                    fns = {"artifact": lambda f: masks_from_logits(seg.runtime.infer(f), hw)}
                if ref is not None:
                    fns["baseline"] = lambda f: ref.model_masks(f["pixel_values"], hw)
                feeds_for = lambda name: feeds  # noqa: E731
            stats = measure_latency(fns, feeds_for, repeats, warmup=warmup, pause_s=pause_s)
            row: dict[str, Any] = {"size_hw": list(hw), "network_hw": list(net_hw),
                                   "artifact": {**stats["artifact"],
                                                "throughput_fps": throughput_fps(stats["artifact"], batch)}}
            if ref is not None:
                base_hw = ref.network_hw(hw) if end_to_end else hw
                row["baseline_network_hw"] = list(base_hw)
                row["baseline"] = {**stats["baseline"], "throughput_fps": throughput_fps(stats["baseline"], batch)}
                row["speedup_p50"] = stats["baseline"]["p50_ms"] / stats["artifact"]["p50_ms"]
                # a ratio is printed beside its agreement: the same input through both sides, outside the timed runs
                if end_to_end:
                    ours = [r.mask for r in seg.predict_batch(frames, batch_size=batch)]
                    theirs = ref.pipeline_masks(frames)
                else:
                    ours, theirs = fns["artifact"](feeds), fns["baseline"](feeds)
                agree = 100.0 * pixel_agreement(np.stack(list(ours)), np.stack(list(theirs)))
                row["agreement_with_baseline_pct"] = agree
                row["same_answer"] = _same_answer(row, base_hw, net_hw, agree)
            results.append(row)
        described = seg.runtime.describe()
    finally:
        seg.close()
    torch_threads = None
    if ref is not None:
        torch_threads = ref.torch.get_num_threads()
    return {
        "schema": SCHEMA, "artifact": str(artifact), "format": m.format, "precision": m.precision, "head": m.head,
        "runtime": described, "runtime_options": runtime_options or {},
        "mode": "end-to-end" if end_to_end else "model",
        "what_is_timed": ("uint8 frames -> preprocessing + inference -> full-resolution masks" if end_to_end else
                          "preprocessed float32 input -> inference -> masks at the input size"),
        "batch": batch, "repeats": repeats, "warmup": warmup, "pause_s": pause_s,
        "load_seconds": {"artifact": load_s, "baseline": ref.load_seconds if ref else None},
        "baseline": None if ref is None else {"kind": "pytorch", "checkpoint": str(baseline),
                                              "description": ref.description,
                                              "post_processing": "bilinear upsample to the frame size, argmax"},
        "frame": str(frame) if frame is not None else "synthetic (sdk.timing.synthetic_frame)",
        "environment": environment(torch=torch_threads), "other_load": busy, "results": results,
    }


def _same_answer(row: dict, base_hw, net_hw, agree_pct: float) -> bool:
    """Whether the two sides compute the same answer: the network at the same size and masks agreeing at least as
    much as ``segedge verify`` asks of an INT8 artifact (``MIN_AGREEMENT``). If not, ``row["note"]`` says why: the
    speed ratio then compares different work, not the same result done faster."""
    from sdk.core.records import MIN_AGREEMENT

    why = []
    if tuple(base_hw) != tuple(net_hw):
        why.append(f"the baseline runs the network at {base_hw[0]}x{base_hw[1]}, the artifact at "
                   f"{net_hw[0]}x{net_hw[1]}")
    if agree_pct < 100 * MIN_AGREEMENT:
        why.append(f"their masks agree on {agree_pct:.1f}% of pixels (under {100 * MIN_AGREEMENT:.0f}%)")
    if why:
        row["note"] = ("NOT the same answer (speedup marked *): " + "; ".join(why)
                       + ": the ratio compares different amounts of work, not a speed-up for the same result")
    return not why


def format_bench(result: dict) -> str:
    """The human-readable table ``segedge bench`` prints."""
    lines = [f"{result['artifact']} ({result['format']} {result['precision']}) on {result['runtime']}; "
             f"{result['mode']}, batch {result['batch']}, {result['repeats']} runs after {result['warmup']} warm-up"]
    head = f"{'size':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'img/s':>7}"
    if result["baseline"]:
        head += f" {'pytorch p50':>11} {'p90':>8} {'speedup':>9} {'agree %':>8}"
    lines.append(head)
    for r in result["results"]:
        a = r["artifact"]
        line = (f"{r['size_hw'][0]}x{r['size_hw'][1]:<5} {a['p50_ms']:8.1f} {a['p90_ms']:8.1f} {a['p99_ms']:8.1f} "
                f"{a['throughput_fps']:7.1f}")
        if r.get("baseline"):
            b = r["baseline"]
            mark = "" if r.get("same_answer", False) else "*"  # no agreement measured: not known the same
            agree = r.get("agreement_with_baseline_pct")
            line += (f" {b['p50_ms']:11.1f} {b['p90_ms']:8.1f} {r['speedup_p50']:7.2f}x{mark:1}"
                     f" {'-' if agree is None else format(agree, '.3f'):>8}")
        lines.append(line)
        if r.get("note"):
            lines.append(f"  note: {r['note']}")
    if result["baseline"]:
        lines.append(f"baseline: {result['baseline']['description']}")
    busy = result.get("other_load")
    if busy and busy["busy_pct"] > 10:
        lines.append(f"warning: other processes kept {busy['busy_pct']:.0f}% of the CPUs busy just before timing "
                     "(absolute times are inflated; the side-by-side ratio is the robust number)")
    return "\n".join(lines)
