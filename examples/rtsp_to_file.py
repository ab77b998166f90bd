"""RTSP (or HTTP) camera stream -> overlay mp4 + stats JSON, headless.

    python examples/rtsp_to_file.py out/b0-fp32 rtsp://user:pass@camera/stream run.mp4 --minutes 10

A network stream is live: frames that arrive while the model is busy are dropped (latency stays bounded), and a
stream that drops is reopened with backoff (gaps are listed in the stats). Ctrl-C stops and finalises the file.
Any source works here, e.g. a video file: it is then processed frame by frame, without drops.
"""
import argparse
import sys

from sdk import Segmenter
from sdk.core.errors import SegEdgeError
from sdk.stream.pipeline import StreamConfig, StreamPipeline
from sdk.stream.sources import open_source

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("artifact", help="artifact folder from segedge export")
parser.add_argument("source", help="rtsp://... or http://... (or a file, camera index, csi://N)")
parser.add_argument("output", help=".mp4 to write; its stats go beside it as NAME.stats.json")
parser.add_argument("--minutes", type=float, help="stop after about this long (at the source's frame rate)")
parser.add_argument("--output-fps", type=float, help="frame rate of the mp4 (default: the stream's)")
args = parser.parse_args()

try:
    with Segmenter.from_artifact(args.artifact) as seg:
        stream = open_source(args.source)
        max_frames = int(args.minutes * 60 * (stream.fps or 30)) if args.minutes else None
        config = StreamConfig(output=args.output, output_fps=args.output_fps, max_frames=max_frames,
                              stats_path=args.output.rsplit(".", 1)[0] + ".stats.json", reconnect_timeout_s=60)
        stats = StreamPipeline(seg, stream, config).run()
except SegEdgeError as exc:  # an unreachable URL, a missing artifact, an unwritable output: one line, no traceback
    sys.exit(f"rtsp_to_file: error: {exc}")

print(stats.table())
print(f"output: {args.output}\nstats: {stats.stats_path}")
