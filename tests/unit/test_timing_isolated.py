"""sdk.timing.isolated's plan, without processes: the round order (reversed every other round), pooling of runs per
variant, the isolation record, and that time_isolated runs each variant once per round in that order."""
from __future__ import annotations

import pytest

from sdk.core.errors import InputError
from sdk.timing.isolated import Timed, artifact_variant, isolation, pool, round_order, time_isolated


def test_round_order_alternates():
    assert round_order(["a", "b", "c"], 3) == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]
    assert round_order(["a"], 2) == [["a"], ["a"]]
    with pytest.raises(InputError, match="rounds"):
        round_order(["a"], 0)


def test_pool_pools_runs_and_keeps_round_medians():
    got = pool({"a": [[1.0, 2.0, 3.0], [10.0, 11.0, 12.0]]})["a"]
    assert got["n"] == 6 and got["p50_ms"] == pytest.approx(6.5)
    assert got["round_p50_ms"] == [2.0, 11.0] and got["median_round_p50_ms"] == pytest.approx(6.5)
    assert got["min_ms"] == 1.0 and got["max_ms"] == 12.0


def test_time_isolated_runs_each_variant_once_per_round_in_alternating_order():
    calls = []

    def runner(variant, *, runs, warmup, pause_s, timeout_s):
        calls.append(variant.name)
        base = {"a": 10.0, "b": 20.0}[variant.name]
        return {"samples_ms": [base + i for i in range(runs)], "first_ms": 99.0, "load_s": 0.5,
                "describe": f"fake {variant.name}"}

    variants = [Timed(name="a", factory="m:f"), Timed(name="b", factory="m:f")]
    out = time_isolated(variants, rounds=3, runs=4, warmup=1, runner=runner)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    a = out["variants"]["a"]
    assert a["n"] == 12 and a["round_p50_ms"] == [11.5] * 3 and a["describe"] == "fake a"
    assert a["load_s"] == [0.5] * 3 and out["variants"]["b"]["p50_ms"] == pytest.approx(21.5)
    assert out["isolation"] == isolation(rounds=3, runs=4, warmup=1)
    assert "own process" in out["isolation"]["method"] and "3 alternating rounds" in out["isolation"]["text"]


def test_variants_are_checked():
    with pytest.raises(InputError, match="distinct names"):
        time_isolated([Timed(name="a", factory="m:f")] * 2, runner=lambda *a, **k: {})
    with pytest.raises(InputError, match="module:function"):
        Timed(name="a", factory="nofunction")
    with pytest.raises(InputError, match="pixel_values"):
        artifact_variant("a", "x", runtime="onnxruntime", what="segmenter", pixel_values="x.npy")


def test_artifact_paths_are_absolute_for_the_child(tmp_path, monkeypatch):
    # the child runs in the caller's folder, but a relative path given here must not depend on that
    monkeypatch.chdir(tmp_path)
    v = artifact_variant("a", "out/model", runtime="onnxruntime", pixel_values="x.npy", output_hw=(32, 48))
    assert v.args["path"] == str(tmp_path / "out" / "model") and v.args["pixel_values"] == str(tmp_path / "x.npy")
    assert v.args["output_hw"] == [32, 48] and v.factory == "sdk.timing.isolated:open_artifact"
