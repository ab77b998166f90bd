"""``segedge stream``: segment a camera, video, RTSP stream or image folder live."""
from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING
from pathlib import Path

from sdk.cli.common import check_output_file, nonnegative_int, positive_float, positive_int
from sdk.cli.devices import add_device_argument, runtime_for_device
from sdk.core.errors import SegEdgeError

if TYPE_CHECKING:
    from sdk.stream.pipeline import StreamConfig
    from sdk.stream.stats import StreamStats


def add_parser(subparsers) -> None:
    """Register ``segedge stream`` on an argparse subparsers object. Imports nothing heavy."""
    p = subparsers.add_parser("stream", help="segment a camera, video file, RTSP/HTTP stream or image folder live")
    p.add_argument("artifact", help="artifact folder (model.json + model file)")
    p.add_argument("--source", required=True,
                   help="camera index (0), csi://N (Jetson CSI camera), rtsp://... or http://... URL, a video file, "
                        "an image folder, or a GStreamer pipeline ending in appsink")
    p.add_argument("--output", help="write the rendered stream to this .mp4 (H.264 where OpenCV can, else mp4v)")
    p.add_argument("--stats", help="stats JSON path (default: beside --output as NAME.stats.json, else "
                                   "out/stream-stats.json)")
    disp = p.add_mutually_exclusive_group()
    disp.add_argument("--display", dest="display", action="store_true", default=None,
                      help="show a window (error if there is no screen or HighGUI)")
    disp.add_argument("--no-display", dest="display", action="store_false",
                      help="never show a window (default: show one only if a screen and HighGUI exist)")
    p.add_argument("--mode", choices=["auto", "live", "file"], default="auto",
                   help="live: newest frame only, drops when slow; file: every frame (default: from the source)")
    p.add_argument("--runtime", default="auto", help="auto or a runtime name")
    add_device_argument(p)
    p.add_argument("--threads", type=nonnegative_int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    p.add_argument("--performance-mode", choices=["auto", "latency", "throughput"], default="auto",
                   help="OpenVINO: auto (default) runs files and folders in throughput mode (two streams, one per "
                        "inference worker: more frames per second, less CPU a frame) and live sources in latency "
                        "mode")
    p.add_argument("--batch-size", type=positive_int, default=1, help="frames per inference call (files and folders)")
    p.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    p.add_argument("--loop", action="store_true", help="replay a file or folder from the start at its end")
    p.add_argument("--pace-fps", type=positive_float, help="replay a file at this rate as a live camera would")
    p.add_argument("--output-fps", type=positive_float, help="frame rate written to --output (default: the source's)")
    p.add_argument("--reconnect-timeout", type=float, default=30.0,
                   help="seconds to keep reopening a live source that dropped (0: fail at once)")
    p.add_argument("--alpha", type=float, default=0.5, help="mask opacity over the frame")
    p.add_argument("--side-by-side", action="store_true", help="original and overlay next to each other")
    p.add_argument("--no-legend", action="store_true")
    p.add_argument("--no-hud", action="store_true")
    p.add_argument("--csi-size", type=int, nargs=2, default=(1080, 1920), metavar=("H", "W"))
    p.add_argument("--csi-fps", type=int, default=30)
    p.add_argument("--csi-flip", type=int, default=0, help="nvvidconv flip-method (0..7)")
    p.set_defaults(func=run)


def run(args) -> int:
    from sdk.stream.pipeline import StreamConfig, StreamPipeline, stream_runtime_options
    from sdk.stream.render import RenderOptions, display_status
    from sdk.segmenter import Segmenter
    from sdk.stream.sources import CsiOptions, open_source, parse_source

    display = args.display if args.display is not None else display_status()[0]
    stats_path = Path(args.stats) if args.stats else (
        Path(args.output).with_suffix(".stats.json") if args.output else Path("out") / "stream-stats.json")
    check_output_file(stats_path, "--stats")  # before the stream runs, not when it ends
    if args.output:
        check_output_file(args.output, "--output")
    config = StreamConfig(batch_size=args.batch_size, max_frames=args.max_frames, output=args.output,
                          output_fps=args.output_fps, display=display, stats_path=stats_path,
                          reconnect_timeout_s=args.reconnect_timeout,
                          render=RenderOptions(alpha=args.alpha, side_by_side=args.side_by_side,
                                               legend=not args.no_legend, hud=not args.no_hud))
    live = {"auto": None, "live": True, "file": False}[args.mode]
    csi = CsiOptions(size_hw=tuple(args.csi_size), fps=args.csi_fps, flip_method=args.csi_flip)
    spec = parse_source(args.source, csi=csi, live=live)
    runtime, options = runtime_for_device(args.artifact, args.runtime, args.device)
    if args.threads:
        options["threads"] = args.threads
    options.update(stream_runtime_options(args.artifact, runtime, live=spec.live or args.pace_fps is not None,
                                          performance_mode=args.performance_mode))
    with Segmenter.from_artifact(args.artifact, runtime=runtime, **options) as seg:
        source = open_source(spec, loop=args.loop, pace_fps=args.pace_fps)
        pipeline = StreamPipeline(seg, source, config)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, lambda *_: pipeline.stop("stopped")) if main else None
        print(f"streaming {source} with {seg} ({pipeline.stats.mode} mode"
              f"{', window' if display else ''}); Ctrl-C to stop", flush=True)
        try:
            stats = pipeline.run()
        except SegEdgeError:
            _report(pipeline.stats, config)
            raise
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
    _report(stats, config)
    return 0


def _report(stats: StreamStats, config: StreamConfig) -> None:
    print(stats.table())
    if config.output and stats.frames_processed:
        from sdk.stream.render import video_codec

        codec = video_codec()
        print(f"output: {config.output} ({stats.frames_processed} frames, "
              f"{'H.264' if codec == 'avc1' else 'mp4v: plays in VLC/ffplay, not in browsers; an OpenCV with an H.264 encoder writes H.264'})")
    print(f"stats: {stats.stats_path}")
    if config.output and stats.frames_processed:
        print(f"next: ffprobe {config.output}   # or open it in a player")
