"""Logits -> mask on the host, for artifacts exported with ``head="logits"``. Same maths as the in-graph head and
as transformers' ``post_process_semantic_segmentation``: bilinear (half-pixel, no antialias) then argmax."""
from __future__ import annotations

import numpy as np


def logits_to_mask(logits: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """logits: (K, h, w) float32 -> (H, W) class ids (uint8 up to 256 classes, else int32)."""
    import cv2

    k = logits.shape[0]
    hwk = np.ascontiguousarray(logits.transpose(1, 2, 0))
    # OpenCV resizes at most 512 channels at once; its INTER_LINEAR uses PyTorch's half-pixel centres
    parts = [cv2.resize(hwk[..., i:i + 512], (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)
             for i in range(0, k, 512)]
    up = np.concatenate([p.reshape(out_hw[0], out_hw[1], -1) for p in parts], axis=2)
    return up.argmax(axis=2).astype(np.uint8 if k <= 256 else np.int32)
