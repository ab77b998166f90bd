"""``segedge deploy-config``: DeepStream nvinfer config or Triton model repository."""
from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from converters.deploy_configs import write_deepstream_app, write_deepstream_config, write_triton_repository
    from sdk.core.errors import InputError

    if args.target == "deepstream":
        if args.sources is not None:
            if args.batch_size not in (None, args.sources):
                raise InputError(f"--batch-size: expected none or {args.sources} with --sources {args.sources} (one "
                                 f"batch holds a frame of every source), got {args.batch_size}")
            app, path = write_deepstream_app(args.artifact, args.output, sources=args.sources, uris=args.uri,
                                             gpu_id=args.gpu_id, segmentation_threshold=args.segmentation_threshold)
            print(f"wrote {app}, {path} and {path.parent / 'labels.txt'} ({args.sources} sources, batch "
                  f"{args.sources})")
            print(f"next: deepstream-app -c {app.resolve()}")
            return 0
        if args.uri:
            raise InputError("--uri: expected --sources N with it (the deepstream-app config holds the sources)")
        path = write_deepstream_config(args.artifact, args.output, batch_size=args.batch_size or 1,
                                       gpu_id=args.gpu_id, segmentation_threshold=args.segmentation_threshold)
        print(f"wrote {path} and {path.parent / 'labels.txt'}")
        print(f"next: set config-file={path.resolve()} in the [primary-gie] group of your deepstream-app config")
        return 0
    if args.backend == "python":
        from converters.triton_repo import write_triton_python_repository

        model_dir = write_triton_python_repository(args.artifact, args.output, model_name=args.name,
                                                   max_batch_size=args.max_batch_size or 8,
                                                   instance_count=args.instances, kind=args.kind,
                                                   max_queue_delay_us=args.max_queue_delay_us)
        print(f"wrote {model_dir / 'config.pbtxt'}, {model_dir / 'requirements.txt'} and the model (segedge's "
              f"Segmenter in Triton's Python backend) under {model_dir / '1'}")
        print(f"next: segedge serve {args.artifact}   (or: tritonserver --model-repository "
              f"{Path(args.output).resolve()} with requirements.txt in its Python)")
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
    p.add_argument("--batch-size", type=int, help="DeepStream: frames per inference (default 1, or --sources)")
    p.add_argument("--sources", type=int, metavar="N",
                   help="DeepStream: also write a deepstream-app config for N sources (nvstreammux and nvinfer batch "
                        "N, a tiler grid); the engine needs --max-batch >= N")
    p.add_argument("--uri", action="append",
                   help="DeepStream with --sources: a source URI (once for all sources, or once per source; default "
                        "DeepStream's sample video)")
    p.add_argument("--gpu-id", type=int, default=0, help="DeepStream: gpu-id")
    p.add_argument("--segmentation-threshold", type=float, default=0.0, help="DeepStream: minimum class probability")
    p.add_argument("--name", help="Triton: model name (default: the artifact folder's name)")
    p.add_argument("--backend", choices=["python", "native"], default="python",
                   help="Triton: python (default): image in, mask out, the artifact run by segedge's Segmenter in "
                        "Triton's Python backend; native: the bare model for Triton's onnxruntime/openvino/"
                        "tensorrt_plan backend (preprocessing and mask head are then the client's)")
    p.add_argument("--max-batch-size", type=int,
                   help="Triton: python backend default 8; native: 0 for mask heads, else the engine's max batch "
                        "(8 for ONNX/OpenVINO)")
    p.add_argument("--max-queue-delay-us", type=int, default=2000,
                   help="Triton python backend: how long the dynamic batcher waits to fill a batch (default 2000)")
    p.add_argument("--instances", type=int, default=1, help="Triton: instance_group count")
    p.add_argument("--kind", choices=["KIND_GPU", "KIND_CPU", "KIND_AUTO"],
                   help="Triton: instance kind (default GPU for TensorRT, CPU otherwise)")
    p.set_defaults(func=run)
