"""``segedge stream``: segment a camera, video, RTSP stream or image folder live."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING
from pathlib import Path

from sdk.cli.common import nonnegative_int, positive_float, positive_int
from sdk.cli.devices import add_device_argument
from sdk.core.errors import InputError, SegEdgeError, SourceError
from sdk.core.staging import check_output_file

if TYPE_CHECKING:
    from sdk.stream.pipeline import StreamConfig
    from sdk.stream.stats import StreamStats


def add_parser(subparsers) -> None:
    """Register ``segedge stream`` on an argparse subparsers object. Imports nothing heavy."""
    p = subparsers.add_parser("stream", help="segment a camera, video file, RTSP/HTTP stream or image folder live")
    p.add_argument("artifact", help="artifact folder (model.json + model file)")
    p.add_argument("--source", action="append", default=[],
                   help="camera index (0), csi://N (Jetson CSI camera), rtsp://... or http://... URL, a video file, "
                        "an image folder, or a GStreamer pipeline ending in appsink; repeat it for several sources "
                        "in one pipeline (one batched model call for all)")
    p.add_argument("--sources-file", help="a text file of sources, one per line (# comments), after any --source")
    p.add_argument("--output", help="write the rendered stream to this .mp4 (H.264 where OpenCV can, else mp4v); "
                                    "with several sources a folder, which gets one cam<i>.mp4 per source")
    p.add_argument("--mosaic", help="several sources: write all of them tiled into this one .mp4 (the window shows "
                                    "the mosaic)")
    p.add_argument("--mosaic-size", type=int, nargs=2, default=(1280, 720), metavar=("W", "H"),
                   help="the mosaic's size in pixels (default 1280 720)")
    p.add_argument("--max-batch", type=positive_int,
                   help="several sources: most frames per model call (default: one per source)")
    p.add_argument("--workers", type=positive_int,
                   help="several sources: inference threads, each forming and running its own batches, so one "
                        "batch's host work overlaps another's model call (default: 1 for live sources, 2 for files)")
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
    from sdk.stream.sources import read_source_list

    texts = list(args.source) + (read_source_list(args.sources_file) if args.sources_file else [])
    if not texts:
        raise InputError("stream: expected a source: --source SOURCE (repeatable) or --sources-file FILE")
    if len(texts) > 1:
        return _run_many(args, texts)
    if args.mosaic or args.max_batch or args.workers:
        raise InputError(f"--mosaic/--max-batch/--workers: expected several sources, got one ({texts[0]}). Drop "
                         "them, or add sources")
    return _run_one(args, texts[0])


def _run_one(args, text: str) -> int:
    from sdk.stream.pipeline import StreamConfig, StreamPipeline, stream_runtime_options
    from sdk.segmenter import Segmenter
    from sdk.stream.sources import open_source, parse_source

    display = _display(args)
    stats_path = Path(args.stats) if args.stats else (
        Path(args.output).with_suffix(".stats.json") if args.output else Path("out") / "stream-stats.json")
    check_output_file(stats_path, "--stats")  # before the stream runs, not when it ends
    if args.output:
        check_output_file(args.output, "--output")
    config = StreamConfig(batch_size=args.batch_size, max_frames=args.max_frames, output=args.output,
                          output_fps=args.output_fps, display=display, stats_path=stats_path,
                          reconnect_timeout_s=args.reconnect_timeout,
                          render=_render_options(args))
    live = {"auto": None, "live": True, "file": False}[args.mode]
    spec = parse_source(text, csi=_csi(args), live=live)
    runtime, options = _runtime(args), {}
    if args.threads:
        options["threads"] = args.threads
    options.update(stream_runtime_options(args.artifact, runtime, live=spec.live or args.pace_fps is not None,
                                          performance_mode=args.performance_mode))
    with Segmenter.from_artifact(args.artifact, runtime=runtime, device=args.device, **options) as seg:
        source = open_source(spec, loop=args.loop, pace_fps=args.pace_fps, csi=_csi(args))
        pipeline = StreamPipeline(seg, source, config)
        print(f"streaming {source} with {seg} ({pipeline.stats.mode} mode, {_network_line(seg, source)}"
              f"{', window' if display else ''}); Ctrl-C to stop", flush=True)
        with _sigterm_stops(pipeline):
            try:
                stats = pipeline.run()
            except SegEdgeError:
                _report(pipeline.stats, config)
                raise
    _report(stats, config)
    return 0


def _run_many(args, texts: list[str]) -> int:
    from sdk.stream.multi import MultiStreamConfig, MultiStreamPipeline
    from sdk.stream.pipeline import stream_runtime_options
    from sdk.stream.render import WRITER_SUFFIXES
    from sdk.segmenter import Segmenter
    from sdk.stream.sources import open_sources, parse_source

    if args.batch_size != 1:
        raise InputError(f"--batch-size: expected 1 with several sources (each model call takes one frame of each "
                         f"source; --max-batch caps it), got {args.batch_size}")
    display = _display(args)
    outputs = None
    if args.output:
        folder = Path(args.output)
        if folder.suffix.lower() in WRITER_SUFFIXES or folder.is_file():
            raise InputError(f"--output {folder}: expected a folder with several sources (each gets "
                             f"cam<i>.mp4 there), got a file name. Give a folder, and --mosaic FILE.mp4 for one "
                             "tiled video")
        outputs = [folder / f"cam{i}.mp4" for i in range(len(texts))]
        for o in outputs:
            check_output_file(o, "--output")
    if args.mosaic:
        check_output_file(args.mosaic, "--mosaic")
    stats_path = Path(args.stats) if args.stats else (
        Path(args.output) / "stats.json" if args.output else
        Path(args.mosaic).with_suffix(".stats.json") if args.mosaic else Path("out") / "stream-stats.json")
    check_output_file(stats_path, "--stats")
    config = MultiStreamConfig(outputs=outputs, mosaic=args.mosaic, mosaic_size_wh=tuple(args.mosaic_size),
                               display=display, output_fps=args.output_fps, stats_path=stats_path,
                               max_frames=args.max_frames, max_batch=args.max_batch, workers=args.workers,
                               reconnect_timeout_s=args.reconnect_timeout, render=_render_options(args))
    live = {"auto": None, "live": True, "file": False}[args.mode]
    specs = []
    for i, t in enumerate(texts):  # every source checked before the model loads
        try:
            specs.append(parse_source(t, csi=_csi(args), live=live))
        except SegEdgeError as exc:
            raise type(exc)(f"source {i + 1} of {len(texts)}: {exc}") from None
    runtime, options = _runtime(args), {}
    if args.threads:
        options["threads"] = args.threads
    options.update(stream_runtime_options(args.artifact, runtime, live=specs[0].live or args.pace_fps is not None,
                                          performance_mode=args.performance_mode, sources=len(specs)))
    with Segmenter.from_artifact(args.artifact, runtime=runtime, device=args.device, **options) as seg:
        sources = open_sources(specs, loop=args.loop, pace_fps=args.pace_fps, csi=_csi(args))
        pipeline = MultiStreamPipeline(seg, sources, config)
        print(f"streaming {len(sources)} sources with {seg} ({pipeline.stats.mode} mode, up to "
              f"{pipeline.max_batch} frames a model call, {_network_line(seg, None)}"
              f"{', window' if display else ''}); Ctrl-C to stop", flush=True)
        for i, src in enumerate(sources):
            print(f"  source {i}: {src}" + (f" -> {outputs[i]}" if outputs else ""))
        with _sigterm_stops(pipeline):
            stats = pipeline.run()
    print(stats.table())
    if outputs:
        print(f"outputs: {Path(args.output)}/cam0..{len(outputs) - 1}.mp4")
    if args.mosaic:
        print(f"mosaic: {args.mosaic}")
    print(f"stats: {stats.stats_path}")
    if stats.failed:
        raise SourceError(f"{len(stats.failed)} of {len(sources)} sources failed ("
                          + "; ".join(s.error or "" for s in stats.failed) + "); the others ran to their end")
    return 0


@contextlib.contextmanager
def _sigterm_stops(pipeline):
    """SIGTERM stops the pipeline cleanly (outputs finalised) while it runs, in the main thread."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: pipeline.stop("stopped")) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _runtime(args) -> str:
    """The runtime --device picks with --runtime (the library's table, runtimes/devices.py): the stream's runtime
    options depend on it."""
    from runtimes.devices import runtime_for_device

    return runtime_for_device(args.artifact, args.runtime, args.device)[0]


def _render_options(args):
    from sdk.stream.render import RenderOptions

    return RenderOptions(alpha=args.alpha, side_by_side=args.side_by_side, legend=not args.no_legend,
                         hud=not args.no_hud)


def _csi(args):
    from sdk.stream.sources import CsiOptions

    return CsiOptions(size_hw=tuple(args.csi_size), fps=args.csi_fps, flip_method=args.csi_flip)


def _display(args) -> bool:
    """--display checked before anything loads (a headless machine is one line, not an empty stats table)."""
    from sdk.core.errors import OutputError
    from sdk.stream.render import display_status

    ok, why = display_status()
    if args.display and not ok:
        raise OutputError(f"--display: expected a screen and OpenCV HighGUI, got {why}. Use --no-display (and "
                          "--output FILE.mp4)")
    return ok if args.display is None else args.display


def _network_line(seg, source) -> str:
    """What the network runs at: the artifact's fixed input size, or the frame's own size (dynamic artifacts run
    every frame at full resolution, which is slow for large frames: export with --size to fix it)."""
    spec = seg.manifest.preprocess
    if spec.size_hw is not None:
        return f"network input {spec.size_hw[0]}x{spec.size_hw[1]}"
    return ("network input: each frame's own size (no --size at export; large frames run slowly: "
            "segedge export CHECKPOINT --size H W)")


def _report(stats: StreamStats, config: StreamConfig) -> None:
    if not stats.frames_read and stats.error:  # failed before its first frame: the error says it all
        return
    print(stats.table())
    if config.output and stats.frames_processed:
        from sdk.stream.render import video_codec

        codec = video_codec()
        print(f"output: {config.output} ({stats.frames_processed} frames, "
              f"{'H.264' if codec == 'avc1' else 'mp4v: plays in VLC/ffplay, not in browsers; an OpenCV with an H.264 encoder writes H.264'})")
    print(f"stats: {stats.stats_path}")
    if config.output and stats.frames_processed:
        print(f"next: ffprobe {config.output}   # or open it in a player")
