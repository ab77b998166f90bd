"""Runtimes time themselves (issue 26 item 2): ``Runtime.infer`` records each call, ``last_inference_time()`` and
``recording()`` read it, a recording's gate limits concurrent model calls; stream pipelines split their stages
from that record on the user's own Segmenter (no wrapper runtime, no second Segmenter)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import sdk.segmenter as segmenter_module
from runtimes import open_runtime
from sdk import Segmenter
from sdk.core.errors import InputError
from sdk.stream.pipeline import model_call_gate, timed_predict


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, hw + (3,), dtype=np.uint8) for hw in ((64, 96), (64, 96), (96, 64))]


def test_infer_records_its_time(hf_artifact):
    with open_runtime(hf_artifact, "onnxruntime") as rt, Segmenter(rt) as seg:
        assert rt.last_inference_time() is None
        seg(_images()[0])
        first = rt.last_inference_time()
        assert first is not None and 0 < first < 60
        seen: list = []
        t = threading.Thread(target=lambda: seen.append(rt.last_inference_time()))
        t.start()
        t.join()
        assert seen == [None]  # per thread: another thread's call is not this one's


def test_recording_collects_this_threads_calls(hf_artifact):
    with Segmenter.from_artifact(hf_artifact, runtime="onnxruntime") as seg:
        seg(_images()[0])  # outside any recording: not collected
        with seg.runtime.recording() as rec:
            seg.predict_batch(_images())  # two sizes: two model calls
        assert len(rec.calls) == 2
        for c in rec.calls:
            assert c.asked <= c.start < c.end
        assert rec.calls[0].end <= rec.calls[1].asked
        with seg.runtime.recording():
            with pytest.raises(RuntimeError, match="already recording"):
                with seg.runtime.recording():
                    pass
        with seg.runtime.recording() as again:  # the failed nesting left the thread usable
            seg(_images()[0])
        assert len(again.calls) == 1


def test_a_gate_of_one_serialises_model_calls_across_threads(hf_artifact):
    with Segmenter.from_artifact(hf_artifact, runtime="onnxruntime") as seg:
        assert seg.runtime.concurrent  # ONNX Runtime would run both at once without the gate
        gate = threading.BoundedSemaphore(1)
        spans: list = []

        def work(seed: int) -> None:
            for _ in range(3):
                with seg.runtime.recording(gate) as rec:
                    seg.predict_batch(_images(seed)[:2])
                spans.extend((c.start, c.end) for c in rec.calls)

        threads = [threading.Thread(target=work, args=(s,)) for s in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        spans.sort()
        assert len(spans) == 6
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # no two model calls overlap


def test_timed_predict_splits_stages_on_the_users_segmenter(hf_artifact):
    images = _images()
    with Segmenter.from_artifact(hf_artifact, runtime="onnxruntime") as seg:
        gate = model_call_gate(seg.runtime, 2)
        assert gate._value == 1  # ONNX Runtime: one call uses every core, workers take turns
        results, pre, inf, post = timed_predict(seg, images, gate)
        assert pre > 0 and inf > 0 and post >= 0
        bgr = seg.predict_batch([im[..., ::-1] for im in images], color_order="rgb")
        for r, b in zip(results, bgr):  # timed_predict takes frames as BGR, as decoders give them
            np.testing.assert_array_equal(r.mask, b.mask)


def test_predict_batch_color_order(hf_artifact):
    image = _images()[0]
    with Segmenter.from_artifact(hf_artifact, runtime="onnxruntime", color_order="bgr") as bgr_seg:
        want = bgr_seg(image).mask
    with Segmenter.from_artifact(hf_artifact, runtime="onnxruntime") as seg:
        np.testing.assert_array_equal(seg.predict_batch([image], color_order="bgr")[0].mask, want)
        with pytest.raises(InputError, match="color_order: expected one of"):
            seg.predict_batch([image], color_order="BGR ")


def test_call_checks_the_image_once(hf_artifact, monkeypatch):
    calls: list = []
    real = segmenter_module.check_image

    def counting(image, name="image"):
        calls.append(name)
        return real(image, name)

    monkeypatch.setattr(segmenter_module, "check_image", counting)
    with Segmenter.from_artifact(hf_artifact, runtime="onnxruntime") as seg:
        seg(_images()[0])
        assert calls == ["image"]
        calls.clear()
        seg.predict_batch(_images())
        assert calls == ["images[0]", "images[1]", "images[2]"]
