"""The report's training-free speed menu: input scale and token merging as grid axes, the latency-aware INT8 variant,
and the prune rule that keeps the full default report within its time budget.

Two phases (``make_report`` runs them):
- A, cheap: ONNX Runtime FP32 (the reference backend) at every (scale, token merge) point of ``--scales`` x
  ``--token-merges``, next to the full grid at the default point (scale 1.0, no merge).
- B, after A is scored: at the "cheapest by construction" points among those whose FP32 drop is within
  ``max_drop`` (``menu_points_for_int8``: a smaller scale and a superset of merged stages cost no more, so only the
  minimal such points can hold the fastest within-budget variant), the requested backends at the requested
  precisions: ONNX Runtime INT8 (minmax, the CPU recipe) and its latency-aware per-region INT8
  (``calibration.latency_aware``, tuned on the tuning set; "FP32 wins here" when no INT8 is faster) if int8 is
  asked, OpenVINO's float IR at the requested fp32 and at the CPU's default float precision if asked
  (``menu_openvino_floats``: bf16 with AVX-512 BF16/AMX) and NNCF INT8. A requested cell a point does not get is
  listed with the reason (``menu_skipped``; TensorRT is built at the default point only). INT8 never regains
  accuracy, so a point whose FP32 is over budget cannot give the recommendation; points dominated by a cheaper
  within-budget point are left to the menu's FP32 row. All variants are timed together afterwards, side by side.

A menu variant is built from its own FP32 exports (``export_onnx(size_hw=scale x frame, token_merge=...)``, both
graphs) through the same ``build`` code as the default point: it gets a ``BuildContext`` whose sources are
those exports, and its command starts with the ``segedge export`` that makes them.
"""
from __future__ import annotations

import dataclasses
import time
from importlib.util import find_spec

from calibration.report import commands as cmd
from calibration.report.plan import OV_HINT, PRECISIONS, Cell, Variant, ov_default_float, ov_float_missing
from calibration.speed_menu import MenuPoint, scaled_size_hw
from converters.token_merge_spec import parse_token_merge

LATENCY_AWARE = "latency-aware"
PRUNE_RULE = ("FP32 (ONNX Runtime) at every scale x token-merge point; INT8, latency-aware INT8 and OpenVINO only at "
              "the within-budget points that no other within-budget point undercuts by construction (smaller or "
              "equal scale, a superset of merged stages), each only where --precisions asks for it; OpenVINO's "
              "float IR there at f32 and at the CPU's default float precision (bf16 with AVX-512 BF16/AMX), other "
              "float hints and TensorRT at the default point only")


def point_of(v: Variant) -> MenuPoint:
    return MenuPoint(scale=v.scale, merge=parse_token_merge(v.token_merge))


def is_default(v: Variant) -> bool:
    return v.scale == 1.0 and v.token_merge == "none"


def phase_a(points: list[MenuPoint]) -> list[Variant]:
    """ONNX Runtime FP32 at every non-default menu point."""
    return [_variant(Cell(backend="onnxruntime", precision="fp32", scale=p.scale, token_merge=p.merge.spec),
                     runtime="onnxruntime", latency_runtime="onnxruntime")
            for p in points if p.scale != 1.0 or p.merge.enabled]


def menu_points_for_int8(fp32_variants: list[Variant], max_drop: float, metric: str = "drop_points"
                         ) -> list[MenuPoint]:
    """The within-budget FP32 points no other within-budget point undercuts by construction (scale <= and merged
    stages a superset, one of them strictly)."""
    ok = [point_of(v) for v in fp32_variants
          if v.status == "built" and v.accuracy and (v.accuracy.points(metric) or 0.0) <= max_drop]

    def cheaper(a: MenuPoint, b: MenuPoint) -> bool:  # a costs no more than b, by construction, and a != b
        sa, sb = set(a.merge.stages) if a.merge.enabled else set(), set(b.merge.stages) if b.merge.enabled else set()
        return a != b and a.scale <= b.scale and sa >= sb

    return [p for p in ok if not any(cheaper(q, p) for q in ok)]


def menu_openvino_floats(points: list[MenuPoint], precisions, openvino: tuple[str | None, list[str]]
                         ) -> tuple[tuple[str, ...], list[dict]]:
    """(the OpenVINO float precisions each phase-B point runs on its float IR, the menu cells left out with why).

    f32 if fp32 is requested; of the requested bf16/fp16, the one OpenVINO runs by default on this CPU
    (``ov_default_float``: bf16 on AVX-512 BF16/AMX, f16 on ARM): the same IR with another runtime hint, so it costs
    an evaluation and a timing, no build. A requested hint the CPU lacks is left out with the default point's reason;
    one it has that is not its default (f16 on x86 with AVX-512 FP16) is measured at the default point only, to keep
    the full report within its time budget. openvino: ``openvino_status()``."""
    reason, caps = openvino
    floats: list[str] = ["fp32"] if "fp32" in precisions else []
    if reason:
        return tuple(floats), []  # the default point's cells already say why
    default = ov_default_float(caps)
    skipped: list[dict] = []
    menu_points = [p for p in points if p.scale != 1.0 or p.merge.enabled]
    for precision in (p for p in precisions if p in ("bf16", "fp16")):
        why = ov_float_missing(precision, caps)
        if why is None and precision == default:
            floats.append(precision)
            continue
        why = why or (f"measured at the default point only (ov-{precision}): {precision} is not OpenVINO's default "
                      f"on this CPU ({default} is), and each menu point's hint costs an evaluation and a timing; to "
                      f"measure it, run the point's float IR with precision='{OV_HINT[precision]}'")
        skipped += [{"name": Cell(backend="openvino", precision=precision, scale=p.scale,
                                  token_merge=p.merge.spec).name, "reason": why} for p in menu_points]
    return tuple(floats), skipped


def menu_skipped(points: list[MenuPoint], backends, precisions, *, tune: bool, frame_hw: tuple[int, int]
                 ) -> list[dict]:
    """The requested cells ``phase_b`` leaves out at the pruned points, with why (OpenVINO's float hints:
    ``menu_openvino_floats``): the latency-aware INT8 without a labelled tuning set, and TensorRT, which the menu
    builds at the default point only. OpenVINO or nncf missing is said by the default point's cells, not repeated.
    frame_hw: the network size at scale 1.0, for the export command a TensorRT cell's reason gives."""
    out: list[dict] = []
    for p in points:
        axes = dict(scale=p.scale, token_merge=p.merge.spec)
        if "onnxruntime" in backends and "int8" in precisions and not tune:
            out.append({"name": Cell(backend="onnxruntime", precision="int8", method="minmax", preset=LATENCY_AWARE,
                                     **axes).name,
                        "reason": "latency-aware INT8 tunes on a labelled set and the evaluation set is unlabelled; "
                                  "give --tune a labelled set to build it"})
        if "tensorrt" in backends and (p.scale != 1.0 or p.merge.enabled):
            h, w = scaled_size_hw(frame_hw, p.scale)
            merge = f" --token-merge {p.merge.spec}" if p.merge.enabled else ""
            out += [{"name": Cell(backend="tensorrt", precision=q, **axes).name,
                     "reason": "the speed menu builds TensorRT at the default point only; for this point export "
                               f"it (segedge export CHECKPOINT --size {h} {w}{merge}), then segedge quantize "
                               "--backend tensorrt and segedge build it on the device"}
                    for q in precisions if q in ("fp32", "fp16", "int8")]
    return out


def phase_b(points: list[MenuPoint], backends, openvino_ok: bool, tune: bool = True, *,
            ov_floats: tuple[str, ...] = ("fp32",), precisions=PRECISIONS) -> list[Variant]:
    """INT8 (and OpenVINO float) variants at the pruned points; the default point's are in the main grid already.
    tune: a labelled tuning set exists (the latency-aware variant needs one). ov_floats: the hints the point's float
    IR runs at (``menu_openvino_floats``), one variant each. precisions: the report's; INT8 variants only if it has
    int8 (``menu_skipped`` lists what a requested precision does not get here)."""
    out: list[Variant] = []
    int8 = "int8" in precisions
    for p in points:
        axes = dict(scale=p.scale, token_merge=p.merge.spec)
        default = p.scale == 1.0 and not p.merge.enabled
        if "onnxruntime" in backends and int8:
            if not default:
                out.append(_variant(Cell(backend="onnxruntime", precision="int8", method="minmax", **axes),
                                    runtime="onnxruntime", latency_runtime="onnxruntime"))
            if tune:
                out.append(_variant(Cell(backend="onnxruntime", precision="int8", method="minmax",
                                         preset=LATENCY_AWARE, **axes), runtime="onnxruntime",
                                    latency_runtime="onnxruntime"))
        if "openvino" in backends and openvino_ok and not default:
            out += [_variant(Cell(backend="openvino", precision=f, **axes), runtime="openvino",
                             runtime_options={"precision": OV_HINT[f]}, latency_runtime="openvino") for f in ov_floats]
            if int8 and find_spec("nncf") is not None:  # without nncf the default point's ov-int8 says why
                out.append(_variant(Cell(backend="openvino", precision="int8", method="nncf", **axes),
                                    runtime="openvino", runtime_options={"precision": None},
                                    latency_runtime="openvino",
                                    notes=["float layers at the device's default precision"]))
    return out


def _variant(cell: Cell, **kw) -> Variant:
    return Variant.of(cell, **kw)


def point_context(v: Variant, ctx, shared: dict):
    """(BuildContext, shared dict) to build ``v`` with: the report's own at the default point; else one whose FP32
    sources are this point's exports (made once per point, timed into its build)."""
    if is_default(v):
        return ctx, shared
    from converters.onnx_export import export_onnx

    point = point_of(v)
    key = ("menu", point.scale, point.merge.spec)
    if key not in shared:
        size = scaled_size_hw(ctx.size_hw or ctx.frame_hw, point.scale)
        t = time.perf_counter()
        fp32 = export_onnx(ctx.source, ctx.artifacts / f"ort-fp32-{point.tag}", size_hw=size, graph="onnxruntime",
                           token_merge=point.merge.spec, progress=False)
        # its own artifacts folder: the float OpenVINO IR every point builds is named alike (ov-ir)
        sub = dataclasses.replace(ctx, source=fp32, source_is_artifact=True, fp32=fp32, portable=fp32,
                                  size_hw=None, ov_size_hw=size, artifacts=ctx.artifacts / f"menu-{point.tag}")
        shared[key] = (sub, {"export_seconds": time.perf_counter() - t}, size)
    sub, sub_shared, size = shared[key]
    if v.backend != "onnxruntime" and sub.portable == sub.fp32:  # OpenVINO reads the portable graph: export it once
        portable = export_onnx(ctx.source, ctx.artifacts / f"fp32-portable-{point.tag}", size_hw=size,
                               token_merge=point.merge.spec, progress=False)
        sub = dataclasses.replace(sub, portable=portable)
        shared[key] = (sub, sub_shared, size)
    return sub, sub_shared


def export_steps(v: Variant, ctx, shared: dict) -> str:
    """The ``segedge export`` command(s) that make a menu variant's FP32 sources."""
    sub, _, size = shared[("menu", v.scale, v.token_merge)]
    merge = f" --token-merge {v.token_merge}" if v.token_merge != "none" else ""
    steps = [f"segedge export {cmd.q(ctx.source)} --output {cmd.q(sub.fp32)} --size {size[0]} {size[1]}{merge} "
             "--graph onnxruntime"]
    if v.backend != "onnxruntime":
        steps = [f"segedge export {cmd.q(ctx.source)} --output {cmd.q(sub.portable)} --size {size[0]} {size[1]}"
                 f"{merge}"]
    return " && ".join(steps)


def finish(v: Variant, ctx, shared: dict) -> None:
    """Prefix a menu variant's command with its export (its sources are artifacts the report made)."""
    if is_default(v) or v.status != "built":
        return
    export = export_steps(v, ctx, shared)
    given = cmd.given_artifact(shared[("menu", v.scale, v.token_merge)][0])
    v.command = export if v.command == given else f"{export} && {v.command}"
    v.notes.append(f"network at {v.scale:g}x the frame ({shared[('menu', v.scale, v.token_merge)][2][0]}x"
                   f"{shared[('menu', v.scale, v.token_merge)][2][1]}), masks at the frame's size"
                   + (f"; token merge {v.token_merge}" if v.token_merge != "none" else ""))


def build_latency_aware(v: Variant, ctx) -> None:
    """The latency-aware INT8 variant: ``calibration.quantize(latency_aware=True)``, INT8 only in the regions where
    it is faster here, within the report's max_drop on its tuning set; the float artifact itself when nothing INT8 is
    faster (then the variant is renamed and marked fp32: "FP32 wins here"). No frames are held out (the search
    scores on the tuning set), as its command says (--holdout 0)."""
    from calibration.int8 import quantize
    from sdk.core.errors import InputError

    if ctx.tune_data is None:
        raise InputError("latency-aware INT8 needs a labelled tuning set (--tune, or a labelled --eval)")
    src = ctx.fp32 if v.backend == "onnxruntime" else ctx.portable
    out = ctx.artifacts / v.name
    result = quantize(src, out, backend=v.backend, calib=ctx.calib, method=None if v.backend == "openvino" else
                      v.method, size_hw=ctx.ov_size_hw if v.backend == "openvino" else None, eval_set=ctx.tune_data,
                      max_drop=ctx.max_drop, latency_aware=True, holdout=0, progress=False)
    r = result.latency_aware
    v.artifact = result.artifact
    v.notes.append(r.verdict)
    v.command = cmd.quantize_command(ctx, v, out)
    if r.winner != "int8":
        v.precision, v.name = "fp32", v.name.replace(f"-int8-{v.method}-", "-fp32-", 1)
