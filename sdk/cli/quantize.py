"""``segedge quantize``: checkpoint or FP32 artifact -> INT8 artifact."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sdk.cli.common import parse_labels
from sdk.core.errors import InputError


def run(args: argparse.Namespace) -> int:
    from calibration.sets import load_calibration_set

    source, out = Path(args.checkpoint), Path(args.output)
    if (source / "model.json").is_file():
        fp32 = source  # already an FP32 ONNX artifact
        from sdk.core.manifest import read_manifest

        if args.backend == "onnxruntime" and read_manifest(source).graph == "portable":
            print(f"note: {source} is a portable graph; for ONNX Runtime, INT8 from a --graph onnxruntime export "
                  "runs faster (segedge export CHECKPOINT --graph onnxruntime, or pass the checkpoint)")
    else:
        from converters.onnx_export import export_onnx

        # ONNX Runtime gets its own fast graph; OpenVINO and TensorRT read the portable one
        fp32 = export_onnx(source, out / "fp32", size_hw=tuple(args.size) if args.size else None,
                           graph="onnxruntime" if args.backend == "onnxruntime" else "portable",
                           class_names=parse_labels(args.labels), progress=not args.quiet)
    if (args.eval is None) != (args.max_drop is None):
        raise InputError("--eval and --max-drop go together: give both for accuracy-aware quantization")
    calib = load_calibration_set(args.calib, num_samples=args.num_samples, seed=args.seed)
    if args.backend in ("onnxruntime", "tensorrt"):
        from calibration.quantize_ort import quantize_onnxruntime

        if args.max_drop is not None:
            from calibration.datasets import open_labelled_set
            from calibration.sensitivity import quantize_with_max_drop

            if args.keep_float:
                raise InputError("--keep-float and --max-drop contradict: --max-drop chooses the float blocks")
            art = quantize_with_max_drop(fp32, calib, list(open_labelled_set(args.eval)), out,
                                         max_drop=args.max_drop, target=args.backend, method=args.method,
                                         progress=not args.quiet)
            report = json.loads((art / "model.json").read_text())["extra"]["accuracy_aware"]
            status = "met" if report["max_drop_met"] else "NOT met (best model found kept, marked in model.json)"
            print(f"accuracy-aware: drop {report['measured_drop_points']:.2f} points vs --max-drop "
                  f"{args.max_drop} {status}; float blocks: {report['float_blocks'] or 'none'}")
        else:
            art = quantize_onnxruntime(fp32, calib, out, target=args.backend, method=args.method,
                                       keep_float=tuple(args.keep_float), progress=not args.quiet)
    else:
        from calibration.quantize_openvino import quantize_openvino

        if args.keep_float and args.max_drop is not None:
            raise InputError("--keep-float and --max-drop contradict: --max-drop chooses the float layers")
        size = tuple(args.size) if args.size else json.loads((fp32 / "model.json").read_text())["preprocess"]["size_hw"]
        if not size:
            shapes = {f.shape[:2] for f in calib.frames}
            if len(shapes) != 1:
                raise InputError(f"--backend openvino: INT8 is calibrated at one static resolution, and the "
                                 f"calibration frames come in {len(shapes)} sizes (e.g. {sorted(shapes)[:3]}); give "
                                 "--size H W (your camera's frame size, or the network size you deploy at)")
            size = shapes.pop()
            print(f"note: static size {size[0]}x{size[1]}, the calibration frames' own (this model's preprocessing "
                  "does not resize); give --size H W for another")
        eval_data = None
        if args.eval:
            from calibration.datasets import open_labelled_set

            eval_data = list(open_labelled_set(args.eval))
        art = quantize_openvino(fp32, calib, out, size_hw=tuple(size), ignored_scope=args.keep_float or None,
                                eval_data=eval_data, max_drop=args.max_drop, progress=not args.quiet)
        if args.max_drop is not None:
            report = json.loads((art / "model.json").read_text())["extra"]["accuracy_aware"]
            status = "met" if report["max_drop_met"] else "NOT met (best model found kept, marked in model.json)"
            print(f"accuracy-aware: drop {report['measured_drop_points']:.2f} points vs --max-drop "
                  f"{args.max_drop} {status}; reverted to float: {report['reverted_to_float'] or 'none'}")
    recipe = "NNCF" if args.backend == "openvino" else json.loads((art / "model.json").read_text())["extra"][
        "quantization"]["method"]
    print(f"quantized to INT8 ({args.backend}, {recipe}, {calib.description}) -> {art}")
    if args.backend == "tensorrt":
        print(f"next: on the device, segedge build {art} --output {art}-engine --int8")
    else:
        print(f"next: segedge predict {art} IMAGE_OR_FOLDER --output masks/")
    return 0


def add_parser(sub) -> None:
    """Register ``segedge quantize``. Imports nothing heavy."""
    p = sub.add_parser("quantize", help="checkpoint or FP32 artifact -> INT8 artifact, calibrated on your frames")
    p.add_argument("checkpoint", help="a checkpoint (any supported layout) or an FP32 ONNX artifact folder")
    p.add_argument("--backend", required=True, choices=["onnxruntime", "openvino", "tensorrt"],
                   help="tensorrt: a Q/DQ ONNX that TensorRT builds as INT8 on the device (segedge build)")
    p.add_argument("--calib", required=True, help="folder of images, a video, or a .txt list of image paths")
    p.add_argument("--output", required=True)
    p.add_argument("--num-samples", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=["minmax", "entropy", "percentile"],
                   help="ONNX Runtime calibrator (default: minmax for onnxruntime, percentile for tensorrt)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="network input size (static)")
    p.add_argument("--keep-float", action="append", default=[], metavar="REGEX",
                   help="keep nodes whose ONNX name matches in float (repeatable; must match something)")
    p.add_argument("--eval", help="labelled set (CamVid or Cityscapes root: its val split; ADE20K folder; or "
                                  "images/ + labels/) for accuracy-aware quantization")
    p.add_argument("--max-drop", type=float, help="largest mIoU drop in points allowed with --eval")
    p.add_argument("--labels", help="class names: a text file (one per line) or a comma-separated list")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=run)
