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
frame -> full-resolution mask, alternating variants run by run, ``sdk.timing.measure_latency``), throughput at batch
1 and ``CostOptions.batch``, load/compile time and peak RSS in a fresh process per variant, artifact size on disk.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import shlex
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from sdk.core.errors import InputError, LabelsError, MissingDependencyError, SegEdgeError

SCHEMA = "segedge.report/1"
BACKENDS = ("onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
METHODS = ("minmax", "entropy", "percentile")  # = calibration.quantize_ort.METHODS (not imported: onnx is heavy)
PRESETS = ("default", "max-drop")
SHORT = {"onnxruntime": "ort", "openvino": "ov", "tensorrt": "trt"}
OV_HINT = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


@dataclass(frozen=True, kw_only=True)
class CostOptions:
    """How cost is measured. repeats/warmup: timed/untimed runs per variant at batch 1 (a quarter as many at
    ``batch``); pause_s: sleep before each timed run (see ``sdk.timing``); settle_s: pause before timing (models ran
    ~1.3x slower for 10-20 s after quantizing here); memory: load time + peak RSS in a fresh process per variant."""

    repeats: int = 30
    warmup: int = 3
    batch: int = 4
    pause_s: float = 0.1
    settle_s: float = 10.0
    memory: bool = True

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.warmup < 0 or self.batch < 1:
            raise InputError(f"cost options: expected repeats >= 1, warmup >= 0, batch >= 1, got {self}")


@dataclass(kw_only=True)
class Variant:
    """One cell of the grid and everything measured about it (``to_dict`` is its JSON)."""

    name: str
    backend: str
    precision: str
    method: str | None
    preset: str
    runtime: str  # the runtime that measures accuracy
    runtime_options: dict = field(default_factory=dict)
    latency_runtime: str | None = None  # None: latency not measured (latency_note says why)
    latency_note: str | None = None
    artifact: Path | None = None
    latency_artifact: Path | None = None
    command: str = ""
    run_with: str = ""
    build_seconds: float | None = None
    status: str = "planned"  # built | failed
    error: str | None = None
    accuracy: dict = field(default_factory=dict)
    corruptions: dict = field(default_factory=dict)
    cost: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    per_image_agreement: list[float] = field(default_factory=list)

    @property
    def path(self) -> Path:
        """The built artifact (the accuracy runs on it)."""
        if self.artifact is None:
            raise SegEdgeError(f"variant {self.name}: not built")
        return self.artifact

    @property
    def latency_path(self) -> Path:
        """What latency is measured on: the engine for TensorRT, else the artifact."""
        return self.latency_artifact or self.path

    def to_dict(self) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "per_image_agreement"}
        for k in ("artifact", "latency_artifact"):
            d[k] = str(d[k]) if d[k] is not None else None
        return d


@dataclass(kw_only=True)
class _Context:
    source: Path  # checkpoint or FP32 ONNX artifact, as given
    source_is_artifact: bool
    fp32: Path  # the reference and ONNX Runtime's source: the onnxruntime graph when exported from a checkpoint
    portable: Path  # OpenVINO's and TensorRT's source: the portable graph (the same artifact when one was given)
    artifacts: Path
    calib: Any  # CalibrationSet
    calib_arg: str
    num_samples: int
    seed: int
    size_hw: tuple[int, int] | None  # export --size
    ov_size_hw: tuple[int, int]
    tune_arg: str | None
    tune_data: list | None
    max_drop: float
    latency_hw: tuple[int, int]  # network input of the timing frame
    frame_hw: tuple[int, int]  # the timing frame (= mask size)
    batch: int  # the larger batch timed for throughput
    progress: bool


# ------------------------------------------------------------------------------------------------------------ plan
def _openvino_status() -> tuple[str | None, list[str]]:
    """(why OpenVINO is unavailable or None, the CPU's optimization capabilities)."""
    from runtimes import RUNTIMES

    if "openvino" not in RUNTIMES:
        return "runtimes.RUNTIMES has no 'openvino' runtime in this build", []
    if find_spec("openvino") is None:
        return "openvino is not installed (pip install 'segedge[cpu]')", []
    import openvino as ov

    return None, list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _tensorrt_gpu_status() -> str | None:
    """Why TensorRT engines cannot be built here, or None when TensorRT and a CUDA driver are present."""
    from runtimes.tensorrt import require_tensorrt
    from runtimes.tensorrt_device import CudaDriver

    try:
        CudaDriver()
    except SegEdgeError:
        return "no GPU"
    try:
        require_tensorrt()
    except SegEdgeError:
        return "TensorRT is not installed"
    return None


def plan_variants(backends, precisions, methods, presets, *, openvino: tuple[str | None, list[str]],
                  tensorrt_gpu: str | None) -> tuple[list[Variant], list[dict]]:
    """The grid: variants to build, and the cells skipped with the reason (name, reason)."""
    variants: list[Variant] = []
    skipped: list[dict] = []

    def skip(name: str, reason: str) -> None:
        skipped.append({"name": name, "reason": reason})

    for backend in backends:
        short = SHORT[backend]
        for precision in precisions:
            name = f"{short}-{precision}"
            if backend == "onnxruntime":
                if precision == "fp32":
                    variants.append(Variant(name=name, backend=backend, precision="fp32", method=None,
                                            preset="default", runtime="onnxruntime", latency_runtime="onnxruntime"))
                elif precision in ("fp16", "bf16"):
                    skip(name, f"ONNX Runtime's CPU execution provider has no {precision} kernels for this model; "
                               "use OpenVINO bf16/f16 or a TensorRT fp16 engine")
                else:
                    for method in methods:
                        for preset in presets:
                            suffix = "-maxdrop" if preset == "max-drop" else ""
                            variants.append(Variant(name=f"{name}-{method}{suffix}", backend=backend,
                                                    precision="int8", method=method, preset=preset,
                                                    runtime="onnxruntime", latency_runtime="onnxruntime"))
            elif backend == "openvino":
                reason, caps = openvino
                if reason:
                    skip(name, reason)
                elif precision != "int8":
                    if precision != "fp32" and precision.upper() not in caps:
                        skip(name, f"this CPU has no {precision} arithmetic (OpenVINO CPU capabilities: "
                                   f"{', '.join(caps)})")
                        continue
                    variants.append(Variant(name=name, backend=backend, precision=precision, method=None,
                                            preset="default", runtime="openvino",
                                            runtime_options={"precision": OV_HINT[precision]},
                                            latency_runtime="openvino"))
                elif find_spec("nncf") is None:
                    skip(name, "nncf is not installed (OpenVINO INT8 is made with NNCF: pip install nncf)")
                else:
                    for preset in presets:
                        suffix = "-maxdrop" if preset == "max-drop" else ""
                        variants.append(Variant(name=f"{name}{suffix}", backend=backend, precision="int8",
                                                method="nncf", preset=preset, runtime="openvino",
                                                runtime_options={"precision": None}, latency_runtime="openvino",
                                                notes=["float layers at the device's default precision"]))
            else:  # tensorrt
                if precision == "bf16":
                    skip(name, "TensorRT has no bf16 engine precision here; use fp16")
                elif precision in ("fp32", "fp16"):
                    if tensorrt_gpu:
                        skip(name, f"a TensorRT engine is built on a CUDA GPU with TensorRT ({tensorrt_gpu} here); "
                                   "build it on the device with segedge build")
                    else:
                        variants.append(Variant(name=name, backend=backend, precision=precision, method=None,
                                                preset="default", runtime="tensorrt", latency_runtime="tensorrt"))
                else:
                    for method in methods:
                        for preset in presets:
                            suffix = "-maxdrop" if preset == "max-drop" else ""
                            v = Variant(name=f"{name}-{method}{suffix}", backend=backend, precision="int8",
                                        method=method, preset=preset, runtime="onnxruntime",
                                        notes=["Q/DQ ONNX for TensorRT; accuracy measured in ONNX Runtime"])
                            if tensorrt_gpu:
                                v.latency_note = f"not measured ({tensorrt_gpu})"
                            else:
                                v.latency_runtime = "tensorrt"
                            variants.append(v)
    return variants, skipped


# ----------------------------------------------------------------------------------------------------------- build
def _q(value: Any) -> str:
    return shlex.quote(str(value))


def _quantize_command(ctx: _Context, v: Variant, out: Path) -> str:
    parts = ["segedge", "quantize", _q(ctx.source), "--backend", v.backend, "--calib", _q(ctx.calib_arg),
             "--num-samples", str(ctx.num_samples), "--seed", str(ctx.seed)]
    if v.backend != "openvino":
        parts += ["--method", str(v.method)]
    size = ctx.ov_size_hw if v.backend == "openvino" else ctx.size_hw
    if size and not (ctx.source_is_artifact and v.backend != "openvino"):
        parts += ["--size", str(size[0]), str(size[1])]
    if v.preset == "max-drop":
        parts += ["--eval", _q(ctx.tune_arg), "--max-drop", f"{ctx.max_drop:g}"]
    return " ".join(parts + ["--output", _q(out)])


def _export_command(ctx: _Context, out: Path, graph: str = "portable") -> str:
    size = f" --size {ctx.size_hw[0]} {ctx.size_hw[1]}" if ctx.size_hw else ""
    flag = f" --graph {graph}" if graph != "portable" else ""
    return f"segedge export {_q(ctx.source)} --output {_q(out)}{size}{flag}"


def _ir_command(ctx: _Context, ir: Path) -> str:
    """Export (unless an FP32 artifact was given) + ``export_openvino``: there is no ``segedge`` subcommand for a
    float IR, so the second step is the Python call."""
    onnx_dir = ctx.portable if ctx.source_is_artifact else ir.parent / f"{ir.name}-onnx"
    h, w = ctx.ov_size_hw
    ir_step = (f"python -c \"from converters.openvino_export import export_openvino; "
               f"export_openvino('{onnx_dir}', '{ir}', size_hw=({h}, {w}))\"")
    return ir_step if ctx.source_is_artifact else f"{_export_command(ctx, onnx_dir)} && {ir_step}"


def _build_variant(v: Variant, ctx: _Context, shared: dict) -> None:
    """Build ``v.artifact`` with the SDK's own functions; sets command/run_with."""
    from calibration.quantize_ort import quantize_onnxruntime
    from calibration.sensitivity import quantize_with_max_drop
    from sdk.core.manifest import read_manifest

    out = ctx.artifacts / v.name
    t = time.perf_counter()
    if v.backend == "onnxruntime" and v.precision == "fp32":
        v.artifact = ctx.fp32
        v.command = (f"(the FP32 artifact given: {ctx.fp32})" if ctx.source_is_artifact
                     else _export_command(ctx, ctx.fp32, read_manifest(ctx.fp32).graph))
        v.build_seconds = shared.get("export_seconds")
    elif v.backend in ("onnxruntime", "tensorrt") and v.precision == "int8":
        src = ctx.fp32 if v.backend == "onnxruntime" else ctx.portable
        if v.preset == "max-drop":
            v.artifact = quantize_with_max_drop(src, ctx.calib, ctx.tune_data or [], out,
                                                max_drop=ctx.max_drop, target=v.backend, method=str(v.method),
                                                progress=ctx.progress)
            aa = json.loads((out / "model.json").read_text())["extra"]["accuracy_aware"]
            v.notes.append(f"float blocks: {', '.join(aa['float_blocks']) or 'none'}; tuning drop "
                           f"{aa['measured_drop_points']:.2f} points ({'met' if aa['max_drop_met'] else 'NOT met'})")
        else:
            v.artifact = quantize_onnxruntime(src, ctx.calib, out, target=v.backend, method=str(v.method),
                                              progress=ctx.progress)
        v.command = _quantize_command(ctx, v, out)
        if v.backend == "tensorrt":
            v.command += f"  # then on the device: segedge build {_q(out)} --output {_q(out)}-engine --int8"
    elif v.backend == "openvino" and v.precision == "int8":
        from calibration.quantize_openvino import quantize_openvino

        accuracy_aware = v.preset == "max-drop"
        v.artifact = quantize_openvino(ctx.portable, ctx.calib, out, size_hw=ctx.ov_size_hw, progress=ctx.progress,
                                       eval_data=ctx.tune_data if accuracy_aware else None,
                                       max_drop=ctx.max_drop if accuracy_aware else None)
        v.command = _quantize_command(ctx, v, out)
    elif v.backend == "openvino":
        if "ov_ir" not in shared:
            from converters.openvino_export import export_openvino

            ir = ctx.artifacts / "ov-ir"
            shared["ov_ir"] = export_openvino(ctx.portable, ir, size_hw=ctx.ov_size_hw, progress=False)
            shared["ov_ir_seconds"] = time.perf_counter() - t
        v.artifact = shared["ov_ir"]
        v.build_seconds = shared["ov_ir_seconds"]
        v.command = _ir_command(ctx, v.artifact)
    else:  # tensorrt fp32 / fp16 engine from the FP32 ONNX
        v.artifact = ctx.portable
    if v.backend == "tensorrt" and v.latency_runtime == "tensorrt":
        from converters.tensorrt_build import build_engine

        # a profile that holds what the report runs: the timing frame's network size (as opt) and mask size, and
        # the throughput batch; frames larger than the defaults (1024x1024) widen it
        engine = ctx.artifacts / f"{v.name}-engine"
        (nh, nw), (fh, fw) = ctx.latency_hw, ctx.frame_hw
        dynamic = read_manifest(v.path).preprocess.size_hw is None
        big = 1024 if dynamic else 0
        shapes: dict[str, tuple[int, int] | None] = {
            "opt_hw": (nh, nw), "max_hw": (max(1024, nh), max(1024, nw)) if dynamic else None,
            "opt_output_hw": (fh, fw), "max_output_hw": (max(fh, 2 * nh, big), max(fw, 2 * nw, big))}
        v.latency_artifact = build_engine(v.path, engine, fp16=v.precision == "fp16", int8=v.precision == "int8",
                                          max_batch=ctx.batch, **shapes)  # type: ignore[arg-type]
        flags = " ".join(f"--{k.replace('_', '-')} {hw[0]} {hw[1]}" for k, hw in shapes.items() if hw)
        build = (f"segedge build {_q(v.path)} --output {_q(engine)}{' --fp16' if v.precision == 'fp16' else ''}"
                 f"{' --int8' if v.precision == 'int8' else ''} {flags} --max-batch {ctx.batch}")
        if v.precision != "int8":
            v.artifact, v.command = engine, build
        else:
            v.command = v.command.split("  # then on the device")[0] + f" && {build}"
    if v.build_seconds is None:
        v.build_seconds = time.perf_counter() - t
    opts = ", ".join(f"{k}={v2!r}" for k, v2 in v.runtime_options.items())
    v.run_with = (f"Segmenter.from_artifact({str(v.latency_artifact or v.artifact)!r}, runtime="
                  f"{(v.latency_runtime or v.runtime)!r}{', ' + opts if opts else ''})")
    v.status = "built"


# -------------------------------------------------------------------------------------------------------- evaluate
def _score(seg, items, ref_masks, names: list[str], *, corruption: str | None = None, severity: int = 3,
           progress: bool = False, desc: str = "") -> tuple[dict, list[np.ndarray], list[float]]:
    """Run ``seg`` over items ((image, label or None)); metrics vs labels and vs ``ref_masks`` (None: none)."""
    from calibration.corruptions import corrupt
    from calibration.datasets import IGNORE_INDEX
    from calibration.metrics import ConfusionMatrix

    cm = ConfusionMatrix(len(names), IGNORE_INDEX)
    labelled = items and items[0][1] is not None
    same = pixels = 0
    masks, per_image = [], []
    t = time.perf_counter()
    for i, (image, label) in enumerate(items):
        if corruption:
            image = corrupt(image, corruption, severity, seed=i)
        mask = seg(image).mask
        if labelled:
            cm.update(mask, label)
        if ref_masks is not None:
            s = int(np.count_nonzero(mask == ref_masks[i]))
            same, pixels = same + s, pixels + mask.size
            per_image.append(s / mask.size)
        else:
            masks.append(mask)
    out: dict[str, Any] = {"images": len(items)}
    if labelled:
        iou = cm.iou()
        out.update(miou=cm.miou(), pixel_accuracy=cm.pixel_accuracy(),
                   iou_per_class={n: (None if np.isnan(x) else float(x)) for n, x in zip(names, iou)})
    out["agreement"] = same / pixels if ref_masks is not None else 1.0
    if progress:
        score = [f"mIoU {100 * out['miou']:.2f}"] if labelled else []
        if ref_masks is not None:
            score.append(f"agreement with FP32 {100 * out['agreement']:.2f}%")
        print(f"evaluate {desc}: {', '.join(score) or 'reference masks'} over {len(items)} images in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
    return out, masks, per_image


def _evaluate(variants: list[Variant], reference: Path, items: list, corruption_items: list, corruptions,
              severity: int, names: list[str], progress: bool) -> dict:
    """Reference (FP32 ONNX in ONNX Runtime) first, then every built variant; fills ``v.accuracy`` and
    ``v.corruptions``. Returns the reference's metrics."""
    from sdk.segmenter import Segmenter

    with Segmenter.from_artifact(reference, runtime="onnxruntime") as seg:
        ref, ref_masks, _ = _score(seg, items, None, names, progress=progress, desc="reference")
        ref_corrupt = {}
        for c in corruptions:
            ref_corrupt[c] = _score(seg, corruption_items, None, names, corruption=c, severity=severity,
                                    progress=progress, desc=f"reference {c}")[:2]
    for v in variants:
        if v.status != "built":
            continue
        if v.backend == "onnxruntime" and v.precision == "fp32" and v.artifact == reference:
            v.accuracy = dict(ref)
            v.per_image_agreement = [1.0] * len(items)
            v.corruptions = {c: {**ref_corrupt[c][0]} for c in corruptions}
        else:
            with Segmenter.from_artifact(v.path, runtime=v.runtime, **v.runtime_options) as seg:
                v.accuracy, _, v.per_image_agreement = _score(seg, items, ref_masks, names,
                                                              progress=progress, desc=v.name)
                v.accuracy["runtime"] = seg.runtime.describe()
                for c in corruptions:
                    v.corruptions[c] = _score(seg, corruption_items, ref_corrupt[c][1], names, corruption=c,
                                              severity=severity, progress=progress, desc=f"{v.name} {c}")[0]
        for metrics, base in [(v.accuracy, ref), *[(v.corruptions[c], ref_corrupt[c][0]) for c in corruptions]]:
            if "miou" in metrics:
                metrics["drop_points"] = 100 * (base["miou"] - metrics["miou"])
            metrics["disagreement_points"] = 100 * (1 - metrics["agreement"])
    return ref


def _note_identical(variants: list[Variant]) -> None:
    """Flag INT8 variants of one backend whose every number equals another's: different settings that made the
    same model (e.g. a calibration method that fell back to another's ranges) are worth a look."""
    seen: dict[tuple, str] = {}
    for v in variants:
        if v.status != "built" or v.precision != "int8" or not v.accuracy:
            continue
        key = (v.backend, v.preset, json.dumps(v.accuracy, sort_keys=True, default=str),
               tuple(v.per_image_agreement))
        if key in seen:
            v.notes.append(f"every accuracy number is identical to {seen[key]}'s: the two settings gave the same "
                           "quantized model (compare their scales)")
        else:
            seen[key] = v.name


# ------------------------------------------------------------------------------------------------------------ cost
def _measure_cost(variants: list[Variant], frame: np.ndarray, options: CostOptions, progress: bool) -> None:
    from runtimes import open_runtime
    from sdk.timing import measure_latency, probe_load_and_memory, throughput_fps
    from sdk.core.preprocess import network_size, preprocess

    timed = [v for v in variants if v.status == "built" and v.latency_runtime]
    for v in variants:
        if v.status == "built":
            v.cost["artifact_bytes"] = sum(int(p.stat().st_size) for p in v.latency_path.iterdir() if p.is_file())
            if not v.latency_runtime:
                v.cost["latency_note"] = v.latency_note
    if not timed:
        return
    from sdk.timing import other_load

    gc.collect()
    busy = other_load(options.settle_s) if options.settle_s > 0 else None
    hw = frame.shape[:2]
    runtimes: dict[str, Any] = {}
    feeds: dict[str, dict] = {}
    feeds_n: dict[str, dict] = {}
    try:
        for v in timed:
            rt = open_runtime(v.latency_path, str(v.latency_runtime), **v.runtime_options)
            runtimes[v.name] = rt
            spec = rt.manifest.preprocess
            for store, n in ((feeds, 1), (feeds_n, options.batch)):
                f = {"pixel_values": preprocess([frame] * n, spec)}
                if "output_size" in rt.input_names:
                    f["output_size"] = np.asarray(hw, np.int64)
                store[v.name] = f
            v.cost["runtime"] = rt.describe()
            v.cost["network_hw"] = list(network_size(spec, hw))
        fns = {name: rt.infer for name, rt in runtimes.items()}
        if progress:
            print(f"latency: {len(fns)} variants alternating, {options.repeats} runs at batch 1, "
                  f"{max(3, options.repeats // 4)} at batch {options.batch}", flush=True)
        one = measure_latency(fns, feeds.__getitem__, options.repeats, warmup=options.warmup,
                              pause_s=options.pause_s)
        many = measure_latency(fns, feeds_n.__getitem__, max(3, options.repeats // 4), warmup=1,
                               pause_s=options.pause_s)
    finally:
        for rt in runtimes.values():
            rt.close()
    for v in timed:
        v.cost["other_load_before_timing"] = busy
        v.cost.update(latency_ms=one[v.name], batch=options.batch, batch_latency_ms=many[v.name],
                      throughput_fps={"1": throughput_fps(one[v.name], 1),
                                      str(options.batch): throughput_fps(many[v.name], options.batch)})
        if options.memory:
            try:
                v.cost.update(probe_load_and_memory(v.latency_path, str(v.latency_runtime),
                                                    v.runtime_options, input_hw=tuple(v.cost["network_hw"]),
                                                    output_hw=hw, batches=(1, options.batch)))
            except SegEdgeError as exc:
                v.cost["memory_note"] = str(exc)


# -------------------------------------------------------------------------------------------------- recommendation
def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the points (latency, quality) that no other point beats on both (lower latency, higher quality);
    sorted by latency."""
    front = []
    for name, (lat, q) in points.items():
        dominated = any((l2 <= lat and q2 >= q) and (l2 < lat or q2 > q) for n2, (l2, q2) in points.items()
                        if n2 != name)
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: points[n][0])


def recommend(variants: list[Variant], *, max_drop: float, labelled: bool, reference_name: str | None) -> dict:
    """The fastest variant (latency p50) whose mIoU drop (labelled) or pixel disagreement with FP32 (unlabelled)
    is at most ``max_drop`` points; with why the faster ones were passed over."""
    key = "drop_points" if labelled else "disagreement_points"
    criterion = (f"mIoU drop vs FP32 <= {max_drop:g} points" if labelled else
                 f"pixels disagreeing with FP32 <= {max_drop:g}% (unlabelled set: agreement, not mIoU)")
    timed = sorted((v for v in variants if v.status == "built" and "latency_ms" in v.cost),
                   key=lambda v: v.cost["latency_ms"]["p50_ms"])
    ok = [v for v in timed if v.accuracy.get(key, float("inf")) <= max_drop + 1e-9]
    out: dict[str, Any] = {"criterion": criterion, "max_drop_points": max_drop, "metric": key}
    if not ok:
        out.update(variant=None, reason="no measured variant meets the criterion")
        return out
    best = ok[0]
    ref = next((v for v in variants if v.name == reference_name and "latency_ms" in v.cost), None)
    p50 = best.cost["latency_ms"]["p50_ms"]
    out.update(variant=best.name, command=best.command, run_with=best.run_with, latency_p50_ms=p50,
               value_points=best.accuracy[key],
               speedup_vs_fp32=(ref.cost["latency_ms"]["p50_ms"] / p50) if ref else None,
               passed_over=[{"variant": v.name, "latency_p50_ms": v.cost["latency_ms"]["p50_ms"],
                             key: v.accuracy.get(key)} for v in timed if v.cost["latency_ms"]["p50_ms"] < p50],
               not_timed=[{"variant": v.name, key: v.accuracy.get(key), "why": v.cost.get("latency_note")}
                          for v in variants if v.status == "built" and "latency_ms" not in v.cost])
    close = [v.name for v in ok[1:] if v.cost["latency_ms"]["p50_ms"] <= 1.05 * p50]
    if close:
        out["within_5_percent"] = close
    return out


def _choose_int8(variants: list[Variant], recommendation: dict, key: str) -> Variant | None:
    """The INT8 variant the pictures compare with FP32: the recommended one if INT8, else the most accurate."""
    built = [v for v in variants if v.status == "built" and v.precision == "int8" and v.accuracy]
    rec = next((v for v in built if v.name == recommendation.get("variant")), None)
    return rec or (min(built, key=lambda v: (v.accuracy.get(key, 0.0), v.name)) if built else None)


# ----------------------------------------------------------------------------------------------------- the report
def _eval_items(eval_set: str | Path, split: str, samples: int) -> tuple[list, dict]:
    """(image, label or None) pairs and a description."""
    from calibration.datasets import is_labelled_set, open_labelled_set
    from calibration.sets import IMAGE_SUFFIXES, VIDEO_SUFFIXES, load_calibration_set

    path = Path(eval_set)
    if is_labelled_set(path, split):
        data = open_labelled_set(path, split)
        pairs = data.pairs()
        pick = np.linspace(0, len(pairs) - 1, samples).round().astype(int) if 0 < samples < len(pairs) else None
        items = list(data)
        if pick is not None:
            items = [items[i] for i in sorted(set(pick.tolist()))]
        kind = type(data).__name__
        split_kind = kind in ("CamVid", "Cityscapes")
        return items, {"labelled": True, "path": str(path), "kind": kind, "split": split if split_kind else None,
                       "images": len(items), "of": len(pairs),
                       "class_names": getattr(data, "class_names", None)}
    unlabelled = (path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())) or \
        path.suffix.lower() in VIDEO_SUFFIXES | {".txt"}
    if not unlabelled:
        raise InputError(f"evaluation set {path}: expected a CamVid root with {split}.txt, a Cityscapes root, an "
                         "ADE20K or images/ + labels/ folder (labelled), or a folder of images, a video or a .txt "
                         "list (unlabelled: agreement with FP32 only)")
    calib = load_calibration_set(path, num_samples=samples, seed=0)
    return [(f, None) for f in calib.frames], {"labelled": False, "path": str(path), "kind": "unlabelled",
                                                "images": len(calib), "description": calib.description}


def make_report(checkpoint: str | Path, output: str | Path, *, calib: str | Path, eval_set: str | Path,
                backends=BACKENDS, precisions=PRECISIONS, methods=METHODS, presets=("default",),
                max_drop: float = 0.5, tune: str | Path | None = None, eval_split: str = "test",
                eval_samples: int = 0, num_samples: int = 300, seed: int = 0,
                size_hw: tuple[int, int] | None = None, corruptions=(), severity: int = 3,
                corruption_samples: int = 0, cost: CostOptions = CostOptions(), examples: int = 3,
                progress: bool = True) -> dict:
    """Build the grid from ``checkpoint`` (or an FP32 ONNX artifact folder), measure it, recommend; writes
    ``output``/report.{json,md,html} and ``output``/artifacts/. Returns the report (the JSON's content)."""
    from calibration.corruptions import check_corruptions
    from calibration.sets import load_calibration_set
    from sdk.core.manifest import read_manifest
    from sdk.core.preprocess import network_size

    t_start = time.perf_counter()
    phases: dict[str, float] = {}
    for what, given, allowed in (("backends", backends, BACKENDS), ("precisions", precisions, PRECISIONS),
                                 ("methods", methods, METHODS), ("presets", presets, PRESETS)):
        bad = [g for g in given if g not in allowed]
        if bad or not given:
            raise InputError(f"{what}: expected a non-empty list from {list(allowed)}, got {list(given)}")
    corruptions = check_corruptions(corruptions, severity)
    if max_drop < 0:
        raise InputError(f"max_drop: expected >= 0 mIoU points, got {max_drop}")
    out = Path(output)
    artifacts = out / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    source = Path(checkpoint)

    items, eval_info = _eval_items(eval_set, eval_split, eval_samples)
    if "max-drop" in presets:
        if tune is None and not eval_info["labelled"]:
            raise InputError("presets max-drop: needs a labelled set to tune on; give tune= (--tune) when the "
                             "evaluation set is unlabelled")
        tune = tune if tune is not None else eval_set
    t = time.perf_counter()
    source_is_artifact = (source / "model.json").is_file()
    if source_is_artifact:
        fp32 = portable = source
        m = read_manifest(fp32)
        if m.format != "onnx" or m.precision != "fp32":
            raise InputError(f"{source}: expected a checkpoint or an FP32 ONNX artifact, got {m.format} {m.precision}")
        if size_hw is not None:
            raise InputError("size_hw: give it with a checkpoint; an FP32 artifact keeps the size it was exported at")
    else:
        from converters.onnx_export import export_onnx

        # ONNX Runtime's variants (and the reference) from its own graph; OpenVINO's and TensorRT's from the portable
        fp32 = export_onnx(source, artifacts / "ort-fp32", size_hw=size_hw, graph="onnxruntime", progress=False)
        portable = fp32
        if set(backends) - {"onnxruntime"}:
            portable = export_onnx(source, artifacts / "fp32-portable", size_hw=size_hw, progress=False)
    export_seconds = time.perf_counter() - t
    manifest = read_manifest(fp32)
    names = manifest.class_names
    if eval_info["labelled"] and eval_info.get("class_names") and len(eval_info["class_names"]) != len(names):
        raise LabelsError(f"evaluation set has {len(eval_info['class_names'])} classes but the model has "
                          f"{len(names)}. Evaluate with a dataset of the model's classes.")
    calib_set = load_calibration_set(calib, num_samples=num_samples, seed=seed)
    frame = items[0][0]
    latency_hw = network_size(manifest.preprocess, frame.shape[:2])
    tune_data = None
    if "max-drop" in presets:
        from calibration.datasets import open_labelled_set

        tune_data = list(open_labelled_set(tune if tune is not None else eval_set))
    ctx = _Context(source=source, source_is_artifact=source_is_artifact, fp32=fp32, portable=portable,
                   artifacts=artifacts, calib=calib_set, calib_arg=str(calib), num_samples=num_samples, seed=seed,
                   size_hw=size_hw,
                   ov_size_hw=tuple(manifest.preprocess.size_hw or frame.shape[:2]),
                   tune_arg=str(tune) if tune is not None else None, tune_data=tune_data, max_drop=max_drop,
                   latency_hw=latency_hw, frame_hw=frame.shape[:2], batch=cost.batch, progress=False)
    variants, skipped = plan_variants(
        backends, precisions, methods, presets,
        openvino=_openvino_status() if "openvino" in backends else ("not requested", []),
        tensorrt_gpu=_tensorrt_gpu_status() if "tensorrt" in backends else "not requested")
    phases["prepare_s"] = time.perf_counter() - t_start

    t = time.perf_counter()
    shared = {"export_seconds": None if source_is_artifact else export_seconds}
    for v in variants:
        if progress:
            print(f"build {v.name} ...", flush=True)
        try:
            _build_variant(v, ctx, shared)
        except (SegEdgeError, MissingDependencyError) as exc:
            v.status, v.error = "failed", f"{type(exc).__name__}: {exc}"
            print(f"build {v.name} FAILED: {v.error}", flush=True)
    phases["build_s"] = time.perf_counter() - t

    t = time.perf_counter()
    corruption_items = items
    if corruptions and 0 < corruption_samples < len(items):
        corruption_items = [items[i] for i in np.linspace(0, len(items) - 1, corruption_samples).round().astype(int)]
    ref = _evaluate(variants, fp32, items, corruption_items, corruptions, severity, names, progress)
    phases["evaluate_s"] = time.perf_counter() - t
    _note_identical(variants)

    t = time.perf_counter()
    _measure_cost(variants, frame, cost, progress)
    phases["cost_s"] = time.perf_counter() - t

    labelled = eval_info["labelled"]
    key = "drop_points" if labelled else "disagreement_points"
    reference_name = next((v.name for v in variants if v.backend == "onnxruntime" and v.precision == "fp32"), None)
    rec = recommend(variants, max_drop=max_drop, labelled=labelled, reference_name=reference_name)
    quality = "miou" if labelled else "agreement"
    front = pareto_front({v.name: (v.cost["latency_ms"]["p50_ms"], v.accuracy[quality]) for v in variants
                          if "latency_ms" in v.cost and quality in v.accuracy})
    chosen = _choose_int8(variants, rec, key)
    example_frames = []
    if chosen is not None and examples > 0:
        example_frames = _examples(chosen, fp32, items, examples)

    report = {
        "schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": {"path": str(source), "is_fp32_artifact": source_is_artifact, **manifest.source},
        "model": {"variant": manifest.architecture.get("variant"), "class_names": names,
                  "preprocess": manifest.preprocess.to_dict()},
        "calibration": {"source": str(calib), "description": calib_set.description,
                        "fingerprint": calib_set.fingerprint, "frames": len(calib_set), "seed": seed},
        "evaluation": {**{k: v for k, v in eval_info.items() if k != "class_names"},
                       "reference": "FP32 ONNX artifact in ONNX Runtime", "reference_artifact": str(fp32),
                       "reference_metrics": ref,
                       "corruptions": list(corruptions), "corruption_severity": severity if corruptions else None,
                       "corruption_images": len(corruption_items) if corruptions else 0},
        "tuning": {"path": ctx.tune_arg, "images": len(tune_data),
                   "same_as_evaluation": Path(str(ctx.tune_arg)) == Path(eval_set)
                   and (eval_info.get("kind") != "CamVid" or eval_split == "val")}
        if tune_data is not None else None,
        "grid": {"backends": list(backends), "precisions": list(precisions), "methods": list(methods),
                 "presets": list(presets)},
        "latency_input": {"frame_hw": list(frame.shape[:2]), "options": dataclasses.asdict(cost),
                          "what": "preprocessed frame -> inference -> full-resolution mask (model only, "
                                  "preprocessing excluded)"},
        "environment": _environment(),
        "variants": [{**v.to_dict(), "pareto": v.name in front} for v in variants],
        "skipped": skipped, "pareto_front": front, "recommendation": rec,
        "pictures_int8_variant": chosen.name if chosen else None,
        "examples": [{"index": e["index"], "agreement": e["agreement"], "why": e["why"]} for e in example_frames],
        "phases_seconds": {**phases, "total_s": time.perf_counter() - t_start},
    }
    from calibration.report_render import write_report

    report["files"] = {k: str(p) for k, p in write_report(report, out, example_frames, manifest).items()}
    return report


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
                        "agreement": float(np.mean(a == b)), "variant": chosen.name})
    return out
