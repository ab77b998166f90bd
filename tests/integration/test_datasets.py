"""Labelled-set layouts: Cityscapes label ids -> train ids, ADE20K split folders, and the errors for broken sets."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from calibration.datasets import Cityscapes, LabelledFolder, is_labelled_set, open_labelled_set
from sdk.core.errors import InputError


def _cityscapes(root, split="val", city="lindau", labels=True):
    img_dir, lab_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
    img_dir.mkdir(parents=True)
    lab_dir.mkdir(parents=True)
    label = np.array([[7, 8, 26, 33], [0, 1, 255, 24]], np.uint8)  # road, sidewalk, car, bicycle / void ids
    rng = np.random.default_rng(0)
    for i in range(2):
        name = f"{city}_00000{i}_000019"
        cv2.imwrite(str(img_dir / f"{name}_leftImg8bit.png"), rng.integers(0, 255, (2, 4, 3), dtype=np.uint8))
        if labels:
            cv2.imwrite(str(lab_dir / f"{name}_gtFine_labelIds.png"), label)
            cv2.imwrite(str(lab_dir / f"{name}_gtFine_color.png"), np.zeros((2, 4, 3), np.uint8))
    return root


def test_cityscapes_label_ids_become_train_ids(tmp_path):
    data = open_labelled_set(_cityscapes(tmp_path), "val")
    assert isinstance(data, Cityscapes) and len(data) == 2 and len(data.class_names) == 19
    assert is_labelled_set(tmp_path, "val")
    image, label = next(iter(data))
    assert image.shape == (2, 4, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(label, [[0, 1, 13, 18], [255, 255, 255, 11]])  # void ids and 255 -> ignore


def test_cityscapes_missing_label_and_missing_split(tmp_path):
    _cityscapes(tmp_path, labels=False)
    with pytest.raises(InputError, match="have no label.*gtFine_labelIds.png"):
        Cityscapes(tmp_path, "val").pairs()
    with pytest.raises(InputError, match="leftImg8bit/train"):
        Cityscapes(tmp_path, "train").pairs()


def test_ade20k_split_folders(tmp_path):
    for sub in ("training", "validation"):
        (tmp_path / "images" / sub).mkdir(parents=True)
        (tmp_path / "annotations" / sub).mkdir(parents=True)
    (tmp_path / "objectInfo150.csv").write_text("Idx,Ratio,Train,Val,Name\n")
    cv2.imwrite(str(tmp_path / "images" / "validation" / "ADE_val_00000001.jpg"), np.zeros((3, 5, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "annotations" / "validation" / "ADE_val_00000001.png"),
                np.array([[0, 1, 150, 3, 3]] * 3, np.uint8))
    data = open_labelled_set(tmp_path, "val")
    assert isinstance(data, LabelledFolder) and data.layout == "ade20k" and data.subdir == "validation"
    (image, label), = list(data)
    np.testing.assert_array_equal(label[0], [255, 0, 149, 2, 2])
    with pytest.raises(InputError, match="no image in images/"):
        open_labelled_set(tmp_path, "train").pairs()


def test_unreadable_label_says_what_was_expected(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((2, 2, 3), np.uint8))
    (tmp_path / "labels" / "a.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="expected a single-channel PNG"):
        list(open_labelled_set(tmp_path))
