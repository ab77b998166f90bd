"""``segedge``: one subcommand per job, each a thin wrapper over a public function.

Exit codes: 0 success, 1 an SDK error (one line; traceback with -v), 2 a usage error. ``--help`` needs no extras.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from sdk.errors import InputError, SegEdgeError
from sdk.manifest import GRAPHS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
DEMO_CHECKPOINT = Path(__file__).resolve().parent / "assets" / "segformer-b0-camvid-demo"
DEMO_IMAGES = Path("../shared/data/camvid")


def _labels(value: str | None) -> list[str] | None:
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    return [v.strip() for v in value.split(",")]


def _image_paths(inputs: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"images: folder {p} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise InputError(f"images: {p} is neither an image file nor a folder")
    return paths


def cmd_export(args: argparse.Namespace) -> int:
    from converters.onnx_export import export_onnx

    out = export_onnx(args.checkpoint, args.output, size_hw=tuple(args.size) if args.size else None,
                      opset=args.opset, graph=args.graph, head=args.head, upsample=args.upsample,
                      class_names=_labels(args.labels),
                      layer_norm_eps=args.layer_norm_eps, progress=not args.quiet)
    manifest = json.loads((out / "model.json").read_text())
    print(f"exported {manifest['architecture']['variant']} ({len(manifest['class_names'])} classes) to "
          f"{out / manifest['model_file']} in {manifest['extra']['export_seconds']} s; ONNX Runtime vs PyTorch max "
          f"|logit diff| {manifest['parity']['onnxruntime_vs_torch_max_abs_logit']:.2e}")
    print(f"next: segedge predict {out} IMAGE_OR_FOLDER --output masks/")
    return 0


def predict_files(artifact: str | Path, images: list[str], output: str | Path, *, runtime: str = "auto",
                  overlay: bool = True, batch_size: int = 1) -> list[Path]:
    """Segment image files; writes ``<output>/<stem>.png`` (class ids) and ``<stem>_overlay.png``."""
    import cv2
    from tqdm import tqdm

    from sdk.preprocess import read_rgb
    from sdk.segmenter import Segmenter

    written: list[Path] = []
    with Segmenter.from_artifact(artifact, runtime=runtime) as seg:
        paths = _image_paths(images)
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        for start in tqdm(range(0, len(paths), batch_size), desc="predict", unit="batch",
                          disable=len(paths) < 2):
            chunk = paths[start:start + batch_size]
            imgs = [read_rgb(p) for p in chunk]
            for path, img, res in zip(chunk, imgs, seg.predict_batch(imgs, batch_size=batch_size)):
                mask_path = out / f"{path.stem}.png"
                cv2.imwrite(str(mask_path), res.mask if res.mask.dtype == "uint8" else res.mask.astype("uint16"))
                if overlay:
                    cv2.imwrite(str(out / f"{path.stem}_overlay.png"), res.overlay(img)[..., ::-1])
                written.append(mask_path)
    return written


def cmd_predict(args: argparse.Namespace) -> int:
    written = predict_files(args.artifact, args.images, args.output, runtime=args.runtime,
                            overlay=not args.no_overlay, batch_size=args.batch_size)
    print(f"wrote {len(written)} masks (class ids as PNG{' + overlays' if not args.no_overlay else ''}) to "
          f"{args.output}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_file() and (path.parent / "model.json").is_file():
        path = path.parent  # a model file inside an artifact folder (e.g. out/b0.engine/model.engine)
    if (path / "model.json").exists():
        from sdk.manifest import read_manifest

        m = read_manifest(path)
        info = {"artifact": str(path), "format": m.format, "precision": m.precision, "head": m.head,
                "upsample": m.upsample, "variant": m.architecture.get("variant"), "classes": m.class_names,
                "preprocess": m.preprocess.to_dict(), "inputs": [vars(t) for t in m.inputs],
                "outputs": [vars(t) for t in m.outputs], "opset": m.opset, "source": m.source, "parity": m.parity,
                "versions": m.versions}
    else:
        from converters.checkpoints import load_checkpoint

        ck = load_checkpoint(path)
        info = {"checkpoint": str(path), "layout": ck.layout, "variant": ck.config.variant,
                "num_classes": ck.config.num_classes, "classes": ck.class_names,
                "parameters": sum(p.numel() for p in ck.model.parameters()),
                "preprocess": ck.preprocess.to_dict(), "sha256": ck.sha256}
    print(json.dumps(info, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the bundled default: export the demo checkpoint, segment CamVid images, score them."""
    from calibration.datasets import CamVid
    from calibration.evaluate import evaluate
    from converters.onnx_export import export_onnx
    from sdk.segmenter import Segmenter

    out = Path(args.output)
    artifact = export_onnx(args.checkpoint, out / "artifact", progress=not args.quiet)
    data = CamVid(args.camvid, args.split)
    written = predict_files(artifact, [str(p) for p, _ in data.pairs()[: args.save]], out / "masks")
    with Segmenter.from_artifact(artifact) as seg:
        result = evaluate(seg, data, total=len(data), progress=not args.quiet)
    summary = {"artifact": str(artifact), "split": args.split, **result.to_dict()}
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"demo: CamVid {args.split} mIoU {result.miou:.4f} over {result.images} images (ONNX Runtime); "
          f"{len(written)} masks + overlays in {out / 'masks'}; summary in {out / 'demo.json'}")
    print(f"next: segedge predict {artifact} YOUR_IMAGES --output masks/")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from calibration.datasets import open_labelled_set
    from calibration.evaluate import evaluate
    from sdk.segmenter import Segmenter

    data = open_labelled_set(args.data, args.split)
    with Segmenter.from_artifact(args.artifact, runtime=args.runtime) as seg:
        ref = Segmenter.from_artifact(args.reference) if args.reference else None
        result = evaluate(seg, data, class_names=getattr(data, "class_names", None), reference=ref, total=len(data),
                          progress=not args.quiet)
        if ref is not None:
            ref.close()
    kind = type(data).__name__ if not hasattr(data, "layout") else data.layout
    summary = {"artifact": str(args.artifact), "dataset": kind.lower(), "path": str(args.data), "split": args.split,
               **result.to_dict()}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    agree = f", agreement with reference {result.agreement:.4%}" if result.agreement is not None else ""
    print(f"{kind} {args.split}: mIoU {result.miou:.4f}, pixel accuracy {result.pixel_accuracy:.4f} over "
          f"{result.images} images{agree}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from calibration.sets import load_calibration_set

    source, out = Path(args.checkpoint), Path(args.output)
    if (source / "model.json").is_file():
        fp32 = source  # already an FP32 ONNX artifact
        from sdk.manifest import read_manifest

        if args.backend == "onnxruntime" and read_manifest(source).graph == "portable":
            print(f"note: {source} is a portable graph; for ONNX Runtime, INT8 from a --graph onnxruntime export "
                  "runs faster (segedge export CHECKPOINT --graph onnxruntime, or pass the checkpoint)")
    else:
        from converters.onnx_export import export_onnx

        # ONNX Runtime gets its own fast graph; OpenVINO and TensorRT read the portable one
        fp32 = export_onnx(source, out / "fp32", size_hw=tuple(args.size) if args.size else None,
                           graph="onnxruntime" if args.backend == "onnxruntime" else "portable",
                           class_names=_labels(args.labels), progress=not args.quiet)
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


def _hw(values: list[int] | None) -> tuple[int, int] | None:
    return (values[0], values[1]) if values else None


def cmd_build(args: argparse.Namespace) -> int:
    from converters.tensorrt_build import build_engine

    out = build_engine(args.onnx_artifact, args.output, fp16=args.fp16, int8=args.int8, dla_core=args.dla,
                       workspace_mib=args.workspace_mib, min_hw=_hw(args.min_hw), opt_hw=_hw(args.opt_hw),
                       max_hw=_hw(args.max_hw), opt_batch=args.opt_batch, max_batch=args.max_batch,
                       min_output_hw=_hw(args.min_output_hw), opt_output_hw=_hw(args.opt_output_hw),
                       max_output_hw=_hw(args.max_output_hw), softmax=args.softmax,
                       timing_cache=None if args.timing_cache == "none" else args.timing_cache,
                       check_parity=not args.no_parity)
    m = json.loads((out / "model.json").read_text())
    trt, parity = m["extra"]["tensorrt"], m["parity"]
    fp = trt["fingerprint"]
    checked = ", ".join(f"{k} {v:.4f}" for k, v in parity.items() if isinstance(v, float))
    dla = f", DLA core {fp['dla_core']}" if fp["dla_core"] is not None else ""
    print(f"built a {m['precision']} engine for {fp['gpu_name']} (sm_{fp['compute_capability'].replace('.', '')}, "
          f"TensorRT {fp['tensorrt_version']}{dla}) in {trt['build']['seconds']} s: {out / m['model_file']}; "
          f"vs ONNX Runtime: {checked or parity.get('skipped', 'not checked')}")
    print(f"next: segedge predict {out} IMAGE_OR_FOLDER --output masks/")
    return 0


def cmd_deploy_config(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="segedge", description="Trained SegFormer -> edge artifacts and inference.")
    ap.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and info logs")
    sub = ap.add_subparsers(dest="command", required=True)

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
    p.add_argument("--upsample", choices=["exact", "fast"], default="exact",
                   help="exact: bilinear logits to full size then argmax; fast: argmax at network size, nearest up")
    p.add_argument("--labels", help="class names: a text file (one per line) or a comma-separated list")
    p.add_argument("--layer-norm-eps", type=float,
                   help="override the blocks' LayerNorm eps (e.g. 1e-6 for the NVlabs code's exact numerics)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)

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
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("predict", help="segment images with an artifact")
    p.add_argument("artifact")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--output", required=True, help="folder for <name>.png class-id masks and overlays")
    p.add_argument("--runtime", default="auto", help="auto, onnxruntime, openvino or tensorrt")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--no-overlay", action="store_true")
    p.set_defaults(func=cmd_predict)

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
    p.add_argument("--opt-batch", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=1)
    p.add_argument("--softmax", action="store_true", help="append Softmax to a logits head (for DeepStream)")
    p.add_argument("--timing-cache", default="auto",
                   help="timing cache file, 'auto' (~/.cache/segedge, per TensorRT version and GPU) or 'none'")
    p.add_argument("--no-parity", action="store_true", help="skip the engine-vs-ONNX Runtime probe")
    p.set_defaults(func=cmd_build)

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
    p.set_defaults(func=cmd_deploy_config)

    from calibration.report import add_report_parser
    from sdk.bench import add_bench_parser
    from sdk.pipeline import add_stream_parser

    add_stream_parser(sub)
    add_report_parser(sub)
    add_bench_parser(sub)

    p = sub.add_parser("inspect", help="describe an artifact or a checkpoint")
    p.add_argument("path")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("eval", help="mIoU of an artifact on a labelled set (CamVid, Cityscapes, ADE20K, generic)")
    p.add_argument("artifact")
    p.add_argument("--data", "--camvid", dest="data", required=True,
                   help="labelled set: CamVid root (SegNet layout), Cityscapes root (leftImg8bit/ + gtFine/), "
                        "ADE20K folder (images/ + annotations/), or images/ + labels/")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--reference", help="another artifact (e.g. FP32) to measure pixel agreement with")
    p.add_argument("--runtime", default="auto")
    p.add_argument("--json", help="write the result here")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="offline demo on the bundled checkpoint: export, predict, score on CamVid")
    p.add_argument("--checkpoint", default=str(DEMO_CHECKPOINT), help="default: the bundled demo model")
    p.add_argument("--camvid", default=str(DEMO_IMAGES), help="CamVid root in the SegNet layout")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--save", type=int, default=5, help="how many masks + overlays to write")
    p.add_argument("--output", default="out/demo")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except SegEdgeError as exc:
        if args.verbose:
            raise
        print(f"segedge {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
