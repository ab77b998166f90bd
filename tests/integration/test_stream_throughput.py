"""Files and folders on OpenVINO stream in its throughput mode: ``stream_runtime_options`` picks it (and only
there), the runtime says how many calls run side by side (``parallel_calls``), the pipeline's two inference
workers then run their model calls at once instead of taking turns, and the frames still come out in order with
the masks Segmenter.predict_batch gives."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sdk.core.errors import InputError
from sdk.segmenter import Segmenter
from sdk.stream.pipeline import StreamConfig, StreamPipeline, stream_runtime_options
from sdk.stream.sources import open_source
from helpers import VIDEO, video_frames, wrapping_runtime
from tiny_artifacts import write_onnx_artifact



@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory) -> Path:
    return write_onnx_artifact(tmp_path_factory.mktemp("tp") / "tiny-onnx", size_hw=(64, 96))


@pytest.fixture(scope="module")
def ir_artifact(onnx_artifact, tmp_path_factory) -> Path:
    from converters.openvino_export import export_openvino

    return export_openvino(onnx_artifact, tmp_path_factory.mktemp("tp") / "tiny-ir", size_hw=(64, 96),
                           progress=False)


def test_options_pick_throughput_for_files_on_openvino_only(onnx_artifact, ir_artifact):
    assert stream_runtime_options(ir_artifact, "auto", live=False) == {"performance_mode": "throughput"}
    assert stream_runtime_options(ir_artifact, "auto", live=True) == {}
    assert stream_runtime_options(onnx_artifact, "auto", live=False) == {}  # auto runs ONNX on ONNX Runtime
    assert stream_runtime_options(onnx_artifact, "openvino", live=False) == {"performance_mode": "throughput"}
    assert stream_runtime_options(ir_artifact, "auto", live=False, performance_mode="latency") == {
        "performance_mode": "latency"}
    with pytest.raises(InputError, match="expected an artifact that runs on OpenVINO"):
        stream_runtime_options(onnx_artifact, "onnxruntime", live=False, performance_mode="throughput")
    with pytest.raises(InputError, match="performance_mode: expected one of"):
        stream_runtime_options(ir_artifact, "auto", live=False, performance_mode="fast")


def test_parallel_calls_follow_the_performance_mode(ir_artifact, onnx_artifact):
    import openvino.properties as props

    with Segmenter.from_artifact(ir_artifact) as seg:
        assert seg.runtime.parallel_calls == 1 and "streams" not in seg.runtime.describe()
    with Segmenter.from_artifact(ir_artifact, performance_mode="throughput") as seg:
        want = int(seg.runtime.compiled.get_property(props.optimal_number_of_infer_requests()))
        assert seg.runtime.parallel_calls == max(1, want)
    with Segmenter.from_artifact(onnx_artifact, runtime="onnxruntime") as seg:  # its one call uses every core
        assert seg.runtime.parallel_calls == 1


def SlowCalls(runtime):
    """A real runtime whose calls each also wait 30 ms (so two workers' calls overlap when allowed), counting the
    most calls in flight at once (inside the pipeline's gate, where a backend's call runs)."""

    class Slow(wrapping_runtime(runtime)):
        def __init__(self) -> None:
            super().__init__()
            self.in_flight = self.most = 0
            self._count = threading.Lock()

        def _infer_impl(self, feeds):
            with self._count:
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
            try:
                time.sleep(0.03)
                return self.inner.infer(feeds)
            finally:
                with self._count:
                    self.in_flight -= 1

    return Slow()


@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_workers_overlap_model_calls_only_where_the_runtime_runs_them_side_by_side(ir_artifact, mode):
    if not VIDEO.exists():
        pytest.skip(f"needs {VIDEO} (the ../shared data folder beside the project)")
    n = 9
    with Segmenter.from_artifact(ir_artifact, performance_mode=mode) as seg:
        if mode == "throughput" and seg.runtime.parallel_calls < 2:
            pytest.skip(f"OpenVINO runs one stream on this {seg.runtime.describe()}: nothing to overlap")
        slow = SlowCalls(seg.runtime)
        got: list[tuple[int, np.ndarray]] = []
        pipeline = StreamPipeline(Segmenter(slow), open_source(str(VIDEO)),  # type: ignore[arg-type]
                                  StreamConfig(max_frames=n), on_result=lambda f, r, p: got.append((f.index, r.mask)))
        stats = pipeline.run()
        expected = Segmenter(seg.runtime, color_order="bgr").predict_batch(video_frames(n), batch_size=1)
    assert [i for i, _ in got] == list(range(n)) and stats.frames_processed == n
    assert all(np.array_equal(m, e.mask) for (_, m), e in zip(got, expected))
    assert slow.most == (1 if mode == "latency" else 2)


def test_cli_streams_a_file_in_throughput_mode_and_says_so(tmp_path, ir_artifact, onnx_artifact, capsys):
    if not VIDEO.exists():
        pytest.skip(f"needs {VIDEO} (the ../shared data folder beside the project)")
    from sdk.cli import main

    out = tmp_path / "run.mp4"
    assert main(["stream", str(ir_artifact), "--source", str(VIDEO), "--max-frames", "3", "--no-display",
                 "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "throughput" in printed.splitlines()[0] and out.stat().st_size > 0
    assert main(["stream", str(ir_artifact), "--source", str(VIDEO), "--max-frames", "2", "--no-display",
                 "--performance-mode", "latency", "--stats", str(tmp_path / "s.json")]) == 0
    assert ", latency" in capsys.readouterr().out.splitlines()[0]
    assert main(["stream", str(onnx_artifact), "--source", str(VIDEO), "--max-frames", "2", "--no-display",
                 "--runtime", "onnxruntime", "--performance-mode", "throughput",
                 "--stats", str(tmp_path / "t.json")]) == 1
    err = capsys.readouterr().err
    assert "expected an artifact that runs on OpenVINO" in err and len(err.strip().splitlines()) == 1
