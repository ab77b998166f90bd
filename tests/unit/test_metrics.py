"""Segmentation metrics on hand-made masks with answers worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.evaluate import evaluate
from calibration.metrics import ConfusionMatrix
from sdk.core.errors import InputError
from sdk.core.result import pixel_agreement

# 3 classes; per class: tp, |label|, |pred| -> IoU = tp / (|label| + |pred| - tp)
LABEL = np.array([[0, 0, 1], [1, 2, 2]], np.uint8)
PRED = np.array([[0, 1, 1], [1, 2, 0]], np.uint8)
# class 0: tp 1, label 2, pred 2 -> 1/3; class 1: tp 2, label 2, pred 3 -> 2/3; class 2: tp 1, label 2, pred 1 -> 1/2


def test_iou_miou_and_pixel_accuracy_by_hand():
    cm = ConfusionMatrix(3)
    cm.update(PRED, LABEL)
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 1 / 2])
    assert cm.miou() == pytest.approx(0.5)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)
    assert cm.counts.sum() == 6
    assert cm.counts[0, 1] == 1 and cm.counts[1, 0] == 0 and cm.counts[2, 0] == 1  # counts[true, pred]


def test_perfect_prediction():
    cm = ConfusionMatrix(3)
    cm.update(LABEL, LABEL)
    assert cm.miou() == 1.0 and cm.pixel_accuracy() == 1.0


def test_ignore_index_pixels_are_skipped_whatever_the_prediction():
    label = LABEL.copy()
    label[0, 1] = 255  # the pixel where pred said 1 and truth said 0
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(PRED, label)
    # class 0: tp 1, label 1, pred 2 -> 1/2; class 1: tp 2, label 2, pred 2 -> 1; class 2 unchanged 1/2
    np.testing.assert_allclose(cm.iou(), [1 / 2, 1.0, 1 / 2])
    assert cm.pixel_accuracy() == pytest.approx(4 / 5)
    assert cm.counts.sum() == 5


def test_class_absent_from_prediction_and_truth_is_nan_and_left_out_of_the_mean():
    cm = ConfusionMatrix(4)  # class 3 never appears
    cm.update(PRED, LABEL)
    iou = cm.iou()
    assert math.isnan(iou[3])
    assert cm.miou() == pytest.approx(0.5)  # the mean of the three present classes, not (0.5 * 3 + 0) / 4


def test_class_only_predicted_counts_as_zero():
    pred = PRED.copy()
    pred[1, 2] = 3  # a false positive of class 3, which the truth never has
    cm = ConfusionMatrix(4)
    cm.update(pred, LABEL)
    iou = cm.iou()
    assert iou[3] == 0.0
    # class 0 loses its false positive at (1, 2): tp 1, label 2, pred 1 -> 1/2
    np.testing.assert_allclose(iou, [1 / 2, 2 / 3, 1 / 2, 0.0])
    assert cm.miou() == pytest.approx((1 / 2 + 2 / 3 + 1 / 2 + 0.0) / 4)


def test_accumulates_over_images_like_one_big_image():
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(PRED, LABEL)
    a.update(LABEL, LABEL)
    b.update(np.concatenate([PRED, LABEL]), np.concatenate([LABEL, LABEL]))
    np.testing.assert_array_equal(a.counts, b.counts)
    assert a.miou() == pytest.approx(b.miou())


def test_nothing_counted_gives_nan():
    cm = ConfusionMatrix(3)
    cm.update(PRED, np.full_like(LABEL, 255))
    assert math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())


def test_bad_inputs_are_errors():
    cm = ConfusionMatrix(3)
    with pytest.raises(InputError, match="same shape"):
        cm.update(PRED, LABEL[:, :2])
    with pytest.raises(InputError, match=r"label: expected class ids in \[0, 3\)"):
        cm.update(PRED, np.full_like(LABEL, 7))
    with pytest.raises(InputError, match="prediction"):
        cm.update(np.full_like(PRED, 5), LABEL)


def test_agreement():
    assert pixel_agreement(PRED, LABEL) == pytest.approx(4 / 6)
    assert pixel_agreement([PRED, PRED], [LABEL, PRED]) == pytest.approx(10 / 12)  # pooled over all pixels
    assert math.isnan(pixel_agreement([], [])) and math.isnan(pixel_agreement(PRED[:0], LABEL[:0]))
    with pytest.raises(InputError):
        pixel_agreement(PRED, LABEL[:1])
    with pytest.raises(InputError, match="same length"):
        pixel_agreement([PRED], [])


class _Fixed:
    """A stand-in segmenter that returns preset masks in order."""

    def __init__(self, masks, names):
        self._masks = iter(masks)
        self.class_names = names

    def __call__(self, image):
        import types

        return types.SimpleNamespace(mask=next(self._masks))


def test_evaluate_reports_absent_classes_as_none_and_agreement():
    image = np.zeros((2, 3, 3), np.uint8)
    names = ["a", "b", "c", "d"]
    seg = _Fixed([PRED, LABEL], names)
    ref = _Fixed([LABEL, LABEL], names)
    r = evaluate(seg, [(image, LABEL), (image, LABEL)], reference=ref, progress=False)
    assert r.images == 2
    assert r.iou_per_class["d"] is None
    assert r.agreement == pytest.approx((4 + 6) / 12)
    cm = ConfusionMatrix(4)
    cm.update(PRED, LABEL)
    cm.update(LABEL, LABEL)
    assert r.miou == pytest.approx(cm.miou())
