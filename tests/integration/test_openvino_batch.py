"""OpenVINO batches for many cameras: a static-batch-1 IR runs a batch as parallel infer requests, or compiled for a
fixed batch (``batch=``) with partial batches padded and cut back; both give exactly the outputs of one image at a
time."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtimes.openvino import OpenVINORuntime
from sdk.core.errors import InputError
from tiny_artifacts import write_onnx_artifact


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory) -> Path:
    return write_onnx_artifact(tmp_path_factory.mktemp("ovb") / "tiny-onnx", head="logits", size_hw=(64, 96))


@pytest.fixture(scope="module")
def ir_artifact(onnx_artifact, tmp_path_factory) -> Path:
    from converters.openvino_export import export_openvino

    return export_openvino(onnx_artifact, tmp_path_factory.mktemp("ovb") / "tiny-ir", size_hw=(64, 96),
                           progress=False)


@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_a_batch_equals_one_image_at_a_time(ir_artifact, mode):
    x = np.random.default_rng(0).standard_normal((5, 3, 64, 96)).astype(np.float32)
    with OpenVINORuntime(ir_artifact, performance_mode=mode) as one, \
            OpenVINORuntime(ir_artifact, performance_mode=mode, batch=4) as four:
        assert one.static_batch == 1 and four.static_batch == 4 and "static batch 4" in four.describe()
        alone = [one.infer({"pixel_values": x[i:i + 1]}) for i in range(5)]
        for n in (1, 3, 4, 5):  # padded, exact, chunked + padded
            for rt in (one, four):
                out = rt.infer({"pixel_values": x[:n]})
                for k, v in out.items():
                    assert v.shape[0] == n
                    np.testing.assert_array_equal(v, np.concatenate([a[k] for a in alone[:n]]))


def test_batch_is_for_static_irs(onnx_artifact, ir_artifact):
    with pytest.raises(InputError, match="static .1, 3, h, w. input"):
        OpenVINORuntime(onnx_artifact, batch=4)
    with pytest.raises(InputError, match="batch: expected None"):
        OpenVINORuntime(ir_artifact, batch=0)


FIRST_CALLS = """
import sys, threading, numpy as np
from runtimes.openvino import OpenVINORuntime
rt = OpenVINORuntime(sys.argv[1], performance_mode="throughput")
x = np.zeros((1, 3, 64, 96), np.float32)
barrier = threading.Barrier(8)
def first_call():
    barrier.wait()
    rt.infer({"pixel_values": x})
threads = [threading.Thread(target=first_call) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print("ok")
"""


def test_first_calls_from_many_threads_at_once_do_not_deadlock(ir_artifact):
    """OpenVINO's binding sets up its numpy bridge on first use under a static guard taken with the GIL held; two
    stream workers making their first call at once hung there for good (seen once in ~30 benchmark processes). The
    runtime sets it up when it opens: eight threads' first calls, in fresh processes, all return."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    for _ in range(3):
        res = subprocess.run([sys.executable, "-c", FIRST_CALLS, str(ir_artifact)], cwd=root, capture_output=True,
                             text=True, timeout=120, env={**__import__("os").environ, "PYTHONPATH": str(root)})
        assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
