"""ONNX artifact -> TensorRT engine artifact (``model.engine`` + ``model.json``), built on the device that runs it.

- FP32 / FP16 engines from the FP32 ONNX artifact; INT8 from a Q/DQ ONNX artifact (explicit quantization: the
  scales come from the Q/DQ nodes, no calibrator). TensorRT 10 builds Q/DQ graphs strongly typed (unless FP16 is
  also asked for); TensorRT 11 has only strongly typed networks, so FP16 there needs an FP16 ONNX.
- One optimization profile: batch, network input size and, for the mask head, the mask size (``output_size``
  values). ``plan_profile`` derives it from the artifact's preprocessing and the options.
- A timing cache reused across builds (per TensorRT version and GPU), DLA with GPU fallback on Jetson AGX/NX.
- Graph preparation (``prepare_onnx``, recorded in model.json): ``output_size`` becomes an int32 input followed by a
  Cast to int64, because TensorRT 8.x requires shape-tensor network inputs to be int32 ("network input that is shape
  tensor must have type Int32", NVIDIA/TensorRT#2968) while 10.x takes either: one engine layout for every version.
  The mask head keeps class ids in float32 until one final Cast to uint8 (TensorRT 8.x converts to and from UINT8
  only from FLOAT/HALF, and resizes no integer tensors). Both rewrites are exact and checked on ONNX Runtime.
- After building, the engine is run against ONNX Runtime on a probe input where both are installed.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shlex
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from runtimes.tensorrt import ENGINE_FILE, ShapeRange, require_tensorrt, tensorrt_logger
from runtimes.tensorrt_device import CudaDriver, EngineFingerprint, host_platform, version_tuple
from sdk.core.errors import ExportError, InputError, require
from sdk.core.manifest import Manifest, read_manifest, resolve_artifact

log = logging.getLogger("segedge")

DEFAULT_WORKSPACE_MIB = 2048
DYNAMIC_HW = {"min": (128, 128), "opt": (512, 512), "max": (1024, 1024)}  # when the artifact has no fixed size
AUTO = "auto"  # timing_cache: one file per TensorRT version and GPU under $XDG_CACHE_HOME/segedge
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
MIN_FP32_MASK_AGREEMENT = 0.98  # engine vs ONNX Runtime on a random probe; FP16/INT8 are measured, not gated

HW = tuple[int, int]


def precision_name(*, fp16: bool, int8: bool) -> str:
    return "int8+fp16" if int8 and fp16 else "int8" if int8 else "fp16" if fp16 else "fp32"


def _hw(value: Any, what: str) -> HW | None:
    if value is None:
        return None
    hw = tuple(int(v) for v in value)
    if len(hw) != 2 or min(hw) < 32:
        raise InputError(f"{what}: expected (height, width), both >= 32, got {value}")
    return (hw[0], hw[1])


def plan_profile(manifest: Manifest, *, min_hw: HW | None = None, opt_hw: HW | None = None,
                 max_hw: HW | None = None, opt_batch: int = 1, max_batch: int = 1,
                 min_output_hw: HW | None = None, opt_output_hw: HW | None = None,
                 max_output_hw: HW | None = None) -> list[ShapeRange]:
    """The optimization profile for an ONNX artifact.

    Network input (H, W): an artifact with a fixed preprocessing size only ever sees that size, so min = opt = max
    = size_hw unless given (and the range must contain it). Without one, images run at their own size: defaults
    128x128 .. 512x512 .. 1024x1024, opt clamped into whatever min/max were given.
    Mask size (mask head, ``output_size`` values): the image's size. Defaults: the input range when images run at
    their own size, else 32x32 .. size_hw .. 2 x size_hw.
    """
    lo, mid, hi = _hw(min_hw, "min_hw"), _hw(opt_hw, "opt_hw"), _hw(max_hw, "max_hw")
    fixed = manifest.preprocess.size_hw
    if fixed is not None:
        lo, mid, hi = lo or fixed, mid or fixed, hi or fixed
        if not all(a <= f <= b for a, f, b in zip(lo, fixed, hi)):
            raise InputError(f"profile: the artifact's preprocessing resizes every image to {fixed[0]}x{fixed[1]}, "
                             f"expected min_hw <= {fixed} <= max_hw, got {lo}..{hi}")
    else:
        hi = hi or (max(DYNAMIC_HW["max"][0], (lo or (0, 0))[0]), max(DYNAMIC_HW["max"][1], (lo or (0, 0))[1]))
        lo = lo or (min(DYNAMIC_HW["min"][0], hi[0]), min(DYNAMIC_HW["min"][1], hi[1]))
        mid = mid or (min(max(DYNAMIC_HW["opt"][0], lo[0]), hi[0]), min(max(DYNAMIC_HW["opt"][1], lo[1]), hi[1]))
    if not 1 <= opt_batch <= max_batch:
        raise InputError(f"batch: expected 1 <= opt_batch <= max_batch, got opt_batch={opt_batch} "
                         f"max_batch={max_batch}")
    pixel = manifest.inputs[0]
    channels = pixel.shape[1] if len(pixel.shape) == 4 and isinstance(pixel.shape[1], int) else 3
    ranges = [ShapeRange(name=pixel.name, min=(1, channels, *lo), opt=(opt_batch, channels, *mid),
                         max=(max_batch, channels, *hi))]
    out_lo, out_mid, out_hi = (_hw(min_output_hw, "min_output_hw"), _hw(opt_output_hw, "opt_output_hw"),
                               _hw(max_output_hw, "max_output_hw"))
    if manifest.head != "mask":
        if out_lo or out_mid or out_hi:
            raise InputError(f"output sizes: expected none for a '{manifest.head}' head (the mask size is an input of "
                             "mask-head artifacts only), got min/opt/max_output_hw")
        return ranges
    if fixed is None:
        out_lo, out_mid, out_hi = out_lo or lo, out_mid or mid, out_hi or hi
    else:
        out_lo, out_mid = out_lo or (32, 32), out_mid or fixed
        out_hi = out_hi or (2 * fixed[0], 2 * fixed[1])
    ranges.append(ShapeRange(name="output_size", min=out_lo, opt=out_mid, max=out_hi, values=True))
    return ranges


def check_qdq(model: Any) -> int:
    """Count Q/DQ nodes; raise for what TensorRT's ONNX parser cannot take: zero points other than int8 0
    (asymmetric or uint8 quantization) and DequantizeLinear of int32 biases (onnx/onnx-tensorrt#850)."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    count, asymmetric, biases = 0, [], []
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        count += 1
        name = node.name or node.output[0]
        source = inits.get(node.input[0])
        if node.op_type == "DequantizeLinear" and source is not None and source.data_type == TensorProto.INT32:
            biases.append(name)
            continue
        zero = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zero is not None and (zero.data_type != TensorProto.INT8 or np.any(numpy_helper.to_array(zero) != 0)):
            asymmetric.append(name)
    if asymmetric:
        raise ExportError(f"int8: TensorRT takes symmetric int8 Q/DQ (zero point 0 of type int8), got {len(asymmetric)} "
                          f"of {count} Q/DQ nodes with another zero point (first: {asymmetric[0]}). Quantize for "
                          "TensorRT: segedge quantize FP32_ARTIFACT --backend tensorrt --calib FRAMES --output OUT")
    if biases:
        raise ExportError(f"int8: expected float biases, got {len(biases)} DequantizeLinear nodes of int32 biases "
                          f"(first: {biases[0]}), which TensorRT's ONNX parser refuses (onnx/onnx-tensorrt#850). "
                          "Quantize with the biases kept float (ONNX Runtime quantize_static: extra_options "
                          "QuantizeBias=False).")
    return count


def _producer(graph: Any, name: str) -> Any:
    for node in graph.node:
        if name in node.output:
            return node
    raise ExportError(f"graph: expected a node producing {name!r}, found none. Re-export the artifact.")


def _rename_output(node: Any, old: str, new: str) -> None:
    node.output[list(node.output).index(old)] = new


def prepare_onnx(model: Any, *, softmax: bool = False) -> list[str]:
    """Rewrite an exported SegFormer graph in place for TensorRT (see the module docstring); return what changed.

    softmax: append Softmax over classes to a logits head, for DeepStream's segmentation parser, which takes class
    probabilities (it labels a pixel -1 unless a score beats max(-1, segmentation-threshold)). The output keeps
    its name ``logits``; its argmax is unchanged.
    """
    from onnx import TensorProto, helper

    g = model.graph
    changes: list[str] = []
    for inp in g.input:
        if inp.name == "output_size" and inp.type.tensor_type.elem_type == TensorProto.INT64:
            inp.type.tensor_type.elem_type = TensorProto.INT32
            for node in g.node:
                for i, name in enumerate(node.input):
                    if name == "output_size":
                        node.input[i] = "output_size_int64"
            g.node.insert(0, helper.make_node("Cast", ["output_size"], ["output_size_int64"], to=TensorProto.INT64,
                                              name="segedge_output_size_to_int64"))
            changes.append("output_size: int64 input -> int32 input + Cast to int64 (TensorRT 8.x shape-tensor "
                           "inputs must be int32)")
    outputs = {o.name: o for o in g.output}
    if "mask" in outputs:
        mask_type = outputs["mask"].type.tensor_type.elem_type
        chain: list[Any] = []
        node = _producer(g, "mask")
        while node.op_type != "ArgMax":
            if len(chain) > 8 or node.op_type not in ("Cast", "Resize", "Squeeze", "Unsqueeze", "Reshape"):
                raise ExportError(f"mask head: expected Cast/Resize/Squeeze between ArgMax and 'mask', got "
                                  f"{node.op_type}. Re-export the artifact with segedge export.")
            chain.append(node)
            node = _producer(g, node.input[0])
        for node in chain:
            for attr in node.attribute:
                if node.op_type == "Cast" and attr.name == "to" and attr.i == mask_type:
                    attr.i = TensorProto.FLOAT
        renamed = {out for node in chain for out in node.output}
        kept = [vi for vi in g.value_info if vi.name not in renamed]  # their recorded types are stale now
        del g.value_info[:]
        g.value_info.extend(kept)
        _rename_output(chain[0], "mask", "mask_float")
        g.node.append(helper.make_node("Cast", ["mask_float"], ["mask"], to=mask_type, name="segedge_mask_cast"))
        changes.append("mask: class ids stay float32 until one final Cast (TensorRT 8.x casts UINT8 only from "
                       "FLOAT/HALF and resizes no integer tensors)")
    if softmax:
        if "logits" not in outputs:
            raise ExportError("softmax: expected a logits-head artifact (segedge export --head logits), got outputs "
                              f"{sorted(outputs)}")
        _rename_output(_producer(g, "logits"), "logits", "logits_raw")
        g.node.append(helper.make_node("Softmax", ["logits_raw"], ["logits"], axis=1, name="segedge_softmax"))
        changes.append("logits: Softmax over classes appended (DeepStream's segmentation parser reads probabilities)")
    return changes


def default_timing_cache(tensorrt_version: str, compute_capability: str) -> Path:
    """$XDG_CACHE_HOME/segedge/tensorrt-<version>-sm<XY>.timing-cache (a cache only fits one TensorRT and GPU)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segedge"
    return base / f"tensorrt-{tensorrt_version}-sm{compute_capability.replace('.', '')}.timing-cache"


def rebuild_command(onnx_artifact: str | Path, output: str | Path, *, fp16: bool = False, int8: bool = False,
                    dla_core: int | None = None, workspace_mib: int = DEFAULT_WORKSPACE_MIB,
                    shapes: dict[str, HW | None] | None = None, opt_batch: int = 1, max_batch: int = 1,
                    softmax: bool = False) -> str:
    """The ``segedge build`` command line that reproduces a build (printed when an engine must be rebuilt)."""
    parts = ["segedge", "build", shlex.quote(str(onnx_artifact)), "--output", shlex.quote(str(output))]
    parts += ["--fp16"] * fp16 + ["--int8"] * int8 + ["--softmax"] * softmax
    if dla_core is not None:
        parts += ["--dla", str(dla_core)]
    if workspace_mib != DEFAULT_WORKSPACE_MIB:
        parts += ["--workspace-mib", str(workspace_mib)]
    for key, hw in (shapes or {}).items():
        if hw is not None:
            parts += [f"--{key.replace('_', '-')}", str(hw[0]), str(hw[1])]
    if opt_batch != 1:
        parts += ["--opt-batch", str(opt_batch)]
    if max_batch != 1:
        parts += ["--max-batch", str(max_batch)]
    return " ".join(parts)


def engine_manifest(onnx_manifest: Manifest, *, onnx_sha256: str, onnx_artifact: str | Path,
                    fingerprint: EngineFingerprint, profile: list[ShapeRange], io: list[dict], build: dict,
                    parity: dict | None = None) -> Manifest:
    """The engine artifact's manifest: the ONNX artifact's labels, preprocessing and interface (inputs/outputs as
    the SDK feeds them), plus ``extra["tensorrt"]``: fingerprint, profile, the engine's own I/O, build record."""
    m = onnx_manifest
    return Manifest(
        format="tensorrt", model_file=ENGINE_FILE, precision=fingerprint.precision, class_names=list(m.class_names),
        palette=m.palette, preprocess=m.preprocess, inputs=list(m.inputs), outputs=list(m.outputs), head=m.head,
        upsample=m.upsample, architecture=dict(m.architecture),
        source={**m.source, "onnx_artifact": str(onnx_artifact), "onnx_sha256": onnx_sha256}, opset=m.opset,
        versions={**m.versions, "tensorrt": fingerprint.tensorrt_version}, parity=dict(parity or {}),
        extra={"tensorrt": {"fingerprint": fingerprint.to_dict(), "profile": [r.to_dict() for r in profile],
                            "io": io, "build": build}},
    )


def build_engine(
    onnx_artifact: str | Path,
    output: str | Path,
    *,
    fp16: bool = False,
    int8: bool = False,
    dla_core: int | None = None,
    workspace_mib: int = DEFAULT_WORKSPACE_MIB,
    min_hw: HW | None = None,
    opt_hw: HW | None = None,
    max_hw: HW | None = None,
    opt_batch: int = 1,
    max_batch: int = 1,
    min_output_hw: HW | None = None,
    opt_output_hw: HW | None = None,
    max_output_hw: HW | None = None,
    softmax: bool = False,
    timing_cache: str | Path | None = AUTO,
    check_parity: bool = True,
) -> Path:
    """Build a TensorRT engine from an ONNX artifact folder into ``output`` (model.engine + model.json); returns it.

    fp16: allow FP16 kernels (TensorRT < 11). int8: the artifact must be a Q/DQ ONNX (explicit quantization);
    a Q/DQ artifact without ``int8`` is an error, as is ``int8`` on an FP32 graph. dla_core: put the layers DLA can
    run on that core, the rest on the GPU (needs fp16 or int8). workspace_mib: TensorRT's scratch memory limit.
    Shapes: see ``plan_profile``. softmax: see ``prepare_onnx``. timing_cache: a file path, "auto" (per TensorRT
    version and GPU under ~/.cache/segedge) or None. Builds on CUDA device 0 (pick another with
    CUDA_VISIBLE_DEVICES). Raises ExportError when TensorRT cannot parse or build the graph.
    """
    src = resolve_artifact(onnx_artifact)
    onnx_manifest = read_manifest(src)
    if onnx_manifest.format != "onnx":
        raise ExportError(f"onnx_artifact {src}: expected an ONNX artifact (segedge export), got format "
                          f"{onnx_manifest.format!r}")
    if onnx_manifest.graph != "portable":
        raise ExportError(f"onnx_artifact {src}: its graph is {onnx_manifest.graph!r} (ONNX Runtime's com.microsoft "
                          "ops), which TensorRT cannot parse. Build from a portable export: segedge export CHECKPOINT "
                          "--graph portable (the default), or segedge quantize --backend tensorrt.")
    if workspace_mib < 1:
        raise InputError(f"workspace_mib: expected >= 1, got {workspace_mib}")
    if dla_core is not None and (dla_core < 0 or not (fp16 or int8)):
        raise InputError(f"dla_core: expected a core >= 0 together with fp16 or int8 (DLA runs FP16 and INT8 layers "
                         f"only), got dla_core={dla_core} fp16={fp16} int8={int8}. Add --fp16.")
    onnx = require("onnx", "jetson")
    model = onnx.load(str(src / onnx_manifest.model_file))
    n_qdq = check_qdq(model)
    if int8 and not n_qdq:
        raise ExportError(f"int8: expected a Q/DQ ONNX artifact (explicit quantization), got {src} with no "
                          f"QuantizeLinear/DequantizeLinear nodes. Quantize it for TensorRT first (segedge quantize {src} "
                          "--backend tensorrt --calib FRAMES --output OUT), or build FP16 (--fp16) / FP32 from it.")
    if n_qdq and not int8:
        raise ExportError(f"int8: {src} is quantized ({n_qdq} Q/DQ nodes); expected --int8 to build it, got none")
    shapes = dict(min_hw=min_hw, opt_hw=opt_hw, max_hw=max_hw, min_output_hw=min_output_hw,
                  opt_output_hw=opt_output_hw, max_output_hw=max_output_hw)
    profile = plan_profile(onnx_manifest, opt_batch=opt_batch, max_batch=max_batch, **shapes)
    changes = prepare_onnx(model, softmax=softmax)
    command = rebuild_command(src, output, fp16=fp16, int8=int8, dla_core=dla_core, workspace_mib=workspace_mib,
                              shapes=shapes, opt_batch=opt_batch, max_batch=max_batch, softmax=softmax)

    version = require_tensorrt()
    major = version_tuple(version)[0]
    if fp16 and major >= 11:
        raise ExportError(f"fp16: TensorRT {version} builds strongly typed networks only (no FP16 builder flag); "
                          "expected an FP16 ONNX for an FP16 engine. Convert the ONNX to mixed precision (ModelOpt "
                          "AutoCast) or build with TensorRT 10.")
    gpu_name, capability = CudaDriver().device(0)
    # TensorRT 11: strongly typed only. 10: Q/DQ graphs strongly typed unless FP16 kernels are wanted as well.
    strongly_typed = major >= 11 or (major == 10 and bool(n_qdq) and not fp16)
    fingerprint = EngineFingerprint(tensorrt_version=version, gpu_name=gpu_name, compute_capability=capability,
                                    dla_core=dla_core, precision=precision_name(fp16=fp16, int8=int8),
                                    strongly_typed=strongly_typed, platform=host_platform())
    cache = (default_timing_cache(version, capability) if timing_cache == AUTO else
             None if timing_cache is None else Path(timing_cache))
    t0 = time.perf_counter()
    engine_bytes, cache_state = _build(model.SerializeToString(), fingerprint=fingerprint, profile=profile,
                                       workspace_mib=workspace_mib, int8=bool(n_qdq), cache=cache, command=command)
    seconds = round(time.perf_counter() - t0, 1)
    io = _engine_io(engine_bytes, dla_core)

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    (out / ENGINE_FILE).write_bytes(engine_bytes)
    build = {"command": command, "seconds": seconds, "graph_changes": changes, "qdq_nodes": n_qdq,
             "softmax": softmax, "workspace_mib": workspace_mib, "timing_cache": cache_state}
    onnx_sha = hashlib.sha256((src / onnx_manifest.model_file).read_bytes()).hexdigest()
    manifest = engine_manifest(onnx_manifest, onnx_sha256=onnx_sha, onnx_artifact=src, fingerprint=fingerprint,
                               profile=profile, io=io, build=build)
    manifest.write(out)
    if check_parity:
        parity = _parity(out, src, manifest, profile, softmax=softmax)
        manifest = engine_manifest(onnx_manifest, onnx_sha256=onnx_sha, onnx_artifact=src, fingerprint=fingerprint,
                                   profile=profile, io=io, build=build, parity=parity)
        manifest.write(out)
    return out


def _build(onnx_bytes: bytes, *, fingerprint: EngineFingerprint, profile: list[ShapeRange], workspace_mib: int,
           int8: bool, cache: Path | None, command: str) -> tuple[bytes, dict]:
    """Parse, configure and build; returns (serialized engine, timing-cache record)."""
    import tensorrt as trt

    logger = tensorrt_logger()
    major = version_tuple(fingerprint.tensorrt_version)[0]
    builder = trt.Builder(logger)
    dla = fingerprint.dla_core
    if dla is not None and not 0 <= dla < builder.num_DLA_cores:
        have = f"DLA cores 0..{builder.num_DLA_cores - 1}" if builder.num_DLA_cores else "no DLA"
        raise ExportError(f"dla_core: expected a DLA core of this device, got {dla}; it has {have} (AGX and NX Orin/"
                          "Xavier have DLA, Orin Nano does not; TensorRT 11.0-11.4.0 has none). Drop --dla.")
    if major >= 11:
        flags = 0  # strongly typed is the only mode
    elif major == 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if fingerprint.strongly_typed else 0
    else:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        first = f"{errors[0].desc()} (node {errors[0].node()})" if errors else logger.last_error()
        raise ExportError(f"TensorRT {fingerprint.tensorrt_version} cannot parse the ONNX graph: {first}. Run with -v "
                          "for TensorRT's log; check the TensorRT version against docs/JETSON.md.")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if fingerprint.precision in ("fp16", "int8+fp16"):
        config.set_flag(trt.BuilderFlag.FP16)
    if int8 and not fingerprint.strongly_typed:
        config.set_flag(trt.BuilderFlag.INT8)  # Q/DQ scales; no calibrator
    if dla is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    opt_profile = builder.create_optimization_profile()
    for r in profile:
        if r.values:
            opt_profile.set_shape_input(r.name, list(r.min), list(r.opt), list(r.max))
        else:
            opt_profile.set_shape(r.name, trt.Dims(list(r.min)), trt.Dims(list(r.opt)), trt.Dims(list(r.max)))
    config.add_optimization_profile(opt_profile)
    cache_state: dict = {"path": None}
    if cache is not None:
        cache_state = _load_timing_cache(config, cache)
    log.info("building the TensorRT engine (%s%s); this takes minutes on a Jetson", fingerprint.precision,
             f", DLA core {dla}" if dla is not None else "")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build the engine ({logger.last_error()}). Run with -v for TensorRT's "
                          f"log; a larger --workspace-mib or a smaller --max-hw/--max-batch often helps: {command}")
    if cache is not None:
        _save_timing_cache(config, cache)
    return bytes(memoryview(serialized)), cache_state


def _load_timing_cache(config: Any, path: Path) -> dict:
    data = path.read_bytes() if path.is_file() else b""
    state = {"path": str(path), "loaded_bytes": len(data)}
    try:
        cache = config.create_timing_cache(data)
        ok = cache is not None and config.set_timing_cache(cache, False)
    except (RuntimeError, TypeError, ValueError) as exc:
        ok, reason = False, str(exc).splitlines()[0][:200]
    else:
        reason = "rejected by TensorRT"
    if not ok:
        log.warning("timing cache %s: not usable with this TensorRT and GPU (%s); starting a new one there",
                    path, reason)
        config.set_timing_cache(config.create_timing_cache(b""), False)
        state["loaded_bytes"] = 0
    return state


def _save_timing_cache(config: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    os.replace(tmp, path)


def _engine_io(engine_bytes: bytes, dla_core: int | None) -> list[dict]:
    """The built engine's I/O tensors as TensorRT reports them (names, modes, dtypes, shapes with -1)."""
    import tensorrt as trt

    runtime = trt.Runtime(tensorrt_logger())
    if dla_core is not None:
        runtime.DLA_core = dla_core
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    if engine is None:
        raise ExportError(f"TensorRT cannot read back the engine it just built ({tensorrt_logger().last_error()})")
    io = []
    if hasattr(engine, "num_io_tensors"):
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dims = engine.get_tensor_shape(name)
            io.append({"name": name, "input": engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                       "dtype": np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name,
                       "shape": [int(dims[k]) for k in range(len(dims))],
                       "host": engine.get_tensor_location(name) == trt.TensorLocation.HOST})
    else:  # TensorRT 8.4
        old: Any = engine
        for i in range(old.num_bindings):
            dims = old.get_binding_shape(i)
            io.append({"name": old.get_binding_name(i), "input": bool(old.binding_is_input(i)),
                       "dtype": np.dtype(trt.nptype(old.get_binding_dtype(i))).name,
                       "shape": [int(d) for d in dims], "host": bool(old.is_shape_binding(i))})
    return io


def _parity(engine_dir: Path, onnx_dir: Path, manifest: Manifest, profile: list[ShapeRange], *,
            softmax: bool) -> dict:
    """Engine vs ONNX Runtime (CPU) on one random probe at the profile's opt shape."""
    missing = [m for m in ("onnxruntime", "pycuda") if find_spec(m) is None]
    if missing:
        return {"skipped": f"{' and '.join(missing)} not installed here; compare on real images with: segedge eval "
                           f"{engine_dir} --reference {onnx_dir} --camvid DATA"}
    from runtimes.onnxruntime import OnnxRuntime
    from runtimes.tensorrt import TensorRTRuntime

    ranges = {r.name: r for r in profile}
    pixel = manifest.inputs[0].name
    x = np.random.default_rng(0).standard_normal(ranges[pixel].opt).astype(np.float32)
    feeds = {pixel: x}
    if "output_size" in ranges:
        feeds["output_size"] = np.asarray(ranges["output_size"].opt, np.int64)
    with OnnxRuntime(onnx_dir) as ref, TensorRTRuntime(engine_dir) as engine:
        want, got = ref.infer(feeds), engine.infer(feeds)
    out: dict = {"probe_shape": list(x.shape), "reference": "onnxruntime CPU"}
    if manifest.head == "mask":
        agreement = float(np.mean(want["mask"] == got["mask"]))
        out["mask_agreement_vs_onnxruntime"] = agreement
    else:
        ref_logits = want["logits"]
        if softmax:
            e = np.exp(ref_logits - ref_logits.max(axis=1, keepdims=True))
            ref_logits = e / e.sum(axis=1, keepdims=True)
        out["max_abs_logit_diff_vs_onnxruntime"] = float(np.abs(ref_logits - got["logits"]).max())
        agreement = float(np.mean(ref_logits.argmax(1) == got["logits"].argmax(1)))
        out["argmax_agreement_vs_onnxruntime"] = agreement
    if manifest.precision == "fp32" and agreement < MIN_FP32_MASK_AGREEMENT:
        raise ExportError(f"parity: the FP32 engine's class ids agree with ONNX Runtime on {agreement:.2%} of a "
                          f"probe's pixels, expected >= {MIN_FP32_MASK_AGREEMENT:.0%}. Report it with the log (-v).")
    return out
