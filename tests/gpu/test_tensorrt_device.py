"""TensorRT, GPU tier (``-m gpu``): real engines built and run on the machine at hand, a Jetson or a CUDA host.

Every test here skips with the reason where real TensorRT or a CUDA GPU is missing (``tensorrt_available``; the
runtime calls the CUDA driver itself, pycuda is tested where installed);
the ones that compare with ONNX Runtime also need onnxruntime. No torch is needed on the device:

- ``SEGEDGE_TRT_ONNX``: an FP32 ONNX artifact folder exported on the host (``segedge export CHECKPOINT --upsample
  exact --output DIR``, then copied over). Without it the shared B0 checkpoint is exported here if torch and
  ../shared exist; otherwise the real-model tests skip and say so.
- ``SEGEDGE_TRT_REFINE`` (optional): the default export (refine head: ``segedge export CHECKPOINT --output DIR``).
  Without it the shared B0 checkpoint is exported here if torch exists; otherwise its test skips.
- ``SEGEDGE_TRT_QDQ`` (optional): its Q/DQ artifact (``segedge quantize DIR --backend tensorrt ...``). Without it
  the real model is quantized here from the images below.
- ``SEGEDGE_TRT_IMAGES``: a folder of images, or a labelled set root (CamVid), for the mask comparisons; default
  ../shared/data/camvid.
"""
from __future__ import annotations

import json
import os
import shutil
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from conftest import CAMVID, HF_MODEL
from converters.tensorrt_build import build_engine
from runtimes.tensorrt import TensorRTRuntime, require_tensorrt, tensorrt_available
from runtimes.tensorrt_device import CudaDriver, version_tuple
from runtimes.tensorrt_support import dla_refusal, strongly_typed_only
from sdk.core.errors import ArtifactError, ExportError, InputError
from sdk.core.manifest import read_manifest
from tiny_artifacts import write_onnx_artifact
from tiny_transformer import write_transformer_artifact

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def gpu():
    ok, reason = tensorrt_available()
    if not ok:
        pytest.skip(f"needs real TensorRT and a CUDA GPU: {reason.split('. ')[0]}")


def _major() -> int:
    return version_tuple(require_tensorrt())[0]


def _ort(folder: Path, feeds: dict) -> dict:
    pytest.importorskip("onnxruntime", reason="the comparison needs onnxruntime (pip install onnxruntime)")
    from runtimes.onnxruntime import OnnxRuntime

    with OnnxRuntime(folder) as rt:
        return rt.infer(feeds)


def _tiny_qdq(tmp_path: Path) -> Path:
    """The tiny mask artifact quantized with segedge's TensorRT recipe (Q/DQ on inputs, float biases)."""
    pytest.importorskip("onnxruntime", reason="quantizing needs onnxruntime (pip install onnxruntime)")
    from calibration.quantize_ort import quantize_onnxruntime
    from calibration.sets import load_calibration_set

    frames = [np.random.default_rng(i).integers(0, 256, (128, 128, 3), dtype=np.uint8) for i in range(4)]
    return quantize_onnxruntime(write_onnx_artifact(tmp_path / "fp32"), load_calibration_set(frames),
                                tmp_path / "qdq", target="tensorrt", method="minmax", progress=False)


# ---------------------------------------------------------------- tiny graphs: every version's mechanics

@pytest.mark.parametrize("upsample", ["exact", "fast"])
def test_gpu_fp32_mask_engine_matches_onnxruntime(tmp_path, upsample):
    onnx_dir = write_onnx_artifact(tmp_path / "onnx", upsample=upsample)
    engine_dir = build_engine(onnx_dir, tmp_path / "b0.engine", min_hw=(64, 64), opt_hw=(128, 128),
                              max_hw=(256, 256), max_batch=2, min_output_hw=(32, 32), max_output_hw=(512, 512),
                              timing_cache=tmp_path / "tc.cache")
    m = read_manifest(engine_dir)
    assert (tmp_path / "tc.cache").stat().st_size > 0
    trt = m.extra["tensorrt"]
    io = {t["name"]: t for t in trt["io"]}
    assert io["output_size"]["dtype"] == "int32" and io["mask"]["dtype"] == "uint8"
    assert trt["build"]["layer_precisions"]["detailed"] and trt["layers"]  # read back with the inspector
    rng = np.random.default_rng(0)
    with TensorRTRuntime(engine_dir / "model.engine") as rt:  # the engine file path resolves to its folder
        for shape, out_hw in [((1, 3, 128, 128), (128, 128)), ((2, 3, 96, 200), (150, 301)),
                              ((1, 3, 256, 256), (64, 64))]:
            feeds = {"pixel_values": rng.standard_normal(shape).astype(np.float32),
                     "output_size": np.array(out_hw, np.int64)}
            got = rt.infer(feeds)["mask"]
            want = _ort(onnx_dir, feeds)["mask"]
            assert got.dtype == np.uint8 and got.shape == want.shape
            assert np.mean(got == want) >= 0.98
        with pytest.raises(InputError, match=r"expected shape within the engine's profile"):
            rt.infer({"pixel_values": np.zeros((1, 3, 512, 512), np.float32),
                      "output_size": np.array([512, 512], np.int64)})


@pytest.mark.parametrize("fp16", [False, True])
def test_gpu_refine_head_engine_matches_onnxruntime(tmp_path, fp16):
    """Item 8: the default export's refine head (logits + their uint8 argmax; the host refines): no shape tensor,
    the argmax comes out uint8, and masks through Segmenter agree with ONNX Runtime's."""
    from sdk.segmenter import Segmenter

    onnx_dir = write_onnx_artifact(tmp_path / "onnx", head="refine")
    engine_dir = build_engine(onnx_dir, tmp_path / "e", fp16=fp16, max_hw=(256, 256), max_batch=2,
                              timing_cache=None)
    m = read_manifest(engine_dir)
    io = {t["name"]: t for t in m.extra["tensorrt"]["io"]}
    assert set(io) == {"pixel_values", "logits", "argmax"} and io["argmax"]["dtype"] == "uint8"
    feeds = {"pixel_values": np.random.default_rng(6).standard_normal((2, 3, 128, 192)).astype(np.float32)}
    want = _ort(onnx_dir, feeds)
    with TensorRTRuntime(engine_dir) as rt:
        got = rt.infer(feeds)
    assert got["argmax"].dtype == np.uint8 and got["argmax"].shape == want["argmax"].shape
    assert np.mean(got["argmax"] == want["argmax"]) >= (0.95 if fp16 else 0.99)
    image = np.random.default_rng(7).integers(0, 256, (150, 230, 3), dtype=np.uint8)
    with Segmenter(TensorRTRuntime(engine_dir)) as engine, Segmenter.from_artifact(onnx_dir,
                                                                                   runtime="onnxruntime") as ref:
        assert np.mean(engine(image).mask == ref(image).mask) >= (0.95 if fp16 else 0.99)


def test_gpu_logits_softmax_fp16_and_cuda_graph(tmp_path):
    onnx_dir = write_onnx_artifact(tmp_path / "onnx", head="logits", size_hw=(128, 160))
    engine_dir = build_engine(onnx_dir, tmp_path / "e", fp16=True, softmax=True, timing_cache=None)
    m = read_manifest(engine_dir)
    # on a graph this small FP32 kernels may win: no FP16 layer is a build warning, not a failure (item 7)
    assert m.precision == "fp16" and m.extra["tensorrt"]["build"]["layer_precisions"]["detailed"]
    x = np.random.default_rng(2).standard_normal((1, 3, 128, 160)).astype(np.float32)
    want = _ort(onnx_dir, {"pixel_values": x})["logits"].argmax(1)
    with TensorRTRuntime(engine_dir, cuda_graph=True) as rt:
        first = rt.infer({"pixel_values": x})["logits"]
        again = rt.infer({"pixel_values": x})["logits"]  # replayed graph
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-2)
    np.testing.assert_array_equal(first, again)
    assert np.mean(first.argmax(1) == want) >= 0.95


def test_gpu_int8_engine_from_the_tensorrt_recipe(tmp_path):
    art = _tiny_qdq(tmp_path)
    engine_dir = build_engine(art, tmp_path / "e", int8=True, max_hw=(256, 256), timing_cache=None)
    m = read_manifest(engine_dir)
    built = m.extra["tensorrt"]["build"]["layer_precisions"]
    assert built["int8_compute"] > 0  # build_engine fails otherwise; recorded for the report
    assert m.precision == "int8+fp16"  # INT8 implies FP16 for the rest on every supported version
    feeds = {"pixel_values": np.random.default_rng(1).standard_normal((1, 3, 128, 128)).astype(np.float32),
             "output_size": np.array([128, 128], np.int64)}
    with TensorRTRuntime(engine_dir) as rt:
        got = rt.infer(feeds)["mask"]
    assert got.shape == (1, 128, 128) and np.mean(got == _ort(art, feeds)["mask"]) >= 0.9


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_gpu_layernorm_matmul_softmax_graph_on_every_version(tmp_path, precision):
    """What the conv-only graphs cannot show: LayerNormalization (one op on every supported TensorRT), token MatMuls
    and Softmax parse, build and agree with ONNX Runtime, in every precision this TensorRT offers (weakly typed up
    to 10.11, strongly typed with the float parts made FP16 at build from 10.12)."""
    art = write_transformer_artifact(tmp_path / "fp32")
    if precision == "int8":
        pytest.importorskip("onnxruntime", reason="quantizing needs onnxruntime")
        from calibration.quantize_ort import quantize_onnxruntime
        from calibration.sets import load_calibration_set

        frames = [np.random.default_rng(i).integers(0, 256, (128, 128, 3), dtype=np.uint8) for i in range(4)]
        art = quantize_onnxruntime(art, load_calibration_set(frames), tmp_path / "qdq", target="tensorrt",
                                   method="minmax", progress=False)
    engine_dir = build_engine(art, tmp_path / "e", fp16=precision == "fp16", int8=precision == "int8",
                              max_hw=(256, 256), timing_cache=None)
    build = read_manifest(engine_dir).extra["tensorrt"]["build"]
    strong = strongly_typed_only(require_tensorrt())
    assert build["plan"]["convert_fp16"] == (strong and precision != "fp32")
    if precision != "fp32" and not strong:
        assert build["fp32_constrained_layers"] == 1  # the Softmax; LayerNorm accumulates in FP32 by itself
    feeds = {"pixel_values": np.random.default_rng(3).standard_normal((1, 3, 128, 192)).astype(np.float32),
             "output_size": np.array([128, 192], np.int64)}
    with TensorRTRuntime(engine_dir) as rt:
        got = rt.infer(feeds)["mask"]
    assert np.mean(got == _ort(art, feeds)["mask"]) >= (0.98 if precision == "fp32" else 0.9)


def test_gpu_pycuda_backend_gives_what_the_driver_backend_gives(tmp_path):
    """Item 6: the runtime's primary CUDA path is the driver API (ctypes); pycuda stays a supported backend."""
    pytest.importorskip("pycuda", reason="pycuda is not installed (optional: cuda='pycuda')")
    onnx_dir = write_onnx_artifact(tmp_path / "onnx", head="mask", size_hw=(64, 96))
    engine_dir = build_engine(onnx_dir, tmp_path / "e", timing_cache=None, check_parity=False)
    feeds = {"pixel_values": np.random.default_rng(9).standard_normal((1, 3, 64, 96)).astype(np.float32),
             "output_size": np.array([70, 100], np.int64)}
    with TensorRTRuntime(engine_dir) as driver, TensorRTRuntime(engine_dir, cuda="pycuda") as pycuda:
        np.testing.assert_array_equal(driver.infer(feeds)["mask"], pycuda.infer(feeds)["mask"])
        assert "pycuda" in pycuda.describe() and "pycuda" not in driver.describe()


def test_gpu_fingerprint_mismatch_refuses_before_deserializing(tmp_path):
    onnx_dir = write_onnx_artifact(tmp_path / "onnx", head="logits", size_hw=(64, 64))
    engine_dir = build_engine(onnx_dir, tmp_path / "e", timing_cache=None, check_parity=False)
    fp = read_manifest(engine_dir).extra["tensorrt"]["fingerprint"]
    assert fp["sm_count"] > 0 and fp["platform"]
    raw = json.loads((engine_dir / "model.json").read_text())
    raw["extra"]["tensorrt"]["fingerprint"]["tensorrt_version"] = "7.1.3.0"
    (engine_dir / "model.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match=r"engine was built with TensorRT 7\.1 for sm_\d+; this host has TensorRT"):
        TensorRTRuntime(engine_dir)


def test_gpu_close_frees_the_stream_and_pops_the_context(tmp_path):
    import ctypes

    onnx_dir = write_onnx_artifact(tmp_path / "onnx", head="logits", size_hw=(64, 64))
    engine_dir = build_engine(onnx_dir, tmp_path / "e", timing_cache=None, check_parity=False)
    driver = CudaDriver()
    for _ in range(3):  # open / run / close repeatedly in one thread: the context stack ends as it began
        before = driver.current_context()
        rt = TensorRTRuntime(engine_dir)
        rt.infer({"pixel_values": np.zeros((1, 3, 64, 64), np.float32)})
        rt.close()
        assert not hasattr(rt, "_stream")
        assert driver.current_context() == before, "close() left a CUDA context pushed on this thread"
    # pop what is current until the stack is empty: our runtimes left no extra copy of the primary context below
    popped = []
    while driver.current_context():
        out = ctypes.c_void_p()
        driver._check(driver._lib.cuCtxPopCurrent_v2(ctypes.byref(out)), "cuCtxPopCurrent")
        popped.append(out.value)
    assert len(popped) <= 1, f"{len(popped)} contexts were stacked on this thread: {popped}"


def test_gpu_close_from_another_thread_releases_the_primary_context(tmp_path):
    """Item 13: opened in this thread, closed in another; the primary context is released (through the driver, since
    pycuda's detach does nothing out of thread) and a new runtime opens and runs afterwards."""
    import threading

    onnx_dir = write_onnx_artifact(tmp_path / "onnx", head="logits", size_hw=(64, 64))
    engine_dir = build_engine(onnx_dir, tmp_path / "e", timing_cache=None, check_parity=False)
    rt = TensorRTRuntime(engine_dir)
    rt.infer({"pixel_values": np.zeros((1, 3, 64, 64), np.float32)})
    errors: list[BaseException] = []

    def close() -> None:
        try:
            rt.close()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    worker = threading.Thread(target=close)
    worker.start()
    worker.join()
    assert not errors, errors
    with TensorRTRuntime(engine_dir) as again:
        assert again.infer({"pixel_values": np.zeros((1, 3, 64, 64), np.float32)})["logits"].shape[0] == 1


# ---------------------------------------------------------------- the real model (LayerNorm, attention, Softmax)

@pytest.fixture(scope="module")
def real_onnx(tmp_path_factory) -> Path:
    given = os.environ.get("SEGEDGE_TRT_ONNX")
    if given:
        m = read_manifest(Path(given))
        assert m.format == "onnx" and m.graph == "portable", f"SEGEDGE_TRT_ONNX={given}: expected a portable ONNX"
        return Path(given)
    if find_spec("torch") is None or not HF_MODEL.exists():
        pytest.skip("set SEGEDGE_TRT_ONNX=<FP32 ONNX artifact folder> (segedge export CHECKPOINT --upsample exact "
                    "--output DIR on the host, copied here); no torch or shared checkpoint to export one here")
    from converters.onnx_export import export_onnx

    return export_onnx(HF_MODEL, tmp_path_factory.mktemp("real") / "b0-fp32", upsample="exact", progress=False)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    from calibration.sets import load_calibration_set

    root = Path(os.environ.get("SEGEDGE_TRT_IMAGES") or CAMVID)
    if (root / "val.txt").is_file():
        root = root / "val.txt"
    elif not root.exists():
        pytest.skip(f"set SEGEDGE_TRT_IMAGES=<folder of images or a CamVid root>: {root} is missing")
    return list(load_calibration_set(root, num_samples=6, seed=0).frames)


def _agreement(engine_dir: Path, reference: Path, images: list[np.ndarray]) -> float:
    pytest.importorskip("onnxruntime", reason="the comparison needs onnxruntime (pip install onnxruntime)")
    from sdk.segmenter import Segmenter

    with Segmenter(TensorRTRuntime(engine_dir)) as engine, Segmenter.from_artifact(reference,
                                                                                   runtime="onnxruntime") as ref:
        return float(np.mean([np.mean(engine(im).mask == ref(im).mask) for im in images]))


def _some_fp16(build: dict) -> bool:
    """FP16 layers in the engine, or Myelin subgraphs whose precision the inspector cannot show (TensorRT 8.6 may
    fold the whole transformer into one): item 7."""
    counts = build["layer_precisions"]["by_precision"]
    return counts["fp16"] > 0 or counts["opaque"] > 0


def test_gpu_real_model_fp16(tmp_path, real_onnx, images):
    engine_dir = build_engine(real_onnx, tmp_path / "b0-fp16.engine", fp16=True, opt_hw=(360, 480),
                              timing_cache=None)
    build = read_manifest(engine_dir).extra["tensorrt"]["build"]
    print(build["layers_line"])
    assert _some_fp16(build)
    if not strongly_typed_only(require_tensorrt()):
        assert build["fp32_constrained_layers"] > 0  # the Softmaxes
    assert _agreement(engine_dir, real_onnx, images) >= 0.98


@pytest.fixture(scope="module")
def real_refine(tmp_path_factory) -> Path:
    """The default export (refine head): SEGEDGE_TRT_REFINE, else exported here where torch and the checkpoint are."""
    given = os.environ.get("SEGEDGE_TRT_REFINE")
    if given:
        assert read_manifest(Path(given)).head == "refine", f"SEGEDGE_TRT_REFINE={given}: expected a refine head"
        return Path(given)
    if find_spec("torch") is None or not HF_MODEL.exists():
        pytest.skip("set SEGEDGE_TRT_REFINE=<the default export's folder> (segedge export CHECKPOINT --output DIR on "
                    "the host, copied here); no torch or shared checkpoint to export one here")
    from converters.onnx_export import export_onnx

    return export_onnx(HF_MODEL, tmp_path_factory.mktemp("refine") / "b0-refine", progress=False)


def test_gpu_real_model_refine_head_fp16(tmp_path, real_refine, images):
    """Item 8: the default export, built FP16, gives the masks ONNX Runtime gives (host refinement on both)."""
    engine_dir = build_engine(real_refine, tmp_path / "b0-refine.engine", fp16=True, opt_hw=(360, 480),
                              timing_cache=None)
    build = read_manifest(engine_dir).extra["tensorrt"]["build"]
    print(build["layers_line"])
    assert _some_fp16(build)
    assert all("float parts" in change for change in build["graph_changes"])  # nothing else to rewrite
    assert _agreement(engine_dir, real_refine, images) >= 0.98


@pytest.fixture(scope="module")
def real_qdq(tmp_path_factory, real_onnx, images) -> Path:
    given = os.environ.get("SEGEDGE_TRT_QDQ")
    if given:
        return Path(given)
    pytest.importorskip("onnxruntime", reason="quantizing needs onnxruntime; or set SEGEDGE_TRT_QDQ")
    from calibration.quantize_ort import quantize_onnxruntime
    from calibration.sets import load_calibration_set

    return quantize_onnxruntime(real_onnx, load_calibration_set(images), tmp_path_factory.mktemp("q") / "qdq",
                                target="tensorrt", method="minmax", progress=False)


def test_gpu_real_model_int8(tmp_path, real_onnx, real_qdq, images):
    engine_dir = build_engine(real_qdq, tmp_path / "b0-int8.engine", int8=True, opt_hw=(360, 480),
                              timing_cache=None)
    m = read_manifest(engine_dir)
    build = m.extra["tensorrt"]["build"]
    print(build["layers_line"])
    assert build["layer_precisions"]["int8_compute"] > 0
    assert m.precision == "int8+fp16" and _some_fp16(build)
    assert _agreement(engine_dir, real_qdq, images) >= 0.97  # the same Q/DQ graph in ONNX Runtime
    assert _agreement(engine_dir, real_onnx, images) >= 0.95  # and FP32


def test_gpu_real_model_int8_fp16_graph_strongly_typed(tmp_path, real_onnx, images):
    if _major() < 10:
        pytest.skip("FP16 Q/DQ graphs (opset 19) need TensorRT >= 10")
    pytest.importorskip("onnxruntime", reason="quantizing needs onnxruntime")
    from calibration.quantize_ort import quantize_onnxruntime
    from calibration.sets import load_calibration_set

    art = quantize_onnxruntime(real_onnx, load_calibration_set(images), tmp_path / "qdq16", target="tensorrt",
                               method="minmax", float_precision="fp16", progress=False)
    engine_dir = build_engine(art, tmp_path / "e", int8=True, opt_hw=(360, 480), timing_cache=None)
    m = read_manifest(engine_dir)
    assert m.precision == "int8+fp16" and m.extra["tensorrt"]["fingerprint"]["strongly_typed"]
    assert _agreement(engine_dir, real_onnx, images) >= 0.95


def test_gpu_real_model_dla_is_static_and_runs_layers_on_the_dla(tmp_path, real_onnx, images):
    import tensorrt as trt

    from runtimes.tensorrt import tensorrt_logger

    if not trt.Builder(tensorrt_logger()).num_DLA_cores:
        pytest.skip("this GPU has no DLA (Orin Nano, discrete GPUs)")
    refusal = dla_refusal(require_tensorrt(), int8=False)
    if refusal:
        with pytest.raises(ExportError, match="does not support Orin's DLA"):
            build_engine(real_onnx, tmp_path / "dla.engine", fp16=True, dla_core=0, opt_hw=(360, 480),
                         timing_cache=None)
        pytest.skip(f"refusal checked: {refusal}")
    engine_dir = build_engine(real_onnx, tmp_path / "dla.engine", fp16=True, dla_core=0, opt_hw=(360, 480),
                              timing_cache=None)
    trt_extra = read_manifest(engine_dir).extra["tensorrt"]
    pixel = next(r for r in trt_extra["profile"] if r["name"] == "pixel_values")
    assert pixel["min"] == pixel["opt"] == pixel["max"] == [1, 3, 360, 480]
    assert trt_extra["build"]["layer_precisions"]["dla_layers"] > 0  # build_engine fails otherwise
    print(trt_extra["build"]["layers_line"], "; DLA-capable network layers:",
          trt_extra["build"]["dla_capable_network_layers"])
    resized = [np.ascontiguousarray(im[:360, :480]) for im in images if im.shape[0] >= 360 and im.shape[1] >= 480]
    if resized:
        assert _agreement(engine_dir, real_onnx, resized) >= 0.95
    shutil.rmtree(engine_dir)
