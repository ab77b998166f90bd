"""Several cameras -> one model -> a tiled video wall (mp4) + one mp4 and a stats row per camera, headless.

    python examples/camera_wall.py out/b0-ov-int8 rtsp://cam0/stream rtsp://cam1/stream --output out/wall

Every camera has its own reader; one model call takes the newest frame of each camera that has one, so the cameras
share the model fairly and a slow model drops the oldest frames, never queues them. A camera that drops is reopened
while the others run on. Ctrl-C stops and finalises every file. Files work too (every frame, in lockstep).
"""
import argparse
import sys
from pathlib import Path

from sdk import Segmenter
from sdk.core.errors import SegEdgeError
from sdk.stream.multi import MultiStreamConfig, MultiStreamPipeline
from sdk.stream.sources import open_sources

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("artifact", help="artifact folder from segedge export / quantize")
parser.add_argument("sources", nargs="+", help="rtsp://... or http://... cameras (or video files, camera indexes)")
parser.add_argument("--output", required=True, help="folder for wall.mp4, cam<i>.mp4 and stats.json")
parser.add_argument("--seconds", type=float, help="stop after about this long (at the first source's frame rate)")
args = parser.parse_args()

out = Path(args.output)
try:
    with Segmenter.from_artifact(args.artifact) as seg:
        sources = open_sources(args.sources)  # all parsed first: a typo in one is named before anything opens
        frames = int(args.seconds * (sources[0].fps or 30)) if args.seconds else None
        config = MultiStreamConfig(outputs=[out / f"cam{i}.mp4" for i in range(len(sources))],
                                   mosaic=out / "wall.mp4", stats_path=out / "stats.json", max_frames=frames)
        stats = MultiStreamPipeline(seg, sources, config).run()
except SegEdgeError as exc:  # an unreachable camera, a missing artifact, an unwritable output: one line
    sys.exit(f"camera_wall: error: {exc}")

print(stats.table())
print(f"wall: {out / 'wall.mp4'}\nstats: {stats.stats_path}")
sys.exit(1 if stats.failed else 0)
