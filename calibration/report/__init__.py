"""Accuracy-vs-latency calibration report: every variant you could deploy, built with the SDK's own code paths,
measured side by side in one run, and the fastest one within a largest allowed mIoU drop.

    segedge report CHECKPOINT --calib frames/ --eval labelled_val/ --backends onnxruntime,openvino,tensorrt \
        --output report/      # -> report/report.{html,json,md} + report/artifacts/<variant>/

The grid: backend x precision x calibration method x float-layer preset.
- onnxruntime: fp32 (the reference), int8 (``quantize_onnxruntime``, CPU recipe) per method; no fp16/bf16 on the CPU
  execution provider. From a checkpoint both come from the ``onnxruntime`` graph (``export_onnx(graph=
  "onnxruntime")``, what ``segedge quantize --backend onnxruntime`` uses); OpenVINO and TensorRT variants from the
  portable graph.
- openvino (when ``runtimes.RUNTIMES`` has it): a static-shape IR (``export_openvino``) run with the f32 hint, and
  with bf16/f16 where the CPU has them (a runtime hint, same IR); int8 from NNCF (``quantize_openvino``: NNCF's own
  range estimation, so one variant whatever ``methods``). Float layers of the int8 model run at the device default.
- tensorrt: int8 as a Q/DQ ONNX (``quantize_onnxruntime(target="tensorrt")``) per method, evaluated in ONNX Runtime
  (exactly the graph TensorRT builds); latency only where TensorRT and a CUDA GPU are present (the engine is then
  built with ``build_engine``), fp32/fp16 engines likewise.
- preset "max-drop": the sensitivity-chosen float blocks (``quantize_with_max_drop``; NNCF accuracy control for
  OpenVINO), tuned on ``tune`` (default: the split ``segedge quantize --eval`` reads, val for CamVid).

Accuracy against the FP32 ONNX artifact in ONNX Runtime (the reference): mIoU, per-class IoU, pixel accuracy and
pixel agreement on a labelled set; on an unlabelled one (a folder of images, a video, a .txt list) agreement alone.
Optionally under corruptions (``calibration.corruptions``). Cost: latency p50/p90/p99 (model only: the preprocessed
frame -> full-resolution mask, each variant alone in its own process per round, alternating rounds:
``sdk.timing.isolated``), throughput at batch
1 and ``CostOptions.batch``, load/compile time and peak RSS in a fresh process per variant, artifact size on disk.

The parts (modules of this package), in the order ``make_report`` runs them: ``plan`` (the grid and its typed
records), ``build`` (variants built with the SDK's code paths; commands from ``commands``; the speed menu's points
from ``menu``), ``evaluate`` (accuracy), ``cost`` (latency, throughput, memory), ``recommend`` (Pareto front,
recommendation), ``render`` (JSON, Markdown, console table; the HTML page from ``html`` and ``figures``). ``deps``
checks what a run needs before any work.
"""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from calibration.report.build import build_all
from calibration.report.cost import CostOptions, measure_cost
from calibration.report.evaluate import eval_items, evaluate_all, note_identical
from calibration.report.plan import (BACKENDS, DEFAULT_MAX_DROP, METHODS, PRECISIONS, PRESETS, BuildContext, Variant,
                                     openvino_status, plan_variants, tensorrt_gpu_status)
from calibration.report.recommend import choose_int8, pareto_front, recommend
from sdk.core.errors import InputError, LabelsError
from sdk.core.result import pixel_agreement
from sdk.core.staging import writes_whole

SCHEMA = "segedge.report/1"
__all__ = ["make_report", "CostOptions", "Variant", "BACKENDS", "PRECISIONS", "METHODS", "PRESETS", "SCHEMA"]


def _check_grid(backends, precisions, methods, presets, max_drop: float) -> None:
    for what, given, allowed in (("backends", backends, BACKENDS), ("precisions", precisions, PRECISIONS),
                                 ("methods", methods, METHODS), ("presets", presets, PRESETS)):
        bad = [g for g in given if g not in allowed]
        if bad or not given:
            raise InputError(f"{what}: expected a non-empty list from {list(allowed)}, got {list(given)}")
    if max_drop < 0:
        raise InputError(f"max_drop: expected >= 0 mIoU points, got {max_drop}")


def _fp32_sources(source: Path, artifacts: Path, backends, size_hw) -> tuple[bool, Path, Path, float | None]:
    """(source is an FP32 artifact, the reference / ONNX Runtime source, the portable source, export seconds)."""
    from sdk.core.manifest import read_manifest

    if (source / "model.json").is_file():
        m = read_manifest(source)
        if m.format != "onnx" or m.precision != "fp32":
            raise InputError(f"{source}: expected a checkpoint or an FP32 ONNX artifact, got {m.format} {m.precision}")
        if size_hw is not None:
            raise InputError("size_hw: give it with a checkpoint; an FP32 artifact keeps the size it was exported at")
        return True, source, source, None
    from converters.onnx_export import export_onnx

    # ONNX Runtime's variants (and the reference) from its own graph; OpenVINO's and TensorRT's from the portable
    t = time.perf_counter()
    fp32 = export_onnx(source, artifacts / "ort-fp32", size_hw=size_hw, graph="onnxruntime", progress=False)
    portable = fp32
    if set(backends) - {"onnxruntime"}:
        portable = export_onnx(source, artifacts / "fp32-portable", size_hw=size_hw, progress=False)
    return False, fp32, portable, time.perf_counter() - t


@writes_whole(markers=("report.json",), what="report")
def make_report(checkpoint: str | Path, output: str | Path, *, calib: str | Path, eval_set: str | Path,
                backends=BACKENDS, precisions=PRECISIONS, methods=METHODS, presets=("default",),
                max_drop: float = DEFAULT_MAX_DROP, tune: str | Path | None = None, eval_split: str = "test",
                eval_samples: int = 0, num_samples: int = 300, seed: int = 0,
                size_hw: tuple[int, int] | None = None, corruptions=(), severity: int = 3,
                corruption_samples: int = 0, cost: CostOptions = CostOptions(), examples: int = 3,
                scales=(1.0,), token_merges=("none",), progress: bool = True) -> dict:
    """Build the grid from ``checkpoint`` (or an FP32 ONNX artifact folder), measure it, recommend; writes
    ``output``/report.{json,md,html} and ``output``/artifacts/. Returns the report (the JSON's content).
    scales, token_merges: the speed menu's axes (``calibration.report.menu``: FP32 at every point, INT8 at the
    pruned ones); the defaults are the single point the grid always has.
    The report folder is written whole (``sdk.core.staging.writes_whole``): a rerun replaces an earlier report with
    all its artifacts only once the new one is complete; a folder holding other files needs ``overwrite=True``."""
    from calibration.report import menu as report_menu
    from calibration.corruptions import check_corruptions
    from calibration.speed_menu import menu
    from calibration.report.render import write_report

    t_start = time.perf_counter()
    _check_grid(backends, precisions, methods, presets, max_drop)
    points = menu(scales, token_merges)
    menu_on = any(p.scale != 1.0 or p.merge.enabled for p in points)
    if menu_on and (Path(checkpoint) / "model.json").is_file():
        raise InputError("scales / token_merges: each menu point is exported from the checkpoint; give the "
                         "checkpoint instead of an FP32 artifact, or leave --scales/--token-merges at 1.0/none")
    corruptions = check_corruptions(corruptions, severity)
    out = Path(output)
    (out / "artifacts").mkdir(parents=True, exist_ok=True)
    items, eval_info = eval_items(eval_set, eval_split, eval_samples)
    ctx, manifest, export_seconds = _prepare(Path(checkpoint), out / "artifacts", calib, eval_set, eval_info, items,
                                             backends=backends, tune=tune, max_drop=max_drop,
                                             presets=tuple(presets) + (("latency-aware",) if menu_on else ()),
                                             num_samples=num_samples, seed=seed, size_hw=size_hw, batch=cost.batch)
    variants, skipped = plan_variants(
        backends, precisions, methods, presets,
        openvino=openvino_status() if "openvino" in backends else ("not requested", []),
        tensorrt_gpu=tensorrt_gpu_status() if "tensorrt" in backends else "not requested")
    variants += report_menu.phase_a(points)
    phases = {"prepare_s": time.perf_counter() - t_start}

    t = time.perf_counter()
    shared: dict = {"export_seconds": export_seconds}
    build_all(variants, ctx, export_seconds, progress, shared=shared)
    phases["build_s"] = time.perf_counter() - t
    t = time.perf_counter()
    corruption_items = items
    if corruptions and 0 < corruption_samples < len(items):
        corruption_items = [items[i] for i in np.linspace(0, len(items) - 1, corruption_samples).round().astype(int)]
    names = manifest.class_names
    ref = evaluate_all(variants, ctx.fp32, items, corruption_items, corruptions, severity, names, progress)
    phases["evaluate_s"] = time.perf_counter() - t
    int8_points = []
    if menu_on:  # phase B: INT8 only at the pruned menu points (calibration.report.menu), then scored like the rest
        t = time.perf_counter()
        extra, int8_points, more_skipped = _menu_phase_b(variants, ctx, max_drop, eval_info["labelled"], backends,
                                                         precisions, shared, progress)
        skipped += more_skipped
        phases["menu_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        evaluate_all(extra, ctx.fp32, items, corruption_items, corruptions, severity, names, progress)
        phases["menu_evaluate_s"] = time.perf_counter() - t
        variants += extra
    note_identical(variants)
    t = time.perf_counter()
    timing = measure_cost(variants, items[0][0], cost, progress)
    phases["cost_s"] = time.perf_counter() - t

    rec, front, chosen = _verdict(variants, max_drop, eval_info["labelled"])
    example_frames = _examples(chosen, ctx.fp32, items, examples) if chosen is not None and examples > 0 else []
    report = {
        "schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **_header(ctx, manifest, eval_info, eval_set, eval_split, ref.to_dict(), corruptions, severity,
                  len(corruption_items)),
        "grid": {"backends": list(backends), "precisions": list(precisions), "methods": list(methods),
                 "presets": list(presets), "scales": sorted({p.scale for p in points}, reverse=True),
                 "token_merges": sorted({p.merge.spec for p in points}),
                 "menu_int8_points": [{"scale": p.scale, "token_merge": p.merge.spec} for p in int8_points],
                 "menu_prune_rule": report_menu.PRUNE_RULE if menu_on else None},
        "latency_input": {"frame_hw": list(items[0][0].shape[:2]), "options": dataclasses.asdict(cost),
                          "isolation": timing,
                          "what": "preprocessed frame -> inference -> full-resolution mask (model only, "
                                  "preprocessing excluded)"},
        "environment": _environment(),
        "variants": [v.to_dict() for v in variants],
        "skipped": skipped, "pareto_front": front, "recommendation": rec.to_dict(),
        "pictures_int8_variant": chosen.name if chosen else None,
        "examples": [{"index": e["index"], "agreement": e["agreement"], "why": e["why"]} for e in example_frames],
        "phases_seconds": {**phases, "total_s": time.perf_counter() - t_start},
    }
    report["files"] = {k: str(p) for k, p in write_report(report, out, example_frames, manifest).items()}
    return report


def _verdict(variants: list[Variant], max_drop: float, labelled: bool):
    """(the recommendation, the Pareto front's names, the INT8 variant the pictures show); marks ``v.pareto``."""
    reference_name = next((v.name for v in variants if v.backend == "onnxruntime" and v.precision == "fp32"), None)
    rec = recommend(variants, max_drop=max_drop, labelled=labelled, reference_name=reference_name)
    quality = "miou" if labelled else "agreement"
    front = pareto_front({v.name: (v.cost.p50_ms, getattr(v.accuracy, quality)) for v in variants
                          if v.timed and v.accuracy and getattr(v.accuracy, quality) is not None})
    for v in variants:
        v.pareto = v.name in front
    return rec, front, choose_int8(variants, rec, rec.metric)


def _menu_phase_b(variants: list[Variant], ctx: BuildContext, max_drop: float, labelled: bool, backends, precisions,
                  shared: dict, progress: bool) -> tuple[list[Variant], list, list[dict]]:
    """The speed menu's phase B, built: the pruned points' INT8 (and OpenVINO float) variants. Returns (those
    variants, the pruned points, the requested cells they leave out with why)."""
    from calibration.report import menu as report_menu

    metric = "drop_points" if labelled else "disagreement_points"
    int8_points = report_menu.menu_points_for_int8(
        [v for v in variants if v.backend == "onnxruntime" and v.precision == "fp32"], max_drop, metric)
    ov = openvino_status() if "openvino" in backends else ("not requested", [])
    ov_floats, skipped = report_menu.menu_openvino_floats(int8_points, precisions, ov)
    skipped += report_menu.menu_skipped(int8_points, backends, precisions, tune=ctx.tune_data is not None,
                                        frame_hw=ctx.size_hw or ctx.frame_hw)
    extra = report_menu.phase_b(int8_points, backends, openvino_ok=ov[0] is None, tune=ctx.tune_data is not None,
                                ov_floats=ov_floats, precisions=precisions)
    build_all(extra, ctx, shared["export_seconds"], progress, shared=shared)
    return extra, int8_points, skipped


def _prepare(source: Path, artifacts: Path, calib, eval_set, eval_info: dict, items: list, *, backends, presets,
             tune, max_drop: float, num_samples: int, seed: int, size_hw, batch: int):
    """Check the sets against the model, export the FP32 sources, load the calibration and tuning sets; returns
    (the build context, the reference's manifest, export seconds or None)."""
    from calibration.int8 import static_size_hw
    from calibration.sets import load_calibration_set
    from sdk.core.manifest import read_manifest
    from sdk.core.preprocess import network_size

    tune_data = None
    needs_tune = "max-drop" in presets or "latency-aware" in presets
    if needs_tune:
        if tune is None and not eval_info["labelled"] and "max-drop" in presets:
            raise InputError("presets max-drop: needs a labelled set to tune on; give tune= (--tune) when the "
                             "evaluation set is unlabelled")
        tune = tune if tune is not None else (eval_set if eval_info["labelled"] else None)
    is_artifact, fp32, portable, export_seconds = _fp32_sources(source, artifacts, backends, size_hw)
    manifest = read_manifest(fp32)
    names = manifest.class_names
    if eval_info["labelled"] and eval_info.get("class_names") and len(eval_info["class_names"]) != len(names):
        raise LabelsError(f"evaluation set has {len(eval_info['class_names'])} classes but the model has "
                          f"{len(names)}. Evaluate with a dataset of the model's classes.")
    calib_set = load_calibration_set(calib, num_samples=num_samples, seed=seed)
    frame = items[0][0]
    if needs_tune and tune is not None:
        from calibration.datasets import open_labelled_set

        tune_data = list(open_labelled_set(tune))
    ctx = BuildContext(source=source, source_is_artifact=is_artifact, fp32=fp32, portable=portable,
                       artifacts=artifacts, calib=calib_set, calib_arg=str(calib), num_samples=num_samples,
                       seed=seed, size_hw=size_hw, ov_size_hw=static_size_hw(manifest, calib_set.frames, None)[0],
                       tune_arg=str(tune) if tune is not None else None, tune_data=tune_data, max_drop=max_drop,
                       latency_hw=network_size(manifest.preprocess, frame.shape[:2]), frame_hw=frame.shape[:2],
                       batch=batch, progress=False)
    return ctx, manifest, export_seconds


def _header(ctx: BuildContext, manifest, eval_info: dict, eval_set, eval_split: str, ref: dict, corruptions,
            severity: int, corruption_images: int) -> dict:
    """The report's description sections: source, model, calibration, evaluation, tuning."""
    calib_set = ctx.calib
    return {
        "source": {"path": str(ctx.source), "is_fp32_artifact": ctx.source_is_artifact, **manifest.source},
        "model": {"variant": manifest.architecture.get("variant"), "class_names": manifest.class_names,
                  "preprocess": manifest.preprocess.to_dict()},
        "calibration": {"source": ctx.calib_arg, "description": calib_set.description,
                        "fingerprint": calib_set.fingerprint, "frames": len(calib_set), "seed": ctx.seed},
        "evaluation": {**{k: v for k, v in eval_info.items() if k != "class_names"},
                       "reference": "FP32 ONNX artifact in ONNX Runtime", "reference_artifact": str(ctx.fp32),
                       "reference_metrics": ref,
                       "corruptions": list(corruptions), "corruption_severity": severity if corruptions else None,
                       "corruption_images": corruption_images if corruptions else 0},
        "tuning": {"path": ctx.tune_arg, "images": len(ctx.tune_data),
                   "same_as_evaluation": Path(str(ctx.tune_arg)) == Path(eval_set)
                   and (eval_info.get("kind") != "CamVid" or eval_split == "val")}
        if ctx.tune_data is not None else None,
    }


def _environment() -> dict:
    from sdk.timing import environment

    try:
        import onnxruntime as ort

        ort_threads = f"default ({ort.SessionOptions().intra_op_num_threads or 'one per physical core'})"
    except ImportError:
        ort_threads = None
    return environment(onnxruntime=ort_threads, openvino="OpenVINO's default (latency hint: one stream)")


def _examples(chosen: Variant, fp32: Path, items: list, count: int) -> list[dict]:
    """FP32 and INT8 masks on a few frames: the ones where they disagree most, and a median one."""
    from sdk.segmenter import Segmenter

    order = np.argsort(chosen.per_image_agreement)
    picks = [(int(i), "most disagreement") for i in order[:max(1, count - 1)]]
    median = int(order[len(order) // 2])
    if count > 1 and median not in {i for i, _ in picks}:
        picks.append((median, "median agreement"))
    out = []
    with Segmenter.from_artifact(fp32, runtime="onnxruntime") as ref, \
            Segmenter.from_artifact(chosen.path, runtime=chosen.runtime, **chosen.runtime_options) as seg:
        for i, why in picks:
            image = items[i][0]
            a, b = ref(image).mask, seg(image).mask
            out.append({"index": i, "why": why, "image": image, "fp32": a, "int8": b,
                        "agreement": pixel_agreement(a, b), "variant": chosen.name})
    return out
