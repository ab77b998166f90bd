"""Build each planned variant with the SDK's own code paths (the ones ``segedge quantize`` / ``export`` / ``build``
run), recording the command that reproduces it (``calibration.report.commands``).

- int8, every backend: ``calibration.quantize`` (what ``segedge quantize`` runs), so the reproduce command rebuilds
  the same artifact.
- onnxruntime fp32: the reference artifact itself; int8 per method (CPU recipe, from the ``onnxruntime`` graph when
  the report exported one).
- openvino: one static-shape IR (``export_openvino``) shared by the float variants (the precision is a runtime hint);
  int8 from NNCF, accuracy-aware with NNCF's accuracy control for the max-drop preset.
- tensorrt: int8 as a Q/DQ ONNX from the portable graph; engines
  (``build_engine``) only where TensorRT and a CUDA GPU exist, with a profile that holds the timing frame.
- preset max-drop: the sensitivity-chosen float blocks (NNCF accuracy control for OpenVINO), tuned on
  ``tune_data``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from calibration.report import commands as cmd
from calibration.report.plan import BuildContext, Variant
from sdk.core.errors import MissingDependencyError, SegEdgeError


def build_all(variants: list[Variant], ctx: BuildContext, export_seconds: float | None, progress: bool,
              shared: dict | None = None) -> None:
    """Build every variant; a failure is recorded on the variant (status "failed", error) and the rest go on.
    shared: what variants share (exports, the float IRs), kept across calls when given."""
    from calibration.report.menu import finish, point_context

    shared = {"export_seconds": export_seconds} if shared is None else shared
    for v in variants:
        if progress:
            print(f"build {v.name} ...", flush=True)
        try:
            vctx, vshared = point_context(v, ctx, shared)  # a menu point's own FP32 sources (calibration.report.menu)
            build_variant(v, vctx, vshared)
            finish(v, ctx, shared)
        except (SegEdgeError, MissingDependencyError) as exc:
            v.status, v.error = "failed", f"{type(exc).__name__}: {exc}"
            print(f"build {v.name} FAILED: {v.error}", flush=True)


def build_variant(v: Variant, ctx: BuildContext, shared: dict) -> None:
    """Build ``v.artifact`` with the SDK's own functions; sets command/run_with/build_seconds/status. ``shared``
    carries what variants share (the export time, the float IR)."""
    from sdk.core.manifest import read_manifest

    t = time.perf_counter()
    if v.backend == "onnxruntime" and v.precision == "fp32":
        v.artifact = ctx.fp32
        v.command = (cmd.given_artifact(ctx) if ctx.source_is_artifact
                     else cmd.export_command(ctx, ctx.fp32, read_manifest(ctx.fp32).graph))
        v.build_seconds = shared.get("export_seconds")
    elif v.preset == "latency-aware":
        from calibration.report.menu import build_latency_aware

        build_latency_aware(v, ctx)
    elif v.precision == "int8":
        _quantize(v, ctx, ctx.artifacts / v.name)
    elif v.backend == "openvino":
        _float_ir(v, ctx, shared, t)
    else:  # tensorrt fp32 / fp16 engine from the FP32 ONNX
        v.artifact = ctx.portable
    if v.backend == "tensorrt" and v.latency_runtime == "tensorrt":
        _engine(v, ctx)
    if v.build_seconds is None:
        v.build_seconds = time.perf_counter() - t
    v.run_with = cmd.run_with(v)
    v.status = "built"


def _quantize(v: Variant, ctx: BuildContext, out: Path) -> None:
    """INT8 for any backend, default or max-drop preset, through ``calibration.quantize`` (what ``segedge quantize``
    runs with the same options, so ``v.command`` rebuilds exactly this artifact)."""
    from calibration.int8 import quantize

    accuracy_aware = v.preset == "max-drop"
    result = quantize(ctx.fp32 if v.backend == "onnxruntime" else ctx.portable, out, backend=v.backend,
                      calib=ctx.calib, method=None if v.backend == "openvino" else v.method,
                      size_hw=ctx.ov_size_hw if v.backend == "openvino" else None,
                      eval_set=(ctx.tune_data or []) if accuracy_aware else None,
                      max_drop=ctx.max_drop if accuracy_aware else None, progress=ctx.progress)
    v.artifact = result.artifact
    aa = result.accuracy_aware
    if aa is not None and v.backend != "openvino":
        v.notes.append(f"float blocks: {', '.join(aa.float_blocks) or 'none'}; tuning drop "
                       f"{aa.measured_drop_points:.2f} points ({'met' if aa.max_drop_met else 'NOT met'})")
    v.notes += result.notes
    v.command = cmd.quantize_command(ctx, v, out)
    if v.backend == "tensorrt":
        v.command += cmd.device_step(out)


def _float_ir(v: Variant, ctx: BuildContext, shared: dict, t: float) -> None:
    """The float OpenVINO variants share one static IR (precision is a runtime hint)."""
    if "ov_ir" not in shared:
        from converters.openvino_export import export_openvino

        shared["ov_ir"] = export_openvino(ctx.portable, ctx.artifacts / "ov-ir", size_hw=ctx.ov_size_hw,
                                          progress=False)
        shared["ov_ir_seconds"] = time.perf_counter() - t
    v.artifact = shared["ov_ir"]
    v.build_seconds = shared["ov_ir_seconds"]
    v.command = cmd.ir_command(ctx, v.artifact, v.runtime_options.get("precision"))


def engine_shapes(manifest: Any, latency_hw: tuple[int, int], frame_hw: tuple[int, int]
                  ) -> dict[str, tuple[int, int] | None]:
    """The ``build_engine`` / ``segedge build`` shapes for a report engine: a profile that holds the timing frame's
    network size (as opt; a fixed-size artifact's is its own size) and, for an in-graph mask head only, its mask
    size; frames larger than the defaults (1024x1024) widen it. The refine and logits heads have no mask-size input,
    so they get no output sizes (``plan_profile`` refuses them there)."""
    (nh, nw), (fh, fw) = latency_hw, frame_hw
    dynamic = manifest.preprocess.size_hw is None
    shapes: dict[str, tuple[int, int] | None] = {}
    if dynamic and (nh < 128 or nw < 128):  # below the default minimum (128x128): the minimum follows the frame
        shapes["min_hw"] = (min(128, nh), min(128, nw))
    shapes.update(opt_hw=(nh, nw), max_hw=(max(1024, nh), max(1024, nw)) if dynamic else None)
    if manifest.head == "mask":
        big = 1024 if dynamic else 0
        shapes.update(min_output_hw=(min(32, fh), min(32, fw)), opt_output_hw=(fh, fw),
                      max_output_hw=(max(fh, 2 * nh, big), max(fw, 2 * nw, big)))
    return shapes


def _engine(v: Variant, ctx: BuildContext) -> None:
    """A TensorRT engine with a profile that holds what the report runs (``engine_shapes``) and the throughput
    batch."""
    from converters.tensorrt_build import build_engine
    from sdk.core.manifest import read_manifest

    engine = ctx.artifacts / f"{v.name}-engine"
    shapes = engine_shapes(read_manifest(v.path), ctx.latency_hw, ctx.frame_hw)
    v.latency_artifact = build_engine(v.path, engine, fp16=v.precision == "fp16", int8=v.precision == "int8",
                                      opt_batch=1, max_batch=ctx.batch, **shapes)  # latency at 1, throughput at batch
    build = cmd.build_command(v, engine, shapes, ctx.batch)
    if v.precision != "int8":
        v.artifact, v.command = engine, build
    else:
        v.command = cmd.with_engine(v.command, build)
