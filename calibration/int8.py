"""``calibration.quantize``: the one public way to make an INT8 artifact. ``segedge quantize``, ``segedge report``
and the benchmarks call it, so what is measured is what ships.

It holds every decision, and checks every option before any work: the graph form (ONNX Runtime gets the
``onnxruntime`` graph from a checkpoint, OpenVINO and TensorRT the portable one), the static size (OpenVINO: ``size_hw``,
else the artifact's, else the calibration frames' own when they share one), the target CPU class and the recipe it
gets (``sdk.core.cpu``: 7-bit weights where u8 x s8 products saturate: ONNX Runtime ``reduce_range``, NNCF
``overflow_fix``; the TensorRT Q/DQ target is a GPU recipe and ignores the CPU), the calibration method, and the
accuracy-aware route (``eval_set`` + ``max_drop``), or the latency-aware one (``latency_aware``: INT8 only in the
regions where it is faster on this machine, within ``max_drop``; ``calibration.latency_aware``). Some calibration
frames are held out (not calibrated on): the INT8 masks' agreement with the FP32 model on them, measured on this
machine, is recorded with the machine's ISA, and a few of them with their FP32 masks ship inside the artifact
(``reference/``) for ``segedge verify``.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from calibration import latency_aware as la
from calibration.quantize_ort import DEFAULT_METHODS, METHODS
from calibration.sets import CalibrationSet, load_calibration_set
from sdk.core.cpu import host_isa, resolve_target_cpu, saturates
from sdk.core.errors import InputError, SegEdgeError
from sdk.core.manifest import MANIFEST_NAME, Manifest, read_manifest, require_portable_graph
from sdk.core.preprocess import check_size_hw
from sdk.core.records import (MIN_AGREEMENT, AccuracyAwareRecord, CalibrationRecord, HeldOutAccuracy,
                              QuantizationRecord, ReferenceRecord, SpeedRecord, TargetCpuRecord)
from sdk.core.result import pixel_agreement
from sdk.core.staging import check_output_folder, repoint, staged_folder

log = logging.getLogger("segedge")

BACKENDS = ("onnxruntime", "openvino", "tensorrt")
FEW_FRAMES = 32  # fewer calibration frames than this get a warning
REFERENCE_DIR = "reference"


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What ``quantize`` will do, decided from the options alone (before loading or exporting anything)."""

    backend: str
    graph: str  # the FP32 graph form the backend quantizes
    target_cpu: str  # a CPU class, or "gpu" for the TensorRT Q/DQ target
    recipe: str  # the switch the target gets: "reduce_range", "overflow_fix", or "8-bit weights"
    method: str | None  # ONNX Runtime calibrator; None for NNCF (its own range estimation)
    accuracy_aware: bool
    latency_aware: bool = False  # the float regions chosen by timing here, within max_drop (not accuracy_aware)
    float_precision: str = "fp32"  # TensorRT Q/DQ target: the layers outside the Q/DQ pairs ("fp16" for strongly typed)


@dataclass(frozen=True, kw_only=True)
class QuantizeResult:
    """The INT8 artifact and what was measured about it (the same records its manifest holds)."""

    artifact: Path
    plan: Plan
    calibration: CalibrationRecord | None  # None: latency-aware found the float artifact faster (no INT8)
    accuracy: HeldOutAccuracy
    accuracy_aware: AccuracyAwareRecord | None
    notes: list[str] = field(default_factory=list)
    below_min: float | None = None  # the minimum it is under (kept with keep_below_min), else None
    speed: SpeedRecord | None = None  # INT8 vs FP32 timed here (speed_check), else None
    latency_aware: la.LatencyAwareResult | None = None  # the search's verdict (latency_aware), else None

    def next_command(self) -> str:
        """What to run next, as ``segedge quantize`` prints it after "next: "."""
        if self.latency_aware is not None and self.latency_aware.winner != "int8":  # float: nothing to verify
            return f"segedge predict {self.artifact} IMAGE_OR_FOLDER --output masks/"
        if self.plan.backend == "tensorrt":
            return (f"on the device, segedge build {self.artifact} --output {self.artifact}-engine --int8, then "
                    f"segedge verify {self.artifact}-engine")
        return (f"segedge predict {self.artifact} IMAGE_OR_FOLDER --output masks/   (on another machine: segedge "
                f"verify {self.artifact})")


def plan(*, backend: str, target_cpu: str = "auto", method: str | None = None, keep_float: tuple[str, ...] = (),
         eval_set=None, max_drop: float | None = None, size_hw: tuple[int, int] | None = None,
         float_precision: str = "fp32", latency_aware: bool = False) -> Plan:
    """Check the options against each other and decide graph, target, recipe and method; raises InputError."""
    if backend not in BACKENDS:
        raise InputError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if float_precision not in ("fp32", "fp16") or (float_precision == "fp16" and backend != "tensorrt"):
        raise InputError(f"float_precision (--float): expected fp32, or fp16 with --backend tensorrt (for TensorRT "
                         f"10/11 strongly typed builds), got {float_precision!r} with --backend {backend}")
    if (eval_set is None) != (max_drop is None):
        raise InputError("eval_set and max_drop go together (--eval, --max-drop): give both for accuracy-aware "
                         "quantization, or neither")
    if max_drop is not None and max_drop < 0:
        raise InputError(f"max_drop: expected >= 0 mIoU points, got {max_drop}")
    if latency_aware:
        la.check_options(backend=backend, eval_data=eval_set, max_drop=max_drop)
        if keep_float:
            raise InputError("keep_float and latency_aware contradict (--keep-float, --latency-aware): the "
                             "latency-aware search chooses what stays float; give one of them")
    for pattern in keep_float:  # regexes: a typo is refused here, not after the calibration pass
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise InputError(f"keep_float {pattern!r} (--keep-float): not a regular expression ({exc}); escape "
                             "literal characters such as ( [ . with a backslash") from None
    if keep_float and max_drop is not None:
        raise InputError("keep_float and max_drop contradict (--keep-float, --max-drop): max_drop chooses what "
                         "stays float; give one of them")
    if size_hw is not None:
        check_size_hw(size_hw)
    if method is not None and method not in METHODS:
        raise InputError(f"method: expected one of {METHODS}, got {method!r}")
    if backend == "openvino" and method is not None:
        raise InputError(f"method {method!r}: --backend openvino calibrates with NNCF's own range estimation; "
                         "leave --method out (it picks ONNX Runtime's calibrator)")
    if backend == "tensorrt":
        if target_cpu != "auto":
            raise InputError(f"target_cpu {target_cpu!r}: the TensorRT Q/DQ model runs on the GPU (symmetric int8, "
                             "nothing saturates); leave --target-cpu out for --backend tensorrt")
        return Plan(backend=backend, graph="portable", target_cpu="gpu", recipe="8-bit weights",
                    method=method or DEFAULT_METHODS["tensorrt"], accuracy_aware=max_drop is not None,
                    float_precision=float_precision)
    cpu = resolve_target_cpu(target_cpu)
    switch = ("reduce_range" if backend == "onnxruntime" else "overflow_fix") if saturates(cpu) else "8-bit weights"
    return Plan(backend=backend, graph="onnxruntime" if backend == "onnxruntime" else "portable", target_cpu=cpu,
                recipe=switch, method=(method or DEFAULT_METHODS["onnxruntime"]) if backend == "onnxruntime" else None,
                accuracy_aware=max_drop is not None and not latency_aware, latency_aware=latency_aware)


def split_holdout(calib: CalibrationSet, holdout: int | None) -> tuple[CalibrationSet, list[np.ndarray]]:
    """(frames to calibrate on, held-out frames): every k-th frame is held out. holdout None: an eighth, 1..8."""
    n = len(calib)
    count = min(8, max(1, n // 8)) if holdout is None and n >= 2 else (holdout or 0)
    if count < 0 or count >= n:
        raise InputError(f"holdout: expected 0..{n - 1} frames (the calibration set has {n}), got {count}")
    if count == 0:
        return calib, []
    held = set(np.linspace(0, n - 1, count + 2)[1:-1].round().astype(int).tolist())
    if len(held) < count:  # too many to keep the ends out (15 of 16): exactly ``count``, evenly spread
        held = set(((np.arange(count) + 0.5) * n / count).astype(int).tolist())
    kept = calib.frames.take(i for i in range(n) if i not in held)  # a view: frames stay unread (sets.Frames)
    return (dataclasses.replace(calib, frames=kept, description=f"{calib.description}, {len(held)} held out"),
            [calib.frames[i] for i in sorted(held)])


def static_size_hw(manifest: Manifest, frames: list[np.ndarray], size_hw: tuple[int, int] | None
                   ) -> tuple[tuple[int, int], str | None]:
    """The one static size rule (OpenVINO INT8, the report's float IR): ``size_hw``, else the artifact's network size,
    else the frames' own when they share one. Returns (size, a note to print when it came from the frames)."""
    if size_hw:
        return (int(size_hw[0]), int(size_hw[1])), None
    if manifest.preprocess.size_hw:
        return tuple(manifest.preprocess.size_hw), None  # type: ignore[return-value]
    from sdk.core.preprocess import network_size

    # the network input each frame runs at (aspect "pad": padded to the stride, as inference pads it)
    shapes = {network_size(manifest.preprocess, f.shape[:2]) for f in frames}
    if len(shapes) != 1:
        raise InputError(f"static size: OpenVINO INT8 is calibrated at one resolution, and the calibration frames "
                         f"run at {len(shapes)} network sizes (e.g. {sorted(shapes)[:3]}); give --size H W (size_hw=(H, "
                         "W) in Python): your camera's frame size, or the network size you deploy at")
    hw = shapes.pop()
    padded = " padded to a multiple of 32 (--aspect pad)" if manifest.preprocess.aspect == "pad" else ""
    return hw, (f"static size {hw[0]}x{hw[1]}, the calibration frames' own{padded} (this model's preprocessing does "
                "not resize); give --size H W for another")


def _fp32_artifact(checkpoint: Path, out: Path, p: Plan, size_hw, labels, progress: bool) -> tuple[Path, list[str]]:
    """The FP32 ONNX artifact to quantize: the one given (its graph checked), or an export of the checkpoint."""
    if (checkpoint / MANIFEST_NAME).is_file():
        m = read_manifest(checkpoint)
        if m.format != "onnx" or m.precision != "fp32":
            raise InputError(f"artifact {checkpoint}: expected an FP32 ONNX artifact (segedge export) or a "
                             f"checkpoint, got {m.format} {m.precision}")
        if p.backend != "onnxruntime":
            require_portable_graph(m, what=f"artifact {checkpoint}", reader="only ONNX Runtime runs",
                                   fix=f"For --backend {p.backend} export with --graph portable, or pass the checkpoint",
                                   error=InputError)
        if size_hw is not None and p.backend != "openvino":
            raise InputError(f"size_hw: an FP32 artifact keeps the size it was exported at ({m.preprocess.size_hw}); "
                             "give --size with a checkpoint")
        notes = []
        if p.backend == "onnxruntime" and m.graph == "portable":
            notes.append(f"{checkpoint} is a portable graph; for ONNX Runtime, INT8 from a --graph onnxruntime "
                         "export runs faster (segedge export CHECKPOINT --graph onnxruntime, or pass the checkpoint)")
        return checkpoint, notes
    if not checkpoint.exists():
        raise InputError(f"checkpoint {checkpoint}: no such file or folder; expected a checkpoint or an FP32 "
                         "artifact folder (segedge export)")
    from converters.onnx_export import export_onnx

    export_size = tuple(size_hw) if size_hw and p.backend != "openvino" else None
    return export_onnx(checkpoint, out / "fp32", size_hw=export_size, graph=p.graph, class_names=labels,
                       progress=progress), []


def quantize(checkpoint: str | Path, output: str | Path, *, backend: str, calib: str | Path | CalibrationSet |
             Iterable[np.ndarray], num_samples: int = 300, seed: int = 0, target_cpu: str = "auto",
             method: str | None = None, size_hw: tuple[int, int] | None = None, keep_float: Iterable[str] = (),
             eval_set: str | Path | list | None = None, max_drop: float | None = None, labels: list[str] | None = None,
             holdout: int | None = None, reference_frames: int | None = None, calib_memory_mib: int = 2048,
             float_precision: str = "fp32", min_agreement: float | None = None, keep_below_min: bool = False,
             speed_check: bool = False, latency_aware: bool | la.LatencyAwareOptions = False, overwrite: bool = False,
             progress: bool = True) -> QuantizeResult:
    """Checkpoint (any layout) or FP32 ONNX artifact -> INT8 artifact in ``output``; see the module docstring.

    calib: a folder / video / .txt list (``num_samples`` frames, ``seed``), a ``CalibrationSet`` or RGB arrays.
    target_cpu: "auto" (this machine's class) or one of ``sdk.core.cpu.CPU_CLASSES``. size_hw: (H, W) network input.
    eval_set: a labelled set (path or (image, label) pairs) for max_drop (mIoU points). holdout: calibration frames
    set aside to measure agreement (None: an eighth, 1..8); reference_frames of them ship in the artifact (None: all,
    so the shipped frames are the held-out frames and ``segedge verify`` checks the very figure quantize printed).
    calib_memory_mib: bound on what the histogram calibrators (entropy, percentile) hold at once.
    float_precision: backend "tensorrt" only: "fp16" writes the layers outside the Q/DQ pairs in FP16 (for TensorRT
    10/11 strongly typed builds); "fp32" (default) leaves them to ``segedge build --int8``, which sets FP16 itself.
    min_agreement: the rule ``segedge verify`` applies (a fraction; the CLI's default ``MIN_AGREEMENT``): a held-out
    agreement under it raises ``BelowMinimumError`` and the artifact is not written, unless ``keep_below_min``
    (then it is written and ``QuantizeResult.below_min`` says so). None (the Python default): no minimum.
    speed_check: time the INT8 artifact against its FP32 here, each runtime alone (seconds;
    ``calibration.int8_speed``), record both in the manifest and in ``QuantizeResult.speed`` (``segedge quantize``
    does; off by default in Python, where the report and the benchmarks time every variant themselves).
    latency_aware: True or ``LatencyAwareOptions``: with ``eval_set`` + ``max_drop`` (ONNX Runtime, OpenVINO), INT8
    only in the regions that run faster here, within ``max_drop``; the float artifact itself when no INT8 is faster
    (``QuantizeResult.latency_aware`` says which and why). Its own side-by-side timing stands in for speed_check.
    output: written whole (``sdk.core.staging``): a failure or Ctrl-C part-way leaves an earlier artifact there as
    it was; a folder holding other files is refused unless ``overwrite``. From a checkpoint, the FP32 export it
    quantizes is kept inside, in ``output/fp32``.
    """
    keep_float = tuple(keep_float)
    if not isinstance(latency_aware, (bool, la.LatencyAwareOptions)):
        raise InputError(f"latency_aware: expected True, False or a LatencyAwareOptions, got {latency_aware!r}")
    la_options = la.LatencyAwareOptions() if latency_aware is True else latency_aware or None
    p = plan(backend=backend, target_cpu=target_cpu, method=method, keep_float=keep_float, eval_set=eval_set,
             max_drop=max_drop, size_hw=size_hw, float_precision=float_precision,
             latency_aware=la_options is not None)
    source, out = Path(checkpoint), Path(output)
    if out.resolve() == source.resolve():
        raise InputError(f"output: expected a folder other than the source {source}")
    if reference_frames is not None and not 0 <= reference_frames <= 16:
        raise InputError(f"reference_frames: expected None (all held-out frames) or 0..16, got {reference_frames}")
    if min_agreement is not None and not 0 < min_agreement <= 1:
        raise InputError(f"min_agreement (--min-agreement): expected a fraction in (0, 1], got {min_agreement}")
    check_output_folder(out, overwrite=overwrite, sources=(source,))
    if p.backend == "openvino":  # the extra checked before the export; and imported now, as importing nncf resets
        from sdk.core.errors import require  # its logger to INFO: quiet_toolkits' level then holds (18 INFO lines)

        require("openvino")
        require("nncf")
    calib_set = calib if isinstance(calib, CalibrationSet) else load_calibration_set(
        calib, num_samples=num_samples, seed=seed)
    eval_data = None
    if eval_set is not None:
        from calibration.datasets import open_labelled_set

        eval_data = list(open_labelled_set(eval_set)) if isinstance(eval_set, (str, Path)) else list(eval_set)
    notes: list[str] = []
    with staged_folder(out, overwrite=overwrite, sources=(source,)) as stage:  # moved in whole at the end
        fp32, more = _fp32_artifact(source, stage, p, size_hw, labels, progress)
        notes += more
        static = None
        if p.backend == "openvino":  # from every frame: the held-out ones run at this size too
            static, note = static_size_hw(read_manifest(fp32), calib_set.frames, size_hw)
            notes += [note] if note else []
        calib_set, held = split_holdout(calib_set, holdout)
        if len(calib_set) < FEW_FRAMES:  # a warning (stderr), not a note
            log.warning("calibration: only %d calibration frames (fewer than %d): INT8 ranges from so few frames "
                        "are noisy; give more with --num-samples or a larger --calib", len(calib_set), FEW_FRAMES)
        art, searched = _make(p, fp32, calib_set, stage, size_hw=static, keep_float=keep_float, eval_data=eval_data,
                              max_drop=max_drop, calib_memory_mib=calib_memory_mib, progress=progress,
                              latency_aware=la_options, build_options=dict(target_cpu=target_cpu, method=method))
        if searched is None or (searched.winner == "int8" and held):
            accuracy = _record(art, fp32, p, calib_set, held, reference_frames, shown_as=out / art.relative_to(stage))
        else:  # the float artifact won (nothing INT8 to compare), or no frames were held out
            accuracy = HeldOutAccuracy(frames=0, agreement=None, runtime="none (no held-out frames)",
                                       machine=host_isa())
        below = min_agreement is not None and accuracy.agreement is not None and accuracy.agreement < min_agreement
        if below and not keep_below_min:
            raise BelowMinimumError(below_min_message(accuracy, min_agreement, out, written=False))
        speed = None
        if speed_check and searched is None:
            from calibration import int8_speed

            frame_hw = (held[0] if held else calib_set.frames[0]).shape[:2]
            shown = out.resolve() / fp32.relative_to(stage) if fp32.is_relative_to(stage) else fp32
            speed = int8_speed.measure_speed(art, fp32, frame_hw=frame_hw, fp32_shown=shown)
            if speed is not None:
                int8_speed.attach_speed(art, speed)
        repoint(stage, stage, out.resolve())  # paths recorded inside (the FP32 source under fp32/) name the output
    art = out / art.relative_to(stage)
    if searched is not None:  # its artifact was the staging folder
        searched = dataclasses.replace(searched, artifact=art)
    return QuantizeResult(artifact=art, plan=p, calibration=CalibrationRecord.read(read_manifest(art)),
                          accuracy=accuracy, accuracy_aware=AccuracyAwareRecord.read(read_manifest(art)), notes=notes,
                          below_min=min_agreement if below else None, speed=speed, latency_aware=searched)


class BelowMinimumError(SegEdgeError):
    """The INT8 artifact's held-out agreement with FP32 is under the minimum ``segedge verify`` applies."""


def below_min_message(accuracy: HeldOutAccuracy, min_agreement: float, out: Path, *, written: bool) -> str:
    """The one message for an artifact under the minimum: the figure, the rule, what to do."""
    frames = f"{accuracy.frames} held-out frame{'s' if accuracy.frames != 1 else ''}"
    head = (f"INT8 held-out agreement with FP32 {100 * accuracy.agreement:.2f}% on {frames} "
            f"is under the {100 * min_agreement:.2f}% minimum (--min-agreement, the rule segedge verify applies)")
    todo = ("more or other calibration frames (--num-samples, a longer or more varied --calib), accuracy-aware "
            "quantization (--eval LABELLED --max-drop POINTS), or a float region (--keep-float REGEX)")
    if written:
        return f"{head}; kept in {out} as asked (--keep-below-min): segedge verify will fail it. To do better: {todo}"
    return (f"{head}: {out} was not written (an earlier artifact there is unchanged). Try {todo}; or keep it anyway "
            "with --keep-below-min")


def _make(p: Plan, fp32: Path, calib: CalibrationSet, out: Path, *, size_hw, keep_float, eval_data, max_drop,
          calib_memory_mib: int, progress: bool, latency_aware: la.LatencyAwareOptions | None,
          build_options: dict) -> tuple[Path, la.LatencyAwareResult | None]:
    """(the artifact written in ``out``, the latency-aware search's result or None). The latency-aware route's trials
    and its choice are INT8 artifacts built by ``quantize`` with the same options, some regions float, no frames held
    out; otherwise the backend's quantizer runs once."""
    if latency_aware is not None:
        def build(keep: tuple[str, ...], where: Path, frames: CalibrationSet) -> Path:
            return quantize(fp32, where, backend=p.backend, calib=frames, size_hw=size_hw, keep_float=keep,
                            holdout=0, reference_frames=0, calib_memory_mib=calib_memory_mib, progress=False,
                            **build_options).artifact

        return out, la.latency_aware_search(fp32, out, build=build, backend=p.backend, calib=calib,
                                            eval_data=eval_data or [], max_drop=float(max_drop), size_hw=size_hw,
                                            options=latency_aware, progress=progress)
    from calibration.quiet import quiet_toolkits

    with quiet_toolkits():  # NNCF's INFO lines, ONNX Runtime's calibrator prints (segedge -v keeps them)
        return _run_backend(p, fp32, calib, out, size_hw=size_hw, keep_float=keep_float, eval_data=eval_data,
                            max_drop=max_drop, calib_memory_mib=calib_memory_mib, progress=progress), None


def _run_backend(p: Plan, fp32: Path, calib: CalibrationSet, out: Path, *, size_hw, keep_float, eval_data,
                 max_drop, calib_memory_mib: int, progress: bool) -> Path:
    if p.backend == "openvino":
        from calibration.quantize_openvino import quantize_openvino

        return quantize_openvino(fp32, calib, out, size_hw=size_hw, ignored_scope=keep_float or None,
                                 eval_data=eval_data, max_drop=max_drop, progress=progress,
                                 overflow_fix="enable" if p.recipe == "overflow_fix" else None)
    recipe = dict(target=p.backend, method=p.method, reduce_range=p.recipe == "reduce_range")
    if p.backend == "tensorrt":
        recipe["float_precision"] = p.float_precision
    if p.accuracy_aware:
        from calibration.sensitivity import quantize_with_max_drop

        return quantize_with_max_drop(fp32, calib, eval_data or [], out, max_drop=float(max_drop),
                                      progress=progress, **recipe)
    from calibration.quantize_ort import quantize_onnxruntime

    return quantize_onnxruntime(fp32, calib, out, keep_float=keep_float, calib_memory_mib=calib_memory_mib,
                                progress=progress, **recipe)


def fp32_masks(fp32: Path, spec, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The FP32 ONNX artifact's masks on ``frames`` (ONNX Runtime), through ``spec`` (the INT8 artifact's
    preprocessing, which may be static where the FP32 graph is dynamic) and the inference path's own
    postprocessing (``sdk.segmenter.infer_masks``: un-letterboxed, un-padded), so they compare with ``int8_masks``."""
    from runtimes import open_runtime
    from sdk.segmenter import infer_masks

    with open_runtime(fp32, "onnxruntime") as rt:
        return [infer_masks(rt.infer, rt.manifest, [frame], spec=spec, what=f"FP32 artifact {fp32}")[0]
                for frame in frames]


def int8_masks(artifact: Path, frames: list[np.ndarray], runtime: str = "auto") -> tuple[list[np.ndarray], str]:
    """The artifact's masks on ``frames`` with the runtime it opens on here, and that runtime's description."""
    from sdk.segmenter import Segmenter

    with Segmenter.from_artifact(artifact, runtime=runtime) as seg:
        return [seg(f).mask for f in frames], seg.runtime.describe()


def _record(art: Path, fp32: Path, p: Plan, calib: CalibrationSet, held: list[np.ndarray], keep: int | None, *,
            shown_as: Path | None = None) -> HeldOutAccuracy:
    """Measure held-out agreement here, write the reference frames, and attach the records to the manifest.
    shown_as: the path the artifact will have (``art`` is its staging folder): the one a warning names."""
    import cv2

    from sdk.core import cpu

    host = host_isa()
    target = TargetCpuRecord(cpu=p.target_cpu, recipe=p.recipe, calibrated_on=host)
    target.attach(read_manifest(art)).write(art)  # before measuring: opening it here knows what it was made for
    manifest = read_manifest(art)
    shown = shown_as or art
    cpu.warn_if_saturating(manifest, shown)  # measured on a CPU class it was not made for: said once, by its name
    cpu._warned.add(str(art))  # (not again under the staging folder's name when it is opened to measure)
    value, runtime, ref = None, "none (no held-out frames)", None
    keep = len(held) if keep is None else keep
    if held:
        want = fp32_masks(fp32, manifest.preprocess, held)
        got, runtime = int8_masks(art, held)
        value = pixel_agreement(got, want)
        if keep:
            (art / REFERENCE_DIR).mkdir(exist_ok=True)
            names = []
            for i, (frame, mask) in enumerate(zip(held[:keep], want[:keep])):
                cv2.imwrite(str(art / REFERENCE_DIR / f"frame_{i:02d}.png"), frame[..., ::-1])
                cv2.imwrite(str(art / REFERENCE_DIR / f"mask_{i:02d}.png"), mask)
                names.append(f"{i:02d}")
            ref = ReferenceRecord(folder=REFERENCE_DIR, frames=[f"frame_{n}.png" for n in names],
                                  masks=[f"mask_{n}.png" for n in names],
                                  agreement=pixel_agreement(got[:keep], want[:keep]), machine=host)
    accuracy = HeldOutAccuracy(frames=len(held), agreement=value, runtime=runtime, machine=host)
    records = [CalibrationRecord(description=calib.description, fingerprint=calib.fingerprint, frames=len(calib),
                                 held_out=len(held)),
               target, accuracy]
    for record in records + ([ref] if ref else []):
        manifest = record.attach(manifest)
    manifest.write(art)
    return accuracy


__all__ = ["quantize", "plan", "MIN_AGREEMENT", "BelowMinimumError", "Plan", "QuantizeResult", "static_size_hw",
           "split_holdout", "QuantizationRecord"]
