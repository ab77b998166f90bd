"""End-to-end on the real trained checkpoint: ``Segmenter`` (exported ONNX, ONNX Runtime) vs the transformers pipeline
(image processor -> SegformerForSemanticSegmentation -> post_process_semantic_segmentation) over all of CamVid val:
pixel agreement of the masks, and the mIoU each gives against the labels."""
from __future__ import annotations

import pytest

from calibration.datasets import CamVid
from sdk import Segmenter

transformers = pytest.importorskip("transformers", reason="transformers is the test-only reference")


class TransformersPipeline:
    """The reference, shaped like a Segmenter for ``evaluate``: image -> object with ``.mask``."""

    def __init__(self, folder) -> None:
        self.processor = transformers.AutoImageProcessor.from_pretrained(folder)
        self.model = transformers.SegformerForSemanticSegmentation.from_pretrained(folder).eval()
        self.class_names = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def __call__(self, image):
        import types

        import torch

        with torch.no_grad():
            out = self.model(**self.processor(images=image, return_tensors="pt"))
        mask = self.processor.post_process_semantic_segmentation(out, target_sizes=[image.shape[:2]])[0]
        return types.SimpleNamespace(mask=mask.numpy())


@pytest.mark.slow
def test_camvid_val_masks_and_miou_match_transformers(hf_model, hf_artifact, camvid):
    import numpy as np

    from calibration.metrics import ConfusionMatrix

    reference = TransformersPipeline(hf_model)
    ours, theirs = ConfusionMatrix(11), ConfusionMatrix(11)
    same = pixels = images = 0
    with Segmenter.from_artifact(hf_artifact) as seg:
        for image, label in CamVid(camvid, "val"):
            a, b = seg(image).mask, reference(image).mask
            ours.update(a, label)
            theirs.update(b, label)
            same, pixels, images = same + int(np.sum(a == b)), pixels + a.size, images + 1
    agreement = same / pixels
    print(f"\nCamVid val ({images} images): mIoU ONNX Runtime {ours.miou():.6f} vs transformers "
          f"{theirs.miou():.6f}; pixel agreement {agreement:.6f}")
    assert images == 101
    assert agreement >= 0.999
    assert abs(ours.miou() - theirs.miou()) <= 1e-3
