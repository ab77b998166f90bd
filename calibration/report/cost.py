"""The report's cost pass: latency p50/p90/p99 (model only: the preprocessed frame -> full-resolution mask),
throughput at batch 1 and ``CostOptions.batch``, load/compile time and peak RSS in a fresh process per variant,
artifact size on disk.

Latency: each variant alone in its own fresh process per round, ``CostOptions.rounds`` alternating rounds
(``sdk.timing.isolated``), so no variant's runtime threads share the cores with another's timing: in one process,
alternating run by run, ONNX Runtime's spinning intra-op threads slowed whatever ran next (issue 28).
``CostOptions(isolated=False)`` keeps the older protocol (``sdk.timing.measure_latency``) for comparison."""
from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import numpy as np

from calibration.report.plan import Variant
from sdk.core.errors import InputError, SegEdgeError


@dataclass(frozen=True, kw_only=True)
class CostOptions:
    """How cost is measured. repeats/warmup: timed/untimed runs per variant at batch 1 (a quarter as many at
    ``batch``); pause_s: sleep before each timed run (see ``sdk.timing``); settle_s: pause before timing, so a model
    just quantized is not timed while the machine is still busy; memory: load time + peak RSS in a fresh process per
    variant; isolated: each variant timed alone in its own process, ``rounds`` alternating rounds over which the
    runs are split (False: all in this process, alternating run by run)."""

    repeats: int = 30
    warmup: int = 3
    batch: int = 4
    pause_s: float = 0.1
    settle_s: float = 10.0
    memory: bool = True
    isolated: bool = True
    rounds: int = 3

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.warmup < 0 or self.batch < 1 or self.rounds < 1:
            raise InputError(f"cost options: expected repeats >= 1, warmup >= 0, batch >= 1, got {self}")


def _open(timed: list[Variant], frame: np.ndarray, batch: int, runtimes: dict[str, Any]) -> tuple[dict, dict]:
    """Open each timed variant's runtime (into ``runtimes``) and its feeds at batch 1 and ``batch``."""
    from runtimes import open_runtime
    from sdk.core.manifest import model_feeds
    from sdk.core.preprocess import network_size, preprocess

    hw = frame.shape[:2]
    feeds: dict[str, dict] = {}
    feeds_n: dict[str, dict] = {}
    for v in timed:
        rt = open_runtime(v.latency_path, str(v.latency_runtime), **v.runtime_options)
        runtimes[v.name] = rt
        spec = rt.manifest.preprocess
        for store, n in ((feeds, 1), (feeds_n, batch)):
            store[v.name] = model_feeds(rt.manifest, preprocess([frame] * n, spec), hw)
        v.cost.runtime = rt.describe()
        v.cost.network_hw = list(network_size(spec, hw))
    return feeds, feeds_n


def _isolated(timed: list[Variant], frame: np.ndarray, options: CostOptions, scratch: str) -> tuple[dict, ...]:
    """(batch-1 stats, batch-``options.batch`` stats, the isolation record): each variant in its own process per
    round, opened there from its folder on its runtime with its options, fed the frame its own preprocessing gives."""
    from sdk.core.manifest import read_manifest
    from sdk.core.preprocess import network_size, preprocess
    from sdk.timing.isolated import artifact_variant, save_input, time_isolated

    hw = frame.shape[:2]
    out = []
    for n, repeats, warmup in ((1, options.repeats, options.warmup), (options.batch, max(3, options.repeats // 4), 1)):
        variants = []
        for v in timed:
            spec = read_manifest(v.latency_path).preprocess
            v.cost.network_hw = list(network_size(spec, hw))
            x = save_input(scratch, f"{v.name}-{n}", preprocess([frame] * n, spec))
            variants.append(artifact_variant(v.name, v.latency_path, runtime=str(v.latency_runtime),
                                             options=v.runtime_options, pixel_values=x, output_hw=hw))
        out.append(time_isolated(variants, rounds=options.rounds, runs=-(-repeats // options.rounds), warmup=warmup,
                                 pause_s=options.pause_s))
    for v in timed:
        v.cost.runtime = out[0]["variants"][v.name]["describe"]
    return out[0]["variants"], out[1]["variants"], out[0]["isolation"]


def _in_process(timed: list[Variant], frame: np.ndarray, options: CostOptions) -> tuple[dict, ...]:
    """The older protocol: every variant open in this process, alternating run by run."""
    from sdk.timing import measure_latency
    from sdk.timing.isolated import in_process

    runtimes: dict[str, Any] = {}
    try:
        feeds, feeds_n = _open(timed, frame, options.batch, runtimes)
        fns = {name: rt.infer for name, rt in runtimes.items()}
        one = measure_latency(fns, feeds.__getitem__, options.repeats, warmup=options.warmup,
                              pause_s=options.pause_s)
        many = measure_latency(fns, feeds_n.__getitem__, max(3, options.repeats // 4), warmup=1,
                               pause_s=options.pause_s)
    finally:
        for rt in runtimes.values():
            rt.close()
    return one, many, in_process(pause_s=options.pause_s, repeats=options.repeats, warmup=options.warmup)


def measure_cost(variants: list[Variant], frame: np.ndarray, options: CostOptions, progress: bool) -> dict | None:
    """Fill ``v.cost`` for every built variant: size always; latency, throughput and memory where timed here.
    Returns how the timed variants were isolated (``sdk.timing.isolated``'s record), None when none was timed."""
    import tempfile

    from sdk.timing import other_load, probe_load_and_memory, throughput_fps

    timed = [v for v in variants if v.status == "built" and v.latency_runtime]
    for v in variants:
        if v.status == "built":
            v.cost.artifact_bytes = sum(int(p.stat().st_size) for p in v.latency_path.iterdir() if p.is_file())
            if not v.latency_runtime:
                v.cost.latency_note = v.latency_note
    if not timed:
        return None
    gc.collect()
    busy = other_load(options.settle_s) if options.settle_s > 0 else None
    if progress:
        how = (f"each alone in its own process, {options.rounds} alternating rounds" if options.isolated else
               "alternating in this process")
        print(f"latency: {len(timed)} variants {how}, {options.repeats} runs at batch 1, "
              f"{max(3, options.repeats // 4)} at batch {options.batch}", flush=True)
    if options.isolated:
        with tempfile.TemporaryDirectory(prefix="segedge-cost-") as scratch:
            one, many, how = _isolated(timed, frame, options, scratch)
    else:
        one, many, how = _in_process(timed, frame, options)
    hw = frame.shape[:2]
    for v in timed:
        c = v.cost
        c.other_load_before_timing = busy
        c.latency_ms, c.batch, c.batch_latency_ms = one[v.name], options.batch, many[v.name]
        c.throughput_fps = {"1": throughput_fps(one[v.name], 1),
                            str(options.batch): throughput_fps(many[v.name], options.batch)}
        if options.memory:
            try:
                c.memory = probe_load_and_memory(v.latency_path, str(v.latency_runtime), v.runtime_options,
                                                 input_hw=tuple(c.network_hw), output_hw=hw,
                                                 batches=(1, options.batch))
            except SegEdgeError as exc:
                c.memory_note = str(exc)
    return how
