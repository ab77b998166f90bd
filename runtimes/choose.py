"""``runtime="auto"``: the installed runtime that runs an artifact fastest on this machine, measured once and cached.

Why measure: one file often runs on more than one runtime (an ONNX artifact on ONNX Runtime and OpenVINO), and
which is faster depends on the CPU, the runtime versions, the graph and the input size (OpenVINO ran B0 FP32 and
INT8 1.7-2.4x faster than ONNX Runtime on a Zen 5 with AVX-512 BF16; issue 28). A fixed order cannot know that.

Policy, ``SEGEDGE_AUTO_RUNTIME``:
- ``measure`` (default): each runtime that can run the artifact is opened, warmed up and timed **alone** (a few
  runs at the artifact's input size, median), then closed before the next opens, so no runtime's spinning intra-op
  threads (ONNX Runtime's spin after every run) share the cores with another's timing. Where the two fastest are
  within ``CONFIRM`` of each other, they are timed again in reverse order and each one's runs pooled (load on a
  shared machine drifts). The fastest wins; one within ``TIE`` of the first in ``RUNTIMES`` order does not displace
  it, so the choice is stable. Runtimes that fail to open are left out, with why.
- ``remeasure``: as ``measure``, ignoring (and replacing) a cached choice: after a change the key does not see, or
  when the cached one was timed on a busy machine (the reason says the load it was timed under).
- ``first``: the first installed runtime in ``RUNTIMES`` order that runs the format, as before (ONNX -> ONNX
  Runtime), not measured: deterministic (the test suite sets it).

The choice is cached in a JSON file outside the artifact (artifacts are shared between machines and may be
read-only): ``$SEGEDGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/segedge``, else ``~/.cache/segedge``, file
``auto-runtime.json``; keyed by the model file's sha256, the CPU (ISA flags, usable cores), the runtimes' versions,
the input size and the runtime options. An artifact only one installed runtime can run is never measured.

The input size: the artifact's static input, else its manifest's network size, else ``DEFAULT_SIZE_HW`` (the
artifact takes any size; the reason says so).
"""
from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable

import numpy as np

from runtimes.base import AutoChoice, Runtime, construct
from sdk.core.cpu import host_isa
from sdk.core.errors import InputError, SegEdgeError
from sdk.core.manifest import Manifest, model_feeds
from sdk.core.preprocess import STRIDE

log = logging.getLogger("segedge.auto")  # the CLI prints measured choices from this logger as its first line

POLICY_ENV = "SEGEDGE_AUTO_RUNTIME"
POLICIES = ("measure", "remeasure", "first")
CACHE_ENV = "SEGEDGE_CACHE_DIR"
CACHE_FILE = "auto-runtime.json"
DEFAULT_SIZE_HW = (512, 512)
TIE = 0.03  # a runtime must be more than 3% faster than the first in order to displace it
# where the two fastest are within this ratio after one pass, a second pass in reverse order (each reopened, alone)
# adds its runs to theirs, so load that drifts on a shared machine while they are timed does not decide alone
CONFIRM = 1.25
WARMUP = 2
MIN_RUNS, MAX_RUNS = 3, 7
BUDGET_S = 2.0  # per runtime, after warm-up: stop at MAX_RUNS or when this is spent (at least MIN_RUNS)
ANY_SIZE = "the artifact takes any size"
ISOLATION = "each runtime alone: opened, warmed up, timed, closed before the next opens"
# the distributions each runtime's module may come from (the version keys the cache; importing would cost seconds)
_DISTRIBUTIONS = {"onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"),
                  "openvino": ("openvino",), "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu11")}


def policy() -> str:
    """``SEGEDGE_AUTO_RUNTIME``, checked: "measure" (default), "remeasure" or "first"."""
    value = os.environ.get(POLICY_ENV, "measure").strip().lower() or "measure"
    if value not in POLICIES:
        raise InputError(f"{POLICY_ENV}: expected one of {POLICIES}, got {value!r}. 'first' turns the measured "
                         "choice off (the first installed runtime that runs the format); 'remeasure' times again.")
    return value


def cache_path() -> Path:
    """Where measured choices are kept (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / CACHE_FILE
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "segedge" / CACHE_FILE


def cannot_run(name: str, manifest: Manifest) -> str | None:
    """Why the runtime ``name`` cannot run this artifact although it reads its format, or None."""
    if name == "openvino" and manifest.graph != "portable":
        return f"its graph is {manifest.graph!r} (ONNX Runtime's own ops), which OpenVINO does not read"
    return None


def runnable(runtimes: dict[str, type[Runtime]], manifest: Manifest, options: dict | None = None,
             needs: dict[str, tuple[str, str]] | None = None) -> tuple[list[str], dict[str, str]]:
    """(names of the runtimes, in order, that read the format, are installed, can run this artifact and take every
    option in ``options``; name -> why for the ones that read the format but were left out). needs: name ->
    (module, extra) (default: the module named as the runtime); a runtime whose module is missing is left out."""
    import inspect

    names, skipped = [], {}
    for name, cls in runtimes.items():
        if manifest.format not in cls.formats:
            continue
        module = (needs or {}).get(name, (name, ""))[0]  # by default the module is named as the runtime
        if find_spec(module) is None:
            skipped[name] = "not installed"
            continue
        why = cannot_run(name, manifest)
        params = inspect.signature(cls.__init__).parameters
        takes = {n for n, p in params.items() if p.kind == p.KEYWORD_ONLY}
        unknown = sorted(set(options or {}) - takes)
        if why is None and unknown:
            why = f"does not take the option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
        if why:
            skipped[name] = why
        else:
            names.append(name)
    return names, skipped


def input_size_hw(manifest: Manifest) -> tuple[tuple[int, int], str]:
    """(the (H, W) network input to time, where it comes from)."""
    shape = next((t.shape for t in manifest.inputs if t.name == "pixel_values"), None)
    if shape is not None and len(shape) == 4 and all(isinstance(v, int) for v in shape[2:]):
        return (int(shape[2]), int(shape[3])), "its static input"
    if manifest.preprocess.size_hw:
        h, w = manifest.preprocess.size_hw
        return (int(h), int(w)), "its network size"
    limit = manifest.extra.get("max_input_pixels")
    if isinstance(limit, int) and limit < DEFAULT_SIZE_HW[0] * DEFAULT_SIZE_HW[1]:  # a smaller square it allows
        side = max(STRIDE, int(limit ** 0.5) // STRIDE * STRIDE)
        return (side, side), ANY_SIZE
    return DEFAULT_SIZE_HW, ANY_SIZE


def sample_runs(fn: Callable[[], Any], *, warmup: int = WARMUP, min_runs: int = MIN_RUNS,
                max_runs: int = MAX_RUNS, budget_s: float = BUDGET_S, pause_s: float = 0.0) -> tuple[float, list[float]]:
    """The one timing loop of the project's isolated timings (this module's ``time_runtime`` and
    ``sdk.timing.isolated``'s child process): ``warmup`` untimed runs of ``fn()`` (the first one's time returned),
    then ``min_runs`` to ``max_runs`` timed ones within ``budget_s`` (``pause_s`` of sleep before each). Returns
    (the first run's ms, the timed runs' ms)."""
    t = time.perf_counter()
    fn()
    first_ms = 1e3 * (time.perf_counter() - t)
    for _ in range(max(0, warmup - 1)):
        fn()
    samples: list[float] = []
    end = time.perf_counter() + budget_s
    while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter() < end):
        if pause_s:
            time.sleep(pause_s)
        t = time.perf_counter()
        fn()
        samples.append(1e3 * (time.perf_counter() - t))
    return first_ms, samples


def time_runtime(cls: type[Runtime], artifact: Path, manifest: Manifest, options: dict, size_hw: tuple[int, int],
                 *, warmup: int = WARMUP, min_runs: int = MIN_RUNS, max_runs: int = MAX_RUNS,
                 budget_s: float = BUDGET_S, keep_open: bool = False) -> tuple[dict, Runtime | None]:
    """Open ``artifact`` on ``cls``, time ``Runtime.infer`` on a (1, 3, H, W) input of ``size_hw`` (``sample_runs``:
    ``warmup`` untimed runs, then ``min_runs`` to ``max_runs`` timed ones within ``budget_s``), and close it (unless
    ``keep_open``: then it is returned, else None). Returns ({"p50_ms", "runs", "load_s", "first_ms",
    "describe"}, the runtime or None). Callers time one runtime at a time, so nothing else runs beside it."""
    t0 = time.perf_counter()
    rt = construct(cls, artifact, manifest, options)
    try:
        load_s = time.perf_counter() - t0
        x = np.random.default_rng(0).standard_normal((1, 3, *size_hw)).astype(np.float32)
        feeds = model_feeds(manifest, x, size_hw)
        first_ms, samples = sample_runs(lambda: rt.infer(feeds), warmup=warmup, min_runs=min_runs,
                                        max_runs=max_runs, budget_s=budget_s)
        record = {"p50_ms": float(np.median(samples)), "runs": len(samples), "load_s": round(load_s, 3),
                  "first_ms": round(first_ms, 2), "describe": rt.describe(), "samples_ms": samples}
    except BaseException:
        rt.close()
        raise
    if keep_open:
        return record, rt
    rt.close()
    gc.collect()  # the session's thread pool goes with it, before the next runtime is timed
    return record, None


def _versions(names: list[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        for dist in _DISTRIBUTIONS.get(name, (name,)):
            try:
                out[name] = f"{dist} {version(dist)}"
                break
            except PackageNotFoundError:
                continue
        else:
            out[name] = "unknown"
    return out


def _model_sha256(artifact: Path, manifest: Manifest) -> str:
    """sha256 over the model file (and an OpenVINO IR's weights)."""
    digest = hashlib.sha256()
    model = artifact / manifest.model_file
    files = [model] + ([model.with_suffix(".bin")] if model.suffix == ".xml" and model.with_suffix(".bin").is_file()
                       else [])
    for path in files:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _machine() -> dict:
    isa = host_isa()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return {"class": isa["class"], "machine": isa["machine"], "flags": isa["flags"], "cores": cores}


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def read_cache(path: Path | None = None) -> dict:
    path = path or cache_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, unreadable or cut: measure again
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, entry: dict) -> Path | None:
    """Add ``entry`` under ``key`` (written to a temporary file, then renamed: a reader never sees half a file). A
    cache that cannot be written is not an error: the choice is then measured again next time."""
    path = cache_path()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = read_cache(path)
        data[key] = entry
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return path
    except OSError as exc:  # read-only home, full disk, a file size limit: no half-written file is left behind
        log.debug("auto runtime: cannot write the cache %s (%s)", path, exc)
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return None


def _key_parts(artifact: Path, manifest: Manifest, names: list[str], options: dict, size_hw) -> dict:
    return {"model_sha256": _model_sha256(artifact, manifest), "machine": _machine(), "runtimes": _versions(names),
            "size_hw": list(size_hw), "options": {k: repr(v) for k, v in sorted(options.items())}}


def _fmt_timings(timings: dict[str, float]) -> str:
    return ", ".join(f"{n} {ms:.3g} ms" for n, ms in sorted(timings.items(), key=lambda kv: kv[1]))


def pick(timings: dict[str, float], order: list[str]) -> tuple[str, bool]:
    """(the fastest runtime, whether it was a tie kept for the first in ``order``): the fastest, unless the first
    of ``order`` that was timed is within ``TIE`` of it."""
    fastest = min(timings, key=timings.__getitem__)
    first = next(n for n in order if n in timings)
    if fastest != first and timings[first] <= (1 + TIE) * timings[fastest]:
        return first, True
    return fastest, False


def measure(runtimes: dict[str, type[Runtime]], names: list[str], artifact: Path, manifest: Manifest,
            options: dict, size_hw: tuple[int, int]) -> tuple[dict[str, dict], dict[str, str], Runtime | None]:
    """Time each runtime in ``names`` alone, one after another (``time_runtime``). Returns (name -> timing record,
    name -> why it could not be timed, the last runtime still open: reused when it wins, else closed by the
    caller)."""
    records: dict[str, dict] = {}
    failed: dict[str, str] = {}
    last: Runtime | None = None
    for i, name in enumerate(names):
        if last is not None:
            last.close()
            last = None
            gc.collect()
        try:
            records[name], last = time_runtime(runtimes[name], artifact, manifest, options, size_hw,
                                               keep_open=i == len(names) - 1)
        except (SegEdgeError, RuntimeError, OSError, MemoryError) as exc:  # one that cannot open or run it here
            failed[name] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return records, failed, last


def _confirm(runtimes: dict[str, type[Runtime]], records: dict[str, dict], last: Runtime | None, artifact: Path,
             manifest: Manifest, options: dict, size_hw: tuple[int, int]) -> tuple[dict[str, dict], Runtime | None]:
    """Where the two fastest of one pass are within ``CONFIRM``, time those again in reverse order and pool each
    one's runs (the p50 is then over both passes). Returns (the records, the runtime still open)."""
    ranked = sorted(records, key=lambda n: records[n]["p50_ms"])
    if len(ranked) < 2 or records[ranked[1]]["p50_ms"] > CONFIRM * records[ranked[0]]["p50_ms"]:
        return records, last
    again = [n for n in reversed(list(records)) if n in ranked[:2]]
    if last is not None and last.name == again[0]:  # still open from the first pass: closed, then reopened
        last.close()
        last = None
        gc.collect()
    more, _, last2 = measure(runtimes, again, artifact, manifest, options, size_hw)
    if last is not None:
        last.close()
        gc.collect()
    pooled = dict(records)
    for name, rec in more.items():
        samples = records[name]["samples_ms"] + rec["samples_ms"]
        pooled[name] = {**records[name], "samples_ms": samples, "runs": len(samples),
                        "p50_ms": float(np.median(samples))}
    return pooled, last2


def choose(runtimes: dict[str, type[Runtime]], artifact: Path, manifest: Manifest, options: dict,
           needs: dict[str, tuple[str, str]] | None = None) -> Runtime | None:
    """Open ``artifact`` on the runtime ``runtime="auto"`` picks (see the module docstring); its ``auto_choice``
    says which and why. None when no installed runtime can run it (the caller says what to install)."""
    names, skipped = runnable(runtimes, manifest, options, needs)
    skipped = {n: why for n, why in skipped.items() if why != "not installed"}
    if not names:
        return None
    fmt = manifest.format
    if len(names) == 1:
        choice = AutoChoice(runtime=names[0], how="only", skipped=skipped,
                            reason=f"the only installed runtime that runs this {fmt} artifact"
                                   + (f" ({'; '.join(f'{n}: {w}' for n, w in skipped.items())})" if skipped else ""))
        return _open(runtimes, choice, artifact, manifest, options)
    if policy() == "first":
        choice = AutoChoice(runtime=names[0], how="first", skipped=skipped,
                            reason=f"the first installed runtime for {fmt} artifacts ({POLICY_ENV}=first: not "
                                   f"measured; {', '.join(names[1:])} also run it)")
        return _open(runtimes, choice, artifact, manifest, options)
    size_hw, size_from = input_size_hw(manifest)
    parts = _key_parts(artifact, manifest, names, options, size_hw)
    key = cache_key(parts)
    cached = read_cache().get(key) if policy() == "measure" else None
    if isinstance(cached, dict) and cached.get("runtime") in names:
        timings = {n: float(v) for n, v in (cached.get("timings_ms") or {}).items()}
        choice = AutoChoice(runtime=cached["runtime"], how="cached", size_hw=size_hw, timings_ms=timings,
                            skipped={**skipped, **(cached.get("failed") or {})},
                            reason=_reason(cached["runtime"], timings, names, size_hw, size_from,
                                           f"measured {cached.get('measured_at', 'earlier')} on this machine"
                                           f"{_busy(cached.get('load_1min'), parts['machine']['cores'])}, cached in "
                                           f"{cache_path()} ({POLICY_ENV}=remeasure times again)"))
        return _open(runtimes, choice, artifact, manifest, options)
    load = _load()
    records, failed, last = measure(runtimes, names, artifact, manifest, options, size_hw)
    if not records:  # none ran: open the first, whose error then says why
        if last is not None:
            last.close()
        return construct(runtimes[names[0]], artifact, manifest, options)
    records, last = _confirm(runtimes, records, last, artifact, manifest, options, size_hw)
    timings = {n: r["p50_ms"] for n, r in records.items()}
    winner, _ = pick(timings, names)
    entry = {"runtime": winner, "timings_ms": timings, "failed": failed, "isolation": ISOLATION,
             "measured_at": time.strftime("%Y-%m-%d %H:%M"), "artifact": str(artifact), "load_1min": load, **parts}
    written = _write_cache(key, entry)
    where = f"cached in {written}" if written else "not cached: the cache folder is not writable"
    busy = _busy(load, parts["machine"]["cores"])
    choice = AutoChoice(runtime=winner, how="measured", size_hw=size_hw, timings_ms=timings,
                        skipped={**skipped, **failed},
                        reason=_reason(winner, timings, names, size_hw, size_from, f"measured now{busy}, {where}"))
    if last is not None and last.name == winner:
        last.auto_choice = choice
        _announce(choice)
        return last
    if last is not None:
        last.close()
        gc.collect()
    return _open(runtimes, choice, artifact, manifest, options)


def _load() -> float | None:
    """The 1-minute load average before timing (None where the OS does not report it)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _busy(load: float | None, cores: int) -> str:
    """", timed while the machine was busy (load 4.2 on 2 cores)" where the load was over half the cores, else ""."""
    if load is None or load <= 0.5 * cores:
        return ""
    return f", timed while the machine was busy (load {load:g} on {cores} cores: other processes shared them)"


def _reason(winner: str, timings: dict[str, float], names: list[str], size_hw, size_from: str, when: str) -> str:
    _, tie = pick(timings, names) if winner in timings and timings else (winner, False)
    how = (f"within {100 * TIE:.0f}% of the fastest, so the first in order is kept" if tie else "fastest here")
    return (f"{how} at {size_hw[0]}x{size_hw[1]} ({size_from}): {_fmt_timings(timings)} p50, each runtime timed "
            f"alone; {when}")


def _open(runtimes: dict[str, type[Runtime]], choice: AutoChoice, artifact: Path, manifest: Manifest,
          options: dict) -> Runtime:
    rt = construct(runtimes[choice.runtime], artifact, manifest, options)
    rt.auto_choice = choice
    _announce(choice)
    return rt


def _announce(choice: AutoChoice) -> None:
    """Log the choice; measured and cached ones are marked for the CLI to print (``sdk.cli``)."""
    log.info("runtime %s", choice, extra={"measured": choice.how in ("measured", "cached")})


def describe_auto(artifact: Path, manifest: Manifest, runtimes: dict[str, type[Runtime]],
                  needs: dict[str, tuple[str, str]] | None = None) -> str:
    """What ``runtime="auto"`` does with this artifact here, without opening or timing anything (``segedge
    inspect``): the only candidate, the policy, or the cached measurements for this model on this machine."""
    names, skipped = runnable(runtimes, manifest, {}, needs)
    if not names:
        return f"no installed runtime runs this {manifest.format} artifact here"
    if len(names) == 1:
        return f"{names[0]} (the only installed runtime that runs it)"
    if policy() == "first":
        return f"{names[0]} ({POLICY_ENV}=first: the first installed; {', '.join(names[1:])} also run it)"
    sha, machine, versions = _model_sha256(artifact, manifest), _machine(), _versions(names)
    found = [e for e in read_cache().values() if isinstance(e, dict) and e.get("model_sha256") == sha
             and e.get("machine") == machine and e.get("runtimes") == versions]
    if not found:
        return (f"not measured on this machine yet: the first open with runtime auto times {', '.join(names)} "
                f"(each alone, seconds) and caches the fastest in {cache_path()}")
    lines = []
    for e in sorted(found, key=lambda e: (e.get("size_hw") or [0, 0], str(e.get("options")))):
        hw = e.get("size_hw") or ["?", "?"]
        opts = ", ".join(f"{k}={v}" for k, v in (e.get("options") or {}).items())
        lines.append(f"{e.get('runtime')} at {hw[0]}x{hw[1]}{' with ' + opts if opts else ''} "
                     f"({_fmt_timings(e.get('timings_ms') or {})} p50, measured {e.get('measured_at', '?')}"
                     f"{_busy(e.get('load_1min'), machine['cores'])})")
    return "; ".join(lines)
