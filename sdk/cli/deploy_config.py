"""``segedge deploy-config``: DeepStream nvinfer config or Triton model repository."""
from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from converters.deploy_configs import write_deepstream_config, write_triton_repository

    if args.target == "deepstream":
        path = write_deepstream_config(args.artifact, args.output, batch_size=args.batch_size, gpu_id=args.gpu_id,
                                       segmentation_threshold=args.segmentation_threshold)
        print(f"wrote {path} and {path.parent / 'labels.txt'}")
        print(f"next: set config-file={path.resolve()} in the [primary-gie] group of your deepstream-app config")
        return 0
    model_dir = write_triton_repository(args.artifact, args.output, model_name=args.name,
                                        max_batch_size=args.max_batch_size, instance_count=args.instances,
                                        kind=args.kind)
    print(f"wrote {model_dir / 'config.pbtxt'}, {model_dir / 'labels.txt'} and the model under {model_dir / '1'}")
    print(f"next: tritonserver --model-repository {Path(args.output).resolve()}")
    return 0


def add_parser(sub) -> None:
    """Register ``segedge deploy-config``. Imports nothing heavy."""
    p = sub.add_parser("deploy-config", help="DeepStream nvinfer config or Triton model repository from an artifact")
    p.add_argument("target", choices=["deepstream", "triton"])
    p.add_argument("artifact", help="artifact folder (DeepStream: an engine built with --softmax from --head logits)")
    p.add_argument("--output", required=True, help="DeepStream: config folder; Triton: model repository folder")
    p.add_argument("--batch-size", type=int, default=1, help="DeepStream: frames per inference")
    p.add_argument("--gpu-id", type=int, default=0, help="DeepStream: gpu-id")
    p.add_argument("--segmentation-threshold", type=float, default=0.0, help="DeepStream: minimum class probability")
    p.add_argument("--name", help="Triton: model name (default: the artifact folder's name)")
    p.add_argument("--max-batch-size", type=int,
                   help="Triton: default 0 for mask heads, else the engine's max batch (8 for ONNX/OpenVINO)")
    p.add_argument("--instances", type=int, default=1, help="Triton: instance_group count")
    p.add_argument("--kind", choices=["KIND_GPU", "KIND_CPU", "KIND_AUTO"],
                   help="Triton: instance kind (default GPU for TensorRT, CPU otherwise)")
    p.set_defaults(func=run)
