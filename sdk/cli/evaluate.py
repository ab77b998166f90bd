"""``segedge eval``: mIoU of an artifact on a labelled set."""
from __future__ import annotations

import argparse
import json
from contextlib import ExitStack
from pathlib import Path

from sdk.cli.devices import add_device_argument


def format_eval(title: str, result) -> str:
    """mIoU, pixel accuracy and agreement in percent with one decimal (as the report gives them), then a per-class
    IoU table; classes absent from both labels and predictions show "n/a"."""
    agree = f", agreement with reference {100 * result.agreement:.2f}%" if result.agreement is not None else ""
    if result.extra.get("miou_drop_points") is not None:
        agree += (f"; reference mIoU {100 * result.extra['reference_miou']:.1f}%, drop "
                  f"{result.extra['miou_drop_points']:.2f} points")
    lines = [f"{title}: mIoU {100 * result.miou:.1f}%, pixel accuracy {100 * result.pixel_accuracy:.1f}% over "
             f"{result.images} images{agree}"]
    width = max((len(n) for n in result.iou_per_class), default=5)
    for name, iou in result.iou_per_class.items():
        lines.append(f"  {name:<{width}}  {'n/a' if iou is None else f'{100 * iou:5.1f}%'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from calibration.datasets import open_labelled_set
    from calibration.evaluate import evaluate
    from sdk.core.staging import check_output_file
    from sdk.segmenter import Segmenter

    if args.json:
        check_output_file(args.json, "--json")
    data = open_labelled_set(args.data, args.split, ignore_index=args.ignore_index)
    with Segmenter.from_artifact(args.artifact, runtime=args.runtime, device=args.device) as seg, \
            ExitStack() as stack:
        ref = stack.enter_context(Segmenter.from_artifact(args.reference)) if args.reference else None
        result = evaluate(seg, data, class_names=getattr(data, "class_names", None), reference=ref, total=len(data),
                          progress=not args.quiet)
    kind = type(data).__name__ if not hasattr(data, "layout") else data.layout
    summary = {"artifact": str(args.artifact), "dataset": kind.lower(), "path": str(args.data), "split": args.split,
               **result.to_dict()}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    print(format_eval(f"{kind} {args.split}", result))
    return 0


def add_parser(sub) -> None:
    """Register ``segedge eval``. Imports nothing heavy."""
    p = sub.add_parser("eval", help="mIoU of an artifact on a labelled set (CamVid, Cityscapes, ADE20K, generic)")
    p.add_argument("artifact")
    p.add_argument("--data", "--camvid", dest="data", required=True,
                   help="labelled set: CamVid root (SegNet layout), Cityscapes root (leftImg8bit/ + gtFine/), "
                        "ADE20K folder (images/ + annotations/), or images/ + labels/")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--ignore-index", type=int, metavar="ID",
                   help="images/ + labels/ sets: the void label id, skipped in the scores (default 255)")
    p.add_argument("--reference", help="another artifact (e.g. FP32) to measure pixel agreement with")
    p.add_argument("--runtime", default="auto", help="auto, onnxruntime, openvino or tensorrt")
    add_device_argument(p)
    p.add_argument("--json", help="write the result here")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)
