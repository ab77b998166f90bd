"""Evaluate a ``Segmenter`` (any artifact, any runtime) on a labelled set: mIoU, per-class IoU, pixel accuracy,
and optionally agreement with a reference segmenter (e.g. the FP32 artifact)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from calibration.metrics import ConfusionMatrix
from sdk.core.errors import InputError, LabelsError
from sdk.core.result import agreeing_pixels


@dataclass
class EvalResult:
    """miou, pixel_accuracy and iou_per_class are None on an unlabelled set (every label None): then only the
    agreement with a reference means anything. per_image_agreement and masks are filled when asked for."""

    miou: float | None
    pixel_accuracy: float | None
    iou_per_class: dict[str, float | None] | None
    images: int
    agreement: float | None = None
    extra: dict = field(default_factory=dict)
    per_image_agreement: list[float] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"miou": self.miou, "pixel_accuracy": self.pixel_accuracy, "iou_per_class": self.iou_per_class,
                "images": self.images, "agreement": self.agreement, **self.extra}


def evaluate(segmenter, data: Iterable[tuple[np.ndarray, np.ndarray | None]], *, class_names: list[str] | None = None,
             ignore_index: int = 255, reference=None, reference_masks: list[np.ndarray] | None = None,
             transform: Callable[[np.ndarray, int], np.ndarray] | None = None, keep_masks: bool = False,
             progress: bool = True, total: int | None = None) -> EvalResult:
    """data yields (RGB uint8 image (H, W, 3), label (H, W) with ``ignore_index`` for void, or None: unlabelled).

    reference: another segmenter, or reference_masks: its masks on the same items in order; with either, the result
    carries the pixel agreement (overall and per image). transform(image, index): applied to each image first (e.g.
    a corruption). keep_masks: the result keeps every mask (a reference for later runs).
    """
    from tqdm import tqdm

    if reference is not None and reference_masks is not None:
        raise InputError("evaluate: give reference (a segmenter) or reference_masks, not both")
    names = class_names or segmenter.class_names
    if len(names) != len(segmenter.class_names):
        raise LabelsError(f"evaluation set has {len(names)} classes but the model has "
                          f"{len(segmenter.class_names)}. Evaluate with a dataset of the model's classes.")
    cm = ConfusionMatrix(len(names), ignore_index)
    ref_cm = ConfusionMatrix(len(names), ignore_index)  # the reference's own scores (for the mIoU drop)
    compare = reference is not None or reference_masks is not None
    same = pixels = images = 0
    labelled = False
    result = EvalResult(miou=None, pixel_accuracy=None, iou_per_class=None, images=0)
    for i, (image, label) in enumerate(tqdm(data, desc="evaluate", unit="img", total=total, disable=not progress)):
        if transform is not None:
            image = transform(image, i)
        mask = segmenter(image).mask
        if label is not None:
            cm.update(mask, label)
            labelled = True
        if compare:
            ref = reference(image).mask if reference is not None else reference_masks[i]  # type: ignore[index]
            if label is not None:
                ref_cm.update(ref, label)
            s, n = agreeing_pixels(mask, ref)
            same, pixels = same + s, pixels + n
            result.per_image_agreement.append(s / n)
        if keep_masks:
            result.masks.append(mask)
        images += 1
    result.images = images
    result.agreement = (same / pixels if pixels else float("nan")) if compare else None  # as pixel_agreement
    if labelled:
        iou = cm.iou()
        result.miou, result.pixel_accuracy = cm.miou(), cm.pixel_accuracy()
        result.iou_per_class = {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou)}
        if compare:  # the reference's mIoU and the drop in points: what an INT8 artifact costs on these labels
            result.extra["reference_miou"] = ref_cm.miou()
            result.extra["miou_drop_points"] = 100 * (ref_cm.miou() - result.miou)
    return result
