"""``segedge quantize``: checkpoint or FP32 artifact -> INT8 artifact; a thin wrapper over ``calibration.quantize``
(same parameter names; every option is checked there before any work)."""
from __future__ import annotations

import argparse

from calibration.quantize_ort import METHODS
from sdk.cli.common import parse_labels


def run(args: argparse.Namespace) -> int:
    import sys

    from calibration import quantize
    from calibration.int8 import below_min_message

    result = quantize(args.checkpoint, args.output, backend=args.backend, calib=args.calib,
                      num_samples=args.num_samples, seed=args.seed, target_cpu=args.target_cpu, method=args.method,
                      size_hw=tuple(args.size) if args.size else None, keep_float=tuple(args.keep_float),
                      eval_set=args.eval_set, max_drop=args.max_drop, labels=parse_labels(args.labels),
                      holdout=args.holdout, calib_memory_mib=args.calib_memory_mib, float_precision=args.float_precision,
                      min_agreement=args.min_agreement, keep_below_min=args.keep_below_min, overwrite=args.overwrite,
                      speed_check=not args.no_speed_check, latency_aware=args.latency_aware,
                      progress=not args.quiet)
    for note in result.notes:
        print(f"note: {note}")
    aa = result.accuracy_aware
    if aa is not None:
        status = "met" if aa.max_drop_met else "NOT met (best model found kept, marked in model.json)"
        print(f"accuracy-aware: drop {aa.measured_drop_points:.2f} points vs --max-drop {aa.max_drop_points:g} "
              f"{status}; float layers: {aa.float_layers or 'none'}")
    p, acc = result.plan, result.accuracy
    if result.latency_aware is not None:  # INT8 where it is faster here, or the float artifact itself
        print(f"latency-aware: {result.latency_aware.verdict}; recorded in model.json")
        if result.latency_aware.winner != "int8":
            print(f"wrote the float artifact -> {result.artifact}")
            print(f"next: {result.next_command()}")
            return 0
    print(f"quantized to INT8 ({p.backend}, {p.method or 'NNCF'}, target {p.target_cpu}: {p.recipe}; "
          f"{result.calibration.description}) -> {result.artifact}")
    if acc.agreement is not None:
        print(f"held-out agreement with FP32: {100 * acc.agreement:.2f}% on {acc.frames} held-out frames (not "
              f"calibrated on), measured here ({acc.machine.get('class')} CPU, {acc.runtime}); recorded in model.json, "
              "the frames shipped in reference/ for segedge verify")
    else:
        print("note: no held-out frames (--holdout 0): agreement with FP32 not measured, no reference frames for "
              "segedge verify (give it --reference FP32_ARTIFACT)")
    if result.speed is not None:
        from calibration import int8_speed

        print(f"speed here: {int8_speed.summary(result.speed)}; recorded in model.json")
        slower = int8_speed.slower_message(result.speed, source=args.checkpoint)
        if slower:
            print(f"WARNING: {slower}", file=sys.stderr)
    if result.below_min is not None:
        print(f"WARNING: {below_min_message(acc, result.below_min, result.artifact, written=True)}", file=sys.stderr)
    print(f"next: {result.next_command()}")
    return 0


def add_parser(sub) -> None:
    """Register ``segedge quantize``. Imports nothing heavy."""
    from sdk.core.records import MIN_AGREEMENT
    from sdk.core.cpu import TARGET_CPUS

    p = sub.add_parser("quantize", help="checkpoint or FP32 artifact -> INT8 artifact, calibrated on your frames")
    p.add_argument("checkpoint", help="a checkpoint (any supported layout) or an FP32 ONNX artifact folder")
    p.add_argument("--backend", required=True, choices=["onnxruntime", "openvino", "tensorrt"],
                   help="tensorrt: a Q/DQ ONNX that TensorRT builds as INT8 on the device (segedge build)")
    p.add_argument("--calib", required=True, help="folder of images, a video, or a .txt list of image paths")
    p.add_argument("--output", required=True)
    p.add_argument("--target-cpu", default="auto", choices=TARGET_CPUS,
                   help="CPU class the INT8 artifact will run on (auto: this machine's). vnni: AVX-512 VNNI or "
                        "AVX-VNNI; avx512: AVX-512 without VNNI; avx2: AVX2 and older x86 (avx512/avx2 get 7-bit "
                        "weights, since 8-bit products saturate there); arm64. Not for --backend tensorrt (GPU)")
    p.add_argument("--num-samples", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", type=int, help="calibration frames held out to measure agreement with FP32 "
                                               "(default: an eighth, 1..8)")
    p.add_argument("--method", choices=METHODS,
                   help="ONNX Runtime calibrator (default: minmax for onnxruntime, percentile for tensorrt)")
    p.add_argument("--calib-memory-mib", type=int, default=2048,
                   help="most memory the entropy/percentile histograms hold at once (any frame size)")
    p.add_argument("--float", dest="float_precision", choices=["fp32", "fp16"], default="fp32",
                   help="--backend tensorrt: precision of the layers outside the Q/DQ pairs; fp16 for TensorRT 10/11 "
                        "strongly typed builds, fp32 (default) for TensorRT 8.x, where segedge build --int8 sets FP16")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="network input size (static)")
    p.add_argument("--keep-float", action="append", default=[], metavar="REGEX",
                   help="keep nodes whose ONNX name matches in float (repeatable; must match something)")
    p.add_argument("--eval", dest="eval_set", help="labelled set (CamVid or Cityscapes root: its val split; ADE20K "
                                                   "folder; or images/ + labels/) for accuracy-aware quantization")
    p.add_argument("--max-drop", type=float, help="largest mIoU drop in points allowed with --eval")
    p.add_argument("--latency-aware", action="store_true",
                   help="with --eval and --max-drop (onnxruntime, openvino): INT8 only in the regions that run faster "
                        "on this machine, timed region by region; the float artifact itself when no INT8 is faster")
    p.add_argument("--labels", help="class names: a text file (one per line) or a comma-separated list")
    p.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT,
                   help=f"held-out agreement with FP32 (fraction) the artifact must reach, the rule segedge verify "
                        f"applies (default {MIN_AGREEMENT}); under it nothing is written and the exit status is 1")
    p.add_argument("--keep-below-min", action="store_true",
                   help="write the artifact even under --min-agreement (a warning says so; verify will fail it)")
    p.add_argument("--no-speed-check", action="store_true",
                   help="skip timing the INT8 artifact against its FP32 on this machine (a few seconds, each "
                        "runtime alone; recorded in model.json, with a warning where INT8 is not faster)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an --output folder that holds files other than an earlier artifact (an earlier "
                        "artifact is replaced whole, once the new one is complete)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)
