"""The runtime interface: numpy in, numpy out. Backends override ``_infer_impl`` (and ``_close_impl``) only.

``infer`` checks the feeds once, for every backend, against the artifact's manifest, and times the call (as
Polygraphy's runners do): ``last_inference_time()`` is this thread's last call, and ``recording()`` collects every
call a thread makes inside it, so callers split their own work from the model's without wrapping the runtime.
Runtimes are context managers; ``close()`` frees the session and any device memory. torch is never needed to run an
artifact.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sdk.core.cpu import warn_if_saturating
from sdk.core.errors import ArtifactError, InputError
from sdk.core.manifest import Manifest, read_manifest


def check_threads(threads: object, what: str) -> int:
    """An intra-op thread count: an int from 0 (the library's default) to MAX_THREADS (a typo like 10**6 would make
    the library try to start a million threads)."""
    import os

    limit = max(64, 4 * (os.cpu_count() or 1))
    if not isinstance(threads, int) or isinstance(threads, bool) or not 0 <= threads <= limit:
        raise InputError(f"threads: expected an int from 0 ({what}'s default) to {limit} (4x this machine's "
                         f"{os.cpu_count()} CPUs), got {threads!r}")
    return threads


@dataclass(frozen=True, kw_only=True)
class AutoChoice:
    """What ``runtime="auto"`` picked and why (``runtimes.choose``). how: "measured" (timed now), "cached" (timed
    earlier on this machine), "first" (``SEGEDGE_AUTO_RUNTIME=first``: not measured) or "only" (the one installed
    runtime that runs it). timings_ms: runtime -> p50 ms where measured; skipped: runtime -> why it was left out."""

    runtime: str
    how: str
    reason: str
    size_hw: tuple[int, int] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.runtime} (auto: {self.reason})"


@dataclass(frozen=True)
class InferCall:
    """One ``Runtime.infer`` call's ``time.perf_counter()`` seconds: when it was asked for, when the model started
    (after any wait for the runtime's lock or the recording's gate) and when it ended."""

    asked: float
    start: float
    end: float


class Recording:
    """The calls one thread made inside ``Runtime.recording()``, in order; ``gate``: the semaphore each of them held
    while the model ran (None: no limit beyond the runtime's own)."""

    def __init__(self, gate: threading.Semaphore | None = None) -> None:
        self.calls: list[InferCall] = []
        self.gate = gate


class Runtime:
    """Base class. ``name`` is the key in ``runtimes.RUNTIMES``; ``formats`` the artifact formats it runs."""

    name = "base"
    formats: tuple[str, ...] = ()
    # True where ``_infer_impl`` may run in several threads at once (ONNX Runtime sessions; OpenVINO with its pool
    # of infer requests); otherwise ``infer`` serialises calls with a lock, so every runtime is safe to share.
    concurrent = False
    # How many calls run side by side without competing for the same cores: 1 for runtimes whose one call already
    # uses every core (ONNX Runtime's intra-op pool, OpenVINO's latency mode, a TensorRT context); OpenVINO's
    # throughput mode sets its number of streams. Pipelines run up to this many calls at once, else take turns.
    parallel_calls = 1
    # set by ``open_runtime(runtime="auto")``: what it picked and why; None when the runtime was named
    auto_choice: AutoChoice | None = None

    def __init__(self, artifact: str | Path, manifest: Manifest | None = None) -> None:
        self.artifact = Path(artifact)
        self.manifest = manifest or read_manifest(self.artifact)
        if self.manifest.format not in self.formats:
            if self.name == "tensorrt" and self.manifest.format == "onnx":
                raise ArtifactError(f"artifact {self.artifact}: an ONNX artifact, not a TensorRT engine. Build the "
                                    f"engine on the device: segedge build {self.artifact} --output "
                                    f"{self.artifact}.engine, then run that; or run this one with --runtime auto")
            raise ArtifactError(f"artifact {self.artifact}: format {self.manifest.format!r} cannot run on the "
                                f"{self.name} runtime, which runs {', '.join(self.formats)}. Use the auto runtime "
                                "(--runtime auto; runtime=\"auto\" in Python)")
        self.model_path = self.artifact / self.manifest.model_file
        self._closed = False
        warn_if_saturating(self.manifest, self.artifact)  # INT8 made for a CPU class that does not saturate
        self._lock = threading.Lock()
        self._thread = threading.local()  # per thread: the last call's seconds, the active Recording

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.manifest.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.manifest.outputs]

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model. ``feeds`` maps every input name of the manifest to an array of its dtype and rank."""
        if self._closed:
            raise ArtifactError(f"{self.name} runtime for {self.artifact} is closed")
        if set(feeds) != set(self.input_names):
            raise InputError(f"feeds: expected inputs {self.input_names}, got {sorted(feeds)}")
        for info in self.manifest.inputs:
            arr = feeds[info.name]
            if not isinstance(arr, np.ndarray) or arr.dtype != np.dtype(info.dtype) or arr.ndim != len(info.shape):
                got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
                raise InputError(f"{info.name}: expected {info.dtype} with shape {info.shape}, got {got}")
            for dim, (want, have) in enumerate(zip(info.shape, arr.shape)):
                if isinstance(want, int) and want != have:
                    raise InputError(f"{info.name}: expected size {want} on axis {dim} (shape {info.shape}), "
                                     f"got shape {arr.shape}")
        recording: Recording | None = getattr(self._thread, "recording", None)
        asked = time.perf_counter()
        with contextlib.ExitStack() as held:
            if recording is not None and recording.gate is not None:
                held.enter_context(recording.gate)
            if not self.concurrent:
                held.enter_context(self._lock)
            start = time.perf_counter()
            out = self._infer_impl(feeds)
            end = time.perf_counter()
        self._thread.last = end - start
        if recording is not None:
            recording.calls.append(InferCall(asked, start, end))
        return out

    def last_inference_time(self) -> float | None:
        """Seconds the model ran in this thread's last ``infer`` call (no wait, no input check); None before one."""
        return getattr(self._thread, "last", None)

    @contextlib.contextmanager
    def recording(self, gate: threading.Semaphore | None = None) -> Iterator[Recording]:
        """Collect the ``infer`` calls this thread makes inside the block (``Recording.calls``). ``gate``: a
        semaphore each call holds while the model runs, so callers sharing it run at most its count of calls at
        once (stream pipelines: the runtime's ``parallel_calls``); the wait for it is in neither ``asked`` nor the
        model time. Recordings do not nest."""
        if getattr(self._thread, "recording", None) is not None:
            raise RuntimeError("Runtime.recording: already recording in this thread")
        self._thread.recording = rec = Recording(gate)
        try:
            yield rec
        finally:
            self._thread.recording = None

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        if not self._closed:
            self._close_impl()
            self._closed = True

    def _close_impl(self) -> None:
        pass

    def describe(self) -> str:
        return self.name

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def construct(cls: type[Runtime], artifact: Path, manifest: Manifest, options: dict) -> Runtime:
    """``cls(artifact, manifest, **options)``, refusing options the runtime does not take (one line naming the
    ones it does) instead of Python's TypeError."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    accepted = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise InputError(f"runtime options: the {cls.name} runtime takes {accepted}, got {unknown}. Drop "
                         f"{', '.join(unknown)}, or choose the runtime that has it (--runtime / runtime=).")
    return cls(artifact, manifest, **options)
