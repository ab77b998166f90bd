"""The report's accuracy pass: the evaluation items, the FP32 reference's masks, and every built variant scored with
``calibration.evaluate.evaluate`` against the labels (mIoU, per-class IoU, pixel accuracy) and the reference's masks
(pixel agreement; the only number on an unlabelled set), optionally under corruptions (``calibration.corruptions``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from calibration.report.plan import Accuracy, Variant
from sdk.core.errors import InputError


def eval_items(eval_set: str | Path, split: str, samples: int) -> tuple[list, dict]:
    """(image, label or None) pairs and a description."""
    from calibration.datasets import is_labelled_set, open_labelled_set
    from calibration.sets import load_calibration_set
    from sdk.core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    path = Path(eval_set)
    if is_labelled_set(path, split):
        data = open_labelled_set(path, split)
        pairs = data.pairs()
        pick = np.linspace(0, len(pairs) - 1, samples).round().astype(int) if 0 < samples < len(pairs) else None
        items = list(data)
        if pick is not None:
            items = [items[i] for i in sorted(set(pick.tolist()))]
        kind = type(data).__name__
        split_kind = kind in ("CamVid", "Cityscapes")
        return items, {"labelled": True, "path": str(path), "kind": kind, "split": split if split_kind else None,
                       "images": len(items), "of": len(pairs),
                       "class_names": getattr(data, "class_names", None)}
    unlabelled = (path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())) or \
        path.suffix.lower() in VIDEO_SUFFIXES | {".txt"}
    if not unlabelled:
        raise InputError(f"evaluation set {path}: expected a CamVid root with {split}.txt, a Cityscapes root, an "
                         "ADE20K or images/ + labels/ folder (labelled), or a folder of images, a video or a .txt "
                         "list (unlabelled: agreement with FP32 only)")
    # samples 0 (--eval-samples' default): every frame the source has
    calib = load_calibration_set(path, num_samples=samples if samples > 0 else 10**9, seed=0)
    return [(f, None) for f in calib.frames], {"labelled": False, "path": str(path), "kind": "unlabelled",
                                                "images": len(calib), "description": calib.description}


def _score(seg, items: list, ref_masks, names: list[str], *, corruption: str | None, severity: int,
           progress: bool, desc: str):
    """``evaluate`` over items; returns (Accuracy, the EvalResult). ref_masks None: this is the reference (its
    masks are kept, its agreement is 1)."""
    from calibration.corruptions import corrupt
    from calibration.datasets import IGNORE_INDEX
    from calibration.evaluate import evaluate

    transform = (lambda image, i: corrupt(image, corruption, severity, seed=i)) if corruption else None
    t = time.perf_counter()
    r = evaluate(seg, items, class_names=names, ignore_index=IGNORE_INDEX, reference_masks=ref_masks,
                 transform=transform, keep_masks=ref_masks is None, progress=False)
    acc = Accuracy(images=r.images, agreement=r.agreement if ref_masks is not None else 1.0, miou=r.miou,
                   pixel_accuracy=r.pixel_accuracy, iou_per_class=r.iou_per_class)
    if progress:
        score = [f"mIoU {100 * acc.miou:.2f}"] if acc.miou is not None else []
        if ref_masks is not None:
            score.append(f"agreement with FP32 {100 * acc.agreement:.2f}%")
        print(f"evaluate {desc}: {', '.join(score) or 'reference masks'} over {len(items)} images in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
    return acc, r


def evaluate_all(variants: list[Variant], reference: Path, items: list, corruption_items: list, corruptions,
                 severity: int, names: list[str], progress: bool) -> Accuracy:
    """Reference (FP32 ONNX in ONNX Runtime) first, then every built variant; fills ``v.accuracy`` and
    ``v.corruptions``. Returns the reference's accuracy."""
    from sdk.segmenter import Segmenter

    opts = dict(severity=severity, progress=progress)
    with Segmenter.from_artifact(reference, runtime="onnxruntime") as seg:
        ref, ref_run = _score(seg, items, None, names, corruption=None, desc="reference", **opts)
        ref_corrupt = {c: _score(seg, corruption_items, None, names, corruption=c, desc=f"reference {c}", **opts)
                       for c in corruptions}
    for v in variants:
        if v.status != "built":
            continue
        if v.backend == "onnxruntime" and v.precision == "fp32" and v.artifact == reference:
            v.accuracy = Accuracy(**{**ref.__dict__})
            v.per_image_agreement = [1.0] * len(items)
            v.corruptions = {c: Accuracy(**{**ref_corrupt[c][0].__dict__}) for c in corruptions}
        else:
            with Segmenter.from_artifact(v.path, runtime=v.runtime, **v.runtime_options) as seg:
                v.accuracy, run = _score(seg, items, ref_run.masks, names, corruption=None, desc=v.name, **opts)
                v.per_image_agreement = run.per_image_agreement
                v.accuracy.runtime = seg.runtime.describe()
                for c in corruptions:
                    v.corruptions[c] = _score(seg, corruption_items, ref_corrupt[c][1].masks, names, corruption=c,
                                              desc=f"{v.name} {c}", **opts)[0]
        v.accuracy.compare_with(ref)
        for c in corruptions:
            v.corruptions[c].compare_with(ref_corrupt[c][0])
    return ref


def note_identical(variants: list[Variant]) -> None:
    """Flag INT8 variants of one backend whose every number equals another's: different settings that made the
    same model (e.g. a calibration method that fell back to another's ranges) are worth a look."""
    seen: dict[tuple, str] = {}
    for v in variants:
        if v.status != "built" or v.precision != "int8" or not v.accuracy:
            continue
        key = (v.backend, v.preset, json.dumps(v.accuracy.to_dict(), sort_keys=True, default=str),
               tuple(v.per_image_agreement))
        if key in seen:
            v.notes.append(f"every accuracy number is identical to {seen[key]}'s: the two settings gave the same "
                           "quantized model (compare their scales)")
        else:
            seen[key] = v.name
