"""The isolated timing harness (sdk.timing.isolated) on real ONNX Runtime sessions: two variants timed its way (each
in its own process per round, alternating rounds) give the same p50s as each timed alone, within noise. Timed in
one process, alternating run by run, ONNX Runtime's spinning threads slowed the variant after it (issue 28); here
nothing of one variant runs while the other is timed, so timing them together must not change either's number.

The model: tests/tiny_artifacts.py's real ONNX graph (a stride-4 conv and the exact mask head), dynamic size, fed
two different sizes (~15-35 and ~10-25 ms on the 2-core development VM, quiet to busy). Together and alone are
interleaved trial by trial and compared by the median of their rounds' p50s or by their quietest rounds (see the
test). The tolerance (30%) is for a shared 2-core machine: with other test jobs running (load 4-5), the same
variant's round p50s ranged over 2x."""
from __future__ import annotations


import numpy as np
import pytest

from sdk.timing.isolated import artifact_variant, save_input, time_isolated
from tiny_artifacts import write_onnx_artifact

pytest.importorskip("onnxruntime")
TOLERANCE = 0.30
TRIALS = 3


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    folder = tmp_path_factory.mktemp("isolated")
    art = write_onnx_artifact(folder / "tiny", head="mask")
    rng = np.random.default_rng(0)
    out = []
    for name, side in (("big", 1024), ("small", 768)):
        x = save_input(folder, name, rng.standard_normal((1, 3, side, side)).astype(np.float32))
        out.append(artifact_variant(name, art, runtime="onnxruntime", pixel_values=x))
    return out


def test_two_sessions_together_time_as_each_alone(variants):
    # together and alone interleaved trial by trial, so load from other jobs drifting over the test's half minute
    # weighs on both sides alike. Each side is summed up two ways: the median of its rounds' p50s, and the p50 of its
    # quietest round (other jobs on a shared machine only ever add time; at load 4-5 on 2 cores the medians wander
    # by more than the tolerance while the quietest rounds agree, at low load the reverse happens on a rare fast
    # round). A variant slowed by the one timed beside it (issue 28: 1.6-1.8x in one process) is slower in every
    # round, so it fails both.
    together, alone = {v.name: [] for v in variants}, {v.name: [] for v in variants}
    for _ in range(TRIALS):
        both = time_isolated(variants, rounds=2, runs=8, warmup=3)
        assert both["isolation"]["method"] == "own process per variant, alternating rounds"
        for v in variants:
            got = both["variants"][v.name]
            assert len(got["round_p50_ms"]) == 2 and got["n"] == 16 and "onnxruntime" in got["describe"]
            together[v.name] += got["round_p50_ms"]
            alone[v.name] += time_isolated([v], rounds=2, runs=8, warmup=3)["variants"][v.name]["round_p50_ms"]

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= TOLERANCE * min(a, b)

    for v in variants:
        t, a = together[v.name], alone[v.name]
        assert close(float(np.median(t)), float(np.median(a))) or close(min(t), min(a)), (
            f"{v.name}: round p50s {sorted(t)} ms timed beside the other vs {sorted(a)} ms alone: neither the "
            f"medians nor the quietest rounds within {TOLERANCE:.0%}")
    # the two sizes stay apart: the harness times each variant's own input
    assert np.median(together["big"]) > np.median(together["small"])


def test_a_failing_child_names_the_variant(tmp_path):
    from sdk.core.errors import SegEdgeError

    bad = artifact_variant("missing", tmp_path / "nothing", runtime="onnxruntime", pixel_values=str(tmp_path / "x"))
    with pytest.raises(SegEdgeError, match="timing missing"):
        time_isolated([bad], rounds=1, runs=1)
