"""ONNX artifact -> TensorRT engine artifact (``model.engine`` + ``model.json``), built on the device that runs it.

- FP32 / FP16 engines from the FP32 ONNX artifact; INT8 from a Q/DQ ONNX artifact (explicit quantization: the
  scales come from the Q/DQ nodes, no calibrator). Which network and builder flags each TensorRT version gets, and
  why INT8 implies FP16 for the other layers: ``converters.tensorrt_plan``.
- One optimization profile (``plan_profile``): batch, network input size and, for the mask head, the mask size
  (``output_size`` values); static for DLA builds.
- Graph preparation before parsing (``converters.tensorrt_graph.prepare_onnx``, recorded in model.json): int32
  ``output_size``, float class ids until one final Cast; for strongly typed FP16/INT8 builds (TensorRT >= 10.12)
  the float parts made FP16 with FP32 islands (LayerNorm, Softmax, the head).
- A timing cache reused across builds (per TensorRT version and GPU), DLA with GPU fallback on the modules that have
  one (AGX Orin, Orin NX; Orin Nano has none).
- After building: the engine's layers are read back with the engine inspector (``converters.tensorrt_inspect``),
  logged, recorded, and the build fails if the precision or the DLA that was asked is not in the engine; then the
  engine is run against ONNX Runtime on a probe input where onnxruntime is installed.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from converters.tensorrt_graph import check_qdq, float16_tensors, prepare_onnx
from converters.tensorrt_inspect import check_built, describe_layers, kept_fp32_layers, read_layers, summarize_layers
from converters.tensorrt_plan import (DEFAULT_WORKSPACE_MIB, HW, BuildPlan, default_timing_cache, plan_build,
                                      plan_profile, precision_name, rebuild_command)
from runtimes.tensorrt import ENGINE_FILE, ShapeRange, require_tensorrt, tensorrt_logger
from runtimes.tensorrt_device import CudaDriver, EngineFingerprint, device_model, host_platform
from sdk.core.errors import ExportError, InputError, require
from sdk.core.manifest import Manifest, model_feeds, read_manifest, require_portable_graph, resolve_artifact
from sdk.core.result import pixel_agreement

__all__ = ["AUTO", "build_engine", "check_qdq", "default_timing_cache", "engine_manifest", "plan_profile",
           "precision_name", "prepare_onnx", "rebuild_command"]

log = logging.getLogger("segedge")

AUTO = "auto"  # timing_cache: one file per TensorRT version and GPU under $XDG_CACHE_HOME/segedge
MIN_FP32_MASK_AGREEMENT = 0.98  # engine vs ONNX Runtime on a random probe; FP16/INT8 are measured, not gated
FP32_OPS = ("Softmax",)  # kept FP32 in weakly typed FP16 builds (see converters.tensorrt_plan)


def engine_manifest(onnx_manifest: Manifest, *, onnx_sha256: str, onnx_artifact: str | Path,
                    fingerprint: EngineFingerprint, profile: list[ShapeRange], io: list[dict], build: dict,
                    parity: dict | None = None, layers: list | None = None) -> Manifest:
    """The engine artifact's manifest: the ONNX artifact's labels, preprocessing and interface (inputs/outputs as
    the SDK feeds them), plus ``extra["tensorrt"]``: fingerprint, profile, the engine's own I/O, build record and
    the per-layer table [name, type, precision, device] read back from the engine."""
    m = onnx_manifest
    trt_extra: dict = {"fingerprint": fingerprint.to_dict(), "profile": [r.to_dict() for r in profile], "io": io,
                       "build": build}
    if layers is not None:
        trt_extra["layers"] = layers
    return Manifest(
        format="tensorrt", model_file=ENGINE_FILE, precision=fingerprint.precision, class_names=list(m.class_names),
        palette=m.palette, preprocess=m.preprocess, inputs=list(m.inputs), outputs=list(m.outputs), head=m.head,
        upsample=m.upsample, architecture=dict(m.architecture),
        source={**m.source, "onnx_artifact": str(onnx_artifact), "onnx_sha256": onnx_sha256}, opset=m.opset,
        versions={**m.versions, "tensorrt": fingerprint.tensorrt_version}, parity=dict(parity or {}),
        # the ONNX artifact's reference frames (copied by build_engine: segedge verify) and its input limit travel
        # with the engine
        extra={"tensorrt": trt_extra, **{k: m.extra[k] for k in ("reference", "max_input_pixels") if k in m.extra}},
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
    opt_batch: int | None = None,
    max_batch: int = 1,
    min_output_hw: HW | None = None,
    opt_output_hw: HW | None = None,
    max_output_hw: HW | None = None,
    softmax: bool = False,
    timing_cache: str | Path | None = AUTO,
    check_parity: bool = True,
) -> Path:
    """Build a TensorRT engine from an ONNX artifact folder into ``output`` (model.engine + model.json); returns it.

    fp16: FP16 kernels (TensorRT <= 10; on 11 the ONNX must be FP16). int8: the artifact must be a Q/DQ ONNX
    (explicit quantization); on TensorRT <= 10 the other layers then run FP16 (LayerNorm and Softmax FP32). A Q/DQ
    artifact without ``int8`` is an error, as is ``int8`` on an FP32 graph. dla_core: put the layers the DLA can
    run on that core, the rest on the GPU (needs fp16 or int8; the profile becomes static). workspace_mib:
    TensorRT's scratch memory limit. Shapes: see ``plan_profile``; the batch profile is 1 .. ``opt_batch`` (default
    ``max_batch``: what DeepStream's N sources run) .. ``max_batch``. softmax: see ``prepare_onnx``. timing_cache: a
    file path, "auto" (per TensorRT version and GPU under ~/.cache/segedge) or None. Builds on CUDA device 0 (pick
    another with CUDA_VISIBLE_DEVICES). Raises ExportError when TensorRT cannot parse or build the graph, or when
    the engine does not run what was asked (read back with the engine inspector).
    """
    src, onnx_manifest, model, n_qdq = _checked_source(onnx_artifact, fp16=fp16, int8=int8, dla_core=dla_core,
                                                       workspace_mib=workspace_mib)
    opt_batch = max_batch if opt_batch is None else opt_batch
    shapes = dict(min_hw=min_hw, opt_hw=opt_hw, max_hw=max_hw, min_output_hw=min_output_hw,
                  opt_output_hw=opt_output_hw, max_output_hw=max_output_hw)
    profile = plan_profile(onnx_manifest, opt_batch=opt_batch, max_batch=max_batch, static=dla_core is not None,
                           **shapes)
    command = rebuild_command(src, output, fp16=fp16, int8=int8, dla_core=dla_core, workspace_mib=workspace_mib,
                              shapes=shapes, opt_batch=opt_batch, max_batch=max_batch, softmax=softmax)

    version = require_tensorrt()
    plan = plan_build(version, fp16=fp16, int8=int8, onnx_fp16=bool(float16_tensors(model)), dla_core=dla_core)
    for note in plan.notes:
        log.warning("note: %s", note)
    fp32_names = [n.name for n in model.graph.node if n.op_type in FP32_OPS and n.name]
    changes = prepare_onnx(model, softmax=softmax)
    if plan.convert_fp16:
        model = _float_parts_fp16(model, changes)
    fingerprint = _fingerprint(version, plan, dla_core)
    cache = (default_timing_cache(version, fingerprint.compute_capability) if timing_cache == AUTO else
             None if timing_cache is None else Path(timing_cache))
    t0 = time.perf_counter()
    engine_bytes, record = _build(model.SerializeToString(), plan=plan, dla_core=dla_core, profile=profile,
                                  workspace_mib=workspace_mib, cache=cache, command=command)
    seconds = round(time.perf_counter() - t0, 1)
    io, records = _read_engine(engine_bytes, dla_core)
    summary = summarize_layers(records)
    in_fp16 = _say_layers(summary, plan, int8=int8, dla_core=dla_core, command=command, fp32_names=fp32_names)

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    (out / ENGINE_FILE).write_bytes(engine_bytes)
    _copy_reference_frames(onnx_manifest, src, out)
    batch = {"min": 1, "opt": opt_batch, "max": max_batch}
    build = {"command": command, "seconds": seconds, "graph_changes": changes, "qdq_nodes": n_qdq,
             "softmax": softmax, "workspace_mib": workspace_mib, "batch": batch,
             **record, **_plan_and_layers(plan, summary, in_fp16)}
    onnx_sha = hashlib.sha256((src / onnx_manifest.model_file).read_bytes()).hexdigest()
    args: dict[str, Any] = dict(onnx_sha256=onnx_sha, onnx_artifact=src, fingerprint=fingerprint, profile=profile,
                                io=io, build=build, layers=summary["table"])
    manifest = engine_manifest(onnx_manifest, **args)
    manifest.write(out)
    if check_parity:
        manifest = engine_manifest(onnx_manifest, **args, parity=_parity(out, src, manifest, profile, softmax=softmax))
        manifest.write(out)
    return out


def _checked_source(onnx_artifact: str | Path, *, fp16: bool, int8: bool, dla_core: int | None,
                    workspace_mib: int) -> tuple[Path, Manifest, Any, int]:
    """(artifact folder, its manifest, its ONNX model, its Q/DQ node count) once the options fit the artifact: a
    portable ONNX export, Q/DQ exactly when ``int8``, a DLA core only with fp16 or int8."""
    src = resolve_artifact(onnx_artifact)
    onnx_manifest = read_manifest(src)
    if onnx_manifest.format != "onnx":
        raise ExportError(f"onnx_artifact {src}: expected an ONNX artifact (segedge export), got format "
                          f"{onnx_manifest.format!r}")
    require_portable_graph(onnx_manifest, what=f"onnx_artifact {src}", reader="TensorRT cannot parse",
                           fix="Build from a portable export: segedge export CHECKPOINT --graph portable (the "
                               "default), or segedge quantize --backend tensorrt.", error=ExportError)
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
                          "QuantizeLinear/DequantizeLinear nodes. Quantize it for TensorRT first (segedge quantize "
                          f"{src} --backend tensorrt --calib FRAMES --output OUT), or build FP16 (--fp16) / FP32 "
                          "from it.")
    if n_qdq and not int8:
        raise ExportError(f"int8: {src} is quantized ({n_qdq} Q/DQ nodes); expected --int8 to build it, got none")
    return src, onnx_manifest, model, n_qdq


def _fingerprint(version: str, plan: BuildPlan, dla_core: int | None) -> EngineFingerprint:
    """What the engine is built for: this TensorRT, CUDA device 0, the plan's precision and typing, the DLA core."""
    driver = CudaDriver()
    gpu_name, capability = driver.device(0)
    return EngineFingerprint(tensorrt_version=version, gpu_name=gpu_name, compute_capability=capability,
                             dla_core=dla_core, precision=plan.precision, strongly_typed=plan.strongly_typed,
                             platform=host_platform(), sm_count=driver.sm_count(0), device_model=device_model())


def _say_layers(summary: dict, plan: BuildPlan, *, int8: bool, dla_core: int | None, command: str,
                fp32_names: list[str]) -> list[str]:
    """Log where the built engine's layers run and what it does not run as asked; returns the FP32-constrained
    layers TensorRT ran in FP16 anyway."""
    log.info("TensorRT engine: %s", describe_layers(summary))
    for warning in check_built(summary, int8=int8, fp16=plan.fp16, dla_core=dla_core, command=command):
        log.warning(warning)
    fp32_kept = kept_fp32_layers(summary, fp32_names) if plan.keep_fp32 else {}
    in_fp16 = sorted(name for name, precision in fp32_kept.items() if precision == "fp16")
    if in_fp16:
        log.warning("%d Softmax layers run FP16 despite the FP32 constraint (first: %s); check the masks "
                    "against the FP32 engine (segedge eval ... --reference)", len(in_fp16), in_fp16[0])
    return in_fp16


def _plan_and_layers(plan: BuildPlan, summary: dict, in_fp16: list[str]) -> dict:
    """The build record's plan and where the layers ended up."""
    return {"plan": {"network_flags": list(plan.network_flags), "builder_flags": list(plan.builder_flags),
                     "keep_fp32": plan.keep_fp32, "convert_fp16": plan.convert_fp16, "notes": list(plan.notes)},
            "layer_precisions": {k: v for k, v in summary.items() if k != "table"},
            "layers_line": describe_layers(summary), "fp32_constrained_in_fp16": in_fp16}


def _copy_reference_frames(onnx_manifest: Manifest, src: Path, out: Path) -> None:
    """Copy the frames + FP32 masks ``segedge verify`` checks (``calibration.quantize`` ships them) beside the engine,
    so the engine folder alone verifies on the device."""
    import shutil

    record = onnx_manifest.extra.get("reference")
    if isinstance(record, dict) and (src / str(record.get("folder", ""))).is_dir():
        shutil.copytree(src / record["folder"], out / record["folder"], dirs_exist_ok=True)


def _network_flag(name: str) -> Any:
    """A ``NetworkDefinitionCreationFlag`` by name, looked up only when used (STRONGLY_TYPED exists from 10.0)."""
    import tensorrt as trt

    if name == "EXPLICIT_BATCH":
        return trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH
    if name == "STRONGLY_TYPED":
        return trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED
    raise ValueError(f"network flag {name!r}")


def _builder_flag(name: str) -> Any:
    """A ``BuilderFlag`` by name, looked up only when used (TensorRT 11 has no FP16/INT8 flags)."""
    import tensorrt as trt

    if name == "FP16":
        return trt.BuilderFlag.FP16
    if name == "INT8":
        return trt.BuilderFlag.INT8
    if name == "PREFER_PRECISION_CONSTRAINTS":
        return trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS
    if name == "GPU_FALLBACK":
        return trt.BuilderFlag.GPU_FALLBACK
    raise ValueError(f"builder flag {name!r}")


def _keep_fp32(network: Any) -> int:
    """Constrain Softmax to FP32 (compute precision and float outputs) in a weakly typed FP16 build. LayerNorm is
    left alone: TensorRT's normalization layer accumulates in FP32 in FP16 builds by default, and pinning its I/O
    only adds reformats. Returns how many layers got the constraint."""
    import tensorrt as trt

    count = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type != trt.LayerType.SOFTMAX:
            continue
        layer.precision = trt.DataType.FLOAT
        for j in range(layer.num_outputs):
            if layer.get_output(j).dtype in (trt.DataType.FLOAT, trt.DataType.HALF):
                layer.set_output_type(j, trt.DataType.FLOAT)
        count += 1
    return count


def _float_parts_fp16(model: Any, changes: list[str]) -> Any:
    """A strongly typed FP16/INT8 build from an FP32 graph: its float parts FP16, LayerNorm, Softmax and the head
    after the logits FP32 (``converters.float16_graph``); the change is recorded in ``changes``."""
    from converters.float16_graph import float_parts_to_fp16

    model, record = float_parts_to_fp16(model)  # keeps LayerNorm, Softmax and the head FP32
    changes.append(f"float parts -> FP16 for a strongly typed build (opset {record['opset']}; "
                   f"{len(record['kept_fp32'])} nodes kept FP32: LayerNorm, Softmax and the head)")
    return model


def _build(onnx_bytes: bytes, *, plan: BuildPlan, dla_core: int | None, profile: list[ShapeRange],
           workspace_mib: int, cache: Path | None, command: str) -> tuple[bytes, dict]:
    """Parse, configure and build; returns (serialized engine, build record: timing cache, layer placement)."""
    import tensorrt as trt

    logger = tensorrt_logger()
    builder = trt.Builder(logger)
    if dla_core is not None and not 0 <= dla_core < builder.num_DLA_cores:
        have = f"DLA cores 0..{builder.num_DLA_cores - 1}" if builder.num_DLA_cores else "no DLA"
        raise ExportError(f"dla_core: expected a DLA core of this device, got {dla_core}; it has {have} (AGX Orin and "
                          "Orin NX have DLA, Orin Nano does not). Drop --dla.")
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(_network_flag(name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    mark = logger.mark()
    if not parser.parse(onnx_bytes):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        first = f"{errors[0].desc()} (node {errors[0].node()})" if errors else logger.last_error(mark)
        raise ExportError(f"TensorRT {plan.tensorrt_version} cannot parse the ONNX graph: {first}. Run with -v for "
                          "TensorRT's log; check the TensorRT version against docs/JETSON.md.")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # per-layer precisions for the engine inspector
    for name in plan.builder_flags:
        config.set_flag(_builder_flag(name))  # INT8: the Q/DQ scales are used, no calibrator
    record: dict = {"network_layers": int(network.num_layers)}
    if plan.keep_fp32:
        record["fp32_constrained_layers"] = _keep_fp32(network)
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        capable = sum(bool(config.can_run_on_DLA(network.get_layer(i))) for i in range(network.num_layers))
        record["dla_capable_network_layers"] = capable
        log.info("DLA core %d: %d of %d network layers can run on it, the rest on the GPU", dla_core, capable,
                 network.num_layers)
    opt_profile = builder.create_optimization_profile()
    for r in profile:
        if r.values:
            opt_profile.set_shape_input(r.name, list(r.min), list(r.opt), list(r.max))
        else:
            opt_profile.set_shape(r.name, trt.Dims(list(r.min)), trt.Dims(list(r.opt)), trt.Dims(list(r.max)))
    config.add_optimization_profile(opt_profile)
    record["timing_cache"] = _load_timing_cache(config, cache) if cache is not None else {"path": None}
    log.info("building the TensorRT engine (%s%s); this takes minutes on a Jetson", plan.precision,
             f", DLA core {dla_core}" if dla_core is not None else "")
    mark = logger.mark()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build the engine ({logger.last_error(mark)}). Run with -v for "
                          f"TensorRT's log; a larger --workspace-mib or a smaller --max-hw/--max-batch often helps: "
                          f"{command}")
    if cache is not None:
        _save_timing_cache(config, cache)
    return bytes(memoryview(serialized)), record


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


def _read_engine(engine_bytes: bytes, dla_core: int | None) -> tuple[list[dict], list[Any]]:
    """The built engine's I/O tensors as TensorRT reports them (names, modes, dtypes, shapes with -1) and its
    layers' inspector records."""
    import tensorrt as trt

    logger = tensorrt_logger()
    runtime = trt.Runtime(logger)
    if dla_core is not None:
        runtime.DLA_core = dla_core
    mark = logger.mark()
    engine = runtime.deserialize_cuda_engine(engine_bytes)
    if engine is None:
        raise ExportError(f"TensorRT cannot read back the engine it just built ({logger.last_error(mark)})")
    io = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        dims = engine.get_tensor_shape(name)
        io.append({"name": name, "input": engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                   "dtype": np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name,
                   "shape": [int(dims[k]) for k in range(len(dims))],
                   "host": engine.get_tensor_location(name) == trt.TensorLocation.HOST})
    return io, read_layers(engine, trt)


def _parity(engine_dir: Path, onnx_dir: Path, manifest: Manifest, profile: list[ShapeRange], *,
            softmax: bool) -> dict:
    """Engine vs ONNX Runtime (CPU) on one random probe at the profile's opt shape."""
    missing = [m for m in ("onnxruntime",) if find_spec(m) is None]
    if missing:
        return {"skipped": f"{' and '.join(missing)} not installed here; compare on real images with: segedge eval "
                           f"{engine_dir} --reference {onnx_dir} --camvid DATA"}
    from runtimes.onnxruntime import OnnxRuntime
    from runtimes.tensorrt import TensorRTRuntime

    ranges = {r.name: r for r in profile}
    x = np.random.default_rng(0).standard_normal(ranges[manifest.inputs[0].name].opt).astype(np.float32)
    feeds = model_feeds(manifest, x, ranges["output_size"].opt if "output_size" in ranges else None)
    with OnnxRuntime(onnx_dir) as ref, TensorRTRuntime(engine_dir) as engine:
        want, got = ref.infer(feeds), engine.infer(feeds)
    out: dict = {"probe_shape": list(x.shape), "reference": "onnxruntime CPU"}
    if manifest.head == "mask":
        agreement = pixel_agreement(want["mask"], got["mask"])
        out["mask_agreement_vs_onnxruntime"] = agreement
    else:
        ref_logits = want["logits"]
        if softmax:
            e = np.exp(ref_logits - ref_logits.max(axis=1, keepdims=True))
            ref_logits = e / e.sum(axis=1, keepdims=True)
        out["max_abs_logit_diff_vs_onnxruntime"] = float(np.abs(ref_logits - got["logits"]).max())
        agreement = pixel_agreement(ref_logits.argmax(1), got["logits"].argmax(1))
        out["argmax_agreement_vs_onnxruntime"] = agreement
    if manifest.precision == "fp32" and agreement < MIN_FP32_MASK_AGREEMENT:
        raise ExportError(f"parity: the FP32 engine's class ids agree with ONNX Runtime on {agreement:.2%} of a "
                          f"probe's pixels, expected >= {MIN_FP32_MASK_AGREEMENT:.0%}. Report it with the log (-v).")
    return out
