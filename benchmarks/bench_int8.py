"""INT8 benchmark: accuracy and latency of FP32 vs INT8 per backend, side by side in one run.

    python -m benchmarks.bench_int8 --checkpoint ../shared/models/segformer-b0-camvid-hf \
        --camvid ../shared/data/camvid --json out/int8_bench.json

Builds through ``calibration.quantize`` -- the function ``segedge quantize`` calls, so this measures what ships
(target CPU class from ``--target-cpu``, default this machine's; the class is printed and in the JSON): the FP32
ONNX artifacts (the ``onnxruntime`` graph, which
``segedge quantize --backend onnxruntime`` uses, and the portable graph, timed as a second FP32 baseline); ONNX
Runtime INT8 (CPU recipe, from the ``onnxruntime`` graph); from the portable graph, the TensorRT-ready Q/DQ model
(evaluated in ONNX Runtime: its speed here means nothing, TensorRT builds it on the device); and, when OpenVINO +
NNCF are installed, OpenVINO FP32 (f32 hint), its default precision (bf16 on CPUs with AVX-512 BF16) and NNCF INT8 (static, so built once per measured size). Calibrates on CamVid train
(``--num-samples`` frames), evaluates mIoU and pixel agreement with FP32 on val and test at the native 360x480, and
measures latency (model only: preprocessed input -> mask, p50/p90) at 512x512 and 360x480, next to PyTorch eager
FP32 (transformers-equivalent model, logits upsampled and argmaxed): each variant alone in its own fresh process,
``--rounds`` alternating rounds of ``--warmup`` untimed + ``--repeats / --rounds`` timed runs, pooled
(``sdk.timing.isolated``), so no variant's threads share the cores with another's timing (in one process ONNX
Runtime's spinning threads slowed whatever ran next; ``--in-process`` keeps that older protocol for comparison). The
JSON's ``timing.isolation`` says which. Quantization times are the build times of ``segedge quantize``'s code paths.
Calibration-subset robustness: ``--seeds 0,1,2`` also builds the INT8 variants from calibration subsets drawn with
the other seeds and reports mean and worst drop and agreement over all seeds (accuracy only; latency on the first).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def torch_eager(*, checkpoint: str, pixel_values: str, hw: list[int]):
    """``sdk.timing.isolated``'s factory for the PyTorch eager FP32 row: the transformers-equivalent model, logits
    upsampled bilinearly to ``hw`` and argmaxed, on the saved input."""
    import torch

    from converters.checkpoints import load_checkpoint
    from sdk.timing.isolated import TimedCall

    model = load_checkpoint(Path(checkpoint)).model
    x = torch.from_numpy(np.load(pixel_values))
    size = (int(hw[0]), int(hw[1]))

    def run():
        with torch.no_grad():
            logits = model(x)
            return torch.nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False).argmax(1)

    return TimedCall(run, f"PyTorch {torch.__version__} eager FP32, {torch.get_num_threads()} threads")


def _in_process(timed: dict, x: np.ndarray, hw: tuple[int, int], args) -> dict:
    """The older protocol (--in-process): every variant open in this process, alternating run by run."""
    import torch

    from converters.checkpoints import load_checkpoint
    from sdk.core.manifest import model_feeds
    from sdk.segmenter import Segmenter
    from sdk.timing import measure_latency

    torch_model = load_checkpoint(args.checkpoint).model
    segs = {name: Segmenter.from_artifact(art, **opts) for name, (art, opts) in timed.items()}
    fns = {name: (lambda feeds, s=s: s.runtime.infer(feeds)) for name, s in segs.items()}

    def torch_eager_fn(feeds):
        with torch.no_grad():
            logits = torch_model(torch.from_numpy(feeds["pixel_values"]))
            torch.nn.functional.interpolate(logits, size=hw, mode="bilinear", align_corners=False).argmax(1)

    fns["pytorch-eager-fp32"] = torch_eager_fn
    feeds = model_feeds(segs["ort-fp32"].manifest, x, hw)  # torch_eager reads only pixel_values
    try:
        return measure_latency(fns, lambda name: feeds, args.repeats)
    finally:
        for s in segs.values():
            s.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--camvid", type=Path, required=True)
    ap.add_argument("--num-samples", type=int, default=300)
    ap.add_argument("--method", help="calibration method for both ONNX Runtime targets (default: each target's own, "
                                     "minmax for ORT INT8, percentile for the TensorRT Q/DQ model)")
    ap.add_argument("--target-cpu", default="auto", help="CPU class the INT8 artifacts are made for (auto|vnni|"
                                                           "avx512|avx2|arm64)")
    ap.add_argument("--seeds", default="0", help="calibration-subset seeds, comma-separated (robustness: 0,1,2)")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs per variant and size, split over the rounds")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first, in each process")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds; each times every variant alone in a fresh process of its own")
    ap.add_argument("--in-process", action="store_true",
                    help="the older protocol, for comparison: all variants in this process, alternating run by run "
                         "with a 0.1 s pause (ONNX Runtime's spinning threads may slow the variant after it)")
    ap.add_argument("--splits", default="val,test")
    ap.add_argument("--workdir", type=Path, help="keep the artifacts here (default: a temporary folder)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import torch

    from calibration.datasets import CamVid
    from calibration.evaluate import evaluate
    from calibration import quantize
    from calibration.sets import load_calibration_set
    from converters.onnx_export import export_onnx
    from runtimes import RUNTIMES
    from sdk.core.manifest import read_manifest
    from sdk.timing.isolated import Timed, artifact_variant, in_process, save_input, time_isolated
    from sdk.core.preprocess import preprocess
    from sdk.segmenter import Segmenter

    tmp = tempfile.TemporaryDirectory(prefix="segedge-bench-")
    work = args.workdir or Path(tmp.name)
    seeds = [int(v) for v in args.seeds.split(",")]
    calib_of = {seed: load_calibration_set(args.camvid / "train.txt", num_samples=args.num_samples, seed=seed)
                for seed in seeds}
    calib = calib_of[seeds[0]]
    fp32 = export_onnx(args.checkpoint, work / "fp32", graph="onnxruntime", progress=False)
    portable = export_onnx(args.checkpoint, work / "fp32-portable", progress=False)
    variants: dict[str, tuple[Path, dict]] = {"ort-fp32": (fp32, {"runtime": "onnxruntime"}),
                                              "ort-fp32-portable": (portable, {"runtime": "onnxruntime"})}
    build_s: dict[str, float] = {}
    method = {"method": args.method} if args.method else {}

    def int8(source: Path, backend: str, out: Path, seed: int, **kw) -> Path:
        cpu = {} if backend == "tensorrt" else {"target_cpu": args.target_cpu}
        return quantize(source, out, backend=backend, calib=calib_of[seed], progress=False, **cpu, **kw).artifact

    t = time.perf_counter()
    variants["ort-int8"] = (int8(fp32, "onnxruntime", work / "ort-int8", seeds[0], **method),
                            {"runtime": "onnxruntime"})
    build_s["ort-int8"] = time.perf_counter() - t
    t = time.perf_counter()
    variants["trt-qdq (in ORT)"] = (int8(portable, "tensorrt", work / "trt-qdq", seeds[0], **method),
                                    {"runtime": "onnxruntime"})
    build_s["trt-qdq (in ORT)"] = time.perf_counter() - t
    ov_at: dict[tuple[int, int], dict[str, Path]] = {}
    if "openvino" in RUNTIMES:
        try:
            from converters.openvino_export import export_openvino

            # OpenVINO variants are static IRs at each measured size (INT8 is calibrated at one resolution, and the
            # float IRs are made static too so INT8 is compared with OpenVINO's float at the same shape)
            for hw in ((360, 480), (512, 512)):
                ir = export_openvino(portable, work / f"ov-ir-{hw[0]}x{hw[1]}", size_hw=hw, progress=False)
                t = time.perf_counter()
                ov_int8 = int8(portable, "openvino", work / f"ov-int8-{hw[0]}x{hw[1]}", seeds[0], size_hw=hw)
                build_s[f"ov-int8 {hw[0]}x{hw[1]}"] = time.perf_counter() - t
                ov_at[hw] = {"ov-f32": ir, "ov-default": ir, "ov-int8": ov_int8}
            variants["ov-f32"] = (ov_at[(360, 480)]["ov-f32"], {"runtime": "openvino", "precision": "f32"})
            variants["ov-default"] = (ov_at[(360, 480)]["ov-default"], {"runtime": "openvino", "precision": None})
            variants["ov-int8"] = (ov_at[(360, 480)]["ov-int8"], {"runtime": "openvino"})
            build_s["ov-int8"] = build_s["ov-int8 360x480"]
        except ImportError as exc:
            print(f"OpenVINO INT8 skipped: {exc}")

    # the other seeds: accuracy only (robustness of the drop to the calibration subset)
    extra_seeds: dict[str, tuple[Path, dict]] = {}
    for seed in seeds[1:]:
        extra_seeds[f"ort-int8 s{seed}"] = (int8(fp32, "onnxruntime", work / f"ort-int8-s{seed}", seed, **method),
                                            {"runtime": "onnxruntime"})
        extra_seeds[f"trt-qdq (in ORT) s{seed}"] = (int8(portable, "tensorrt", work / f"trt-qdq-s{seed}", seed,
                                                         **method), {"runtime": "onnxruntime"})
        if "ov-int8" in variants:
            extra_seeds[f"ov-int8 s{seed}"] = (int8(portable, "openvino", work / f"ov-int8-s{seed}", seed,
                                                    size_hw=(360, 480)), {"runtime": "openvino"})
    rows: dict[str, dict] = {name: {"build_s": build_s.get(name)} for name in variants}
    rows.update({name: {} for name in extra_seeds})
    for split in args.splits.split(","):
        data = list(CamVid(args.camvid, split))
        with Segmenter.from_artifact(fp32, runtime="onnxruntime") as ref:
            for name, (art, opts) in {**variants, **extra_seeds}.items():
                with Segmenter.from_artifact(art, **opts) as seg:
                    r = evaluate(seg, data, reference=None if name == "ort-fp32" else ref, progress=False)
                rows[name][f"{split}_miou"] = r.miou
                rows[name][f"{split}_agreement"] = 1.0 if name == "ort-fp32" else r.agreement
                print(f"{split:>5} {name:<18} mIoU {r.miou:.4f} agreement "
                      f"{rows[name][f'{split}_agreement']:.4%}", flush=True)
    for name in rows:
        for split in args.splits.split(","):
            rows[name][f"{split}_drop_points"] = 100 * (rows["ort-fp32"][f"{split}_miou"] - rows[name][f"{split}_miou"])
    robustness = {}
    for base in ("ort-int8", "trt-qdq (in ORT)", "ov-int8"):
        runs = [rows[n] for n in [base, *(f"{base} s{seed}" for seed in seeds[1:])] if n in rows]
        for split in args.splits.split(",") if len(runs) > 1 else ():
            drops = [r[f"{split}_drop_points"] for r in runs]
            agree = [r[f"{split}_agreement"] for r in runs]
            robustness[f"{base} {split}"] = {"seeds": seeds, "mean_drop_points": float(np.mean(drops)),
                                             "worst_drop_points": max(drops), "mean_agreement": float(np.mean(agree)),
                                             "worst_agreement": min(agree)}
            print(f"robustness {base} {split}: drop mean {np.mean(drops):.2f} worst {max(drops):.2f} points; "
                  f"agreement mean {np.mean(agree):.2%} worst {min(agree):.2%} over seeds {seeds}")

    # latency, model only (preprocessed input -> mask), at a fixed 512x512 and at CamVid's 360x480
    frame = next(iter(CamVid(args.camvid, "val")))[0]
    latency: dict[str, dict] = {}
    for hw in ((512, 512), (360, 480)):
        import cv2

        img = cv2.resize(frame, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
        timed = {name: (ov_at.get(hw, {}).get(name, art), opts) for name, (art, opts) in variants.items()
                 if not name.startswith("trt-")}
        x = preprocess(img, read_manifest(fp32).preprocess)
        if args.in_process:
            latency[f"{hw[0]}x{hw[1]}"] = _in_process(timed, x, hw, args)
        else:
            x_npy = save_input(work / "timing", f"x-{hw[0]}x{hw[1]}", x)
            runs = [artifact_variant(name, art, runtime=opts["runtime"], pixel_values=x_npy, output_hw=hw,
                                     options={k: v for k, v in opts.items() if k != "runtime"})
                    for name, (art, opts) in timed.items()]
            runs.append(Timed(name="pytorch-eager-fp32", factory="benchmarks.bench_int8:torch_eager",
                              args={"checkpoint": str(args.checkpoint), "pixel_values": x_npy, "hw": list(hw)}))
            print(f"timing {len(runs)} variants at {hw[0]}x{hw[1]}, each alone in its own process, {args.rounds} "
                  "alternating rounds", flush=True)
            got = time_isolated(runs, rounds=args.rounds, runs=-(-args.repeats // args.rounds), warmup=args.warmup)
            latency[f"{hw[0]}x{hw[1]}"] = got["variants"]
            how = got["isolation"]
    if args.in_process:
        how = in_process(pause_s=0.1, repeats=args.repeats, warmup=1)

    from sdk.timing import environment

    from sdk.core.cpu import host_isa, resolve_target_cpu

    env = {**environment(), "torch_threads": torch.get_num_threads(), "cpu_isa": host_isa(),
           "int8_target_cpu": resolve_target_cpu(args.target_cpu),
           "versions": read_manifest(fp32).versions}
    print(f"\n{'variant':<20} {'val mIoU':>9} {'drop pt':>8} {'agree':>8} {'test mIoU':>9} {'drop pt':>8} "
          f"{'agree':>8} {'512 p50':>8} {'512 p90':>8} {'360x480 p50':>11} {'360x480 p90':>11} {'build s':>8}")
    for name in list(rows) + ["pytorch-eager-fp32"]:
        r = rows.get(name, {})
        lat = latency["512x512"].get(name, {})
        lat2 = latency["360x480"].get(name, {})
        fmt = lambda v, f: (f"{v:{f}}" if isinstance(v, (int, float)) else "-")  # noqa: E731
        print(f"{name:<20} {fmt(r.get('val_miou'), '.4f'):>9} {fmt(r.get('val_drop_points'), '.2f'):>8} "
              f"{fmt(r.get('val_agreement'), '.2%'):>8} {fmt(r.get('test_miou'), '.4f'):>9} "
              f"{fmt(r.get('test_drop_points'), '.2f'):>8} {fmt(r.get('test_agreement'), '.2%'):>8} "
              f"{fmt(lat.get('p50_ms'), '.1f'):>8} {fmt(lat.get('p90_ms'), '.1f'):>8} "
              f"{fmt(lat2.get('p50_ms'), '.1f'):>11} {fmt(lat2.get('p90_ms'), '.1f'):>11} "
              f"{fmt(r.get('build_s'), '.0f'):>8}")
    ratios = {}
    for size, lat in latency.items():
        for a, b in (("ort-int8", "ort-fp32"), ("ort-int8", "ort-fp32-portable"), ("ort-fp32", "ort-fp32-portable"),
                     ("ov-int8", "ov-default"), ("ov-int8", "ov-f32"),
                     ("ort-int8", "pytorch-eager-fp32"), ("ov-int8", "pytorch-eager-fp32")):
            if a in lat and b in lat:
                ratios[f"{size} {a} vs {b}"] = lat[b]["p50_ms"] / lat[a]["p50_ms"]
    print("speed-ups (p50 ratio, same run): " + "; ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    print(f"measured on a {env['cpu_isa']['class']} CPU ({', '.join(env['cpu_isa']['flags'])}); INT8 made for "
          f"{env['int8_target_cpu']}")
    result = {"schema": "segedge.int8_bench/1",  # benchmarks/make_docs.py renders it into docs/BENCHMARKS.md
              "command": "python -m benchmarks.bench_int8 " + shlex.join(sys.argv[1:] if argv is None else argv),
              "environment": env, "build_seconds": build_s, "calibration": calib.description, "accuracy": rows,
              "robustness": robustness, "latency": latency, "timing": {"isolation": how},
              "speedups_p50": ratios}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
