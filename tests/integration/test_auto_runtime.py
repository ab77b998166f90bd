"""runtime="auto" picks the fastest installed runtime for the artifact on this machine, measured once (each runtime
alone) and cached outside the artifact; it says what it picked and why; a named runtime always wins; and
SEGEDGE_AUTO_RUNTIME=first keeps the old first-installed choice (the rest of the suite runs under it, set in
tests/conftest.py). Real ONNX Runtime and OpenVINO on the tiny real graph from ``tests/tiny_artifacts``."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtimes import RUNTIMES, choose, open_runtime
from sdk.core.errors import InputError
from sdk.core.manifest import Manifest, read_manifest
from sdk.segmenter import Segmenter
from tiny_artifacts import write_onnx_artifact

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """The measured policy, with the cache in a fresh folder (never the user's ~/.cache)."""
    monkeypatch.setenv(choose.POLICY_ENV, "measure")
    monkeypatch.setenv(choose.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / choose.CACHE_FILE


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_onnx_artifact(tmp_path_factory.mktemp("auto") / "fp32", head="refine", size_hw=(64, 96))


def _fake_timings(monkeypatch, p50: dict[str, float]) -> list[str]:
    """``time_runtime`` replaced by fixed p50s; returns the runtimes timed, in order."""
    timed: list[str] = []

    def fake(cls, artifact, manifest, options, size_hw, **kwargs):
        timed.append(cls.name)
        return {"p50_ms": p50[cls.name], "runs": 3, "load_s": 0.0, "first_ms": 0.0, "describe": cls.name,
                "samples_ms": [p50[cls.name]] * 3}, None

    monkeypatch.setattr(choose, "time_runtime", fake)
    return timed


def test_measured_once_then_cached_and_explained(tiny, measured):
    with Segmenter.from_artifact(tiny) as seg:
        first = seg.runtime.auto_choice
        assert first.how == "measured" and set(first.timings_ms) == {"onnxruntime", "openvino"}
        assert all(v > 0 for v in first.timings_ms.values()) and first.size_hw == (64, 96)
        assert seg.runtime.name == first.runtime
        assert "auto: fastest here at 64x96" in repr(seg) or "auto: within 3%" in repr(seg)
        assert "each runtime timed alone" in repr(seg)
    entry, = json.loads(measured.read_text()).values()
    assert entry["runtime"] == first.runtime and entry["size_hw"] == [64, 96]
    assert entry["machine"]["flags"] is not None and set(entry["runtimes"]) == {"onnxruntime", "openvino"}
    assert len(entry["model_sha256"]) == 64 and "alone" in entry["isolation"]
    with Segmenter.from_artifact(tiny) as seg:  # the second open reads the cache, times nothing
        again = seg.runtime.auto_choice
        assert again.how == "cached" and again.runtime == first.runtime and again.timings_ms == first.timings_ms
        assert "cached in" in again.reason
    assert sorted(p.name for p in tiny.iterdir()) == ["model.json", "model.onnx"]  # nothing written into it


def test_fastest_wins_a_near_tie_keeps_the_first(tiny, measured, monkeypatch):
    timed = _fake_timings(monkeypatch, {"onnxruntime": 20.0, "openvino": 12.0})
    with open_runtime(tiny) as rt:
        assert rt.name == "openvino" and rt.auto_choice.runtime == "openvino"
        assert "openvino 12 ms, onnxruntime 20 ms" in rt.auto_choice.reason
    assert timed == ["onnxruntime", "openvino"]  # one after another
    measured.unlink()
    timed = _fake_timings(monkeypatch, {"onnxruntime": 20.0, "openvino": 19.8})  # within 3%: noise, the first stays
    with open_runtime(tiny) as rt:
        assert rt.name == "onnxruntime" and "within 3%" in rt.auto_choice.reason
    # close after one pass (within 1.25x): both timed again in reverse order, their runs pooled
    assert timed == ["onnxruntime", "openvino", "openvino", "onnxruntime"]
    entry, = json.loads(measured.read_text()).values()
    assert entry["timings_ms"] == {"onnxruntime": 20.0, "openvino": 19.8}


def test_a_named_runtime_always_wins(tiny, measured, monkeypatch):
    _fake_timings(monkeypatch, {"onnxruntime": 20.0, "openvino": 5.0})
    with open_runtime(tiny, "onnxruntime") as rt:
        assert rt.name == "onnxruntime" and rt.auto_choice is None
    assert not measured.exists()  # nothing measured for a named runtime
    with Segmenter.from_artifact(tiny, runtime="onnxruntime") as seg:
        assert "auto" not in repr(seg)


def test_first_policy_is_the_old_choice_and_measures_nothing(tiny, measured, monkeypatch):
    monkeypatch.setenv(choose.POLICY_ENV, "first")
    timed = _fake_timings(monkeypatch, {"onnxruntime": 20.0, "openvino": 5.0})
    with open_runtime(tiny) as rt:
        assert rt.name == "onnxruntime" and rt.auto_choice.how == "first"
        assert "SEGEDGE_AUTO_RUNTIME=first" in rt.auto_choice.reason
    assert timed == [] and not measured.exists()
    monkeypatch.setenv(choose.POLICY_ENV, "fastest")
    with pytest.raises(InputError, match="SEGEDGE_AUTO_RUNTIME"):
        open_runtime(tiny)


def test_only_one_candidate_is_not_measured(tmp_path, tiny, measured, monkeypatch):
    timed = _fake_timings(monkeypatch, {"onnxruntime": 20.0, "openvino": 5.0})
    with open_runtime(tiny, providers=["cpu"]) as rt:  # an option only ONNX Runtime takes
        assert rt.name == "onnxruntime" and rt.auto_choice.how == "only"
        assert "openvino: does not take the option providers" in rt.auto_choice.reason
    ort_graph = write_onnx_artifact(tmp_path / "ortgraph", head="refine")
    m = read_manifest(ort_graph).to_dict()
    Manifest.from_dict({**m, "graph": "onnxruntime"}).write(ort_graph)  # only ONNX Runtime reads that graph
    with open_runtime(ort_graph) as rt:
        assert rt.name == "onnxruntime" and rt.auto_choice.how == "only" and "OpenVINO does not read" in \
            rt.auto_choice.reason
    assert timed == [] and not measured.exists()


def test_cache_is_keyed_by_the_model_and_survives_a_broken_file(tmp_path, measured, monkeypatch):
    a = write_onnx_artifact(tmp_path / "a", head="refine", size_hw=(64, 64))
    b = write_onnx_artifact(tmp_path / "b", head="refine", size_hw=(64, 64), num_classes=7)  # another model file
    timed = _fake_timings(monkeypatch, {"onnxruntime": 20.0, "openvino": 5.0})
    open_runtime(a).close()
    open_runtime(a).close()
    assert len(timed) == 2  # measured once
    open_runtime(b).close()
    assert len(timed) == 4 and len(json.loads(measured.read_text())) == 2
    measured.write_text("{cut")  # a broken cache is measured again, not an error
    with open_runtime(a) as rt:
        assert rt.auto_choice.how == "measured" and len(timed) == 6
    monkeypatch.setenv(choose.POLICY_ENV, "remeasure")  # times again and replaces the cached choice
    monkeypatch.setattr(choose, "_load", lambda: 9.0)
    with open_runtime(a) as rt:
        assert rt.auto_choice.how == "measured" and len(timed) == 8
        assert "timed while the machine was busy (load 9 on" in rt.auto_choice.reason
    monkeypatch.setenv(choose.POLICY_ENV, "measure")
    with open_runtime(a) as rt:
        assert rt.auto_choice.how == "cached" and "busy (load 9" in rt.auto_choice.reason and len(timed) == 8
    assert len(json.loads(measured.read_text())) == 1


def test_a_runtime_that_fails_is_left_out_with_why(tiny, measured, monkeypatch):
    real = choose.time_runtime

    def flaky(cls, *args, **kwargs):
        if cls.name == "openvino":
            raise RuntimeError("device lost")
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(choose, "time_runtime", flaky)
    with open_runtime(tiny) as rt:
        assert rt.name == "onnxruntime" and rt.auto_choice.skipped == {"openvino": "device lost"}


def test_cli_says_what_it_picked_first_and_inspect_shows_it(tmp_path, tiny, measured, monkeypatch, capsys):
    from sdk.cli import main

    _fake_timings(monkeypatch, {"onnxruntime": 20.0, "openvino": 12.0})
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (64, 96, 3), np.uint8))
    assert main(["inspect", str(tiny)]) == 0
    assert "runtime    auto here: not measured on this machine yet" in capsys.readouterr().out
    assert main(["predict", str(tiny), str(image), "--output", str(tmp_path / "masks")]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("segedge predict: runtime openvino (auto: fastest here at 64x96")
    assert main(["inspect", str(tiny)]) == 0
    assert "runtime    auto here: openvino at 64x96 (openvino 12 ms, onnxruntime 20 ms p50" in capsys.readouterr().out
    assert main(["inspect", str(tiny), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["auto_runtime"].startswith("openvino at 64x96")
    monkeypatch.setenv(choose.POLICY_ENV, "first")  # the old choice is not announced (-v logs it)
    assert main(["predict", str(tiny), str(image), "--output", str(tmp_path / "masks2")]) == 0
    assert "runtime" not in capsys.readouterr().err


def test_every_runtime_is_timed_alone(tiny):
    """time_runtime opens, times and closes: nothing of the runtime is left running after it returns."""
    m = read_manifest(tiny)
    record, rt = choose.time_runtime(RUNTIMES["onnxruntime"], tiny, m, {}, (64, 96))
    assert rt is None and record["runs"] >= choose.MIN_RUNS and record["p50_ms"] > 0
    record, rt = choose.time_runtime(RUNTIMES["openvino"], tiny, m, {}, (64, 96), keep_open=True)
    try:
        assert rt is not None and rt.name == "openvino" and "openvino" in record["describe"]
    finally:
        rt.close()


def test_the_size_it_times_at(tmp_path):
    m = read_manifest(write_onnx_artifact(tmp_path / "any", head="refine")).to_dict()
    assert choose.input_size_hw(Manifest.from_dict(m)) == ((512, 512), choose.ANY_SIZE)
    small = Manifest.from_dict({**m, "extra": {"max_input_pixels": 100 * 100}})  # a smaller limit: within it
    assert choose.input_size_hw(small) == ((96, 96), choose.ANY_SIZE)
    sized = read_manifest(write_onnx_artifact(tmp_path / "sized", head="refine", size_hw=(48, 80)))
    assert choose.input_size_hw(sized) == ((48, 80), "its network size")


def test_a_cache_that_cannot_be_written_leaves_nothing_behind(tiny, measured, monkeypatch):
    measured.parent.mkdir(parents=True)
    real = Path.write_text

    def fail_midway(self, text, *args, **kwargs):
        real(self, text[:10])  # a file size limit or a full disk: part of it written, then an error
        raise OSError(27, "File too large")

    monkeypatch.setattr(Path, "write_text", fail_midway)
    _fake_timings(monkeypatch, {"onnxruntime": 20.0, "openvino": 12.0})
    with open_runtime(tiny) as rt:
        assert rt.name == "openvino" and "not cached" in rt.auto_choice.reason
    assert list(measured.parent.iterdir()) == []
