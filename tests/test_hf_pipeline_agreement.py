"""End-to-end: ``Segmenter`` on the exported real checkpoint vs the transformers pipeline on CamVid val images
(image processor -> SegformerForSemanticSegmentation -> post_process_semantic_segmentation)."""
from __future__ import annotations

import numpy as np
import pytest

from calibration.datasets import CamVid
from sdk import Segmenter

transformers = pytest.importorskip("transformers", reason="transformers is the test-only reference")


def test_segmenter_masks_match_transformers_pipeline(hf_model, hf_artifact, camvid):
    import torch

    processor = transformers.AutoImageProcessor.from_pretrained(hf_model)
    reference = transformers.SegformerForSemanticSegmentation.from_pretrained(hf_model).eval()
    pairs = CamVid(camvid, "val").pairs()[::10]  # 11 images spread over the split
    same = total = 0
    with Segmenter.from_artifact(hf_artifact) as seg:
        for img_path, _ in pairs:
            from sdk.preprocess import read_rgb

            image = read_rgb(img_path)
            inputs = processor(images=image, return_tensors="pt")
            with torch.no_grad():
                out = reference(**inputs)
            ref = processor.post_process_semantic_segmentation(out, target_sizes=[image.shape[:2]])[0].numpy()
            mask = seg(image).mask
            assert mask.shape == image.shape[:2]
            same += int((mask == ref).sum())
            total += mask.size
    agreement = same / total
    print(f"pixel agreement with the transformers pipeline over {len(pairs)} CamVid val images: {agreement:.6f}")
    assert agreement >= 0.999
