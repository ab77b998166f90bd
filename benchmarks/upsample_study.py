"""The mask heads side by side on large frames: refine (default) vs exact vs fast, and the transformers pipeline.

    python -m benchmarks.upsample_study --checkpoint ../shared/models/segformer-b0-camvid-hf \
        --camvid ../shared/data/camvid --json out/upsample_study.json

Two models: the given checkpoint (its own processor; the shared one does not resize, so its network runs at
--network-size) and a random-weight 150-class B0 built with transformers' ``SegformerConfig`` whose processor
resizes to 512x512 (PIL bilinear), timing only. Frames: CamVid val images resized to --frame-size (default
1024x2048). For each model: one ONNX artifact per head, all run through ``Segmenter`` (uint8 frame ->
full-resolution mask), alternated run by run with the transformers pipeline (image processor + PyTorch eager +
``post_process_semantic_segmentation(target_sizes=...)``) by ``sdk.timing.measure_latency``; a logits-only run
of the same graph gives the model's share; each head's own cost is timed alone on the same logits (the export's
head nodes in ONNX Runtime; refine = its low-res ArgMax there + the host refinement). Agreement: each head
vs the exact head, differences split into float ties and others (``sdk.core.postprocess.mask_agreement``), and
vs the transformers pipeline. Prints a table and writes JSON. On a shared machine compare the ratios.

The same comparison through ``segedge bench --end-to-end`` (the 150-class model, refine head, ONNX Runtime or
OpenVINO on the ONNX artifact):

    python -m benchmarks.upsample_study --write-150 out/b0-150-random
    segedge export out/b0-150-random --output out/b0-150-refine
    segedge bench out/b0-150-refine --end-to-end --size 1024 2048 --runtime openvino \
        --baseline pytorch out/b0-150-random --repeats 10 --json out/e2e-150.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np

HEADS = ("refine", "exact", "fast")


def random_150_checkpoint(folder: Path, size_hw: tuple[int, int] = (512, 512)) -> Path:
    """A random-weight SegFormer-B0 with 150 classes in Hugging Face layout, processor resizing to ``size_hw``."""
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.SegformerConfig(num_labels=150, id2label={i: f"class{i}" for i in range(150)},
                                       label2id={f"class{i}": i for i in range(150)})
    transformers.SegformerForSemanticSegmentation(cfg).eval().save_pretrained(folder)
    transformers.SegformerImageProcessor(do_resize=True, size={"height": size_hw[0], "width": size_hw[1]}
                                         ).save_pretrained(folder)
    return folder


def head_graph(num_classes: int, upsample: str) -> bytes:
    """The head alone as an ONNX model: inputs ``pixel_values`` (only its shape is read) and ``logits_in``; the same
    ``append_mask_head`` nodes as the export."""
    from onnx import TensorProto, helper

    from converters.onnx_export import append_mask_head

    g = helper.make_graph(
        [helper.make_node("Identity", ["logits_in"], ["logits"])], "head",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"]),
         helper.make_tensor_value_info("logits_in", TensorProto.FLOAT, ["batch", num_classes, "h4", "w4"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes, "h4", "w4"])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return append_mask_head(model, num_classes, upsample).SerializeToString()


def head_costs(logits: np.ndarray, net_hw, out_hw, repeats: int) -> dict:
    """Each head's own cost on the same (1, K, h, w) logits, alternated: the in-graph heads (ONNX Runtime, the
    export's nodes) and refine = its in-graph low-res ArgMax + ``refine_masks`` on the host."""
    import onnxruntime as ort

    from sdk.core.postprocess import refine_masks
    from sdk.timing import measure_latency

    k = logits.shape[1]
    sess = {h: ort.InferenceSession(head_graph(k, h), providers=["CPUExecutionProvider"]) for h in HEADS}
    pix = np.zeros((1, 3, *net_hw), np.float32)
    size = np.asarray(out_hw, np.int64)
    fns = {"refine": lambda _: refine_masks(logits, sess["refine"].run(["argmax"], {
               "pixel_values": pix, "logits_in": logits})[0], out_hw),
           "exact": lambda _: sess["exact"].run(["mask"], {"pixel_values": pix, "logits_in": logits,
                                                           "output_size": size}),
           "fast": lambda _: sess["fast"].run(["mask"], {"pixel_values": pix, "logits_in": logits,
                                                         "output_size": size})}
    stats = measure_latency(fns, lambda name: None, repeats, warmup=1, pause_s=0.05)
    return {h: stats[h]["p50_ms"] for h in HEADS}


def study(checkpoint: Path, frames: list[np.ndarray], network_hw, repeats: int, workdir: Path) -> dict:
    from converters.onnx_export import export_onnx
    from sdk.core.postprocess import mask_agreement
    from sdk.core.preprocess import preprocess
    from sdk.segmenter import Segmenter
    from sdk.timing import TransformersBaseline, measure_latency

    size = tuple(network_hw) if network_hw else None
    arts = {h: export_onnx(checkpoint, workdir / h, size_hw=size, upsample=h, progress=False) for h in HEADS}
    segs = {h: Segmenter.from_artifact(a, runtime="onnxruntime") for h, a in arts.items()}
    if find_spec("openvino") is not None:  # the same ONNX artifact on OpenVINO (its CPU default: bf16 with AMX)
        segs["refine@openvino"] = Segmenter.from_artifact(arts["refine"], runtime="openvino")
    ref = TransformersBaseline(checkpoint)
    try:
        seg = segs["refine"]
        spec = seg.manifest.preprocess
        fns = {h: (lambda f, s=s: s(f).mask) for h, s in segs.items()}
        fns["logits_only"] = lambda f: seg.runtime.infer({"pixel_values": preprocess(f, spec)})
        fns["transformers"] = lambda f: ref.pipeline_masks([f])[0]
        rows: dict = {"timing": {}, "agreement": {}}
        # agreement first (one pass per frame), then timing on the first frame
        exact_masks = [segs["exact"](f).mask for f in frames]
        for h in HEADS:
            tot = {"pixels": 0, "differing": 0, "ties": 0, "other": 0}
            for f, em in zip(frames, exact_masks):
                out = seg.runtime.infer({"pixel_values": preprocess(f, spec)})
                rep = mask_agreement(segs[h](f).mask, em, out["logits"][0])
                for k in tot:
                    tot[k] += rep[k]
            tot["identical"] = 1 - tot["differing"] / tot["pixels"]
            rows["agreement"][h] = tot
        hf_masks = [ref.pipeline_masks([f])[0] for f in frames]
        rows["agreement"]["refine_vs_transformers"] = float(np.mean(
            [np.mean(segs["refine"](f).mask == m) for f, m in zip(frames, hf_masks)]))
        if "refine@openvino" in segs:
            rows["agreement"]["refine@openvino_vs_transformers"] = float(np.mean(
                [np.mean(segs["refine@openvino"](f).mask == m) for f, m in zip(frames, hf_masks)]))
            rows["openvino"] = segs["refine@openvino"].runtime.describe()
        stats = measure_latency(fns, lambda name: frames[0], repeats, warmup=1, pause_s=0.1)
        rows["timing"] = {k: v["p50_ms"] for k, v in stats.items()}
        logits = seg.runtime.infer({"pixel_values": preprocess(frames[0], spec)})["logits"]
        rows["head_ms"] = head_costs(logits, spec.size_hw or frames[0].shape[:2], frames[0].shape[:2],
                                     max(5, 2 * repeats))
        rows.update(classes=seg.manifest.num_classes, frame_hw=list(frames[0].shape[:2]),
                    network_hw=list(spec.size_hw or frames[0].shape[:2]), checkpoint=str(checkpoint),
                    baseline_network_hw=list(ref.network_hw(frames[0].shape[:2])))
        return rows
    finally:
        for s in segs.values():
            s.close()


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'frame':>10} {'K':>4} {'network':>9} {'head':>7} {'ours ms':>8} {'head ms':>8} {'hf ms':>8} "
             f"{'ratio':>7} {'=exact':>9} {'ties':>6} {'other':>6}"]
    for r in rows:
        t, hf = r["timing"], r["timing"]["transformers"]
        for h in HEADS:
            a = r["agreement"][h]
            lines.append(f"{r['frame_hw'][0]}x{r['frame_hw'][1]:<5} {r['classes']:>4} "
                         f"{r['network_hw'][0]}x{r['network_hw'][1]:<5} {h:>7} {t[h]:8.1f} {r['head_ms'][h]:8.1f} "
                         f"{hf:8.1f} {hf / t[h]:6.1f}x {a['identical']:9.5%} {a['ties']:>6} {a['other']:>6}")
        if "refine@openvino" in t:
            lines.append(f"{r['frame_hw'][0]}x{r['frame_hw'][1]:<5} {r['classes']:>4} "
                         f"{r['network_hw'][0]}x{r['network_hw'][1]:<5} {'refine':>7} {t['refine@openvino']:8.1f} "
                         f"{'':>8} {hf:8.1f} {hf / t['refine@openvino']:6.1f}x  (OpenVINO: {r['openvino']}; "
                         f"vs transformers {r['agreement']['refine@openvino_vs_transformers']:.4%})")
        lines.append(f"  {r['checkpoint'][-70:]}: refine vs transformers pipeline "
                     f"{r['agreement']['refine_vs_transformers']:.5%} of pixels (its network at "
                     f"{r['baseline_network_hw'][0]}x{r['baseline_network_hw'][1]}); head ms: each head alone on "
                     f"the same logits (model only: {t['logits_only']:.1f} ms); refine head / fast head "
                     f"{r['head_ms']['refine'] / max(r['head_ms']['fast'], 1e-9):.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import cv2

    from calibration.datasets import CamVid

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, help="a Hugging Face folder")
    ap.add_argument("--camvid", type=Path)
    ap.add_argument("--write-150", type=Path, metavar="DIR",
                    help="only write the random-weight 150-class B0 (processor 512x512) to DIR, for segedge bench")
    ap.add_argument("--frame-size", type=int, nargs=2, default=(1024, 2048))
    ap.add_argument("--network-size", type=int, nargs=2, default=(512, 1024),
                    help="for the given checkpoint when its processor does not resize")
    ap.add_argument("--images", type=int, default=2, help="CamVid frames for the agreement")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-150", action="store_true", help="only the given checkpoint")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.write_150:
        print(f"wrote {random_150_checkpoint(args.write_150)}")
        return 0
    if not (args.checkpoint and args.camvid):
        ap.error("--checkpoint and --camvid are required (or --write-150 DIR)")

    fh, fw = args.frame_size
    pairs = CamVid(args.camvid, "val").pairs()
    step = max(1, len(pairs) // args.images)
    frames = [np.ascontiguousarray(cv2.resize(cv2.imread(str(p))[..., ::-1], (fw, fh), interpolation=cv2.INTER_LINEAR))
              for p, _ in pairs[::step][: args.images]]
    rows = []
    with tempfile.TemporaryDirectory(prefix="segedge-upsample-") as tmp:
        tmp = Path(tmp)
        from converters.checkpoints import load_checkpoint

        own = load_checkpoint(args.checkpoint).preprocess.size_hw
        rows.append(study(args.checkpoint, frames, None if own else args.network_size, args.repeats, tmp / "given"))
        if not args.skip_150:
            ck = random_150_checkpoint(tmp / "b0-150-random")
            row = study(ck, frames, None, args.repeats, tmp / "rand")
            row["checkpoint"] = "random-weight B0, 150 classes, processor 512x512"
            rows.append(row)
    print(format_rows(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        from sdk.timing import environment

        record = {"frames": len(frames), "rows": rows, "command": "python -m benchmarks.upsample_study " +
                  " ".join(sys.argv[1:]), "environment": environment()}
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
