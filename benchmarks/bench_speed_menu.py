"""The training-free speed menu, measured: input scale x token merging x backend x precision, on one machine.

    python -m benchmarks.bench_speed_menu --checkpoint ../shared/models/segformer-b0-camvid-hf \
        --camvid ../shared/data/camvid --split test --json out/speed_menu.json

Per menu point (``calibration.speed_menu``: scale s runs the network at s x the frame, masks at the frame's size;
token merge from ``converters.token_merge``): ONNX Runtime FP32 on the onnxruntime graph and OpenVINO's float IR
(static, default precision) from the portable graph, all scored on ``--split`` (mIoU, drop and pixel agreement vs
the full-resolution unmerged ORT FP32 reference) and timed side by side (model only: preprocessed frame -> mask at
the frame's size; ``sdk.timing.measure_latency``). Then, for the points ``prune_for_int8`` keeps (FP32 within
``--max-drop`` and on the FP32 Pareto front), ONNX Runtime INT8 and OpenVINO INT8 (``calibration.quantize``) and,
with ``--latency-aware``, ONNX Runtime's latency-aware per-region INT8 (``calibration.latency_aware``, tuned on val).
Prints one table (ratios vs the reference, same run), the Pareto front and the fastest variant within --max-drop,
each with the commands that build it; writes it all to --json with the machine's ISA.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

SCHEMA = "segedge.speed_menu/1"


def _row(name, point, backend, precision, art, opts, command, build_s):
    return {"name": name, "scale": point.scale, "token_merge": point.merge.spec, "backend": backend,
            "precision": precision, "artifact": str(art), "runtime_options": opts, "command": command,
            "build_seconds": build_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--camvid", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--images", type=int, default=0, help="every k-th image so that about this many are scored "
                                                          "(0: all)")
    ap.add_argument("--scales", default="1.0,0.75,0.5")
    ap.add_argument("--token-merges", default="none,2x2")
    ap.add_argument("--backends", default="onnxruntime,openvino")
    ap.add_argument("--num-samples", type=int, default=64, help="calibration frames (CamVid train)")
    ap.add_argument("--max-drop", type=float, default=0.5)
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--latency-aware", action="store_true")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from calibration.datasets import CamVid
    from calibration.evaluate import evaluate
    from calibration.int8 import quantize
    from calibration.sets import load_calibration_set
    from calibration.speed_menu import MenuPoint, menu, pareto, prune_for_int8, scaled_size_hw
    from converters.onnx_export import export_onnx
    from converters.token_merge_spec import TokenMerge, parse_token_merge
    from sdk.core.cpu import host_isa
    from sdk.segmenter import Segmenter
    from sdk.timing import environment
    from calibration.latency_aware import p50_side_by_side

    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="segedge-menu-")
    work = args.workdir or Path(tmp.name)
    data = list(CamVid(args.camvid, args.split))
    if args.images:
        data = data[:: max(1, len(data) // args.images)]
    frame_hw = data[0][0].shape[:2]
    ck = args.checkpoint
    backends = args.backends.split(",")
    rows: list[dict] = []

    def export(point: MenuPoint, graph: str) -> tuple[Path, float]:
        t = time.perf_counter()
        out = export_onnx(ck, work / f"{graph}-{point.tag or 'full'}", graph=graph,
                          size_hw=scaled_size_hw(frame_hw, point.scale), token_merge=point.merge.spec,
                          progress=False)
        return out, time.perf_counter() - t

    ref_point = MenuPoint(scale=1.0, merge=TokenMerge())
    portable: dict[MenuPoint, Path] = {}
    for point in menu(args.scales, args.token_merges):
        base = f"segedge export {ck} {point.export_args(frame_hw)}"
        if "onnxruntime" in backends or point == ref_point:
            art, s = export(point, "onnxruntime")
            rows.append(_row("-".join(p for p in ("ort-fp32", point.tag) if p), point, "onnxruntime", "fp32", art,
                             {"runtime": "onnxruntime"}, f"{base} --graph onnxruntime --output {art.name}", s))
        if "openvino" in backends:
            from converters.openvino_export import export_openvino

            portable[point], s = export(point, "portable")
            t = time.perf_counter()
            ir = export_openvino(portable[point], work / f"ov-{point.tag or 'full'}",
                                 size_hw=scaled_size_hw(frame_hw, point.scale), progress=False)
            rows.append(_row("-".join(p for p in ("ov-float", point.tag) if p), point, "openvino", "float", ir,
                             {"runtime": "openvino"}, f"{base} --output {portable[point].name} && segedge "
                             f"export-openvino {portable[point].name} --output {ir.name} --size "
                             f"{scaled_size_hw(frame_hw, point.scale)[0]} {scaled_size_hw(frame_hw, point.scale)[1]}",
                             s + time.perf_counter() - t))
    reference = next(r for r in rows if r["name"] == "ort-fp32")
    with Segmenter.from_artifact(reference["artifact"], runtime="onnxruntime") as seg:
        ref_eval = evaluate(seg, data, keep_masks=True, progress=False)
    ref_masks = ref_eval.masks

    def score(r: dict) -> None:
        with Segmenter.from_artifact(r["artifact"], **r["runtime_options"]) as seg:
            e = evaluate(seg, data, reference_masks=ref_masks, progress=False)
            r["runtime_description"] = seg.runtime.describe()  # e.g. OpenVINO's default float: bf16 on AMX/BF16
        r.update(miou=e.miou, agreement=e.agreement, drop_points=100 * (ref_eval.miou - e.miou))
        print(f"{r['name']:<28} mIoU {e.miou:.4f} drop {r['drop_points']:+.2f} agreement {e.agreement:.2%}",
              flush=True)

    def timing(group: list[dict]) -> None:
        named = {r["name"]: (Path(r["artifact"]), r["runtime_options"]) for r in group}
        named.setdefault("ort-fp32", (Path(reference["artifact"]), reference["runtime_options"]))
        p50 = p50_side_by_side(named, data[0][0], args.repeats)
        for r in group:
            r["p50_ms"] = p50[r["name"]]
            r["speedup_vs_ort_fp32"] = p50["ort-fp32"] / p50[r["name"]]

    for r in rows:
        score(r)
    timing(rows)
    int8_rows: list[dict] = []
    if not args.no_int8:
        calib = load_calibration_set(args.camvid / "train.txt", num_samples=args.num_samples, seed=0)
        for backend in backends:
            keep = prune_for_int8([r for r in rows if r["backend"] == backend], args.max_drop)
            print(f"{backend}: INT8 for {[r['name'] for r in keep]} (FP32 within budget, on the FP32 Pareto front)")
            for fr in keep:
                point = MenuPoint(scale=fr["scale"], merge=parse_token_merge(fr["token_merge"]))
                src = Path(fr["artifact"]) if backend == "onnxruntime" else portable[point]
                name = "-".join(p for p in (f"{'ort' if backend == 'onnxruntime' else 'ov'}-int8", point.tag) if p)
                t = time.perf_counter()
                res = quantize(src, work / name, backend=backend, calib=calib, progress=False,
                               size_hw=scaled_size_hw(frame_hw, point.scale) if backend == "openvino" else None)
                q = (f" && segedge quantize {src.name} --backend {backend} --calib {args.camvid / 'train.txt'} "
                     f"--num-samples {args.num_samples} --output {name}")
                export_step = fr["command"].split(" && segedge export-openvino")[0]
                int8_rows.append(_row(name, point, backend, "int8", res.artifact, {"runtime": backend},
                                      export_step + q, time.perf_counter() - t))
                if args.latency_aware and backend == "onnxruntime":
                    t = time.perf_counter()
                    la = quantize(src, work / f"{name}-la", backend=backend, calib=calib,
                                  eval_set=list(CamVid(args.camvid, "val"))[::5], max_drop=args.max_drop,
                                  latency_aware=True, holdout=0, progress=False).latency_aware
                    q_la = (f" && segedge quantize {src.name} --backend {backend} --calib {args.camvid / 'train.txt'} "
                            f"--num-samples {args.num_samples} --eval {args.camvid} --max-drop {args.max_drop:g} "
                            f"--latency-aware --holdout 0 --output {name}-la  # here tuned on every 5th val image")
                    int8_rows.append(_row(f"{name}-la", point, backend, "int8-la" if la.winner == "int8" else "fp32",
                                          la.artifact, {"runtime": backend}, fr["command"] + q_la,
                                          time.perf_counter() - t))
                    int8_rows[-1]["verdict"] = la.verdict
        for r in int8_rows:
            score(r)
        if int8_rows:
            timing(int8_rows + [r for r in rows if r["precision"] != "int8"])
    everything = rows + int8_rows
    front = {r["name"] for r in pareto(everything)}
    within = [r for r in everything if r["drop_points"] <= args.max_drop]
    best = min(within, key=lambda r: r["p50_ms"]) if within else None

    print(f"\nmachine: {host_isa()}; {args.split} ({len(data)} images), frames {frame_hw[0]}x{frame_hw[1]}, p50 "
          "model-only, side by side")
    print(f"{'variant':<28} {'scale':>5} {'merge':>6} {'mIoU':>7} {'drop':>6} {'agree':>7} {'p50 ms':>7} "
          f"{'vs ort-fp32':>11} {'pareto':>6}")
    for r in sorted(everything, key=lambda r: r["p50_ms"]):
        print(f"{r['name']:<28} {r['scale']:>5g} {r['token_merge']:>6} {r['miou']:>7.4f} {r['drop_points']:>6.2f} "
              f"{r['agreement']:>7.2%} {r['p50_ms']:>7.1f} {r['speedup_vs_ort_fp32']:>10.2f}x "
              f"{'*' if r['name'] in front else '':>6}")
    for r in everything:
        if r.get("verdict"):
            print(f"{r['name']}: {r['verdict']}")
    if best:
        print(f"recommended within {args.max_drop} pt: {best['name']} ({best['speedup_vs_ort_fp32']:.2f}x ORT FP32 "
              f"at full resolution, drop {best['drop_points']:.2f} pt)\n  rebuild: {best['command']}")
    import shlex
    import sys

    from sdk.timing.isolated import isolation

    result = {"schema": SCHEMA, "command": "python -m benchmarks.bench_speed_menu " + " ".join(
                  shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
              "environment": {**environment(), "isa": host_isa()}, "split": args.split, "images": len(data),
              "frame_hw": list(frame_hw), "max_drop": args.max_drop, "rows": everything, "pareto": sorted(front),
              "recommended": best["name"] if best else None, "seconds": time.perf_counter() - t_start,
              # as calibration.latency_aware.p50_side_by_side times each group
              "isolation": isolation(rounds=3, runs=max(2, -(-args.repeats // 3)), warmup=2)}
    print(f"total {result['seconds']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
