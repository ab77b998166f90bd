"""USB or Jetson CSI camera -> segmentation overlay on screen (and optionally an mp4).

    python examples/camera_to_screen.py out/b0-fp32 --source 0          # USB camera /dev/video0
    python examples/camera_to_screen.py out/b0.engine --source csi://0  # Jetson CSI camera (system OpenCV)

Press q or Esc in the window, or Ctrl-C, to stop. Without a screen, pass --output run.mp4 instead.
The camera is live: when the model is slower than the camera, only the newest frame is segmented.
"""
import argparse
import sys

from sdk import Segmenter
from sdk.core.errors import SegEdgeError
from sdk.stream.pipeline import StreamConfig, StreamPipeline
from sdk.stream.render import RenderOptions, display_status
from sdk.stream.sources import open_source

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("artifact", help="artifact folder from segedge export")
parser.add_argument("--source", default="0", help="camera index (0) or csi://N")
parser.add_argument("--output", help="also write the overlay to this .mp4")
parser.add_argument("--side-by-side", action="store_true", help="camera picture and overlay next to each other")
parser.add_argument("--max-frames", type=int, help="stop after this many frames")
args = parser.parse_args()

has_screen, why = display_status()
if not has_screen and not args.output:
    parser.error(f"nothing to show the result on: {why}. Pass --output run.mp4")

try:
    with Segmenter.from_artifact(args.artifact) as seg:
        camera = open_source(args.source)  # live source: latest-frame policy
        config = StreamConfig(display=has_screen, output=args.output, max_frames=args.max_frames,
                              stats_path="out/camera-stats.json",
                              render=RenderOptions(side_by_side=args.side_by_side))
        stats = StreamPipeline(seg, camera, config).run()
except SegEdgeError as exc:  # no such camera, no GStreamer for csi://, a missing artifact: one line, no traceback
    sys.exit(f"camera_to_screen: error: {exc}")

print(stats.table())
print(f"stats: {stats.stats_path}")
