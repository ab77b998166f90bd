"""sdk.core.parallel: parts run side by side, results in order, and an error surfaces only after every part ends."""
from __future__ import annotations

import threading
import time

import pytest

from sdk.core.parallel import host_parts, run_parts, usable_cpus


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
