"""How much the "fast" mask head saves on large frames, and how often it agrees with the "exact" one.

    python -m benchmarks.upsample_study --checkpoint ../shared/models/segformer-b0-camvid-hf \
        --camvid ../shared/data/camvid --json out/upsample_study.json

For each checkpoint (the given one, plus a random-weight 150-class B0 to show the cost at ADE20K's class count),
exports two artifacts with the network at --network-size (default 512x1024) and runs 1024x2048 frames (CamVid val
images resized up) through ``Segmenter``: exact = bilinear logits to 1024x2048 then argmax; fast = bilinear to the
network size, argmax, nearest to 1024x2048. Prints a table of median end-to-end latency (side by side, same run)
and pixel agreement, and writes JSON. Agreement on the random-weight model says little; its timings hold.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_ms(fn, frames, repeats: int) -> float:
    fn(frames[0])  # warm-up
    times = []
    for _ in range(repeats):
        for f in frames:
            t = time.perf_counter()
            fn(f)
            times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def study(checkpoint: Path, frames: list[np.ndarray], network_hw: tuple[int, int], repeats: int,
          workdir: Path) -> dict:
    from converters.onnx_export import export_onnx
    from sdk.segmenter import Segmenter

    arts = {mode: export_onnx(checkpoint, workdir / mode, size_hw=network_hw, upsample=mode, progress=False)
            for mode in ("exact", "fast")}
    with Segmenter.from_artifact(arts["exact"]) as exact, Segmenter.from_artifact(arts["fast"]) as fast:
        agree = float(np.mean([np.mean(exact(f).mask == fast(f).mask) for f in frames]))
        ms_exact = _median_ms(exact, frames, repeats)
        ms_fast = _median_ms(fast, frames, repeats)
        classes = exact.manifest.num_classes
    return {"checkpoint": str(checkpoint), "classes": classes, "frame_hw": list(frames[0].shape[:2]),
            "network_hw": list(network_hw), "exact_ms_p50": ms_exact, "fast_ms_p50": ms_fast,
            "speedup": ms_exact / ms_fast, "agreement": agree}


def main(argv: list[str] | None = None) -> int:
    import cv2
    import torch

    from calibration.datasets import CamVid
    from converters.checkpoints import to_huggingface
    from converters.model import SegFormer, config_for_variant

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--camvid", type=Path, required=True)
    ap.add_argument("--frame-size", type=int, nargs=2, default=(1024, 2048))
    ap.add_argument("--network-size", type=int, nargs=2, default=(512, 1024))
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    fh, fw = args.frame_size
    pairs = CamVid(args.camvid, "val").pairs()
    step = max(1, len(pairs) // args.images)
    frames = [cv2.resize(cv2.imread(str(p))[..., ::-1], (fw, fh), interpolation=cv2.INTER_LINEAR)
              for p, _ in pairs[::step][: args.images]]
    rows = []
    with tempfile.TemporaryDirectory(prefix="segedge-upsample-") as tmp:
        tmp = Path(tmp)
        rows.append(study(args.checkpoint, frames, tuple(args.network_size), args.repeats, tmp / "given"))
        torch.manual_seed(0)
        rand = SegFormer(config_for_variant("b0", 150, layer_norm_eps=1e-5)).eval()
        folder = tmp / "b0-150-random"
        folder.mkdir()
        from safetensors.torch import save_file

        sd = {k: v for k, v in rand.state_dict().items() if "num_batches" not in k}
        save_file(to_huggingface(sd), str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({"model_type": "segformer", "num_attention_heads": [1, 2, 5, 8]}))
        row = study(folder, frames, tuple(args.network_size), args.repeats, tmp / "rand")
        row["checkpoint"] = "random-weight B0, 150 classes (timing only)"
        rows.append(row)
    print(f"{'checkpoint':<60} {'K':>4} {'exact ms':>9} {'fast ms':>8} {'speedup':>8} {'agree':>8}")
    for r in rows:
        print(f"{r['checkpoint'][-60:]:<60} {r['classes']:>4} {r['exact_ms_p50']:>9.1f} {r['fast_ms_p50']:>8.1f} "
              f"{r['speedup']:>7.2f}x {r['agreement']:>8.4%}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"frames": len(frames), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
