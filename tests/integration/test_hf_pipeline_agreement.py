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


@pytest.mark.slow
def test_resizing_checkpoint_matches_transformers_above_and_below_network_size(tmp_path, hf_model, camvid):
    """The shared weights with a processor that resizes to 288x384 (PIL bilinear, antialiased when shrinking):
    exported with the default (refine) head, masks agree with the transformers pipeline on frames larger
    (720x960, 360x480) and smaller (180x240) than the network."""
    import json

    import cv2
    import numpy as np

    from converters.onnx_export import export_onnx
    from sdk.core.preprocess import read_rgb

    ckpt = tmp_path / "resizing"
    ckpt.mkdir()
    for name in ("config.json", "model.safetensors"):
        (ckpt / name).symlink_to(hf_model / name)
    pp = json.loads((hf_model / "preprocessor_config.json").read_text())
    (ckpt / "preprocessor_config.json").write_text(json.dumps({**pp, "do_resize": True,
                                                               "size": {"height": 288, "width": 384}}))
    art = export_onnx(ckpt, tmp_path / "art", progress=False)
    assert json.loads((art / "model.json").read_text())["preprocess"]["resize_mode"] == "pil_bilinear"
    reference = TransformersPipeline(ckpt)
    pairs = CamVid(camvid, "val").pairs()[::20][:4]
    rows = {}
    with Segmenter.from_artifact(art) as seg:
        for hw in ((720, 960), (360, 480), (180, 240)):
            same = pixels = 0
            for path, _ in pairs:
                img = read_rgb(path)
                img = img if img.shape[:2] == hw else cv2.resize(img, hw[::-1], interpolation=cv2.INTER_AREA)
                a, b = seg(img).mask, reference(img).mask
                same, pixels = same + int(np.sum(a == b)), pixels + a.size
            rows[hw] = same / pixels
    print("\nagreement with transformers (network 288x384):", {f"{h}x{w}": f"{v:.5f}" for (h, w), v in rows.items()})
    assert all(v >= 0.999 for v in rows.values()), rows
