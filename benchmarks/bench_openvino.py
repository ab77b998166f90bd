"""OpenVINO benchmark: FP32 IR (OpenVINO's default precision, and the f32 hint) vs NNCF INT8, side by side in one run.

    python -m benchmarks.bench_openvino --checkpoint ../shared/models/segformer-b0-camvid-hf \
        --camvid ../shared/data/camvid --size 512 512 --json out/ov_bench.json

Builds with the same code paths as the SDK: the FP32 ONNX artifact (``export_onnx``), static FP32 IRs
(``export_openvino``) and INT8 IRs (``quantize_openvino``, ``--num-samples`` CamVid train frames) at ``--size`` and at
CamVid's native 360x480. Measures latency (model only: preprocessed (1, 3, h, w) input -> mask at the same size,
warm-up, then ``--repeats`` runs per variant, variants alternating run by run so machine noise hits all alike;
p50/p90; ONNX Runtime FP32 for reference, timed separately) and CamVid val mIoU + pixel agreement with FP32 (OpenVINO, f32 hint) at both sizes. INT8 runs with
OpenVINO's default hint (its float layers in bf16 where the CPU has it) and, for accuracy, with the f32 hint too.
Not a test: timings depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def _latency(runtimes: dict, hw: tuple[int, int], repeats: int, warmup: int = 5) -> dict[str, dict[str, float]]:
    from sdk.core.manifest import model_feeds

    x = np.random.default_rng(0).standard_normal((1, 3, *hw)).astype(np.float32)
    feeds = model_feeds(next(iter(runtimes.values())).manifest, x, hw)  # the variants share one graph's inputs
    for rt in runtimes.values():
        for _ in range(warmup):
            rt.infer(feeds)
    times: dict[str, list[float]] = {k: [] for k in runtimes}
    for _ in range(repeats):
        for name, rt in runtimes.items():
            t = time.perf_counter()
            rt.infer(feeds)
            times[name].append((time.perf_counter() - t) * 1e3)
    return {k: {"p50_ms": float(np.percentile(v, 50)), "p90_ms": float(np.percentile(v, 90))}
            for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--camvid", type=Path, required=True)
    ap.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    ap.add_argument("--num-samples", type=int, default=300, help="calibration frames from CamVid train")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--split", default="val")
    ap.add_argument("--workdir", type=Path, help="keep the artifacts here (default: a temporary folder)")
    ap.add_argument("--settle-s", type=float, default=30.0,
                    help="pause between building and timing (see the comment at its use)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import openvino as ov

    from calibration.datasets import CamVid
    from calibration.evaluate import evaluate
    from calibration.quantize_openvino import quantize_openvino
    from calibration.sets import load_calibration_set
    from converters.onnx_export import export_onnx
    from converters.openvino_export import export_openvino
    from runtimes.onnxruntime import OnnxRuntime
    from runtimes.openvino import OpenVINORuntime
    from sdk.core.manifest import read_manifest
    from sdk.segmenter import Segmenter

    tmp = tempfile.TemporaryDirectory(prefix="segedge-ovbench-")
    work = args.workdir or Path(tmp.name)
    sizes = {f"{h}x{w}": (h, w) for h, w in [tuple(args.size), (360, 480)]}
    calib = load_calibration_set(args.camvid / "train.txt", num_samples=args.num_samples, seed=0)
    print(f"calibration: {calib.description}", flush=True)
    onnx_fp32 = export_onnx(args.checkpoint, work / "onnx-fp32", progress=False)
    irs: dict[str, dict[str, Path]] = {}
    quant_s: dict[str, float] = {}
    for label, hw in sizes.items():
        irs[label] = {"fp32": export_openvino(onnx_fp32, work / f"ov-fp32-{label}", size_hw=hw, progress=False)}
        t = time.perf_counter()
        irs[label]["int8"] = quantize_openvino(onnx_fp32, calib, work / f"ov-int8-{label}", size_hw=hw,
                                               progress=False)
        quant_s[label] = time.perf_counter() - t
        print(f"{label}: INT8 quantized in {quant_s[label]:.0f} s", flush=True)

    # Right after quantizing, every model here ran ~1.3x slower for 10-20 s, though no thread of this process was
    # busy (the VM's memory reclaim after NNCF's large allocations, it seems); timing then skews the ratios too.
    gc.collect()
    time.sleep(args.settle_s)

    variants: dict[str, tuple[str, dict]] = {  # name -> (which IR, runtime options)
        "ov-default": ("fp32", {"precision": None}),
        "ov-f32": ("fp32", {"precision": "f32"}),
        "ov-int8": ("int8", {"precision": None}),
        "ov-int8 (f32 hint)": ("int8", {"precision": "f32"}),
    }
    report: dict = {"machine": platform.processor() or platform.machine(), "openvino": ov.__version__,
                    "calibration": calib.description, "sizes": {}}
    data = list(CamVid(args.camvid, args.split))
    for label, hw in sizes.items():
        rts = {name: OpenVINORuntime(irs[label][ir], **opts) for name, (ir, opts) in variants.items()}
        described = {name: rt.describe() for name, rt in rts.items()}
        lat = _latency(rts, hw, args.repeats)
        for rt in rts.values():
            rt.close()
        # ONNX Runtime on its own, after: its intra-op threads spin-wait after each run and would slow down
        # whichever variant ran next in the alternation (OpenVINO's default looked 1.6x slower that way)
        with OnnxRuntime(onnx_fp32) as ort:
            described["ort-fp32"] = ort.describe()
            lat.update(_latency({"ort-fp32": ort}, hw, args.repeats))
        acc: dict[str, dict] = {}
        with Segmenter(OpenVINORuntime(irs[label]["fp32"], precision="f32")) as ref:
            for name, (ir, opts) in variants.items():
                with Segmenter(OpenVINORuntime(irs[label][ir], **opts)) as seg:
                    r = evaluate(seg, data, reference=None if name == "ov-f32" else ref, progress=False)
                acc[name] = {"miou": r.miou, "agreement": 1.0 if name == "ov-f32" else r.agreement}
        report["sizes"][label] = {"latency": lat, "accuracy": acc, "runtimes": described,
                                  "quantize_seconds": quant_s[label],
                                  "int8_manifest": read_manifest(irs[label]["int8"]).extra["quantization"]}

    fp = {label: report["sizes"][label]["accuracy"]["ov-f32"]["miou"] for label in sizes}
    print(f"\nOpenVINO {ov.__version__.split('-')[0]} on {report['machine']}; INT8 calibrated on "
          f"{calib.description}; CamVid {args.split} ({len(data)} images), masks at 360x480")
    print(f"{'size':>8} {'variant':<20} {'p50 ms':>8} {'p90 ms':>8} {'mIoU':>7} {'drop':>6} {'agree':>8}  "
          "in effect")
    for label in sizes:
        s = report["sizes"][label]
        for name in [*variants, "ort-fp32"]:
            lat = s["latency"][name]
            a = s["accuracy"].get(name)
            acc_txt = (f"{100 * a['miou']:7.2f} {100 * (fp[label] - a['miou']):6.2f} {100 * a['agreement']:7.2f}%"
                       if a else f"{'':7} {'':6} {'':8}")
            print(f"{label:>8} {name:<20} {lat['p50_ms']:8.1f} {lat['p90_ms']:8.1f} {acc_txt}  "
                  f"{s['runtimes'][name]}")
        base = s["latency"]["ov-default"]["p50_ms"]
        print(f"{label:>8} INT8 vs OpenVINO default: {base / s['latency']['ov-int8']['p50_ms']:.2f}x (p50); "
              f"quantization {s['quantize_seconds']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
