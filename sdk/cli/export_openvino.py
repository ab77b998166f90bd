"""``segedge export-openvino``: a checkpoint (or an FP32 ONNX artifact) -> an OpenVINO IR artifact at FP32 or FP16,
in one command (``converters.openvino_export.export_ir``)."""
from __future__ import annotations

import argparse

from sdk.core.manifest import read_manifest


def run(args: argparse.Namespace) -> int:
    from converters.openvino_export import export_ir

    size = tuple(args.size) if args.size else None
    out = export_ir(args.source, args.output, precision=args.precision, size_hw=size, overwrite=args.overwrite,
                    progress=not args.quiet)
    m = read_manifest(out)
    shape = m.extra["openvino"]["static_shape"]
    print(f"wrote the OpenVINO IR {out / m.model_file} ({m.precision} weights, "
          f"{'static input ' + 'x'.join(map(str, shape)) if shape else 'dynamic input size'}) in "
          f"{m.extra['openvino']['seconds']} s")
    bench_size = f"{shape[2]} {shape[3]}" if shape else "512 512"
    print(f"next: segedge bench {out} --size {bench_size}   # or: segedge predict {out} IMAGES --output masks/")
    return 0


def add_parser(sub) -> None:
    """Register ``segedge export-openvino``. Imports nothing heavy."""
    p = sub.add_parser("export-openvino", help="checkpoint or FP32 ONNX artifact -> OpenVINO IR (FP32/FP16) in one "
                                               "command")
    p.add_argument("source", help="a checkpoint (Hugging Face folder, NVlabs or mmsegmentation .pth) or an FP32 ONNX "
                                  "artifact folder from segedge export (--graph portable)")
    p.add_argument("--output", required=True, help="IR artifact folder to write (model.xml/.bin + model.json)")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                   help="weights as stored: fp32 (default) or fp16 (half the size; the run-time precision is "
                        "OpenVINO's choice, see segedge bench --runtime-option precision=f32)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="static network input size (default: dynamic, any size)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an --output folder that holds files other than an earlier artifact")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
