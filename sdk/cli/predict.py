"""``segedge predict``: segment image files with an artifact (``sdk.predict_files.predict_files``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from sdk.cli.common import positive_int
from sdk.cli.devices import add_device_argument


def run(args: argparse.Namespace) -> int:
    import sys

    from sdk.predict_files import not_images, predict_files

    skipped: list[tuple[Path, str]] = []
    written = predict_files(args.artifact, args.images, args.output, runtime=args.runtime,
                            overlay=not args.no_overlay, batch_size=args.batch_size, device=args.device,
                            strict=args.strict, skipped=skipped)
    for note in not_images(args.images):
        print(f"note: {note}")
    extra = "" if args.no_overlay else " + coloured masks + overlays with a legend"
    print(f"wrote {len(written)} masks (class ids as PNG{extra}) to {args.output}")
    if len(skipped) == 1:  # one line, as every error
        print(f"segedge predict: skipped 1 image: {skipped[0][1]}", file=sys.stderr)
    elif skipped:
        print(f"segedge predict: skipped {len(skipped)} images (the others were segmented; --strict stops at the "
              "first):", file=sys.stderr)
        for _, reason in skipped:
            print(f"  {reason}", file=sys.stderr)
    return 1 if skipped else 0


def add_parser(sub) -> None:
    """Register ``segedge predict``. Imports nothing heavy."""
    p = sub.add_parser("predict", help="segment images with an artifact")
    p.add_argument("artifact")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--output", required=True, help="folder for <name>.png class-id masks and overlays (not an input "
                                                   "folder)")
    p.add_argument("--runtime", default="auto", help="auto, onnxruntime, openvino or tensorrt")
    p.add_argument("--batch-size", type=positive_int, default=1)
    add_device_argument(p)
    p.add_argument("--no-overlay", action="store_true", help="write the class-id PNGs only (no _color, _overlay)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first image that cannot be segmented (default: segment the rest, list what "
                        "was skipped and why, exit 1)")
    p.set_defaults(func=run)
