"""What a TensorRT build will ask for, decided before TensorRT is touched (plain Python, tested without a GPU).

``plan_build``: network and builder flags per TensorRT version and artifact (the versions: ``runtimes.
tensorrt_support``, the one support table) --

| TensorRT | FP32 ONNX (+ --fp16) | Q/DQ ONNX, float parts FP32 (--int8) | Q/DQ ONNX, float parts FP16 (--float fp16) |
|---|---|---|---|
| 8.6 (JetPack 6.0) | weakly typed, explicit batch | INT8 + FP16 flags | refused (opset 19) |
| 10.0 - 10.11 (JetPack 6.1, 6.2: 10.3) | weakly typed | INT8 + FP16 flags | strongly typed |
| 10.12+, 11 (JetPack 7.2: 10.16; 7.2.2: 11.4.1) | strongly typed; --fp16: float parts made FP16 at build | strongly typed; float parts made FP16 at build | strongly typed |

Weakly typed (<= 10.11): --int8 implies the FP16 flag for the layers outside the Q/DQ pairs, and Softmax is
constrained to FP32 (``PREFER_PRECISION_CONSTRAINTS``; FP16 Softmax/LayerNorm are known to wreck ViT segmentation on
TensorRT 10.3). LayerNorm is not constrained: TensorRT's normalization layer (one op from 8.6) accumulates in FP32
even in FP16 builds, and pinning its I/O to FP32 only added a reformat around each of them.
Strongly typed (>= 10.12): the builder runs the graph's own types, so ``segedge build`` writes them into the graph
(``converters.float16_graph.float_parts_to_fp16``, as ModelOpt's AutoCast does): FP16, with FP32 islands for
LayerNorm, Softmax and the head after the logits. One artifact thus builds the same way on 10.16 and 11.4.1.
DLA: ``runtimes.tensorrt_support.dla_refusal`` (none on 10.12 - 10.x; FP16 only up to 10.11).

``plan_profile``: the optimization profile; ``static=True`` (DLA builds) makes every dimension of the network input
fixed, because the DLA runs static shapes only -- with GPU fallback a dynamic profile silently puts everything on
the GPU.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtimes.tensorrt import ShapeRange
from runtimes.tensorrt_support import dla_refusal, strongly_typed_only, unsupported_reason, version_tuple
from sdk.core.errors import ExportError, InputError
from sdk.core.manifest import Manifest
from sdk.core.preprocess import check_size_hw

DEFAULT_WORKSPACE_MIB = 2048
DYNAMIC_HW = {"min": (128, 128), "opt": (512, 512), "max": (1024, 1024)}  # when the artifact has no fixed size
HW = tuple[int, int]


def precision_name(*, fp16: bool, int8: bool) -> str:
    return "int8+fp16" if int8 and fp16 else "int8" if int8 else "fp16" if fp16 else "fp32"


@dataclass(frozen=True, kw_only=True)
class BuildPlan:
    """precision: what the engine is asked to run (checked against the built engine's layers). network_flags /
    builder_flags: ``NetworkDefinitionCreationFlag`` / ``BuilderFlag`` member names. keep_fp32: constrain Softmax
    to FP32 (weakly typed FP16 builds). convert_fp16: make the graph's float parts FP16 before parsing (strongly
    typed FP16/INT8 builds from an FP32 graph). notes: said once at build time."""

    tensorrt_version: str
    precision: str
    strongly_typed: bool
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    keep_fp32: bool
    convert_fp16: bool = False
    notes: tuple[str, ...] = ()

    @property
    def fp16(self) -> bool:
        return "fp16" in self.precision


def plan_build(tensorrt_version: str, *, fp16: bool, int8: bool, onnx_fp16: bool,
               dla_core: int | None = None) -> BuildPlan:
    """The flags for one build (see the module docstring's table). ``onnx_fp16``: the graph's float parts are
    FP16 already. Raises ExportError for what this TensorRT cannot build from this artifact."""
    reason = unsupported_reason(tensorrt_version)
    if reason is not None:
        raise ExportError(reason)
    major, notes = version_tuple(tensorrt_version, 2)[0], []
    if onnx_fp16 and major < 10:
        raise ExportError(f"artifact: its float parts are FP16 (segedge quantize --float fp16: opset 19, FP16 Q/DQ "
                          f"scales), which needs TensorRT >= 10; this is TensorRT {tensorrt_version}. Quantize "
                          "without --float fp16: on TensorRT 8.6, --int8 builds the float parts in FP16 itself.")
    if dla_core is not None:
        refusal = dla_refusal(tensorrt_version, int8=int8)
        if refusal is not None:
            raise ExportError(refusal)
    gpu_fallback = ("GPU_FALLBACK",) if dla_core is not None else ()
    if strongly_typed_only(tensorrt_version):
        half = fp16 or int8 or onnx_fp16
        if dla_core is not None and not half:
            raise ExportError(f"dla_core: the DLA runs FP16 and INT8 layers only; expected --fp16 or --int8 with "
                              f"--dla on TensorRT {tensorrt_version}, got neither")
        convert = half and not onnx_fp16
        if convert:
            notes.append(f"TensorRT {tensorrt_version} builds strongly typed: the graph's float parts are made FP16 "
                         "before parsing (LayerNorm, Softmax and the head stay FP32)")
        return BuildPlan(tensorrt_version=tensorrt_version, precision=precision_name(fp16=half, int8=int8),
                         strongly_typed=True, network_flags=("STRONGLY_TYPED",) if major < 11 else (),
                         builder_flags=gpu_fallback, keep_fp32=False, convert_fp16=convert, notes=tuple(notes))
    if onnx_fp16:  # TensorRT 10.0 - 10.11 with a --float fp16 graph (the DLA is refused for INT8 above)
        return BuildPlan(tensorrt_version=tensorrt_version, precision=precision_name(fp16=True, int8=int8),
                         strongly_typed=True, network_flags=("STRONGLY_TYPED",), builder_flags=(), keep_fp32=False)
    half = fp16 or int8
    if int8 and not fp16:
        notes.append("--int8: the layers outside the Q/DQ pairs run FP16 (Softmax FP32, LayerNorm accumulating in "
                     "FP32)")
    builder = (("FP16", "PREFER_PRECISION_CONSTRAINTS") if half else ()) + (("INT8",) if int8 else ()) + gpu_fallback
    return BuildPlan(tensorrt_version=tensorrt_version, precision=precision_name(fp16=half, int8=int8),
                     strongly_typed=False, network_flags=("EXPLICIT_BATCH",) if major < 10 else (),
                     builder_flags=builder, keep_fp32=half, notes=tuple(notes))


def _hw(value: Any, what: str) -> HW | None:
    if value is None:
        return None
    return check_size_hw(value, what)


def _static_hw(fixed: HW | None, lo: HW | None, mid: HW | None, hi: HW | None) -> HW:
    """The one network size of a static (DLA) profile; every size given must be that one."""
    given = {hw for hw in (fixed, lo, mid, hi) if hw is not None}
    if not given:
        raise InputError("dla_core: the DLA runs static shapes only, and this artifact's images run at their own "
                         "size; expected the network size: pass --opt-hw H W (the camera's frame size, or the size "
                         "to resize to), or export with --size H W")
    if len(given) > 1:
        raise InputError(f"dla_core: the DLA runs static shapes only; expected one network size, got "
                         f"{sorted(given)} (preprocessing size, --min/--opt/--max-hw). Give only --opt-hw, or none "
                         "with a fixed-size artifact.")
    return given.pop()


def plan_profile(manifest: Manifest, *, min_hw: HW | None = None, opt_hw: HW | None = None,
                 max_hw: HW | None = None, opt_batch: int = 1, max_batch: int = 1,
                 min_output_hw: HW | None = None, opt_output_hw: HW | None = None,
                 max_output_hw: HW | None = None, static: bool = False) -> list[ShapeRange]:
    """The optimization profile for an ONNX artifact.

    Network input (H, W): an artifact with a fixed preprocessing size only ever sees that size, so min = opt = max
    = size_hw unless given (and the range must contain it). Without one, images run at their own size: defaults
    128x128 .. 512x512 .. 1024x1024, opt clamped into whatever min/max were given.
    Mask size (mask head, ``output_size`` values): the image's size. Defaults: the input range when images run at
    their own size, else 32x32 .. size_hw .. 2 x size_hw.
    static (DLA): batch and network size fixed (min = opt = max): the batch is ``max_batch`` (``opt_batch`` must
    equal it), the size is the artifact's or the one size given. The mask size stays a range: the mask head
    (ArgMax, resize) runs on the GPU.
    """
    lo, mid, hi = _hw(min_hw, "min_hw"), _hw(opt_hw, "opt_hw"), _hw(max_hw, "max_hw")
    fixed = manifest.preprocess.size_hw
    if not 1 <= opt_batch <= max_batch:
        raise InputError(f"batch: expected 1 <= opt_batch <= max_batch, got opt_batch={opt_batch} "
                         f"max_batch={max_batch}")
    if static:
        if opt_batch != max_batch:
            raise InputError(f"dla_core: the DLA runs static shapes only; expected opt_batch == max_batch, got "
                             f"opt_batch={opt_batch} max_batch={max_batch}. Give --max-batch N alone.")
        lo = mid = hi = _static_hw(fixed, lo, mid, hi)
        opt_batch = min_batch = max_batch
    elif fixed is not None:
        min_batch = 1
        lo, mid, hi = lo or fixed, mid or fixed, hi or fixed
        if not all(a <= f <= b for a, f, b in zip(lo, fixed, hi)):
            raise InputError(f"profile: the artifact's preprocessing resizes every image to {fixed[0]}x{fixed[1]}, "
                             f"expected min_hw <= {fixed} <= max_hw, got {lo}..{hi}")
    else:
        min_batch = 1
        hi = hi or (max(DYNAMIC_HW["max"][0], (lo or (0, 0))[0]), max(DYNAMIC_HW["max"][1], (lo or (0, 0))[1]))
        lo = lo or (min(DYNAMIC_HW["min"][0], hi[0]), min(DYNAMIC_HW["min"][1], hi[1]))
        mid = mid or (min(max(DYNAMIC_HW["opt"][0], lo[0]), hi[0]), min(max(DYNAMIC_HW["opt"][1], lo[1]), hi[1]))
    pixel = manifest.inputs[0]
    channels = pixel.shape[1] if len(pixel.shape) == 4 and isinstance(pixel.shape[1], int) else 3
    ranges = [ShapeRange(name=pixel.name, min=(min_batch, channels, *lo), opt=(opt_batch, channels, *mid),
                         max=(max_batch, channels, *hi))]
    out_lo, out_mid, out_hi = (_hw(min_output_hw, "min_output_hw"), _hw(opt_output_hw, "opt_output_hw"),
                               _hw(max_output_hw, "max_output_hw"))
    if manifest.head != "mask":
        if out_lo or out_mid or out_hi:
            raise InputError(f"output sizes: expected none for a '{manifest.head}' head (the mask size is an input of "
                             "mask-head artifacts only), got min/opt/max_output_hw")
        return ranges
    if fixed is None and not static:
        out_lo, out_mid, out_hi = out_lo or lo, out_mid or mid, out_hi or hi
    else:
        size = fixed or mid
        out_lo, out_mid = out_lo or (32, 32), out_mid or size
        out_hi = out_hi or (2 * size[0], 2 * size[1])
    ranges.append(ShapeRange(name="output_size", min=out_lo, opt=out_mid, max=out_hi, values=True))
    return ranges


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
    if opt_batch != max_batch:  # segedge build's --opt-batch defaults to --max-batch
        parts += ["--opt-batch", str(opt_batch)]
    if max_batch != 1:
        parts += ["--max-batch", str(max_batch)]
    return " ".join(parts)
