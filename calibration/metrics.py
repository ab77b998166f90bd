"""Segmentation metrics from a confusion matrix: mIoU, per-class IoU, pixel accuracy. (Pixel agreement between
two masks, which converters need too: ``sdk.core.result.pixel_agreement``.)

Leaf module (numpy only). Classes absent from both prediction and ground truth over the whole set get IoU NaN and
are left out of the mean, as mmseg and the Cityscapes scripts do.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sdk.core.errors import InputError


@dataclass
class ConfusionMatrix:
    """Accumulates ``counts[true, pred]`` over many (pred, label) pairs; pixels equal to ``ignore_index`` skip."""

    num_classes: int
    ignore_index: int | None = 255
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        if pred.shape != label.shape:
            raise InputError(f"prediction and label: expected the same shape, got {pred.shape} and {label.shape}")
        valid = np.ones(label.shape, bool) if self.ignore_index is None else label != self.ignore_index
        t = label[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        if t.size and (t.min() < 0 or t.max() >= self.num_classes):
            raise InputError(f"label: expected class ids in [0, {self.num_classes}) or ignore index "
                             f"{self.ignore_index}, got values in [{t.min()}, {t.max()}]. Map the dataset's ids "
                             "to train ids, or name the void label: segedge eval --ignore-index N (an images/ + labels/ set).")
        if p.size and (p.min() < 0 or p.max() >= self.num_classes):
            raise InputError(f"prediction: expected class ids in [0, {self.num_classes}), got max {p.max()}")
        self.counts += np.bincount(t * self.num_classes + p, minlength=self.num_classes ** 2).reshape(
            self.num_classes, self.num_classes)

    def iou(self) -> np.ndarray:
        tp = np.diag(self.counts).astype(np.float64)
        union = self.counts.sum(0) + self.counts.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.counts.sum()
        return float(np.diag(self.counts).sum() / total) if total else float("nan")
