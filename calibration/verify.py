"""``verify``: run an artifact on the machine at hand against its FP32 reference, and say whether it still holds.

The reference is either another artifact (``reference``: the FP32 ONNX artifact, run in ONNX Runtime here) or the
frames and FP32 masks the INT8 artifact carries (``reference/``, written by ``calibration.quantize``). A TensorRT
engine without its own uses those of the ONNX artifact it was built from (``source.onnx_artifact`` in its
manifest), so ``segedge verify`` after ``segedge build`` on a Jetson checks the engine against the FP32 model.
With ``data`` (a labelled set), mIoU is measured too. It fails when agreement is under ``min_agreement`` or under
the agreement recorded when the artifact was made by more than ``margin_points``. The default margin, 0.3 points,
is under what a CPU class the artifact was not made for costs on the shipped reference frames (B0 on CamVid, 4
frames, AVX2 kernels forced by ``benchmarks/emulated_isa.py``: OpenVINO INT8 made for VNNI 0.47 points under its
recorded value, ONNX Runtime 0.83), while the same frames on the same kind of CPU give the recorded value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.int8 import MIN_AGREEMENT, fp32_masks, int8_masks
from sdk.core.cpu import host_isa
from sdk.core.errors import ArtifactError, InputError
from sdk.core.manifest import Manifest, read_manifest
from sdk.core.preprocess import read_rgb
from sdk.core.records import HeldOutAccuracy, ReferenceRecord
from sdk.core.result import pixel_agreement

MARGIN_POINTS = 0.3  # default --margin-points: see the module docstring


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    """What ``verify`` measured: agreement with the reference on ``frames`` frames, mIoU when labelled data was
    given, the value recorded when the artifact was made, and the verdict with its reasons."""

    artifact: str
    runtime: str
    reference: str  # what the masks were compared with
    frames: int
    agreement: float
    recorded_agreement: float | None
    min_agreement: float
    margin_points: float
    machine: dict
    miou: float | None = None
    reference_miou: float | None = None
    reasons: list[str] = field(default_factory=list)
    held_out_frames: bool = False  # compared on the held-out frames shipped in the artifact (the recorded figure's)

    @property
    def passed(self) -> bool:
        return not self.reasons

    def table(self) -> str:
        """One row per figure, each named by the frames it is on (the figure quantize printed and inspect shows is
        the held-out agreement: on the frames shipped in reference/, which are the held-out frames)."""
        figure = "held-out agreement" if self.held_out_frames else "agreement with FP32"
        rows = [("artifact", self.artifact), ("runtime", self.runtime), ("machine", self.machine.get("class", "?")),
                ("reference", self.reference), ("frames", str(self.frames)),
                (f"{figure} here", f"{100 * self.agreement:.2f}%"),
                (f"{figure} when made" if self.held_out_frames else "held-out agreement when made",
                 "-" if self.recorded_agreement is None else f"{100 * self.recorded_agreement:.2f}%"),
                ("min agreement", f"{100 * self.min_agreement:.2f}%")]
        if self.miou is not None:
            rows.append(("mIoU", f"{100 * self.miou:.2f}"))
        if self.reference_miou is not None:
            rows.append(("FP32 mIoU", f"{100 * self.reference_miou:.2f}"))
        rows.append(("result", "PASS" if self.passed else "FAIL: " + "; ".join(self.reasons)))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def _shipped(artifact: Path, manifest: Manifest) -> tuple[Path, ReferenceRecord] | None:
    """(folder holding the reference frames, their record): the artifact's own, else its ONNX source's (an engine
    built before engines carried their own). The record's files must lie inside that folder (``_reference_files``)."""
    record = ReferenceRecord.read(manifest)
    if record is not None:
        return artifact, record
    source = manifest.source.get("onnx_artifact")
    if source and Path(source).is_dir():
        record = ReferenceRecord.read(read_manifest(source))
        if record is not None:
            return Path(source), record
    return None


def _reference_files(folder: Path, record: ReferenceRecord) -> list[tuple[Path, Path]]:
    """(frame, mask) paths of a reference record, each checked to stay inside ``folder`` (a manifest naming ``../``
    or an absolute path is refused, never followed); a record listing no frames, or unequal frames and masks, is an
    ArtifactError: comparing nothing proves nothing."""
    root = folder.resolve()
    where = f"artifact {folder}: its reference record (model.json extra.reference)"

    def inside(name: object) -> Path:
        if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ArtifactError(f"{where} names {str(name)[:80]!r}; expected a relative path inside the artifact. "
                                "Re-quantize the artifact to rewrite its reference frames")
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            raise ArtifactError(f"{where} names {str(name)[:80]!r}, which leads outside the artifact ({path}). "
                                "Re-quantize the artifact to rewrite its reference frames")
        return path

    inside(record.folder)
    frames, masks = list(record.frames or []), list(record.masks or [])
    if not frames or len(frames) != len(masks):
        raise ArtifactError(f"{where} lists {len(frames)} frames and {len(masks)} masks; expected at least one of "
                            "each, one mask per frame (nothing to compare is not a pass). Re-quantize it, or give "
                            "--reference FP32_ARTIFACT")
    return [(inside(str(Path(record.folder) / f)), inside(str(Path(record.folder) / m))) for f, m in zip(frames, masks)]


def _read_mask(path: Path, shape: tuple[int, int], num_classes: int) -> np.ndarray:
    """A shipped FP32 mask, checked against its frame's size and the artifact's classes: a bad one is blamed on the
    reference, not on the artifact under test."""
    import cv2

    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2:
        raise ArtifactError(f"reference mask {path}: expected a single-channel PNG of class ids; the reference is "
                            "damaged, not the model: re-quantize the artifact to rewrite its reference frames, or "
                            "give --reference FP32_ARTIFACT")
    if mask.shape != tuple(shape) or (mask.size and int(mask.max()) >= num_classes):
        raise ArtifactError(f"reference mask {path}: expected {shape[0]}x{shape[1]} class ids below {num_classes} "
                            f"(its frame's size, the artifact's classes), got {mask.shape[0]}x{mask.shape[1]} with "
                            f"ids up to {int(mask.max()) if mask.size else '-'}; the reference is damaged, not the "
                            "model: re-quantize the artifact to rewrite its reference frames, or give --reference "
                            "FP32_ARTIFACT")
    return mask


def verify(artifact: str | Path, *, reference: str | Path | None = None, data=None,
           min_agreement: float = MIN_AGREEMENT,
           margin_points: float = MARGIN_POINTS, runtime: str = "auto", samples: int = 0, progress: bool = False
           ) -> VerifyReport:
    """Check ``artifact`` here (see the module docstring). data: a labelled set path or (image, label) pairs;
    samples: use at most this many of them (0: all). Returns the report; ``report.passed`` is the verdict."""
    if not 0 < min_agreement <= 1:
        raise InputError(f"min_agreement (--min-agreement): expected a fraction in (0, 1], got {min_agreement}")
    if margin_points < 0:
        raise InputError(f"margin_points (--margin-points): expected >= 0, got {margin_points}")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 0:
        raise InputError(f"samples (--samples): expected an int >= 0 (0: every image of --data), got {samples!r}")
    artifact = Path(artifact)
    manifest = read_manifest(artifact)
    items = None
    if data is not None:
        from calibration.datasets import open_labelled_set

        items = list(open_labelled_set(data)) if isinstance(data, (str, Path)) else list(data)
        items = items[:: max(1, len(items) // samples)][:samples] if samples else items
        if not items:
            raise InputError(f"data {data}: expected labelled (image, label) pairs, got none")
    shipped = _shipped(artifact, manifest)
    files = _reference_files(*shipped) if shipped else None
    # compared on the held-out frames shipped in the artifact: the recorded figure's own frames
    recorded_frames = files is not None and not (reference is not None and items)
    if reference is not None:
        frames = [img for img, _ in items] if items else [read_rgb(f) for f, _ in files] if files else None
        if not frames:
            raise InputError(f"verify {artifact}: with --reference, expected frames to compare on: the artifact's "
                             "reference frames (it has none) or --data LABELLED")
        want = fp32_masks(Path(reference), manifest.preprocess, frames)
        if recorded_frames:
            recorded = shipped[1].agreement
        else:
            recorded = (HeldOutAccuracy.read(manifest) or HeldOutAccuracy(frames=0, agreement=None,
                                                                          runtime="")).agreement
        what = f"{reference} (ONNX Runtime, here)"
    elif files:
        folder, record = shipped
        frames = [read_rgb(f) for f, _ in files]
        want = [_read_mask(m, f.shape[:2], manifest.num_classes) for (_, m), f in zip(files, frames)]
        recorded, what = record.agreement, (f"FP32 masks of the {len(frames)} held-out frames shipped in "
                                            f"{folder / record.folder}")
    else:
        raise InputError(f"verify {artifact}: expected reference masks inside it (made by segedge quantize) or "
                         "--reference FP32_ARTIFACT; it has neither. Pass --reference out/fp32 (segedge export)")
    got, described = int8_masks(artifact, frames, runtime)
    value = pixel_agreement(got, want)
    if not np.isfinite(value):
        raise InputError(f"verify {artifact}: no pixels to compare (agreement undefined); expected frames with "
                         "pixels")
    miou = ref_miou = None
    if items:
        miou, ref_miou = _mious(artifact, reference, items, runtime, progress)
    reasons = []
    if value < min_agreement:
        reasons.append(f"agreement {100 * value:.2f}% < min {100 * min_agreement:.2f}%")
    if recorded is not None and 100 * (recorded - value) > margin_points:
        reasons.append(f"agreement {100 * value:.2f}% is {100 * (recorded - value):.2f} points under the "
                       f"{100 * recorded:.2f}% recorded when it was made (margin {margin_points:g})")
    return VerifyReport(artifact=str(artifact), runtime=described, reference=what, frames=len(frames),
                        agreement=value, recorded_agreement=recorded, min_agreement=min_agreement,
                        margin_points=margin_points, machine=host_isa(), miou=miou, reference_miou=ref_miou,
                        reasons=reasons, held_out_frames=recorded_frames)


def _mious(artifact: Path, reference, items: list, runtime: str, progress: bool) -> tuple[float, float | None]:
    from calibration.evaluate import evaluate
    from sdk.segmenter import Segmenter

    with Segmenter.from_artifact(artifact, runtime=runtime) as seg:
        miou = evaluate(seg, items, progress=progress).miou
    if reference is None:
        return miou, None
    with Segmenter.from_artifact(reference, runtime="onnxruntime") as ref:
        return miou, evaluate(ref, items, progress=progress).miou


__all__ = ["verify", "VerifyReport"]
