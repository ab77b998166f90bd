"""``segedge demo``: the main job on the bundled default, with or without CamVid beside the project.

The bundled SegFormer-B0 is exported to ONNX and run on the fastest runtime here (runtime auto) on CamVid val when
CamVid is found (then it is scored: mIoU, per-class IoU), else on street scenes drawn by ``sdk.cli.demo_scenes``
(then the demo shows what it does: latency, masks and overlays, how much of the drawn layout it recognises). The data
is found and checked before the export, so a wrong ``--camvid`` fails in a second with the fix.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sdk.core.errors import InputError

PROJECT = Path(__file__).resolve().parents[2]
DEMO_CHECKPOINT = PROJECT / "sdk" / "assets" / "segformer-b0-camvid-demo"
# where the project's shared data lives beside a checkout: resolved against the project, not the current folder
DEFAULT_CAMVID = PROJECT.parent / "shared" / "data" / "camvid"
SYNTHETIC_SIZE_HW = (360, 480)  # CamVid's frame size, the bundled model's own


def find_camvid(camvid: str | None, split: str, *, default: Path = DEFAULT_CAMVID) -> Path | None:
    """The CamVid root to score on, or None to run on drawn scenes.

    camvid: a folder the user named (it must hold ``<split>.txt``: an error otherwise, with the fix), "none" for
    drawn scenes, or None for ``default`` when it holds ``<split>.txt``."""
    if camvid is not None and camvid.lower() == "none":
        return None
    if camvid is None:
        return default if (default / f"{split}.txt").is_file() else None
    root = Path(camvid).expanduser()
    if not (root / f"{split}.txt").is_file():
        what = "does not exist" if not root.exists() else f"has no {split}.txt"
        raise InputError(f"--camvid: expected a CamVid root in the SegNet layout ({split}.txt listing image/label "
                         f"pairs), got {root}, which {what}. Pass the folder that holds train.txt/val.txt/test.txt, "
                         "or --camvid none to run on drawn street scenes")
    return root


def run(args: argparse.Namespace) -> int:
    """Find the data, export the demo checkpoint, segment and time frames, score them when labels are real."""
    camvid = find_camvid(args.camvid, args.split)
    if args.save < 0 or args.frames < 1:
        raise InputError(f"--save/--frames: expected --save >= 0 and --frames >= 1, got {args.save} and "
                         f"{args.frames}")

    import cv2

    from calibration.evaluate import evaluate
    from converters.onnx_export import export_onnx
    from sdk.segmenter import Segmenter
    from sdk.timing import latency_stats

    out = Path(args.output)
    masks = out / "masks"
    if camvid is not None:
        from calibration.datasets import CamVid
        from sdk.core.preprocess import read_rgb

        data = CamVid(camvid, args.split)
        frames = [(p.stem, lambda p=p: read_rgb(p)) for p, _ in data.pairs()[: max(args.save, args.frames)]]
    else:
        from sdk.cli.demo_scenes import street_scenes

        drawn = street_scenes(args.frames, SYNTHETIC_SIZE_HW)
        frames = [(f"street_{i:02d}", lambda img=img: img) for i, (img, _) in enumerate(drawn)]
    artifact = export_onnx(args.checkpoint, out / "artifact", progress=not args.quiet)

    summary: dict = {"artifact": str(artifact)}
    with Segmenter.from_artifact(artifact) as seg:
        seg(frames[0][1]())  # warm-up: the first call plans memory
        times_ms, kept = [], []
        for i, (name, load) in enumerate(frames):
            image = load()
            t = time.perf_counter()
            result = seg(image)
            times_ms.append((time.perf_counter() - t) * 1e3)
            if i < args.save:  # written together at the end, replacing the last run's masks whole
                kept.append((name, result.mask, result.colorize(), result.overlay(image, legend=True)))
        lat = latency_stats(times_ms)
        summary["runtime"] = seg.runtime.describe()  # runtime auto: the fastest here (said on stderr when measured)
        summary["latency_ms"] = {k: round(v, 2) for k, v in lat.items() if k != "n"} | {"frames": lat["n"]}
        if camvid is not None:
            score = evaluate(seg, data, total=len(data), progress=not args.quiet)
            summary.update(data=f"CamVid {args.split} ({camvid})", **score.to_dict())
            scored = (f"CamVid {args.split}: mIoU {100 * score.miou:.1f}% over {score.images} images; "
                      + ", ".join(f"{k} {100 * v:.0f}%" for k, v in score.iou_per_class.items() if v is not None))
        else:
            from calibration.metrics import ConfusionMatrix

            cm = ConfusionMatrix(len(seg.class_names), 255)
            for img, layout in drawn:
                cm.update(seg(img).mask, layout)
            summary.update(data=f"{len(drawn)} street scenes drawn by sdk/cli/demo_scenes.py",
                           drawn_layout_pixel_agreement=round(float(cm.pixel_accuracy()), 4))
            why = "--camvid none" if args.camvid else f"no CamVid at {DEFAULT_CAMVID}"
            scored = (f"{why}: ran on {len(drawn)} drawn street scenes (the model knows "
                      f"{100 * cm.pixel_accuracy():.0f}% of their drawn pixels; it was trained on photos). For "
                      "mIoU pass --camvid DIR")
    from sdk.core.staging import staged_folder

    with staged_folder(masks, overwrite=True, what="demo masks") as stage:  # no mix of this run's and the last's
        for name, mask, color, overlay in kept:
            cv2.imwrite(str(stage / f"{name}.png"), mask)
            cv2.imwrite(str(stage / f"{name}_color.png"), color[..., ::-1])
            cv2.imwrite(str(stage / f"{name}_overlay.png"), overlay[..., ::-1])
    written = len(kept)
    (out / "demo.json.tmp").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "demo.json.tmp").replace(out / "demo.json")
    print(f"demo: {scored}")
    print(f"latency ({summary['runtime']}, {SYNTHETIC_SIZE_HW[1]}x{SYNTHETIC_SIZE_HW[0]} frames): p50 "
          f"{lat['p50_ms']:.1f} ms, p90 {lat['p90_ms']:.1f} ms over {lat['n']} frames")
    print(f"wrote {written} masks (class ids, coloured, overlay with a legend) to {masks}; summary in "
          f"{out / 'demo.json'}")
    print(f"next: segedge predict {artifact} YOUR_IMAGES --output masks/")
    return 0


def add_parser(sub) -> None:
    """Register ``segedge demo``. Imports nothing heavy."""
    p = sub.add_parser("demo", help="offline demo on the bundled model: export, segment, time, and score on CamVid "
                                    "if present (else on drawn street scenes)")
    p.add_argument("--checkpoint", default=str(DEMO_CHECKPOINT), help="default: the bundled demo model")
    p.add_argument("--camvid", help=f"CamVid root in the SegNet layout (default: {DEFAULT_CAMVID} if it exists, "
                                    "else drawn street scenes); 'none': drawn scenes")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--frames", type=int, default=8, help="frames to time (drawn scenes when there is no CamVid; default 8)")
    p.add_argument("--save", type=int, default=5, help="how many masks + overlays to write (default 5)")
    p.add_argument("--output", default="out/demo")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)
