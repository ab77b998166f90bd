"""sdk.core.parallel: parts run side by side, results in order, and an error surfaces only after every part ends."""
from __future__ import annotations

import threading
import time

import pytest

from sdk.core.errors import InputError
from sdk.core.parallel import MAX_PARTS, host_parts, run_parts, serial_host_work, usable_cpus


def test_results_in_order_and_parts_on_other_threads():
    seen = []

    def part(i):
        seen.append(threading.current_thread().name)
        return i * i

    assert run_parts(part, [1, 2, 3]) == [1, 4, 9]
    assert seen.count(threading.current_thread().name) == 1  # the caller runs one part, the pool the others
    assert run_parts(part, [5]) == [25] and run_parts(part, []) == []
    assert 1 <= host_parts() <= usable_cpus()


def test_error_is_raised_after_all_parts_finish():
    done = []

    def part(i):
        if i == 0:
            raise ValueError("part 0 failed")
        time.sleep(0.05)
        done.append(i)

    with pytest.raises(ValueError, match="part 0 failed"):
        run_parts(part, [0, 1, 2])
    assert sorted(done) == [1, 2]  # nobody is still writing into the caller's arrays


def test_host_threads_environment_variable(monkeypatch):
    monkeypatch.setenv("SEGEDGE_HOST_THREADS", "1")
    assert host_parts() == 1
    monkeypatch.setenv("SEGEDGE_HOST_THREADS", "64")
    assert host_parts() == MAX_PARTS
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SEGEDGE_HOST_THREADS", bad)
        with pytest.raises(InputError, match="SEGEDGE_HOST_THREADS: expected a whole number >= 1"):
            host_parts()


def _square_parts(queue):
    queue.put(run_parts(lambda i: i * i, [1, 2, 3]))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_pool():
    """The parent's pool threads do not exist in a forked child (multiprocessing's fork start method, data loader
    workers): parts submitted there must still run."""
    import multiprocessing

    run_parts(lambda i: i, [0, 1])  # the parent's pool exists and has idle threads
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_square_parts, args=(queue,))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0, "the child hung or failed running parts"
    assert queue.get(timeout=5) == [1, 4, 9]


def test_serial_host_work_is_per_thread_and_nests(monkeypatch):
    monkeypatch.setenv("SEGEDGE_HOST_THREADS", "3")
    seen = {}
    with serial_host_work():
        assert host_parts() == 1
        with serial_host_work():
            assert host_parts() == 1
        assert host_parts() == 1  # the inner block does not end the outer one
        other = threading.Thread(target=lambda: seen.setdefault("other", host_parts()))
        other.start()
        other.join()
    assert seen["other"] == 3 and host_parts() == 3


def test_a_thread_lowers_only_its_own_priority():
    import os
    import sys
    import threading

    from sdk.core.parallel import lower_thread_priority

    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread nice values are Linux's")
    seen = []

    def reader():
        lower_thread_priority(5)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=reader)
    t.start()
    t.join()
    assert seen == [min(19, before + 5)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
