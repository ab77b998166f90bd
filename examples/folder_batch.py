"""A folder of images -> class-id masks and overlays, batched (no drops: every image is processed).

    python examples/folder_batch.py out/b0-fp32 photos/ masks/ --batch-size 4

Writes masks/<name>.png (class ids, open with cv2.IMREAD_UNCHANGED) and masks/<name>_overlay.jpg, and prints
per-stage timings. Reading, inference and writing overlap in separate threads.
"""
import argparse
import sys
from pathlib import Path

import cv2

from sdk import Segmenter
from sdk.core.errors import SegEdgeError
from sdk.stream.pipeline import StreamConfig, StreamPipeline, stream_runtime_options
from sdk.stream.render import RenderOptions
from sdk.stream.sources import open_source

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("artifact", help="artifact folder from segedge export")
parser.add_argument("images", help="folder of .png/.jpg images")
parser.add_argument("output", help="folder for masks and overlays")
parser.add_argument("--batch-size", type=int, default=4)
args = parser.parse_args()

out = Path(args.output)
out.mkdir(parents=True, exist_ok=True)


def save(frame, result, picture):
    """Called for every image, in order, once it is segmented and drawn."""
    stem = Path(frame.name).stem
    cv2.imwrite(str(out / f"{stem}.png"), result.mask if result.mask.dtype == "uint8" else result.mask.astype("uint16"))
    cv2.imwrite(str(out / f"{stem}_overlay.jpg"), picture)


try:
    # a folder keeps every image, so OpenVINO artifacts run in throughput mode (one stream per inference worker)
    options = stream_runtime_options(args.artifact, "auto", live=False)
    with Segmenter.from_artifact(args.artifact, **options) as seg:
        config = StreamConfig(batch_size=args.batch_size, render=RenderOptions(hud=False))
        stats = StreamPipeline(seg, open_source(args.images), config, on_result=save).run()
except SegEdgeError as exc:  # an empty or missing folder, a missing artifact: one line, no traceback
    sys.exit(f"folder_batch: error: {exc}")

print(stats.table())
print(f"wrote {stats.frames_processed} masks and overlays to {out}")
