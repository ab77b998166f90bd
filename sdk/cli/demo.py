"""``segedge demo``: the main job on the bundled default."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sdk.cli.predict import predict_files

DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "segformer-b0-camvid-demo"
DEMO_IMAGES = Path("../shared/data/camvid")


def run(args: argparse.Namespace) -> int:
    """The main job on the bundled default: export the demo checkpoint, segment CamVid images, score them."""
    from calibration.datasets import CamVid
    from calibration.evaluate import evaluate
    from converters.onnx_export import export_onnx
    from sdk.segmenter import Segmenter

    out = Path(args.output)
    artifact = export_onnx(args.checkpoint, out / "artifact", progress=not args.quiet)
    data = CamVid(args.camvid, args.split)
    written = predict_files(artifact, [str(p) for p, _ in data.pairs()[: args.save]], out / "masks")
    with Segmenter.from_artifact(artifact) as seg:
        result = evaluate(seg, data, total=len(data), progress=not args.quiet)
    summary = {"artifact": str(artifact), "split": args.split, **result.to_dict()}
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"demo: CamVid {args.split} mIoU {result.miou:.4f} over {result.images} images (ONNX Runtime); "
          f"{len(written)} masks + overlays in {out / 'masks'}; summary in {out / 'demo.json'}")
    print(f"next: segedge predict {artifact} YOUR_IMAGES --output masks/")
    return 0


def add_parser(sub) -> None:
    """Register ``segedge demo``. Imports nothing heavy."""
    p = sub.add_parser("demo", help="offline demo on the bundled checkpoint: export, predict, score on CamVid")
    p.add_argument("--checkpoint", default=str(DEMO_CHECKPOINT), help="default: the bundled demo model")
    p.add_argument("--camvid", default=str(DEMO_IMAGES), help="CamVid root in the SegNet layout")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--save", type=int, default=5, help="how many masks + overlays to write")
    p.add_argument("--output", default="out/demo")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)
