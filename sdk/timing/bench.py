"""``segedge bench``: the artifact (and the transformers baseline) timed at each size; see ``sdk.timing``."""
from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sdk.core.errors import InputError
from sdk.core.result import pixel_agreement
from sdk.timing.isolated import Timed, artifact_variant, save_input, time_isolated
from sdk.timing.isolated import in_process as in_process_record
from sdk.timing.isolated import isolation as isolated_record
from sdk.timing.stats import environment, measure_latency, other_load, throughput_fps
from sdk.timing.baseline import TransformersBaseline

SCHEMA = "segedge.bench/1"
ISOLATIONS = ("process", "in-process")

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
          frame: str | Path | None = None, isolation: str = "process", rounds: int = 3) -> dict:
    """Latency of an artifact (and optionally the transformers baseline, side by side) at each size.

    sizes_hw: model mode: network input sizes; end-to-end: frame sizes. batch: images per call. baseline: a Hugging
    Face checkpoint folder for the PyTorch/transformers baseline. settle_s: idle seconds before timing, during which
    the load from other processes is sampled (recorded as ``other_load``). frame: an image file used (resized
    bilinearly to each size) instead of the synthetic frame. End to end with a baseline, the pixel agreement of the
    two pipelines' masks on the timed frames is recorded too. isolation: "process" (default): the artifact and the
    baseline each timed alone in its own fresh process, ``rounds`` alternating rounds of ``ceil(repeats / rounds)``
    runs after ``warmup`` (``sdk.timing.isolated``), so neither's threads share the cores with the other's timing;
    "in-process": the older protocol, both in this process alternating run by run (``measure_latency``), kept for
    comparison. ``pause_s`` of idle precedes every timed run either way. Returns the JSON-ready result, with an
    ``isolation`` record saying which.
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
    if isolation not in ISOLATIONS or rounds < 1:
        raise InputError(f"isolation/rounds: expected one of {ISOLATIONS} and rounds >= 1, got {isolation!r} and "
                         f"{rounds}")
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
    runs = -(-repeats // rounds)
    how = (isolated_record(rounds=rounds, runs=runs, warmup=warmup, pause_s=pause_s) if isolation == "process" else
           in_process_record(pause_s=pause_s, repeats=repeats, warmup=warmup))
    scratch = tempfile.TemporaryDirectory(prefix="segedge-bench-")
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
            if isolation == "in-process":
                stats = measure_latency(fns, feeds_for, repeats, warmup=warmup, pause_s=pause_s)
            else:
                spec = {"artifact": artifact, "runtime": seg.runtime.name, "options": runtime_options or {},
                        "baseline": baseline, "end_to_end": end_to_end, "hw": hw}
                stats = _time_isolated(spec, frames if end_to_end else feeds["pixel_values"], Path(scratch.name),
                                       rounds=rounds, runs=runs, warmup=warmup, pause_s=pause_s)
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
        scratch.cleanup()
    torch_threads = None
    if ref is not None:
        torch_threads = ref.torch.get_num_threads()
    return {
        "schema": SCHEMA, "artifact": str(artifact), "format": m.format, "precision": m.precision, "head": m.head,
        "runtime": described, "runtime_options": runtime_options or {},
        "mode": "end-to-end" if end_to_end else "model",
        "what_is_timed": ("uint8 frames -> preprocessing + inference -> full-resolution masks" if end_to_end else
                          "preprocessed float32 input -> inference -> masks at the input size"),
        "batch": batch, "repeats": repeats, "warmup": warmup, "pause_s": pause_s, "isolation": how,
        "load_seconds": {"artifact": load_s, "baseline": ref.load_seconds if ref else None},
        "baseline": None if ref is None else {"kind": "pytorch", "checkpoint": str(baseline),
                                              "description": ref.description,
                                              "post_processing": "bilinear upsample to the frame size, argmax"},
        "frame": str(frame) if frame is not None else "synthetic (sdk.timing.synthetic_frame)",
        "environment": environment(torch=torch_threads), "other_load": busy, "results": results,
    }


def _time_isolated(spec: dict, inputs, scratch: Path, **how) -> dict[str, dict]:
    """The artifact (and the baseline) at one size, each in its own process (``sdk.timing.isolated``): what the
    in-process functions run, rebuilt in the child from the artifact folder / checkpoint and the saved input."""
    hw, e2e = tuple(spec["hw"]), spec["end_to_end"]
    path = save_input(scratch, f"input-{hw[0]}x{hw[1]}", np.stack(list(inputs)) if e2e else inputs)
    variants = [artifact_variant("artifact", spec["artifact"], runtime=spec["runtime"], options=spec["options"],
                                 what="segmenter" if e2e else "mask", frames=path if e2e else None,
                                 pixel_values=None if e2e else path, output_hw=hw)]
    if spec["baseline"] is not None:
        variants.append(Timed(name="baseline", factory="sdk.timing.baseline:open_baseline",
                              args={"checkpoint": str(spec["baseline"]), "mode": "pipeline" if e2e else "model",
                                    "inputs": path, "out_hw": list(hw)}))
    return time_isolated(variants, **how)["variants"]


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
    if result.get("isolation"):
        lines.append(f"timed {result['isolation']['text']}")
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
