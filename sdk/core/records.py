"""Typed records inside a manifest's ``extra``: what calibrated an INT8 artifact, for which CPU, how accurate it
measured, and which frames travel with it. Code reads them through these classes, never by string keys.

Each record is a frozen, keyword-only dataclass stored as a JSON object under its ``KEY`` in ``Manifest.extra``:
``Record.read(manifest)`` -> the record or None; ``record.attach(manifest)`` -> a new manifest with it set.
Leaf module: standard library + sdk.core.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from sdk.core.errors import ArtifactError

R = TypeVar("R", bound="_Record")


@dataclass(frozen=True, kw_only=True)
class _Record:
    KEY: ClassVar[str] = ""

    @classmethod
    def read(cls: type[R], manifest) -> R | None:
        raw = manifest.extra.get(cls.KEY)
        if raw is None:
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in raw.items() if k in names})
        except TypeError as exc:
            raise ArtifactError(f"manifest extra.{cls.KEY}: malformed ({exc}). Re-quantize the artifact.") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def attach(self, manifest):
        """A copy of ``manifest`` (a ``sdk.core.manifest.Manifest``) with this record in ``extra``."""
        return dataclasses.replace(manifest, extra={**manifest.extra, self.KEY: self.to_dict()})


@dataclass(frozen=True, kw_only=True)
class CalibrationRecord(_Record):
    """The frames that calibrated the model (``held_out`` more were set aside to measure it)."""

    KEY: ClassVar[str] = "calibration"
    description: str
    fingerprint: str
    frames: int
    held_out: int = 0


@dataclass(frozen=True, kw_only=True)
class TargetCpuRecord(_Record):
    """The CPU class the INT8 recipe was made for (``sdk.core.cpu.CPU_CLASSES``, or "gpu" for TensorRT Q/DQ), the
    recipe switch that class got, and the ISA of the machine that calibrated it (``sdk.core.cpu.host_isa()``)."""

    KEY: ClassVar[str] = "target_cpu"
    cpu: str
    recipe: str
    calibrated_on: dict = field(default_factory=dict)


# held-out agreement with FP32 under this fails segedge verify, and segedge quantize (its --min-agreement default)
MIN_AGREEMENT = 0.98


@dataclass(frozen=True, kw_only=True)
class HeldOutAccuracy(_Record):
    """Pixel agreement of the INT8 masks with the FP32 model's on calibration frames that were not used to
    calibrate, measured on ``machine`` (its ISA) with ``runtime``."""

    KEY: ClassVar[str] = "accuracy"
    frames: int
    agreement: float | None
    runtime: str
    machine: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ReferenceRecord(_Record):
    """Frames (RGB PNG) and the FP32 model's masks on them (class-id PNG) shipped in ``folder`` inside the artifact,
    and the INT8 agreement measured on exactly those frames when it was made: what ``segedge verify`` checks."""

    KEY: ClassVar[str] = "reference"
    folder: str
    frames: list[str]
    masks: list[str]
    agreement: float
    machine: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AccuracyAwareRecord(_Record):
    """Accuracy-aware quantization: the allowed and the measured mIoU drop (points) and what stayed float
    (ONNX Runtime: ``float_blocks``; NNCF: ``reverted_to_float``)."""

    KEY: ClassVar[str] = "accuracy_aware"
    max_drop_points: float
    measured_drop_points: float
    max_drop_met: bool
    fp32_miou: float | None = None
    eval_images: int = 0
    float_blocks: list[str] = field(default_factory=list)
    reverted_to_float: list[str] = field(default_factory=list)

    @property
    def float_layers(self) -> list[str]:
        return self.float_blocks or self.reverted_to_float


@dataclass(frozen=True, kw_only=True)
class QuantizationRecord(_Record):
    """How the model was quantized: the tool, the target ("onnxruntime", "tensorrt"; absent for NNCF) and method."""

    KEY: ClassVar[str] = "quantization"
    tool: str
    target: str | None = None
    method: str | None = None
    seconds: float | None = None

    @property
    def recipe(self) -> str:
        return self.method or self.tool.split()[0]


@dataclass(frozen=True, kw_only=True)
class SpeedRecord(_Record):
    """INT8 against its FP32 on ``machine`` (its ISA): p50 ms of the model call at ``size_hw`` on each runtime that
    runs each (timed as ``isolation`` says), the fastest of each, ``speedup`` = fastest FP32 / fastest INT8, and
    whether INT8 beat FP32 by the ``margin`` it needs to be worth its accuracy cost. ``fp32_artifact``: the FP32
    model it was timed against; ``fp32_run``: how the fastest FP32 ran (the runtime's description)."""

    KEY: ClassVar[str] = "speed"
    size_hw: list[int]
    int8_ms: dict[str, float]
    fp32_ms: dict[str, float]
    int8_runtime: str
    fp32_runtime: str
    speedup: float
    margin: float
    int8_faster: bool
    fp32_artifact: str = ""
    fp32_run: str = ""
    isolation: str = ""
    machine: dict = field(default_factory=dict)


__all__ = ["CalibrationRecord", "TargetCpuRecord", "HeldOutAccuracy", "ReferenceRecord", "AccuracyAwareRecord",
           "QuantizationRecord", "SpeedRecord"]
