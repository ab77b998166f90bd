"""``segedge eval``: mIoU of an artifact on a labelled set."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from calibration.datasets import open_labelled_set
    from calibration.evaluate import evaluate
    from sdk.cli.common import check_output_file
    from sdk.segmenter import Segmenter

    if args.json:
        check_output_file(args.json, "--json")
    data = open_labelled_set(args.data, args.split)
    with Segmenter.from_artifact(args.artifact, runtime=args.runtime) as seg:
        ref = Segmenter.from_artifact(args.reference) if args.reference else None
        result = evaluate(seg, data, class_names=getattr(data, "class_names", None), reference=ref, total=len(data),
                          progress=not args.quiet)
        if ref is not None:
            ref.close()
    kind = type(data).__name__ if not hasattr(data, "layout") else data.layout
    summary = {"artifact": str(args.artifact), "dataset": kind.lower(), "path": str(args.data), "split": args.split,
               **result.to_dict()}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    agree = f", agreement with reference {result.agreement:.4%}" if result.agreement is not None else ""
    print(f"{kind} {args.split}: mIoU {result.miou:.4f}, pixel accuracy {result.pixel_accuracy:.4f} over "
          f"{result.images} images{agree}")
    return 0


def add_parser(sub) -> None:
    """Register ``segedge eval``. Imports nothing heavy."""
    p = sub.add_parser("eval", help="mIoU of an artifact on a labelled set (CamVid, Cityscapes, ADE20K, generic)")
    p.add_argument("artifact")
    p.add_argument("--data", "--camvid", dest="data", required=True,
                   help="labelled set: CamVid root (SegNet layout), Cityscapes root (leftImg8bit/ + gtFine/), "
                        "ADE20K folder (images/ + annotations/), or images/ + labels/")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--reference", help="another artifact (e.g. FP32) to measure pixel agreement with")
    p.add_argument("--runtime", default="auto")
    p.add_argument("--json", help="write the result here")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)
