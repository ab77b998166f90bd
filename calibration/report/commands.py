"""The one place the report writes commands: how to rebuild each variant (``segedge export`` / ``quantize`` /
``build``) and how to run it (``Segmenter.from_artifact``).
Each is built from the same options the report built the variant with, so the command reproduces it.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from calibration.report.plan import BuildContext, Variant


def q(value: Any) -> str:
    return shlex.quote(str(value))


def given_artifact(ctx: BuildContext) -> str:
    return f"(the FP32 artifact given: {ctx.fp32})"


def export_command(ctx: BuildContext, out: Path, graph: str = "portable") -> str:
    size = f" --size {ctx.size_hw[0]} {ctx.size_hw[1]}" if ctx.size_hw else ""
    flag = f" --graph {graph}" if graph != "portable" else ""
    return f"segedge export {q(ctx.source)} --output {q(out)}{size}{flag}"


def quantize_command(ctx: BuildContext, v: Variant, out: Path) -> str:
    """``segedge quantize`` with the variant's backend, method and preset, the report's calibration options; for a
    TensorRT Q/DQ model followed by the device step (``build_command`` replaces it when the report builds one)."""
    # a menu point's sources are artifacts (menu.py): OpenVINO's and TensorRT's INT8 start from the portable one
    src = ctx.source if not ctx.source_is_artifact else ctx.fp32 if v.backend == "onnxruntime" else ctx.portable
    parts = ["segedge", "quantize", q(src), "--backend", v.backend, "--calib", q(ctx.calib_arg),
             "--num-samples", str(ctx.num_samples), "--seed", str(ctx.seed)]
    if v.backend != "openvino":
        parts += ["--method", str(v.method)]
    size = ctx.ov_size_hw if v.backend == "openvino" else ctx.size_hw
    if size and not (ctx.source_is_artifact and v.backend != "openvino"):
        parts += ["--size", str(size[0]), str(size[1])]
    if v.preset in ("max-drop", "latency-aware"):
        parts += ["--eval", q(ctx.tune_arg), "--max-drop", f"{ctx.max_drop:g}"]
    if v.preset == "latency-aware":  # the search scores on the tuning set; no calibration frames held out
        parts += ["--latency-aware", "--holdout", "0"]
    # the report keeps every variant whatever its held-out agreement, and ranks it by what it measures: so does its
    # command (segedge quantize alone writes nothing under verify's 98% minimum)
    return " ".join(parts + ["--keep-below-min", "--output", q(out)])


def device_step(out: Path) -> str:
    return f"  # then on the device: segedge build {q(out)} --output {q(out)}-engine --int8"


def ir_command(ctx: BuildContext, ir: Path, hint: str | None = None) -> str:
    """Export (unless an FP32 artifact was given) + ``segedge export-openvino`` to the static IR the float variants
    run. The run-time precision is a Segmenter/runtime option, not part of the IR: with ``hint`` ("f32", "bf16",
    "f16") the command ends with a comment saying how to run it at that precision."""
    onnx_dir = ctx.portable if ctx.source_is_artifact else ir.parent / f"{ir.name}-onnx"
    h, w = ctx.ov_size_hw
    ir_step = f"segedge export-openvino {q(onnx_dir)} --output {q(ir)} --size {h} {w}"
    run = (f"  # then run it at {hint}: Segmenter.from_artifact({str(ir)!r}, runtime='openvino', "
           f"precision={hint!r})") if hint else ""
    return (ir_step if ctx.source_is_artifact else f"{export_command(ctx, onnx_dir)} && {ir_step}") + run


def build_command(v: Variant, engine: Path, shapes: dict[str, tuple[int, int] | None], batch: int) -> str:
    """``segedge build`` with the engine's precision, profile shapes and batch."""
    flags = " ".join(f"--{k.replace('_', '-')} {hw[0]} {hw[1]}" for k, hw in shapes.items() if hw)
    return (f"segedge build {q(v.path)} --output {q(engine)}{' --fp16' if v.precision == 'fp16' else ''}"
            f"{' --int8' if v.precision == 'int8' else ''} {flags} --opt-batch 1 --max-batch {batch}")


def with_engine(command: str, build: str) -> str:
    """A TensorRT Q/DQ ``quantize_command`` whose device step the report ran: quantize && build."""
    return command.split("  # then on the device")[0] + f" && {build}"


def run_with(v: Variant) -> str:
    """The Python call that runs the variant as it was timed."""
    opts = ", ".join(f"{k}={val!r}" for k, val in v.runtime_options.items())
    return (f"Segmenter.from_artifact({str(v.latency_artifact or v.artifact)!r}, runtime="
            f"{(v.latency_runtime or v.runtime)!r}{', ' + opts if opts else ''})")
