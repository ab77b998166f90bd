"""File and folder streams run two inference workers that take turns by batch: the frames still come out in order
with the masks Segmenter.predict_batch gives, the model still runs one call at a time, both workers are used, and
a stop in the middle still accounts for every frame read."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sdk.core.parallel import host_parts
from sdk.segmenter import Segmenter
from sdk.stream.pipeline import StreamConfig, StreamPipeline
from sdk.stream.sources import open_source

from helpers import VIDEO, video_frames, wrapping_runtime


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, hf_model) -> Path:
    if not VIDEO.exists():
        pytest.skip(f"needs {VIDEO} (the ../shared data folder beside the project)")
    from converters.onnx_export import export_onnx

    return export_onnx(hf_model, tmp_path_factory.mktemp("workers") / "b0-small", size_hw=(96, 64), progress=False)


def CallLog(runtime):
    """A real runtime whose every model call's thread and (start, end) are recorded (inside the pipeline's gate,
    where a backend's call runs), with the calling thread's host-work split."""

    class Log(wrapping_runtime(runtime)):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[str, float, float]] = []
            self.host_parts: list[int] = []  # how many parts the calling thread splits a frame's host work into

        def _infer_impl(self, feeds):
            self.host_parts.append(host_parts())
            start = time.perf_counter()
            out = self.inner.infer(feeds)
            self.calls.append((threading.current_thread().name, start, time.perf_counter()))
            return out

    return Log()


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_two_workers_keep_order_and_masks(artifact, batch_size):
    n = 7  # not a multiple of 2 or 3: the last batch is short and on either worker
    with Segmenter.from_artifact(artifact, threads=1) as seg:
        log = CallLog(seg.runtime)
        logged = Segmenter(log)  # type: ignore[arg-type]
        got: list[tuple[int, np.ndarray]] = []
        pipeline = StreamPipeline(logged, open_source(str(VIDEO)), StreamConfig(max_frames=n, batch_size=batch_size),
                                  on_result=lambda f, r, p: got.append((f.index, r.mask)))
        assert pipeline.workers == 2
        stats = pipeline.run()
        expected = Segmenter(seg.runtime, color_order="bgr").predict_batch(video_frames(n), batch_size=batch_size)
    assert [i for i, _ in got] == list(range(n)) and stats.frames_processed == n
    assert all(np.array_equal(m, e.mask) for (_, m), e in zip(got, expected))
    assert {name for name, _, _ in log.calls} == {"segedge-inference-0", "segedge-inference-1"}
    spans = sorted((s, e) for _, s, e in log.calls)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))  # one model call at a time
    assert stats.stages["inference"].count == stats.stages["postprocess"].count == n


def test_live_sources_run_one_worker(artifact, monkeypatch):
    monkeypatch.setenv("SEGEDGE_HOST_THREADS", "2")
    with Segmenter.from_artifact(artifact, threads=1) as seg:
        log = CallLog(seg.runtime)
        pipeline = StreamPipeline(Segmenter(log), open_source(str(VIDEO), pace_fps=30.0),  # type: ignore[arg-type]
                                  StreamConfig(max_frames=5))
        assert pipeline.workers == 1
        stats = pipeline.run()
    assert stats.frames_processed + stats.dropped + stats.skipped_by_source + stats.discarded_at_stop >= 5
    assert set(log.host_parts) == {2}  # the one worker splits a frame's host work over the cores


def test_file_workers_keep_host_work_on_their_own_thread(artifact, monkeypatch):
    """Two file-mode workers already run frames side by side: each frame's resize and head stay on its worker."""
    monkeypatch.setenv("SEGEDGE_HOST_THREADS", "2")
    with Segmenter.from_artifact(artifact, threads=1) as seg:
        log = CallLog(seg.runtime)
        pipeline = StreamPipeline(Segmenter(log), open_source(str(VIDEO)),  # type: ignore[arg-type]
                                  StreamConfig(max_frames=4))
        pipeline.run()
    assert log.host_parts == [1, 1, 1, 1]
    assert host_parts() == 2  # the caller's own threads are untouched


def test_stop_mid_stream_accounts_for_every_frame(artifact):
    with Segmenter.from_artifact(artifact, threads=1) as seg:
        seen: list[int] = []
        pipeline = StreamPipeline(seg, open_source(str(VIDEO), loop=True), StreamConfig(batch_size=2),
                                  on_result=lambda f, r, p: seen.append(f.index))
        timer = threading.Timer(1.0, pipeline.stop)
        timer.start()
        stats = pipeline.run()
        timer.join()
    assert stats.ended == "stopped" and seen == list(range(len(seen))) and seen
    assert stats.frames_read == stats.frames_processed + stats.discarded_at_stop
    # the pipeline's own threads end (the process-wide host pool of sdk.core.parallel, like OpenCV's, stays)
    assert not [t for t in threading.enumerate() if t.name.startswith("segedge-") and
                not t.name.startswith("segedge-host")]


def test_opencv_threads_single_during_a_file_run_and_restored(artifact):
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        seen: list[int] = []
        with Segmenter.from_artifact(artifact, threads=1) as seg:
            StreamPipeline(seg, open_source(str(VIDEO)), StreamConfig(max_frames=2),
                           on_result=lambda f, r, p: seen.append(cv2.getNumThreads())).run()
        assert seen == [1, 1] and cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)
