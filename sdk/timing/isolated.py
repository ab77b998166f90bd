"""Timing several variants so that no other runtime's threads share their cores: each in its own fresh process.

    from sdk.timing.isolated import artifact_variant, time_isolated
    timed = time_isolated([artifact_variant("fp32", "out/b0-fp32", runtime="onnxruntime", pixel_values=x_npy,
                                            output_hw=(360, 480)),
                           artifact_variant("int8", "out/b0-int8", runtime="openvino", pixel_values=x_npy,
                                            output_hw=(360, 480))], rounds=3, runs=10)
    timed["variants"]["int8"]["p50_ms"], timed["isolation"]   # the pooled p50; how they were isolated (for JSON)

Why: timed in one process, alternating run by run, ONNX Runtime's spinning intra-op workers slow whatever runs
next (two ORT sessions alternating took 60 and 44 ms where each alone took 33.5 and 21.9; issue 28), which can
flatter or hurt any variant that follows an ORT session in a table. Here each variant runs in a fresh
``sys.executable -m sdk.timing.isolated`` process per round, alone: nothing else of the benchmark runs meanwhile
(the parent waits). ``rounds`` alternating rounds (round r runs the variants in order, reversed on odd rounds, so
drifting machine load does not always favour the same one), ``warmup`` untimed runs then ``runs`` timed ones per
process (``runtimes.choose.sample_runs``, the loop ``runtime="auto"`` times with), runs pooled per variant.

A variant is plain data (``Timed``): ``factory``, a "module:function" the child imports and calls with ``args``,
which returns a ``TimedCall`` (the no-argument callable to time, what runs it, a close function). This module's
``open_artifact`` opens an artifact folder on a runtime (``artifact_variant``); benchmarks name their own factories
for what they build (a peer's ONNX Runtime session or OpenVINO compile of the file they saved). Inputs travel as
``.npy`` files (``save_input``), so the child times the same numbers the parent would have.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sdk.core.errors import InputError, SegEdgeError

MARK = "SEGEDGE_TIMED "  # the child's result line on stdout (factories may print other lines)
ROUNDS, RUNS, WARMUP = 3, 10, 3
METHOD = "own process per variant, alternating rounds"
IN_PROCESS = "in one process, alternating run by run"


@dataclass(frozen=True, kw_only=True)
class Timed:
    """One variant: ``factory`` ("module:function", importable from the project root) called with ``args`` (JSON
    data) in the child returns a ``TimedCall``."""

    name: str
    factory: str
    args: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        module, sep, fn = self.factory.partition(":")
        if not self.name or not sep or not module or not fn:
            raise InputError(f"timed variant: expected a name and factory 'module:function', got {self.name!r} and "
                             f"{self.factory!r}")


@dataclass(frozen=True)
class TimedCall:
    """What a factory returns: ``fn()`` is timed (its input built beforehand), ``describe`` says what runs it."""

    fn: Callable[[], Any]
    describe: str
    close: Callable[[], None] | None = None


# ------------------------------------------------------------------------------------------------------ the plan
def round_order(names: list[str], rounds: int) -> list[list[str]]:
    """The order variants run in each round: as given on even rounds, reversed on odd ones."""
    if rounds < 1:
        raise InputError(f"rounds: expected >= 1, got {rounds}")
    return [list(names) if r % 2 == 0 else list(reversed(names)) for r in range(rounds)]


def isolation(*, rounds: int, runs: int, warmup: int, pause_s: float = 0.0) -> dict:
    """The JSON record of how variants were isolated by ``time_isolated``."""
    return {"method": METHOD, "rounds": rounds, "runs_per_round": runs, "warmup": warmup, "pause_s": pause_s,
            "text": f"each variant alone in its own fresh process per round, {rounds} alternating rounds (order "
                    f"reversed every other round) x {runs} timed runs after {warmup} warm-up, runs pooled"
                    + (f", {pause_s * 1e3:g} ms idle before each run" if pause_s else "")}


def in_process(*, pause_s: float, repeats: int, warmup: int) -> dict:
    """The JSON record of the older protocol (``sdk.timing.measure_latency``): kept for comparison."""
    return {"method": IN_PROCESS, "rounds": 1, "runs_per_round": repeats, "warmup": warmup, "pause_s": pause_s,
            "text": f"all variants in one process, alternating run by run, {pause_s * 1e3:g} ms idle before each "
                    "run (ONNX Runtime's spinning threads may slow the variant after it)"}


def pool(per_round: dict[str, list[list[float]]]) -> dict[str, dict]:
    """name -> the rounds' samples (ms) -> ``sdk.timing.latency_stats`` of all runs pooled, plus each round's p50
    (``round_p50_ms``) and their median (``median_round_p50_ms``)."""
    from sdk.timing.stats import latency_stats

    out = {}
    for name, rounds in per_round.items():
        pooled = [v for r in rounds for v in r]
        p50s = [float(np.percentile(r, 50)) for r in rounds if r]
        out[name] = {**latency_stats(pooled), "round_p50_ms": p50s, "median_round_p50_ms": float(np.median(p50s))}
    return out


# ------------------------------------------------------------------------------------------------------ the parent
def _root() -> str:
    return str(Path(__file__).resolve().parents[2])


def run_child(variant: Timed, *, runs: int, warmup: int, pause_s: float = 0.0, timeout_s: float = 600) -> dict:
    """Time one variant in a fresh process: {"samples_ms", "first_ms", "load_s", "describe"}."""
    spec = {"factory": variant.factory, "args": variant.args, "runs": runs, "warmup": warmup, "pause_s": pause_s}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_root(), os.environ.get("PYTHONPATH")]))}
    try:
        res = subprocess.run([sys.executable, "-m", "sdk.timing.isolated"], input=json.dumps(spec),
                             capture_output=True, text=True, timeout=timeout_s, env=env)  # the caller's cwd
    except subprocess.TimeoutExpired as exc:
        raise SegEdgeError(f"timing {variant.name}: its process ran past {timeout_s:g} s. Fewer runs, or a larger "
                           "timeout") from exc
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith(MARK)]
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SegEdgeError(f"timing {variant.name} ({variant.factory}): its process failed with exit code "
                           f"{res.returncode}: {tail[:400]}")
    return json.loads(lines[-1][len(MARK):])


def time_isolated(variants: list[Timed], *, rounds: int = ROUNDS, runs: int = RUNS, warmup: int = WARMUP,
                  pause_s: float = 0.0, timeout_s: float = 600, progress: bool = False,
                  runner: Callable[..., dict] | None = None) -> dict:
    """Time every variant alone in its own process, ``rounds`` alternating rounds (``round_order``) of ``warmup``
    untimed + ``runs`` timed runs each. Returns {"variants": name -> pooled stats (``pool``) + "describe", "load_s"
    and "first_ms" (per round), "isolation": ``isolation(...)``}. runner: replaces ``run_child`` (tests)."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names) or not names:
        raise InputError(f"variants: expected at least one, with distinct names, got {names}")
    if runs < 1 or warmup < 0:
        raise InputError(f"runs/warmup: expected runs >= 1 and warmup >= 0, got {runs} and {warmup}")
    by = {v.name: v for v in variants}
    run = runner or run_child
    samples: dict[str, list[list[float]]] = {n: [] for n in names}
    meta: dict[str, dict] = {n: {"load_s": [], "first_ms": []} for n in names}
    for r, order in enumerate(round_order(names, rounds)):
        for name in order:
            if progress:
                print(f"  round {r + 1}/{rounds}: {name}", flush=True)
            got = run(by[name], runs=runs, warmup=warmup, pause_s=pause_s, timeout_s=timeout_s)
            samples[name].append([float(v) for v in got["samples_ms"]])
            meta[name]["describe"] = got.get("describe", "")
            meta[name]["load_s"].append(got.get("load_s"))
            meta[name]["first_ms"].append(got.get("first_ms"))
    stats = pool(samples)
    return {"variants": {n: {**stats[n], **meta[n]} for n in names},
            "isolation": isolation(rounds=rounds, runs=runs, warmup=warmup, pause_s=pause_s)}


# ---------------------------------------------------------------------------------------- inputs and the artifact
def save_input(folder: str | Path, name: str, array: np.ndarray) -> str:
    """Write ``array`` to ``folder/name.npy`` for a child to load; returns its absolute path."""
    path = (Path(folder) / f"{name}.npy").absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(array))
    return str(path)


def artifact_variant(name: str, path: str | Path, *, runtime: str, options: dict | None = None,
                     pixel_values: str | None = None, output_hw: tuple[int, int] | None = None,
                     what: str = "infer", frames: str | None = None) -> Timed:
    """An artifact folder on ``runtime`` (a name, not "auto": the parent resolves it), timed as ``what``:
    "infer" (``Runtime.infer`` on the feeds of ``pixel_values``, a (N, 3, H, W) float32 .npy, masks at
    ``output_hw``), "mask" (the same, then a logits head's masks on the host, as ``segedge bench`` times it) or
    "segmenter" (``Segmenter.predict_batch`` of ``frames``, a (N, H, W, 3) uint8 .npy: preprocessing included)."""
    if what not in ("infer", "mask", "segmenter"):
        raise InputError(f"what: expected 'infer', 'mask' or 'segmenter', got {what!r}")
    if (what == "segmenter") != (frames is not None) or (what != "segmenter") != (pixel_values is not None):
        raise InputError(f"{name}: 'segmenter' takes frames=, 'infer'/'mask' take pixel_values= (got what={what!r})")
    args = {"path": str(Path(path).absolute()), "runtime": runtime, "options": options or {}, "what": what,
            "frames": frames and str(Path(frames).absolute()),
            "pixel_values": pixel_values and str(Path(pixel_values).absolute()),
            "output_hw": list(output_hw) if output_hw else None}
    return Timed(name=name, factory="sdk.timing.isolated:open_artifact", args=args)


def open_artifact(*, path: str, runtime: str, options: dict, what: str, frames: str | None,
                  pixel_values: str | None, output_hw: list[int] | None) -> TimedCall:
    """The child's side of ``artifact_variant``."""
    if what == "segmenter":
        from sdk.segmenter import Segmenter

        seg = Segmenter.from_artifact(path, runtime=runtime, **options)
        batch = list(np.load(frames))
        return TimedCall(lambda: seg.predict_batch(batch, batch_size=len(batch)), seg.runtime.describe(), seg.close)
    from runtimes import open_runtime
    from sdk.core.manifest import model_feeds
    from sdk.core.postprocess import masks_from_logits

    rt = open_runtime(path, runtime, **options)
    x = np.load(pixel_values)
    hw = tuple(output_hw) if output_hw else tuple(x.shape[2:])
    feeds = model_feeds(rt.manifest, x, hw)
    if what == "infer":
        fn: Callable[[], Any] = lambda: rt.infer(feeds)  # noqa: E731
    elif rt.manifest.head == "mask":
        fn = lambda: rt.infer(feeds)["mask"]  # noqa: E731
    else:  # a logits head: the full computation on the host; a refine head: refined from logits + argmax
        fn = lambda: masks_from_logits(rt.infer(feeds), hw)  # noqa: E731
    return TimedCall(fn, rt.describe(), rt.close)


# ------------------------------------------------------------------------------------------------------ the child
def child(spec: dict) -> dict:
    """Build the variant, time it (``runtimes.choose.sample_runs``), close it; the JSON the parent reads."""
    from runtimes.choose import sample_runs

    module, _, name = spec["factory"].partition(":")
    t = time.perf_counter()
    call: TimedCall = getattr(import_module(module), name)(**spec["args"])
    load_s = time.perf_counter() - t
    try:
        runs = int(spec["runs"])
        first_ms, samples = sample_runs(call.fn, warmup=max(1, int(spec["warmup"])), min_runs=runs, max_runs=runs,
                                        budget_s=0.0, pause_s=float(spec.get("pause_s") or 0.0))
    finally:
        if call.close is not None:
            call.close()
    return {"samples_ms": samples, "first_ms": first_ms, "load_s": load_s, "describe": call.describe}


def main() -> int:
    spec = json.loads(sys.stdin.read())
    print(MARK + json.dumps(child(spec)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
