"""One frame's host work split over the CPU's cores: the caller runs the first part, a shared pool the others.

numpy, OpenCV and PIL release the GIL inside their loops, so parts of one resize or one mask refinement run side by
side. The pool is made on first use and shared by every caller; its tasks never wait on each other, so callers that
share it (the stream pipeline's workers) only queue, never deadlock.

Leaf module: the standard library and sdk.core.errors only.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

from sdk.core.errors import InputError

T = TypeVar("T")
R = TypeVar("R")

HOST_THREADS_ENV = "SEGEDGE_HOST_THREADS"
MAX_PARTS = 4  # beyond this, the per-part Python overhead outweighs the gain on one frame
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_this_thread = threading.local()  # .serial: True inside serial_host_work()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def host_parts() -> int:
    """How many parts to split one frame's host work into: ``SEGEDGE_HOST_THREADS`` where set (1: all of it on the
    calling thread, e.g. when several processes share the machine), else the usable CPUs; at most ``MAX_PARTS``;
    1 inside ``serial_host_work``."""
    if getattr(_this_thread, "serial", False):
        return 1
    raw = os.environ.get(HOST_THREADS_ENV, "").strip()
    if not raw:
        return max(1, min(MAX_PARTS, usable_cpus()))
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"{HOST_THREADS_ENV}: expected a whole number >= 1, got {raw!r}. Unset it for the default "
                         f"(the usable CPUs, at most {MAX_PARTS}), or set 1 to keep the host work on one thread")
    return min(MAX_PARTS, int(raw))


@contextlib.contextmanager
def serial_host_work() -> Iterator[None]:
    """Within it, this thread's frames do their host work on this thread alone: for callers that already run
    several frames side by side (the stream pipeline's file-mode workers), where splitting each frame as well only
    adds hand-offs (fewer frames per second in file mode: docs/BENCHMARKS.md, "Design notes")."""
    before = getattr(_this_thread, "serial", False)
    _this_thread.serial = True
    try:
        yield
    finally:
        _this_thread.serial = before


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, MAX_PARTS - 1), thread_name_prefix="segedge-host")
        return _pool


def _forget_pool_in_child() -> None:
    """A forked child has the parent's pool object but none of its threads: parts submitted to it would wait
    forever. The child makes its own pool on first use."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def run_parts(fn: Callable[[T], R], parts: Sequence[T]) -> list[R]:
    """[fn(p) for p in parts], the first in the calling thread and the rest in the shared pool, side by side.
    Returns when every part has finished (also when one raises: the first error is raised after all are done)."""
    if len(parts) <= 1:
        return [fn(p) for p in parts]
    futures = [_shared_pool().submit(fn, p) for p in parts[1:]]
    try:
        first = fn(parts[0])
    finally:
        for f in futures:  # never leave a part writing into the caller's arrays after it returns
            f.exception()
    return [first] + [f.result() for f in futures]


# Stream readers run this much nicer than the inference threads (Linux, per thread). Decoding every frame of many
# cameras can take more CPU than the machine has; at equal priority the decoding threads starve the model's (fewer
# frames in all than separate processes got: docs/BENCHMARKS.md, "Design notes"), while the frames a live source
# decodes beyond what the model takes are dropped anyway.
# SEGEDGE_READER_NICENESS overrides it (0: the readers keep the inference threads' priority).
READER_NICENESS_ENV = "SEGEDGE_READER_NICENESS"


def reader_niceness() -> int:
    """How much nicer stream readers run: SEGEDGE_READER_NICENESS (0..19), default 5."""
    text = os.environ.get(READER_NICENESS_ENV, "5")
    if not text.isdigit() or int(text) > 19:
        raise InputError(f"{READER_NICENESS_ENV}: expected an integer from 0 to 19, got {text!r}")
    return int(text)


def lower_thread_priority(niceness: int) -> None:
    """The calling thread's scheduling priority lowered by ``niceness`` (on Linux each thread has its own nice
    value, and threads it starts, e.g. FFmpeg's decoders, inherit it); elsewhere, or where refused, unchanged."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except (AttributeError, OSError):  # not Linux/Unix, or not permitted: the readers keep the default priority
        pass
