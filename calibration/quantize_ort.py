"""INT8 post-training quantization with ONNX Runtime's quantizer (static, QDQ format).

Two targets from one FP32 ONNX artifact:
- ``target="onnxruntime"``: for ONNX Runtime on CPUs. Activations uint8 (asymmetric), weights int8 symmetric per
  output channel. Quantized: the Linear MatMuls (q, k, v, proj, and fc1/fc2 where they are MatMuls), the dense
  convolutions (patch merging, spatial reduction, fc1/fc2 as 1x1 convs in the ``onnxruntime`` graph) and the whole
  folded decoder (its 1x1 convs, the upsampling Resizes, the branch sum, ReLU and the classifier), so the decoder runs
  in int8 from the stage features to the logits. On the ``onnxruntime`` graph (``export_onnx(graph="onnxruntime")``,
  the default for this target) the depthwise convs are quantized too: Mix-FFN then runs fc1 -> depthwise -> fc2 as
  u8 NHWC QLinearConvs with only GELU in float between them. MatMul outputs are not quantized: ONNX Runtime then runs
  them as MatMulIntegerToFloat (int8 in, float out) instead of QLinearMatMul followed by a DequantizeLinear pass.
  Float: LayerNorm, attention (MultiHeadAttention or the attention matmuls + Softmax), GELU, residual adds and the
  resize/argmax mask head. Why: on the CPU each layer quantized here made B0 faster, and each left float made it
  slower when quantized (QLinearSoftmax, dequantize passes, a split GELU fusion); the timings are in
  docs/BENCHMARKS.md, "Design notes". Keep any of these float with ``keep_float`` (e.g. ``'^/decoder/classifier/'``).
- ``target="tensorrt"``: an explicitly quantized Q/DQ model that TensorRT 8.6-11 builds as INT8: int8 activations
  and weights, symmetric (zero points 0), weights per output channel (axis 0 for Conv, 1 for MatMul), Q/DQ pairs on the
  inputs of Conv/MatMul (where TensorRT fuses them), including the depthwise convs; biases stay float (TensorRT's
  ONNX parser rejects int32 DequantizeLinear). Made with ONNX Runtime's quantizer
  rather than NVIDIA ModelOpt because ``nvidia-modelopt[onnx]`` pulls ``onnxruntime-gpu`` (which clashes with the CPU
  ``onnxruntime``) and pins an older ``onnx``; the settings above are the ones TensorRT documents for explicit
  quantization. It runs in ONNX Runtime here (slowly: it is for TensorRT), so its accuracy is measured on this machine.

Calibration methods: minmax, entropy, percentile (ONNX Runtime's calibrators). Default per target: minmax for
ONNX Runtime, where each activation's range is the mean over the calibration frames of that frame's min and max
(ONNX Runtime's MinMax calibrator with ``moving_average``: the global min/max lets rare outliers widen the uint8
steps); percentile (99.999) for the TensorRT Q/DQ model, whose symmetric int8 activations lose resolution to
outliers under minmax. The histogram methods (entropy, percentile) take several times minmax's calibration time.
The agreement and timings behind these defaults: docs/BENCHMARKS.md, "Design notes". Scratch files go to a
temporary directory, never the current one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from calibration.sets import CalibrationSet
from sdk.core.errors import InputError, require
from sdk.core.manifest import Manifest, model_feeds, read_manifest, require_portable_graph

# the one list of calibration methods and each target's default (see the module docstring for why):
# calibration.quantize, the report's grid and segedge quantize --method read these
METHODS = ("minmax", "entropy", "percentile")
TARGETS = ("onnxruntime", "tensorrt")
DEFAULT_METHODS = {"onnxruntime": "minmax", "tensorrt": "percentile"}
DECODER_INT8_OPS = ("Resize", "Add", "Relu")  # CPU target: with the decoder's convs, the decoder runs in int8


def quantizable_nodes(model, target: str, graph: str = "portable") -> list[str]:
    """Names of the nodes the recipe quantizes (see the module docstring); ``graph`` is the export's graph form."""
    inits = {i.name for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    classifier = convs[-1].name if convs else None  # the last conv is the decoder's classifier
    names = []
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits:
            names.append(node.name)
        elif node.op_type == "Conv":
            depthwise = any(a.name == "group" and a.i > 1 for a in node.attribute)
            if target == "tensorrt" and node.name != classifier:
                names.append(node.name)
            elif target == "onnxruntime" and (graph == "onnxruntime" or not depthwise):
                names.append(node.name)
        elif target == "onnxruntime" and node.name.startswith("/decoder/") and node.op_type in DECODER_INT8_OPS:
            names.append(node.name)
    return names


def shapes_from_quantized(model) -> int:
    """Shape nodes that read a DequantizeLinear's output read its int8 input instead (in place; returns how many).
    Same shape, but ONNX Runtime no longer keeps a DequantizeLinear -- a full float copy of the tensor -- alive just
    for the Shape: on B0 at 512x512 that was 14 passes (the network input, token maps, decoder branches), about 1 ms."""
    dq_input = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    changed = 0
    for node in model.graph.node:
        if node.op_type == "Shape" and node.input[0] in dq_input:
            node.input[0] = dq_input[node.input[0]]
            changed += 1
    return changed


def _apply_keep_float(names: list[str], keep_float: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Remove nodes matching any ``keep_float`` regex; every pattern must match at least one quantizable node."""
    kept: list[str] = []
    for pattern in keep_float:
        hits = [n for n in names if re.search(pattern, n)]
        if not hits:
            raise InputError(f"keep_float pattern {pattern!r} matches none of the {len(names)} quantizable nodes "
                             f"(e.g. {names[:3]}). Use a regex on ONNX node names, e.g. '/encoder/stages.0/'.")
        kept.extend(hits)
    return [n for n in names if n not in set(kept)], sorted(set(kept))


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a calibration set: ``get_next()`` -> feeds or None, with
    ``set_range`` so the quantizer can feed the calibrator a slice at a time (``CalibStridedMinMax``)."""

    def __init__(self, calib: CalibrationSet, manifest: Manifest, progress: bool) -> None:
        from tqdm import tqdm

        self._frames = calib.frames
        self._pos, self._end = 0, len(calib.frames)
        self._manifest = manifest
        self._bar = tqdm(total=len(calib), desc="calibrate", unit="frame", disable=not progress)

    def __len__(self) -> int:
        return len(self._frames)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._pos, self._end = start_index, min(end_index, len(self._frames))

    def get_next(self) -> dict | None:
        from sdk.core.preprocess import preprocess

        if self._pos >= self._end:
            if self._end >= len(self._frames):
                self._bar.close()
            return None
        frame = self._frames[self._pos]
        self._pos += 1
        self._bar.update()
        return model_feeds(self._manifest, preprocess(frame, self._manifest.preprocess), frame.shape[:2])


def calibration_stride(frames: int, most: int = 16) -> int:
    """The largest divisor of ``frames`` up to ``most``: ONNX Runtime's histogram calibrators (entropy, percentile)
    keep every frame's calibrated tensors in memory until a collection ends -- for SegFormer-B0 at 720x1280 about
    750 MB per frame, so 300 frames at once would not fit -- and its strided collection (which needs a divisor)
    merges the histograms slice by slice instead."""
    return max(d for d in range(1, min(most, frames) + 1) if frames % d == 0)


def calibrated_tensors(model, nodes: list[str]) -> set[str]:
    """The tensors a histogram calibrator needs: the inputs and outputs of the nodes the recipe quantizes. ONNX
    Runtime's own choice is every float tensor of every node of the quantized op types (the attention score matmuls
    too, which no recipe here quantizes): for B0 at 720x1280 2.4 GB a frame instead of 0.75 GB."""
    chosen = set(nodes)
    return {t for node in model.graph.node if node.name in chosen for t in (*node.input, *node.output) if t}


def _session_without_arena(model_or_path, providers=("CPUExecutionProvider",)):
    """An ONNX Runtime session with graph optimizations off (as ONNX Runtime's calibrators make it) and without its
    CPU memory arena, which would keep the peak of a frame's outputs reserved for the rest of the calibration."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(model_or_path, sess_options=options, providers=list(providers))


def frame_cost(model_path: Path, feeds: dict, tensors: set[str]) -> tuple[int, int]:
    """(bytes of ``tensors`` for one frame, bytes of the largest of them): what a histogram calibrator holds per frame
    until a slice is merged, and the tensor whose copies (ONNX Runtime stacks a slice's arrays of a tensor, then
    flattens them) peak while it is merged. Measured by running the model once with them as outputs."""
    import onnx

    model = onnx.load(str(model_path))
    have = [o.name for o in model.graph.output]
    infos = {v.name: v for v in model.graph.value_info}
    model.graph.output.extend(infos[n] for n in sorted(tensors) if n in infos and n not in have)
    session = _session_without_arena(model.SerializeToString())
    names = [o.name for o in session.get_outputs()]
    sizes = [int(out.nbytes) for name, out in zip(names, session.run(None, feeds)) if name in tensors]
    sizes += [int(np.asarray(v).nbytes) for k, v in feeds.items() if k in tensors]  # a graph input: calibrated too
    return sum(sizes), max(sizes, default=0)


def _bounded_calibrator(base: type, tensors: set[str]) -> type:
    """``base`` (one of ONNX Runtime's histogram calibrator classes) calibrating only ``tensors``, in a session
    without the CPU memory arena. Collection and range computation are ONNX Runtime's own: each tensor's histogram
    depends only on that tensor's values, so the ranges of the tensors calibrated do not change."""

    class Bounded(base):
        def select_tensors_to_calibrate(self, model):
            chosen, value_infos = super().select_tensors_to_calibrate(model)
            return chosen & tensors, value_infos

        def create_inference_session(self):
            self.infer_session = _session_without_arena(self.augmented_model_path, self.execution_providers)

    Bounded.__name__ = Bounded.__qualname__ = f"Bounded{base.__name__}"
    return Bounded


class _UniformHistogramNumpy:
    """numpy as ONNX Runtime's calibrate module sees it while we calibrate, with one change: ``histogram`` given an
    explicit array of evenly spaced edges (what ONNX Runtime passes from the second slice on, in the percentile
    collector) takes numpy's uniform-bin path instead of sorting every value -- the sort was 19 of 41 s of a 32-frame
    percentile calibration of B0. The edges handed back are the ones passed in; counts can differ from the sorting
    path only for values within float rounding of an edge."""

    def __getattr__(self, name: str):
        return getattr(np, name)

    @staticmethod
    def histogram(a, bins=10, range=None, **kwargs):  # noqa: A002 (numpy's own signature)
        if isinstance(bins, np.ndarray) and bins.ndim == 1 and bins.size > 2 and range is None and not kwargs:
            widths = np.diff(bins.astype(np.float64))
            if widths[0] > 0 and np.allclose(widths, widths[0], rtol=1e-3, atol=0.0):
                hist, _ = np.histogram(a, bins=bins.size - 1, range=(float(bins[0]), float(bins[-1])))
                return hist, bins
        return np.histogram(a, bins=bins, range=range, **kwargs)


@contextlib.contextmanager
def _uniform_histograms():
    from onnxruntime.quantization import calibrate

    saved = calibrate.np
    calibrate.np = _UniformHistogramNumpy()
    try:
        yield
    finally:
        calibrate.np = saved


@contextlib.contextmanager
def _histogram_calibration(tensors: set[str]):
    """While ``quantize_static`` runs: its entropy/percentile calibrators are the bounded ones
    (``_bounded_calibrator``; ``create_calibrator`` builds them with its own defaults) and its numpy takes the
    uniform-histogram shortcut (``_uniform_histograms``)."""
    from onnxruntime.quantization import calibrate

    names = ("EntropyCalibrater", "PercentileCalibrater")
    saved = {name: getattr(calibrate, name) for name in names}
    for name in names:
        setattr(calibrate, name, _bounded_calibrator(saved[name], tensors))
    try:
        with _uniform_histograms():
            yield
    finally:
        for name, value in saved.items():
            setattr(calibrate, name, value)


def quantize_onnxruntime(fp32_artifact: str | Path, calib: CalibrationSet, output: str | Path, *,
                         target: str = "onnxruntime", method: str | None = None, keep_float: tuple[str, ...] = (),
                         percentile: float = 99.999, progress: bool = True, slice_frames: int = 16,
                         reduce_range: bool = False, calib_memory_mib: int = 2048,
                         float_precision: str = "fp32") -> Path:
    """FP32 ONNX artifact + calibration set -> INT8 (QDQ) ONNX artifact folder; returns the folder.

    float_precision (TensorRT target only): "fp16" writes the layers outside the Q/DQ pairs in FP16 (LayerNorm and
    Softmax FP32; opset 19; ``converters.float16_graph``), for TensorRT 10/11's strongly typed builds, which take
    precisions from the graph; "fp32" (default) for TensorRT 8.x, where ``segedge build --int8`` sets FP16 itself.

    reduce_range: 7-bit weights, for CPUs without VNNI where u8 x s8 products saturate (``sdk.core.cpu``); the
    public ``calibration.quantize`` sets it from the target CPU. Not for the TensorRT target (GPU, symmetric s8).
    slice_frames / calib_memory_mib: the histogram methods hold every frame's calibrated tensors (those of the
    quantized nodes) until a slice is merged; a slice has at most ``slice_frames`` frames and, by a one-frame
    measurement, at most about ``calib_memory_mib`` of them and their merge copies (at least one frame). minmax keeps
    only two scalars per tensor and frame (the CPU target's takes all frames in one pass)."""
    method = _check_options(target, method, reduce_range, calib_memory_mib, float_precision, len(calib))
    onnx = require("onnx")
    require("onnxruntime")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, manifest = _fp32_source(fp32_artifact, target)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segedge-quant-", dir=out) as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src / manifest.model_file), str(pre), skip_symbolic_shape=False)
        pre_model = onnx.load(str(pre))
        nodes, kept = _apply_keep_float(quantizable_nodes(pre_model, target, manifest.graph), tuple(keep_float))
        trt = target == "tensorrt"
        extra, memory, tensors = _calibration_options(target, method, percentile, calib, manifest, pre, pre_model,
                                                      nodes, slice_frames, calib_memory_mib)
        calib_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                        "percentile": CalibrationMethod.Percentile}[method]
        histograms = _histogram_calibration(tensors) if method != "minmax" else contextlib.nullcontext()
        with histograms:
            quantize_static(
                str(pre), str(out / "model.onnx"), _Reader(calib, manifest, progress),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8 if trt else QuantType.QUInt8, weight_type=QuantType.QInt8,
                op_types_to_quantize=["Conv", "MatMul", *([] if trt else DECODER_INT8_OPS)], nodes_to_quantize=nodes,
                calibrate_method=calib_method, extra_options=extra, reduce_range=reduce_range,
            )
        float16 = _finish_graph(out / "model.onnx", trt=trt, float_precision=float_precision)
    ort = require("onnxruntime")
    result = dataclasses.replace(
        manifest,
        precision="int8",
        opset=float16.get("opset", manifest.opset),
        parity={},
        extra={
            **manifest.extra,
            "quantization": {
                **_quantization_record(ort.__version__, target, method, manifest.graph, reduce_range, extra,
                                       memory, float_precision, float16),
                "quantized_nodes": len(nodes), "kept_float_by_user": kept, "keep_float_patterns": list(keep_float),
                "seconds": round(time.perf_counter() - t0, 1),
            },
            "calibration": {"description": calib.description, "fingerprint": calib.fingerprint,
                            "frames": len(calib)},
            "fp32_source": str(src),
        },
    )
    result.write(out)
    return out


def _fp32_source(fp32_artifact: str | Path, target: str) -> tuple[Path, Manifest]:
    """(folder, manifest) of an FP32 ONNX artifact; for the TensorRT target a portable graph."""
    src = Path(fp32_artifact)
    manifest = read_manifest(src)
    if manifest.format != "onnx" or manifest.precision != "fp32":
        raise InputError(f"artifact {src}: expected an FP32 ONNX artifact (segedge export), got "
                         f"{manifest.format} {manifest.precision}")
    if target == "tensorrt":
        require_portable_graph(manifest, what=f"artifact {src}", reader="TensorRT cannot parse", error=InputError,
                               fix="Quantize for TensorRT from a portable export: segedge export CHECKPOINT --graph "
                                   "portable, or pass the checkpoint itself.")
    return src, manifest


def _finish_graph(path: Path, *, trt: bool, float_precision: str) -> dict:
    """The quantized graph at ``path`` finished in place: for ONNX Runtime its Shape nodes read int8 tensors, not
    DequantizeLinear outputs (``shapes_from_quantized``); with float_precision "fp16" its float parts become FP16.
    Returns the FP16 rewrite's record ({} without it)."""
    onnx = require("onnx")

    if not trt:
        quantized = onnx.load(str(path))
        if shapes_from_quantized(quantized):
            onnx.save(quantized, str(path))
    float16: dict = {}
    if float_precision == "fp16":
        from converters.float16_graph import float_parts_to_fp16

        converted, float16 = float_parts_to_fp16(onnx.load(str(path)))
        onnx.save(converted, str(path))
    return float16


def _check_options(target: str, method: str | None, reduce_range: bool, calib_memory_mib: int, float_precision: str,
                   frames: int) -> str:
    """quantize_onnxruntime's options checked; returns the method (the target's default for None)."""
    if target not in TARGETS:
        raise InputError(f"target: expected one of {TARGETS}, got {target!r}")
    if reduce_range and target == "tensorrt":
        raise InputError("reduce_range: expected False for target='tensorrt' (TensorRT runs symmetric 8-bit weights "
                         "on the GPU, where nothing saturates); it is for CPUs without VNNI")
    if calib_memory_mib < 1:
        raise InputError(f"calib_memory_mib: expected >= 1, got {calib_memory_mib}")
    if float_precision not in ("fp32", "fp16") or (float_precision == "fp16" and target != "tensorrt"):
        raise InputError(f"float_precision: expected 'fp32', or 'fp16' with target='tensorrt' (for its strongly "
                         f"typed builds), got {float_precision!r} with target={target!r}")
    method = method or DEFAULT_METHODS[target]
    if method not in METHODS:
        raise InputError(f"method: expected one of {METHODS}, got {method!r}")
    if frames == 0:
        raise InputError("calibration set: expected at least one frame, got none")
    return method


def _calibration_options(target: str, method: str, percentile: float, calib: CalibrationSet, manifest, pre: Path,
                         pre_model, nodes: list[str], slice_frames: int, calib_memory_mib: int) -> tuple:
    """ONNX Runtime's ``extra_options`` for the target and method, the histogram methods' memory record, and the
    tensors they calibrate (None for minmax): (extra, memory, tensors)."""
    trt = target == "tensorrt"
    memory: dict = {}  # the histogram methods' per-frame bytes and budget, recorded in the manifest
    tensors = None
    extra: dict = {
        "WeightSymmetric": True,
        "ActivationSymmetric": trt,
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
        "CalibTensorRangeSymmetric": trt,
        # TensorRT's ONNX parser rejects int32 DequantizeLinear (quantized biases): biases stay float there
        "QuantizeBias": not trt,
        # float weights with a Q/DQ pair: the form TensorRT's ONNX parser reads on 8.5 to 11
        "AddQDQPairToWeight": trt,
    }
    if not trt:  # int8 in, float out: MatMulIntegerToFloat rather than QLinearMatMul + a DequantizeLinear pass
        extra["OpTypesToExcludeOutputQuantization"] = ["MatMul"]
    else:  # Q/DQ on the inputs of Conv/MatMul only, as TensorRT fuses them (ModelOpt's int8 recipe likewise)
        extra["OpTypesToExcludeOutputQuantization"] = ["Conv", "MatMul"]
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    if method == "minmax" and not trt:  # per-frame ranges, averaged over all frames (scalars: no need to slice)
        extra["CalibMovingAverage"] = True
    elif method == "minmax":  # global min/max: two scalars per tensor and frame, any slice fits
        extra["CalibStridedMinMax"] = calibration_stride(len(calib), slice_frames)
    else:  # histograms: a slice of k frames holds k x (their tensors + 2 copies of the largest), within budget
        tensors = calibrated_tensors(pre_model, nodes)
        total, largest = frame_cost(pre, _Reader(calib, manifest, False).get_next(), tensors)
        most = max(1, min(slice_frames, (calib_memory_mib << 20) // max(total + 2 * largest, 1)))
        memory = {"calib_frame_mib": round(total / 2**20, 1), "calib_memory_mib": calib_memory_mib}
        extra["CalibStridedMinMax"] = calibration_stride(len(calib), most)
    return extra, memory, tensors


def _quantization_record(ort_version: str, target: str, method: str, graph: str, reduce_range: bool, extra: dict,
                         memory: dict, float_precision: str, float16: dict) -> dict:
    """What the manifest says about how the model was quantized (the tool, ranges, types, slices, placement)."""
    trt = target == "tensorrt"
    return {
        "tool": f"onnxruntime {ort_version} quantize_static (QDQ)", "target": target,
        "method": method, "graph": graph,
        "ranges": ("mean of per-frame min/max" if method == "minmax" and not trt else
                   "global min/max" if method == "minmax" else method),
        "activations": "int8 symmetric" if trt else "uint8 asymmetric",
        "weights": "int8 symmetric per output channel" + (", 7-bit (reduce_range)" if reduce_range else ""),
        "reduce_range": reduce_range, "calib_slice_frames": extra.get("CalibStridedMinMax"), **memory,
        **({"qdq_placement": "inputs of Conv/MatMul only", "float_precision": float_precision,
            "float16": {k: v for k, v in float16.items() if k != "kept_fp32"}} if trt else {}),
    }
