"""A real tritonserver on 127.0.0.1 loading the repository ``segedge deploy-config triton`` writes.

The server is nvidia-pytriton's tritonserver (2.51, Python backend) from the model environment that
``python -m sdk.serving.env`` makes (tests/run.sh does), or tritonserver on PATH; skipped with the reason where neither
is there. Checked: masks over HTTP and gRPC equal the in-process Segmenter's on every pixel (same artifact, CamVid
frames, and frames of another size), requests Triton's batcher puts together, bad requests answered with a clear
error while the next good request is still served, and a clean shutdown (exit 0 on SIGINT).
"""
from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from converters.triton_repo import write_triton_python_repository
from sdk.cli import main
from sdk.core.preprocess import read_rgb
from tiny_artifacts import write_onnx_artifact

tritonclient_grpc = pytest.importorskip("tritonclient.grpc", reason="needs tritonclient: pip install 'segedge[serve]'")
tritonclient_http = pytest.importorskip("tritonclient.http", reason="needs tritonclient: pip install 'segedge[serve]'")
from tritonclient.utils import InferenceServerException  # noqa: E402

from sdk.serving.errors import ServingError  # noqa: E402
from sdk.serving.server import TritonServer, find_tritonserver  # noqa: E402


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def tritonserver():
    try:
        return find_tritonserver()
    except ServingError as exc:
        pytest.skip(f"needs tritonserver: {str(exc).splitlines()[0]}")


@pytest.fixture(scope="module")
def b0_artifact(tmp_path_factory, hf_model):
    from converters.onnx_export import export_onnx

    return export_onnx(hf_model, tmp_path_factory.mktemp("triton") / "b0", size_hw=(96, 128), progress=False)


@pytest.fixture(scope="module")
def frames(camvid):
    paths = sorted((camvid / "val").glob("*.png"))[:4]
    full = [read_rgb(p) for p in paths]
    return full + [np.ascontiguousarray(full[0][17:257, 33:353])]  # 240x320: another size, another batch


@pytest.fixture(scope="module")
def server(tmp_path_factory, tritonserver, b0_artifact):
    repo = tmp_path_factory.mktemp("repo")
    assert main(["deploy-config", "triton", str(b0_artifact), "--output", str(repo), "--name", "b0",
                 "--max-batch-size", "4", "--max-queue-delay-us", "20000"]) == 0
    # a second model: a dynamic-size artifact whose manifest limits the network input to 64x64 pixels
    tiny = write_onnx_artifact(tmp_path_factory.mktemp("tiny") / "tiny", head="mask")
    manifest = json.loads((tiny / "model.json").read_text())
    manifest.setdefault("extra", {})["max_input_pixels"] = 64 * 64
    (tiny / "model.json").write_text(json.dumps(manifest))
    write_triton_python_repository(tiny, repo, model_name="tiny", max_batch_size=2)
    http, grpc, metrics = _free_ports(3)
    srv = TritonServer(repo, host="127.0.0.1", http_port=http, grpc_port=grpc, metrics_port=metrics)
    srv.start()
    yield srv
    if srv.process is not None:
        srv.stop()


def test_repository_names_no_path_of_this_machine(server, b0_artifact):
    model = server.repository / "b0"
    assert sorted(p.name for p in model.iterdir()) == ["1", "config.pbtxt", "labels.txt", "requirements.txt"]
    assert (model / "1" / "model.py").is_file() and (model / "1" / "artifact" / "model.onnx").is_file()
    text = "".join((model / f).read_text() for f in ("config.pbtxt", "labels.txt", "requirements.txt",
                                                     "1/model.py"))
    for path in (str(server.repository), str(b0_artifact), str(Path(__file__).resolve().parents[2]), "/root", "/tmp"):
        assert path not in text
    assert 'backend: "python"' in text and "numpy<2" in text and "max_queue_delay_microseconds: 20000" in text


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_masks_equal_the_in_process_segmenter(server, b0_artifact, frames, protocol):
    from sdk import Segmenter
    from sdk.serving import TritonSegmenter

    url = server.grpc_url if protocol == "grpc" else server.http_url
    with Segmenter.from_artifact(b0_artifact) as seg, TritonSegmenter(url, "b0", protocol=protocol) as served:
        assert served.class_names == seg.class_names and served.palette == [list(c) for c in seg.palette]
        assert served.max_batch_size == 4
        for frame in frames:
            got, want = served(frame), seg(frame)
            assert got.mask.shape == frame.shape[:2] and got.mask.dtype == want.mask.dtype
            assert np.array_equal(got.mask, want.mask)
        batch = served.predict_batch(frames)  # 4 of one size in one request, then the 240x320 one
        assert all(np.array_equal(r.mask, seg(f).mask) for r, f in zip(batch, frames))


def test_concurrent_requests_of_two_sizes_batched_by_triton(server, b0_artifact, frames):
    from sdk import Segmenter
    from sdk.serving import TritonSegmenter

    with Segmenter.from_artifact(b0_artifact) as seg:
        want = [seg(f).mask for f in frames]
    got: dict[int, list[np.ndarray]] = {}
    errors: list[BaseException] = []

    def client(k: int) -> None:
        try:
            with TritonSegmenter(server.grpc_url, "b0") as served:
                got[k] = [served(f).mask for f in frames]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(got) == 4
    assert all(np.array_equal(g, w) for masks in got.values() for g, w in zip(masks, want))
    stats = tritonclient_http.InferenceServerClient(server.http_url).get_inference_statistics("b0")
    sizes = {b["batch_size"] for b in stats["model_stats"][0]["batch_stats"]}
    assert sizes and max(sizes) <= 4


def _raw_infer(server, model: str, array: np.ndarray, datatype: str = "UINT8"):
    client = tritonclient_grpc.InferenceServerClient(server.grpc_url)
    try:
        tensor = tritonclient_grpc.InferInput("IMAGE", list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        return client.infer(model, [tensor]).as_numpy("MASK")
    finally:
        client.close()


@pytest.mark.parametrize("model,array,datatype,message", [
    ("b0", np.zeros((1, 64, 64, 3), np.float32), "FP32", "UINT8"),             # wrong dtype: Triton's own check
    ("b0", np.zeros((1, 64, 64), np.uint8), "UINT8", "IMAGE"),                  # 2-D image (no channel axis)
    ("b0", np.zeros((1, 64, 64, 4), np.uint8), "UINT8", "IMAGE"),               # RGBA
    ("b0", np.zeros((1, 0, 0, 3), np.uint8), "UINT8", "got shape (1, 0, 0, 3)"),  # zero-size
    ("b0", np.zeros((1, 16, 16, 3), np.uint8), "UINT8", "at least 32x32"),     # too small for the network
    ("tiny", np.zeros((1, 128, 128, 3), np.uint8), "UINT8", "over this Segmenter's limit"),  # max_input_pixels
])
def test_bad_request_gets_a_clear_error_and_the_next_is_served(server, frames, model, array, datatype, message):
    with pytest.raises(InferenceServerException) as info:
        _raw_infer(server, model, array, datatype)
    assert message in info.value.message()
    good = _raw_infer(server, model, np.ascontiguousarray(frames[0][None, :64, :64] if model == "tiny" else
                                                          frames[0][None]))
    assert good.shape == ((1, 64, 64) if model == "tiny" else (1, *frames[0].shape[:2]))


def test_client_helper_names_the_server_error(server):
    from sdk.serving import TritonSegmenter

    with TritonSegmenter(server.http_url, "tiny", protocol="http") as served:
        with pytest.raises(ServingError, match="over this Segmenter's limit"):
            served(np.zeros((128, 128, 3), np.uint8))
        assert served(np.zeros((64, 64, 3), np.uint8)).mask.shape == (64, 64)
    with pytest.raises(ServingError, match="Is the server running"):
        TritonSegmenter(server.grpc_url, "no_such_model")


def test_port_in_use_is_one_clear_error(server, tmp_path):
    http, metrics = _free_ports(2)
    second = TritonServer(server.repository, http_port=http, grpc_port=server.grpc_port, metrics_port=metrics,
                          log_path=tmp_path / "second.log")
    with pytest.raises(ServingError, match=r"exited with 1 while starting(.|\n)*already in use"):
        second.start()
    assert second.process is None and server.ready()


def test_clean_shutdown(server):
    """Last in the module: SIGINT, Triton unloads the models and exits 0; the ports are free again."""
    process = server.process
    assert server.ready()
    assert server.stop() == 0
    assert process.poll() == 0 and not server.ready()
    log = server.log_path.read_text()
    assert "Non-graceful termination" not in log and "Exit timeout expired" not in log


def test_segedge_serve_prints_endpoints_and_stops_on_ctrl_c(tritonserver, b0_artifact, frames):
    """The command as a user runs it: endpoints and a client line printed, served masks right, SIGINT (Ctrl-C)
    stops tritonserver with exit 0 and the command exits 0."""
    import signal
    import subprocess
    import sys
    import time

    from sdk.serving import TritonSegmenter

    http, grpc, metrics = _free_ports(3)
    proc = subprocess.Popen([sys.executable, "-m", "sdk.cli", "serve", str(b0_artifact), "--port", str(http),
                             "--grpc-port", str(grpc), "--metrics-port", str(metrics), "--name", "b0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    lines = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Ctrl-C stops it"):
            break
    text = "".join(lines)
    try:
        assert f"gRPC     127.0.0.1:{grpc}" in text and f"http://127.0.0.1:{http}/v2/models/b0" in text, text
        assert "client: python -c \"from sdk.serving import TritonSegmenter" in text
        with TritonSegmenter(f"127.0.0.1:{grpc}", "b0") as served:
            assert served(frames[0]).mask.shape == frames[0].shape[:2]
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, text + rest
    assert "tritonserver stopped (exit 0)" in rest


def test_client_without_tritonclient_names_the_extra(monkeypatch):
    import sys

    from sdk.core.errors import MissingDependencyError
    from sdk.serving import TritonSegmenter

    monkeypatch.setitem(sys.modules, "tritonclient.grpc", None)
    with pytest.raises(MissingDependencyError, match=r"segedge\[serve\]"):
        TritonSegmenter("127.0.0.1:1", "b0")


def test_deploy_config_native_backend_keeps_the_bare_model(tmp_path):
    """--backend native: the bare model for Triton's own onnxruntime backend, as before (no server needed)."""
    tiny = write_onnx_artifact(tmp_path / "tiny", head="logits")
    assert main(["deploy-config", "triton", str(tiny), "--output", str(tmp_path / "repo"), "--backend",
                 "native"]) == 0
    config = (tmp_path / "repo" / "tiny" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and 'backend: "python"' not in config
    assert (tmp_path / "repo" / "tiny" / "1" / "model.onnx").is_file()
