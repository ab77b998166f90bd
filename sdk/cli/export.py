"""``segedge export``: checkpoint -> ONNX artifact."""
from __future__ import annotations

import argparse

from sdk.cli.common import parse_labels, positive_int
from sdk.core.errors import InputError
from sdk.core.manifest import GRAPHS, read_manifest
from sdk.core.staging import check_output_dir


def run(args: argparse.Namespace) -> int:
    from converters.onnx_export import export_onnx

    check_output_dir(args.output)  # before the export's work, not after it
    if args.opset is not None:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as top

        if args.opset > top:
            raise InputError(f"--opset: expected 17..{top} (the newest this PyTorch's exporter writes), got "
                             f"{args.opset}")
    out = export_onnx(args.checkpoint, args.output, size_hw=tuple(args.size) if args.size else None,
                      opset=args.opset, graph=args.graph, head=args.head, upsample=args.upsample, aspect=args.aspect,
                      class_names=parse_labels(args.labels),
                      layer_norm_eps=args.layer_norm_eps, token_merge=args.token_merge,
                      max_input_pixels=args.max_input_pixels, overwrite=args.overwrite, progress=not args.quiet)
    manifest = read_manifest(out)
    print(f"exported {manifest.architecture['variant']} ({manifest.num_classes} classes) to "
          f"{out / manifest.model_file} in {manifest.extra['export_seconds']} s; ONNX Runtime vs PyTorch max "
          f"|logit diff| {manifest.parity['onnxruntime_vs_torch_max_abs_logit']:.2e}")
    merged = manifest.parity.get("token_merge_vs_unmerged")
    if merged:
        print(f"token merge {manifest.extra['token_merge']['spec']}: class ids agree with the unmerged model on "
              f"{merged['argmax_agreement']:.2%} of the probe's 1/4-resolution pixels (random input; measure on your "
              "frames: segedge eval)")
    print(f"next: segedge predict {out} IMAGE_OR_FOLDER --output masks/")
    return 0


def add_parser(sub) -> None:
    """Register ``segedge export``. Imports nothing heavy."""
    p = sub.add_parser("export", help="checkpoint -> ONNX artifact (model.onnx + model.json)")
    p.add_argument("checkpoint", help="Hugging Face folder, NVlabs .pth or mmsegmentation 1.x .pth")
    p.add_argument("--output", required=True, help="artifact folder to write")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="network input size recorded in the preprocessing (default: the checkpoint's own)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: 17 for --graph portable, 20 for onnxruntime)")
    p.add_argument("--graph", choices=list(GRAPHS), default="portable",
                   help="portable: standard ops, for OpenVINO/TensorRT/any runtime (default); onnxruntime: ONNX "
                        "Runtime's fused attention and NHWC-friendly layout, faster there (FP32 and INT8) and only "
                        "there")
    p.add_argument("--head", choices=["mask", "logits"], default="mask",
                   help="mask: resize+argmax inside the graph (default); logits: raw 1/4-resolution logits")
    p.add_argument("--upsample", choices=["refine", "exact", "fast"], default=None,
                   help="refine (default): the exact mask, interpolating only where neighbouring classes differ "
                        "(logits + low-res argmax from the graph, refined on the host); exact: bilinear logits to "
                        "full size then argmax, in the graph; fast: argmax at network size, nearest up (not exact)")
    p.add_argument("--aspect", choices=["stretch", "letterbox", "pad"], default="stretch",
                   help="stretch: resize frames to --size (default); letterbox: keep the aspect inside --size, pad "
                        "the rest; pad: pad to a multiple of 32 (no resize without --size)")
    p.add_argument("--labels", help="class names: a text file (one per line) or a comma-separated list")
    p.add_argument("--layer-norm-eps", type=float,
                   help="override the blocks' LayerNorm eps (e.g. 1e-6 for the NVlabs code's exact numerics)")
    p.add_argument("--token-merge", default="none", metavar="MODE[:STAGES]",
                   help="training-free token merging (SegFormer++): none (default); 2x2: attention queries merged 2x2 "
                        "in stages 1 and 2; 2x2:1+2+3+4 names the stages. Parity is checked against the merged "
                        "model and the agreement with the unmerged one recorded in model.json")
    p.add_argument("--max-input-pixels", type=positive_int, metavar="N",
                   help="largest network input (h*w) a call may run on this artifact, recorded in model.json "
                        "(default: 2048x2048 = 4194304; models without --size run at each frame's own size)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an --output folder that holds files other than an earlier artifact (an earlier "
                        "artifact is replaced whole, once the new one is written)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
