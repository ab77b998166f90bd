"""Evaluate a ``Segmenter`` (any artifact, any runtime) on a labelled set: mIoU, per-class IoU, pixel accuracy,
and optionally agreement with a reference segmenter (e.g. the FP32 artifact)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from calibration.metrics import ConfusionMatrix
from sdk.core.errors import LabelsError


@dataclass
class EvalResult:
    miou: float
    pixel_accuracy: float
    iou_per_class: dict[str, float | None]
    images: int
    agreement: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"miou": self.miou, "pixel_accuracy": self.pixel_accuracy, "iou_per_class": self.iou_per_class,
                "images": self.images, "agreement": self.agreement, **self.extra}


def evaluate(segmenter, data: Iterable[tuple[np.ndarray, np.ndarray]], *, class_names: list[str] | None = None,
             ignore_index: int = 255, reference=None, progress: bool = True, total: int | None = None) -> EvalResult:
    """data yields (RGB uint8 image (H, W, 3), label (H, W) with ``ignore_index`` for void).

    reference: another segmenter; if given, the result carries the pixel agreement between the two.
    """
    from tqdm import tqdm

    names = class_names or segmenter.class_names
    if len(names) != len(segmenter.class_names):
        raise LabelsError(f"evaluation set has {len(names)} classes but the model has "
                          f"{len(segmenter.class_names)}. Evaluate with a dataset of the model's classes.")
    cm = ConfusionMatrix(len(names), ignore_index)
    same = pixels = images = 0
    for image, label in tqdm(data, desc="evaluate", unit="img", total=total, disable=not progress):
        mask = segmenter(image).mask
        cm.update(mask, label)
        if reference is not None:
            same += int((mask == reference(image).mask).sum())
            pixels += mask.size
        images += 1
    iou = cm.iou()
    return EvalResult(miou=cm.miou(), pixel_accuracy=cm.pixel_accuracy(),
                      iou_per_class={n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou)},
                      images=images, agreement=(same / pixels) if reference is not None else None)
