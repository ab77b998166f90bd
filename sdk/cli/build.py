"""``segedge build``: ONNX artifact -> TensorRT engine artifact, on the device."""
from __future__ import annotations

import argparse

from sdk.cli.common import hw_pair


def run(args: argparse.Namespace) -> int:
    from converters.tensorrt_build import build_engine
    from sdk.core.manifest import read_manifest
    from sdk.core.staging import writes_whole

    # written whole: a failed or interrupted build leaves an earlier engine artifact in --output as it was
    out = writes_whole()(build_engine)(
        args.onnx_artifact, args.output, fp16=args.fp16, int8=args.int8, dla_core=args.dla,
        workspace_mib=args.workspace_mib, min_hw=hw_pair(args.min_hw), opt_hw=hw_pair(args.opt_hw),
        max_hw=hw_pair(args.max_hw), opt_batch=args.opt_batch, max_batch=args.max_batch,
        min_output_hw=hw_pair(args.min_output_hw), opt_output_hw=hw_pair(args.opt_output_hw),
        max_output_hw=hw_pair(args.max_output_hw), softmax=args.softmax,
        timing_cache=None if args.timing_cache == "none" else args.timing_cache,
        check_parity=not args.no_parity, overwrite=args.overwrite)
    m = read_manifest(out)
    trt, parity = m.extra["tensorrt"], m.parity
    fp = trt["fingerprint"]
    checked = ", ".join(f"{k} {v:.4f}" for k, v in parity.items() if isinstance(v, float))
    dla = f", DLA core {fp['dla_core']}" if fp["dla_core"] is not None else ""
    print(f"built a {m.precision} engine for {fp['gpu_name']} (sm_{fp['compute_capability'].replace('.', '')}, "
          f"TensorRT {fp['tensorrt_version']}{dla}) in {trt['build']['seconds']} s: {out / m.model_file}; "
          f"vs ONNX Runtime: {checked or parity.get('skipped', 'not checked')}")
    build = trt["build"]
    if build.get("layers_line"):
        print(f"layers: {build['layers_line']}")
    for note in build.get("plan", {}).get("notes", []):
        print(f"note: {note}")
    print(f"next: segedge verify {out}   # on this device, against the FP32 reference frames")
    return 0


def add_parser(sub) -> None:
    """Register ``segedge build``. Imports nothing heavy."""
    p = sub.add_parser("build", help="ONNX artifact -> TensorRT engine artifact, built on this device")
    p.add_argument("onnx_artifact", help="ONNX artifact folder from segedge export (a Q/DQ ONNX artifact for --int8)")
    p.add_argument("--output", required=True, help="engine artifact folder to write (model.engine + model.json)")
    p.add_argument("--fp16", action="store_true", help="allow FP16 kernels (TensorRT < 11)")
    p.add_argument("--int8", action="store_true", help="build a Q/DQ ONNX artifact as INT8 (explicit quantization)")
    p.add_argument("--dla", type=int, metavar="CORE",
                   help="run what the DLA supports on this core, the rest on the GPU (with --fp16 or --int8)")
    p.add_argument("--workspace-mib", type=int, default=2048, help="TensorRT scratch memory limit (default 2048)")
    for level, what in (("min", "smallest"), ("opt", "tuned-for"), ("max", "largest")):
        p.add_argument(f"--{level}-hw", type=int, nargs=2, metavar=("H", "W"),
                       help=f"{what} network input size (default: the artifact's --size, else 128/512/1024)")
    for level, what in (("min", "smallest"), ("opt", "tuned-for"), ("max", "largest")):
        p.add_argument(f"--{level}-output-hw", type=int, nargs=2, metavar=("H", "W"),
                       help=f"mask head: {what} mask (image) size")
    p.add_argument("--opt-batch", type=int,
                   help="batch the engine is tuned for (default: --max-batch, e.g. DeepStream's number of sources)")
    p.add_argument("--max-batch", type=int, default=1,
                   help="largest batch (default 1); the profile is 1..--max-batch, recorded in model.json")
    p.add_argument("--softmax", action="store_true", help="append Softmax to a logits head (for DeepStream)")
    p.add_argument("--timing-cache", default="auto",
                   help="timing cache file, 'auto' (~/.cache/segedge, per TensorRT version and GPU) or 'none'")
    p.add_argument("--no-parity", action="store_true", help="skip the engine-vs-ONNX Runtime probe")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an --output folder that holds files other than an earlier artifact")
    p.set_defaults(func=run)
