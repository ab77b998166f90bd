"""``segedge export-openvino``: a checkpoint (or an FP32 ONNX artifact) -> an OpenVINO IR artifact at FP32 or FP16,
in one command. From a checkpoint the portable ONNX artifact is exported first, into ``OUTPUT/onnx-fp32`` (kept: the
IR's parity is checked against it, and it runs anywhere ONNX Runtime does)."""
from __future__ import annotations

import argparse
from pathlib import Path

from sdk.core.errors import InputError
from sdk.core.manifest import MANIFEST_NAME, read_manifest

ONNX_SUBDIR = "onnx-fp32"


def export_ir(source: str | Path, output: str | Path, *, precision: str = "fp32",
              size_hw: tuple[int, int] | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """``source``: a checkpoint (any supported layout) or an FP32 portable ONNX artifact folder. precision: "fp32"
    or "fp16" (weights stored as FP16). size_hw: a static (height, width) network input; None keeps the dynamic
    shape. The output is written whole (``sdk.core.staging``; a folder of other files needs ``overwrite``).
    Returns the IR artifact folder."""
    from converters.openvino_export import export_openvino, write_ir

    if precision not in ("fp32", "fp16"):
        raise InputError(f"--precision: expected fp32 or fp16, got {precision!r}. For INT8 use segedge quantize "
                         "--backend openvino")
    src, out = Path(source), Path(output)
    fp16 = precision == "fp16"
    if (src / MANIFEST_NAME).is_file():
        return export_openvino(src, out, size_hw=size_hw, compress_to_fp16=fp16, overwrite=overwrite,
                               progress=progress)
    from converters.onnx_export import export_onnx
    from sdk.core.staging import check_output_folder, repoint, staged_folder

    check_output_folder(out, overwrite=overwrite, sources=(src,))
    with staged_folder(out, overwrite=overwrite, sources=(src,)) as stage:  # the ONNX artifact inside, both whole
        onnx_dir = export_onnx(src, stage / ONNX_SUBDIR, graph="portable", progress=progress)
        write_ir(onnx_dir, stage, size_hw=size_hw, compress_to_fp16=fp16, progress=progress)
        repoint(stage, stage, out.resolve())
    return out


def run(args: argparse.Namespace) -> int:
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
