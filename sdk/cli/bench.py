"""``segedge bench``: latency of an artifact, optionally side by side with transformers in PyTorch eager."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sdk.cli.common import nonnegative_float, nonnegative_int, positive_int
from sdk.cli.devices import add_device_argument
from sdk.core.errors import InputError
from sdk.core.staging import check_output_file


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. precision=f32, threads=2), got {text!r}")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, {"none": None, "true": True, "false": False}.get(value.lower(), value)


def add_parser(subparsers) -> None:
    """Register ``segedge bench`` on an argparse subparsers object. Imports nothing heavy."""
    p = subparsers.add_parser("bench", help="latency of an artifact (optionally vs PyTorch/transformers)")
    p.add_argument("artifact", help="artifact folder (model.json + model file)")
    p.add_argument("--size", type=int, nargs=2, action="append", required=True, metavar=("H", "W"),
                   help="network input size (model mode) or frame size (--end-to-end); repeat for several")
    p.add_argument("--batch", type=positive_int, default=1, help="images per call (default 1)")
    p.add_argument("--repeats", type=positive_int, default=50,
                   help="timed runs per variant and size, split over the rounds (default 50)")
    p.add_argument("--rounds", type=positive_int, default=3,
                   help="alternating rounds: each round times the artifact and the baseline each alone in a fresh "
                        "process of its own (default 3)")
    p.add_argument("--in-process", action="store_true",
                   help="the older protocol, for comparison: both in this process, alternating run by run (ONNX "
                        "Runtime's spinning threads may then slow the variant timed after it)")
    p.add_argument("--warmup", type=nonnegative_int, default=5, help="untimed runs first, in each process "
                                                                      "(default 5)")
    p.add_argument("--runtime", default="auto", help="auto, onnxruntime, openvino or tensorrt")
    add_device_argument(p)
    p.add_argument("--runtime-option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="runtime constructor option, e.g. precision=f32 (OpenVINO) or threads=2; repeatable")
    p.add_argument("--end-to-end", action="store_true",
                   help="uint8 frames of --size -> preprocessing + inference -> full-resolution masks")
    p.add_argument("--baseline", nargs=2, metavar=("pytorch", "CHECKPOINT"),
                   help="also time transformers' model in PyTorch eager (HF folder), in alternating rounds; needs "
                        "torch, transformers and Pillow: pip install 'segedge[convert,baseline]'")
    p.add_argument("--pause", type=nonnegative_float, default=0.1, help="seconds between timed runs (default 0.1)")
    p.add_argument("--settle", type=nonnegative_float, default=2.0,
                   help="idle seconds before timing, to sample other processes' load (default 2)")
    p.add_argument("--frame", metavar="IMAGE",
                   help="time this image (resized to each --size) instead of a synthetic frame: the refine head's "
                        "cost depends on content")
    p.add_argument("--json", help="write the result here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sdk.timing import bench, format_bench

    if args.json:
        check_output_file(args.json, "--json")  # before the timing runs, not after
    baseline = None
    if args.baseline:
        kind, baseline = args.baseline
        if kind != "pytorch":
            raise InputError(f"--baseline: expected 'pytorch CHECKPOINT', got {kind!r}")
    options = dict(args.runtime_option)
    if args.device is not None:  # the library maps it (runtimes/devices.py)
        if "device" in options and str(options["device"]) != args.device:
            raise InputError(f"--device {args.device} and --runtime-option device={options['device']}: expected "
                             "one of them")
        options["device"] = args.device
    result = bench(args.artifact, sizes_hw=[tuple(s) for s in args.size], batch=args.batch, repeats=args.repeats,
                   warmup=args.warmup, runtime=args.runtime, runtime_options=options,
                   end_to_end=args.end_to_end, baseline=baseline, pause_s=args.pause, settle_s=args.settle,
                   frame=args.frame, isolation="in-process" if args.in_process else "process", rounds=args.rounds)
    print(format_bench(result))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return 0
