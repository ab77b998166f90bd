"""The report's grid and its typed records: which variants to build (backend x precision x calibration method x
float-layer preset), which cells are skipped and why, what each is built from (``BuildContext``) and what is
measured about it.

A variant's settings are the fields of ``Cell``; its name is built from them (``ort-int8-minmax-maxdrop``). A new
axis (say an input scale) is one more ``Cell`` field whose default means "as before", with a ``tag`` in its metadata
that names non-default values; ``plan_variants`` then takes its values like ``methods``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable

from calibration.quantize_ort import METHODS  # noqa: F401 (the grid's methods axis, calibration.report.METHODS)
from sdk.core.errors import InputError, SegEdgeError, extras_for

BACKENDS = ("onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
PRESETS = ("default", "max-drop", "latency-aware")
DEFAULT_MAX_DROP = 0.5  # mIoU points (or % of pixels disagreeing, unlabelled): the recommendation's default limit
SHORT = {"onnxruntime": "ort", "openvino": "ov", "tensorrt": "trt"}
OV_HINT = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def _tag(fn: Callable[[Any], str]) -> dict:
    return {"tag": fn}


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One point of the grid: what to build. Fields after ``precision`` are axes; each one's ``tag`` gives the name
    part for a value ("" for the default)."""

    backend: str
    precision: str
    method: str | None = field(default=None, metadata=_tag(lambda m: m if m not in (None, "nncf") else ""))
    preset: str = field(default="default", metadata=_tag(lambda p: {"max-drop": "maxdrop",
                                                                    "latency-aware": "latency"}.get(p, "")))
    # the speed menu's axes (calibration.report.menu): network input as a share of the frame, token merging
    scale: float = field(default=1.0, metadata=_tag(lambda s: "" if s == 1.0 else f"s{s:g}"))
    token_merge: str = field(default="none", metadata=_tag(
        lambda t: "" if t == "none" else "tm" + t.replace(":", "-").replace("+", "")))

    @property
    def name(self) -> str:
        parts = [SHORT[self.backend], self.precision]
        for f in dataclasses.fields(self):
            if "tag" in f.metadata:
                parts.append(f.metadata["tag"](getattr(self, f.name)))
        return "-".join(p for p in parts if p)


@dataclass(kw_only=True)
class Accuracy:
    """Accuracy of a variant (or the reference) on the evaluation set. miou, pixel_accuracy, iou_per_class and
    drop_points (vs FP32, in mIoU points) only on a labelled set; agreement: share of pixels equal to FP32's."""

    images: int
    agreement: float
    miou: float | None = None
    pixel_accuracy: float | None = None
    iou_per_class: dict[str, float | None] | None = None
    drop_points: float | None = None
    disagreement_points: float | None = None
    runtime: str | None = None

    def points(self, metric: str) -> float | None:
        """``drop_points`` or ``disagreement_points``: the number the recommendation limits."""
        return {"drop_points": self.drop_points, "disagreement_points": self.disagreement_points}[metric]

    def compare_with(self, reference: "Accuracy") -> None:
        if self.miou is not None and reference.miou is not None:
            self.drop_points = 100 * (reference.miou - self.miou)
        self.disagreement_points = 100 * (1 - self.agreement)

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> "Accuracy | None":
        return cls(**d) if d else None


@dataclass(kw_only=True)
class Cost:
    """What a variant costs. latency_ms / batch_latency_ms: ``sdk.timing.latency_stats`` at batch 1 / ``batch``;
    memory: ``sdk.timing.probe_load_and_memory``'s numbers (load_seconds, peak_rss_mib, ...), flat in the JSON."""

    artifact_bytes: int | None = None
    latency_note: str | None = None
    runtime: str | None = None
    network_hw: list[int] | None = None
    other_load_before_timing: dict | None = None
    latency_ms: dict | None = None
    batch: int | None = None
    batch_latency_ms: dict | None = None
    throughput_fps: dict[str, float] | None = None
    memory: dict = field(default_factory=dict)
    memory_note: str | None = None

    @property
    def p50_ms(self) -> float | None:
        return self.latency_ms["p50_ms"] if self.latency_ms else None

    def to_dict(self) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "memory" and v is not None}
        if self.latency_ms is not None:
            d["other_load_before_timing"] = self.other_load_before_timing  # null when not sampled: still a key
        return {**d, **self.memory}

    @classmethod
    def from_dict(cls, d: dict) -> "Cost":
        names = {f.name for f in dataclasses.fields(cls)} - {"memory"}
        return cls(**{k: v for k, v in d.items() if k in names},
                   memory={k: v for k, v in d.items() if k not in names})


@dataclass(kw_only=True)
class Variant:
    """One cell of the grid and everything measured about it (``to_dict`` is its JSON)."""

    name: str
    backend: str
    precision: str
    method: str | None
    preset: str
    runtime: str  # the runtime that measures accuracy
    scale: float = 1.0  # network input / frame size (calibration.speed_menu)
    token_merge: str = "none"  # converters.token_merge spec
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
    accuracy: Accuracy | None = None
    corruptions: dict[str, Accuracy] = field(default_factory=dict)
    cost: Cost = field(default_factory=Cost)
    notes: list[str] = field(default_factory=list)
    per_image_agreement: list[float] = field(default_factory=list)
    pareto: bool = False

    @classmethod
    def of(cls, cell: Cell, **kw) -> "Variant":
        return cls(name=cell.name, backend=cell.backend, precision=cell.precision, method=cell.method,
                   preset=cell.preset, scale=cell.scale, token_merge=cell.token_merge, **kw)

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

    @property
    def timed(self) -> bool:
        return self.status == "built" and self.cost.latency_ms is not None

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "per_image_agreement"}
        for k in ("artifact", "latency_artifact"):
            d[k] = str(d[k]) if d[k] is not None else None
        d["accuracy"] = self.accuracy.to_dict() if self.accuracy else {}
        d["corruptions"] = {c: a.to_dict() for c, a in self.corruptions.items()}
        d["cost"] = self.cost.to_dict()
        d["notes"] = list(self.notes)
        d["runtime_options"] = dict(self.runtime_options)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Variant":
        """The record back from its JSON (``to_dict``), e.g. to render a saved report.json."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("artifact", "latency_artifact"):
            kw[k] = Path(kw[k]) if kw.get(k) else None
        kw["accuracy"] = Accuracy.from_dict(d.get("accuracy") or {})
        kw["corruptions"] = {c: Accuracy(**a) for c, a in (d.get("corruptions") or {}).items()}
        kw["cost"] = Cost.from_dict(d.get("cost") or {})
        return cls(**kw)


@dataclass(kw_only=True)
class BuildContext:
    """What every variant of one report is built from: the sources, the calibration and tuning sets, the sizes.
    ``build`` reads it; ``commands`` writes the command lines from it; a speed-menu point gets a copy whose sources
    are its own exports (``menu.point_context``)."""

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


def presets_and_limit(presets, max_drop: float | None) -> tuple[list[str], float]:
    """The presets and the recommendation's limit from what the user gave (``segedge report --presets/--max-drop``):
    no presets -> "default", plus "max-drop" when a limit is given (giving one asks for the variants that meet it);
    max-drop without a limit is an error (its search needs the drop to meet); no limit -> ``DEFAULT_MAX_DROP``."""
    chosen = list(presets) if presets else (["default", "max-drop"] if max_drop is not None else ["default"])
    if "max-drop" in chosen and max_drop is None:
        raise InputError("--presets max-drop needs --max-drop POINTS (the drop the sensitivity search must meet)")
    return chosen, DEFAULT_MAX_DROP if max_drop is None else max_drop


# ----------------------------------------------------------------------------------------------- what exists here
def openvino_status() -> tuple[str | None, list[str]]:
    """(why OpenVINO is unavailable or None, the CPU's optimization capabilities)."""
    from runtimes import RUNTIMES

    if "openvino" not in RUNTIMES:
        return "runtimes.RUNTIMES has no 'openvino' runtime in this build", []
    if find_spec("openvino") is None:
        return f"openvino is not installed (pip install 'segedge[{extras_for(['openvino'])}]')", []
    import openvino as ov

    return None, list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def tensorrt_gpu_status() -> str | None:
    """Why TensorRT engines cannot be built and timed here (no real TensorRT, no pycuda, no CUDA driver or GPU: checked
    before any variant is built), or None when they can."""
    from runtimes.tensorrt_device import tensorrt_available

    ok, reason = tensorrt_available()
    return None if ok else reason.split(". ")[0]


def ov_float_missing(precision: str, caps) -> str | None:
    """Why OpenVINO's CPU cannot run the float hint ``precision`` ("fp32", "bf16", "fp16") here, or None."""
    if precision != "fp32" and precision.upper() not in caps:
        return f"this CPU has no {precision} arithmetic (OpenVINO CPU capabilities: {', '.join(caps)})"
    return None


def ov_default_float(caps, machine: str | None = None) -> str:
    """The float precision OpenVINO's CPU plugin runs without a hint (its INFERENCE_PRECISION_HINT default), from
    the CPU's capabilities: bf16 where it has bf16 arithmetic (AVX-512 BF16, AMX), f16 on ARM with f16, else f32
    (AVX2; x86 with AVX-512 FP16 still defaults to bf16)."""
    import platform

    if "BF16" in caps:
        return "bf16"
    arm = (machine or platform.machine()).lower() in ("aarch64", "arm64")
    return "fp16" if arm and "FP16" in caps else "fp32"


# ------------------------------------------------------------------------------------------------------------ plan
def _onnxruntime(precision: str, methods, presets, skip) -> list[Variant]:
    if precision == "fp32":
        return [Variant.of(Cell(backend="onnxruntime", precision="fp32"), runtime="onnxruntime",
                           latency_runtime="onnxruntime")]
    if precision in ("fp16", "bf16"):
        skip(f"ONNX Runtime's CPU execution provider has no {precision} kernels for this model; use OpenVINO "
             "bf16/f16 or a TensorRT fp16 engine")
        return []
    return [Variant.of(Cell(backend="onnxruntime", precision="int8", method=m, preset=p), runtime="onnxruntime",
                       latency_runtime="onnxruntime") for m in methods for p in presets
            if p != "latency-aware" or m == "minmax"]  # the latency-aware search calibrates with minmax


def _openvino(precision: str, presets, skip, status: tuple[str | None, list[str]]) -> list[Variant]:
    reason, caps = status
    if reason:
        skip(reason)
        return []
    if precision != "int8":
        missing = ov_float_missing(precision, caps)
        if missing:
            skip(missing)
            return []
        return [Variant.of(Cell(backend="openvino", precision=precision), runtime="openvino",
                           runtime_options={"precision": OV_HINT[precision]}, latency_runtime="openvino")]
    if find_spec("nncf") is None:
        skip(f"nncf is not installed (OpenVINO INT8 is made with NNCF: pip install 'segedge[{extras_for(['nncf'])}]')")
        return []
    return [Variant.of(Cell(backend="openvino", precision="int8", method="nncf", preset=p), runtime="openvino",
                       runtime_options={"precision": None}, latency_runtime="openvino",
                       notes=["float layers at the device's default precision"]) for p in presets]


def _tensorrt(precision: str, methods, presets, skip, gpu: str | None) -> list[Variant]:
    if precision == "bf16":
        skip("TensorRT has no bf16 engine precision here; use fp16")
        return []
    if precision in ("fp32", "fp16"):
        if gpu:
            skip(f"a TensorRT engine is built on a CUDA GPU with TensorRT ({gpu} here); build it on the device "
                 "with segedge build")
            return []
        return [Variant.of(Cell(backend="tensorrt", precision=precision), runtime="tensorrt",
                           latency_runtime="tensorrt")]
    out = []
    if "latency-aware" in presets:
        skip("latency-aware INT8 times each region on this machine; for TensorRT that is the device (segedge build)")
    for m in methods:
        for p in (p for p in presets if p != "latency-aware"):
            v = Variant.of(Cell(backend="tensorrt", precision="int8", method=m, preset=p), runtime="onnxruntime",
                           notes=["Q/DQ ONNX for TensorRT; accuracy measured in ONNX Runtime"])
            if gpu:
                v.latency_note = f"not measured ({gpu})"
            else:
                v.latency_runtime = "tensorrt"
            out.append(v)
    return out


def plan_variants(backends, precisions, methods, presets, *, openvino: tuple[str | None, list[str]],
                  tensorrt_gpu: str | None) -> tuple[list[Variant], list[dict]]:
    """The grid: variants to build, and the cells skipped with the reason (name, reason)."""
    variants: list[Variant] = []
    skipped: list[dict] = []
    for backend in backends:
        for precision in precisions:
            name = f"{SHORT[backend]}-{precision}"

            def skip(reason: str, name: str = name) -> None:
                skipped.append({"name": name, "reason": reason})

            if backend == "onnxruntime":
                variants += _onnxruntime(precision, methods, presets, skip)
            elif backend == "openvino":
                variants += _openvino(precision, presets, skip, openvino)
            else:
                variants += _tensorrt(precision, methods, presets, skip, tensorrt_gpu)
    return variants, skipped
