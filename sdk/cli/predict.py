"""``segedge predict``: segment image files with an artifact."""
from __future__ import annotations

import argparse
from pathlib import Path

from sdk.cli.common import image_paths


def predict_files(artifact: str | Path, images: list[str], output: str | Path, *, runtime: str = "auto",
                  overlay: bool = True, batch_size: int = 1) -> list[Path]:
    """Segment image files; writes ``<output>/<stem>.png`` (class ids) and ``<stem>_overlay.png``."""
    import cv2
    from tqdm import tqdm

    from sdk.core.preprocess import read_rgb
    from sdk.segmenter import Segmenter

    written: list[Path] = []
    with Segmenter.from_artifact(artifact, runtime=runtime) as seg:
        paths = image_paths(images)
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        for start in tqdm(range(0, len(paths), batch_size), desc="predict", unit="batch",
                          disable=len(paths) < 2):
            chunk = paths[start:start + batch_size]
            imgs = [read_rgb(p) for p in chunk]
            for path, img, res in zip(chunk, imgs, seg.predict_batch(imgs, batch_size=batch_size)):
                mask_path = out / f"{path.stem}.png"
                cv2.imwrite(str(mask_path), res.mask if res.mask.dtype == "uint8" else res.mask.astype("uint16"))
                if overlay:
                    cv2.imwrite(str(out / f"{path.stem}_overlay.png"), res.overlay(img)[..., ::-1])
                written.append(mask_path)
    return written


def run(args: argparse.Namespace) -> int:
    written = predict_files(args.artifact, args.images, args.output, runtime=args.runtime,
                            overlay=not args.no_overlay, batch_size=args.batch_size)
    print(f"wrote {len(written)} masks (class ids as PNG{' + overlays' if not args.no_overlay else ''}) to "
          f"{args.output}")
    return 0


def add_parser(sub) -> None:
    """Register ``segedge predict``. Imports nothing heavy."""
    p = sub.add_parser("predict", help="segment images with an artifact")
    p.add_argument("artifact")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--output", required=True, help="folder for <name>.png class-id masks and overlays")
    p.add_argument("--runtime", default="auto", help="auto, onnxruntime, openvino or tensorrt")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--no-overlay", action="store_true")
    p.set_defaults(func=run)
