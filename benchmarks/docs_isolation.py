"""How the variants of each timing table were isolated from one another, for the line docs/BENCHMARKS.md prints
under it (benchmarks/make_docs.py). Timed in one process, alternating run by run, ONNX Runtime's spinning intra-op
threads slowed whatever ran next (issue 28), so every timing table says how it was timed.

Newer JSON records it (``sdk.timing.isolated``'s record: ``isolation``, ``timing.isolation`` or
``latency_input.isolation``); for files written before that, the line says what each benchmark's code did when the
file was written (read from that code: ``sdk.timing.measure_latency`` alternated run by run with a 0.1 s pause by
default). Kinds without a timing table (eval, verify, the emulated-AVX2 accuracy table) get no line.
"""
from __future__ import annotations

from typing import Any

from benchmarks.docs_common import dig, fmt, is_num

IN_ONE_PROCESS = "in one process, alternating run by run"
OLD = " (written before variants were timed each in a process of its own: ONNX Runtime's spinning threads may " \
      "have slowed the variant after an ONNX Runtime one)"


def recorded(d: dict) -> dict | None:
    """The isolation record of a newer JSON, wherever its kind keeps it."""
    for keys in (("isolation",), ("timing", "isolation"), ("latency_input", "isolation")):
        how = dig(d, *keys)
        if isinstance(how, dict) and how.get("text"):
            return how
    return None


def _pause(seconds: Any) -> str:
    return f"{fmt(1e3 * seconds, 'g')} ms idle before each run" if is_num(seconds) else "a pause before each run"


def _old(kind: str, d: dict) -> str | None:
    """What the benchmark's code did before it recorded how (see the module docstring)."""
    if kind == "int8":
        return f"all variants {IN_ONE_PROCESS}, 100 ms idle before each run (`sdk.timing.measure_latency`){OLD}"
    if kind == "report":
        return (f"all variants {IN_ONE_PROCESS}, {_pause(dig(d, 'latency_input', 'options', 'pause_s'))} "
                f"(`sdk.timing.measure_latency`){OLD}")
    if kind == "speed_menu":
        return (f"each group of variants {IN_ONE_PROCESS}, 100 ms idle before each run "
                f"(`calibration.latency_aware.p50_side_by_side`){OLD}")
    if kind == "peers":
        pauses = [fmt(v, "g") for v in dig(d, "timing", "pauses_ms") or [] if is_num(v)]
        zero = " (the 0 ms pass: each variant alone, back to back, still in that one process)" if "0" in pauses \
            else ""
        return f"all variants {IN_ONE_PROCESS}, one pass per idle time ({', '.join(pauses) or '-'} ms){zero}{OLD}"
    if kind in ("bench", "bench-e2e"):
        if isinstance(d.get("baseline"), dict):
            return f"the artifact and the baseline {IN_ONE_PROCESS}, {_pause(d.get('pause_s'))}{OLD}"
        return f"one variant, alone in its process, {_pause(d.get('pause_s'))}"
    if kind == "heads":
        return (f"the heads, the logits-only graph and the transformers pipeline {IN_ONE_PROCESS}, 100 ms idle "
                f"before each run (`sdk.timing.measure_latency`){OLD}")
    if kind == "stream":
        n = len(dig(d, "throughput", "rounds") or [])
        return (f"in one process, the throughput runs one after another (runtime only, model only, model only with 2 "
                f"workers, file mode), the same order in each of {n or '-'} rounds, medians over rounds")
    if kind == "multi_stream":
        return (f"each variant in its own process, {fmt(d.get('rounds'), 'd')} alternating rounds, medians over "
                "rounds (live cameras: each run in processes of its own, once, one after another)")
    if kind == "triton":
        return ("the in-process modes and the served runs one after another in one run, never at once; "
                "tritonserver in processes of its own, its clients in the benchmark's")
    if kind == "calib_memory":
        return "one `segedge quantize` process per row, one after another"
    return None


def isolation_line(kind: str, d: dict) -> str | None:
    """The line under a section's timing table: "Timed: ...", or None for a kind without one."""
    how = recorded(d)
    if how is not None:
        text = str(how["text"])
        if kind == "peers" and len(dig(d, "timing", "pauses_ms") or []) > 1:
            text += "; one such pass per idle time"
        return f"Timed: {text}."
    old = _old(kind, d)
    return f"Timed: {old}." if old else None
