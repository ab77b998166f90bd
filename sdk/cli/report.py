"""``segedge report``: accuracy-vs-latency report over backends, precisions and calibration methods."""
from __future__ import annotations

import argparse

from calibration.report import BACKENDS, METHODS, PRECISIONS
from calibration.report.plan import DEFAULT_MAX_DROP
from calibration.speed_menu import DEFAULT_SCALES, DEFAULT_TOKEN_MERGES
from sdk.cli.common import positive_int


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_parser(subparsers) -> None:
    """Register ``segedge report`` on an argparse subparsers object. Imports nothing heavy."""
    p = subparsers.add_parser("report", help="accuracy-vs-latency report over backends, precisions and "
                                             "calibration methods, with a recommendation")
    p.add_argument("checkpoint", help="a checkpoint (any supported layout) or an FP32 ONNX artifact folder")
    p.add_argument("--calib", required=True, help="calibration frames: folder of images, video or .txt list")
    p.add_argument("--eval", required=True, help="labelled set (CamVid root, ADE20K, images/ + labels/) or "
                                                 "unlabelled images (folder, video, .txt): agreement with FP32 only")
    p.add_argument("--output", required=True, help="report folder (report.html/.json/.md + artifacts/)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an --output folder that holds files other than an earlier report (an earlier report "
                        "is replaced whole, with its artifacts, once the new one is complete)")
    p.add_argument("--backends", type=_list, default=list(BACKENDS), help="comma list (default: all)")
    p.add_argument("--precisions", type=_list, default=list(PRECISIONS), help="comma list of fp32, fp16, bf16, "
                   "int8 (default: all; those a backend lacks are listed as skipped)")
    p.add_argument("--methods", type=_list, default=list(METHODS), help="calibration methods (default: all)")
    p.add_argument("--presets", type=_list, help="float-layer presets: default, max-drop (default: default, plus "
                                                 "max-drop when --max-drop is given)")
    p.add_argument("--max-drop", type=float, help=f"largest mIoU drop in points for the recommendation (default "
                                                  f"{DEFAULT_MAX_DROP:g}); giving it also builds the accuracy-aware "
                                                  "max-drop variants")
    p.add_argument("--tune", help="labelled set the max-drop search tunes on (default: --eval; for CamVid the "
                                  "val split, as segedge quantize --eval reads it)")
    p.add_argument("--eval-split", default="test", help="CamVid split to evaluate on (default test)")
    p.add_argument("--eval-samples", type=int, default=0, help="evaluate on this many images, evenly spread (0: all)")
    p.add_argument("--num-samples", type=positive_int, default=300, help="calibration frames (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="network input size for the export")
    p.add_argument("--corruptions", type=_list, default=[], help="comma list of gaussian_noise, gaussian_blur, "
                   "brightness, contrast, jpeg, or 'all' (robustness study; default none)")
    p.add_argument("--severity", type=int, default=3, help="corruption severity 1..5 (default 3)")
    p.add_argument("--corruption-samples", type=int, default=0, help="images per corruption (0: all)")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per variant at batch 1, split over the rounds "
                                                           "(default 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first, in each process (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="alternating timing rounds; each times every variant alone "
                                                        "in a fresh process of its own (default 3)")
    p.add_argument("--in-process", action="store_true",
                   help="time the variants the older way, for comparison: all in this process, alternating run by run")
    p.add_argument("--batch", type=int, default=4, help="the larger batch for throughput (default 4)")
    p.add_argument("--settle", type=float, default=10.0, help="seconds of pause before timing (default 10)")
    p.add_argument("--no-memory", action="store_true", help="skip the per-variant load-time/peak-RSS processes")
    p.add_argument("--examples", type=int, default=3, help="example frames in the HTML (default 3)")
    scales, merges = ",".join(map(str, DEFAULT_SCALES)), ",".join(DEFAULT_TOKEN_MERGES)
    p.add_argument("--scales", default=scales, help="network input as shares of the frame, masks still at the "
                   f"frame's size (default {scales}; 1.0 alone: off). FP32 at each; INT8 at the pruned points")
    p.add_argument("--token-merges", default=merges, help="training-free token merging specs (segedge export "
                   f"--token-merge), comma list (default {merges}; none alone: off)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from calibration.report.deps import check_report_dependencies

    check_report_dependencies(args.backends, precisions=args.precisions, source=args.checkpoint)  # before any work
    from calibration.corruptions import CORRUPTIONS
    from calibration.report import CostOptions, make_report
    from calibration.report.plan import presets_and_limit
    from calibration.report.render import format_table

    presets, max_drop = presets_and_limit(args.presets, args.max_drop)
    corruptions = list(CORRUPTIONS) if args.corruptions == ["all"] else args.corruptions
    report = make_report(args.checkpoint, args.output, calib=args.calib, eval_set=args.eval,
                         backends=args.backends, precisions=args.precisions, methods=args.methods, presets=presets,
                         max_drop=max_drop, tune=args.tune,
                         eval_split=args.eval_split, eval_samples=args.eval_samples, num_samples=args.num_samples,
                         seed=args.seed, size_hw=tuple(args.size) if args.size else None, corruptions=corruptions,
                         severity=args.severity, corruption_samples=args.corruption_samples,
                         cost=CostOptions(repeats=args.repeats, warmup=args.warmup, batch=args.batch,
                                          settle_s=args.settle, memory=not args.no_memory,
                                          isolated=not args.in_process, rounds=args.rounds),
                         examples=args.examples, scales=args.scales, token_merges=args.token_merges,
                         overwrite=args.overwrite, progress=not args.quiet)
    print(format_table(report))
    print(f"wrote {report['files']['html']}, {report['files']['json']}, {report['files']['md']} in "
          f"{report['phases_seconds']['total_s']:.0f} s")
    rec = report["recommendation"]
    if rec.get("variant"):
        print(f"next: {rec['command']}")
    return 0
