"""The PyTorch/transformers baseline ``segedge bench --baseline pytorch`` times beside an artifact."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from sdk.core.errors import InputError, MissingDependencyError

BASELINE_INSTALL = "pip install 'segedge[convert,baseline]'"  # torch; transformers and Pillow


def _require_transformers():
    """transformers, with torch and Pillow (its image processors resize with PIL): one line naming what is missing
    and the extra that installs it, before the baseline's image processor fails inside transformers."""
    missing = []
    for module in ("torch", "transformers", "PIL"):
        try:
            __import__(module)
        except ImportError:
            missing.append({"PIL": "Pillow"}.get(module, module))
    if missing:
        raise MissingDependencyError(f"--baseline pytorch needs torch, transformers and Pillow; {', '.join(missing)} "
                                     f"{'is' if len(missing) == 1 else 'are'} not installed. Install them: "
                                     f"{BASELINE_INSTALL}")
    import transformers

    return transformers


class TransformersBaseline:
    """transformers' SegformerForSemanticSegmentation in PyTorch eager (FP32, eval, inference_mode) from a Hugging
    Face folder; ``model_masks`` (tensor in, HF-style post-processing) and ``pipeline_masks`` (uint8 frames in, the
    image processor and ``post_process_semantic_segmentation``)."""

    def __init__(self, checkpoint: str | Path) -> None:
        folder = Path(checkpoint)
        if not (folder / "config.json").is_file():
            raise InputError(f"--baseline pytorch {folder}: expected a Hugging Face folder (config.json + "
                             "model.safetensors or pytorch_model.bin) that transformers can load; convert other "
                             "layouts with segedge export and use the HF folder of the same weights")
        transformers = _require_transformers()
        import torch

        transformers.logging.disable_progress_bar()
        t = time.perf_counter()
        self.processor = transformers.AutoImageProcessor.from_pretrained(folder)
        self.model = transformers.SegformerForSemanticSegmentation.from_pretrained(folder).eval()
        self.load_seconds = time.perf_counter() - t
        self.torch = torch
        self.description = (f"transformers {transformers.__version__} SegformerForSemanticSegmentation, PyTorch "
                            f"{torch.__version__} eager FP32, {torch.get_num_threads()} threads; "
                            f"{type(self.processor).__name__}")

    def model_masks(self, pixel_values: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
        """(N, 3, h, w) float32 -> (N, H, W) int64 class ids: logits upsampled bilinearly to ``out_hw``, argmax."""
        torch = self.torch
        with torch.inference_mode():
            logits = self.model(pixel_values=torch.from_numpy(pixel_values)).logits
            up = torch.nn.functional.interpolate(logits, size=out_hw, mode="bilinear", align_corners=False)
            return up.argmax(1).numpy()

    def pipeline_masks(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """RGB uint8 frames -> full-resolution masks through the whole transformers pipeline."""
        with self.torch.inference_mode():
            out = self.model(**self.processor(images=frames, return_tensors="pt"))
            masks = self.processor.post_process_semantic_segmentation(
                out, target_sizes=[f.shape[:2] for f in frames])
        return [m.numpy() for m in masks]

    def network_hw(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """The size the image processor feeds the network for a frame of ``frame_hw``."""
        x = self.processor(images=[np.zeros((*frame_hw, 3), np.uint8)], return_tensors="np")["pixel_values"]
        return int(x.shape[2]), int(x.shape[3])


def open_baseline(*, checkpoint: str, mode: str, inputs: str, out_hw: list[int]):
    """``sdk.timing.isolated``'s factory for the baseline in its own process: ``mode`` "model" (``model_masks`` of
    the (N, 3, h, w) float32 .npy ``inputs``, masks at ``out_hw``) or "pipeline" (``pipeline_masks`` of the
    (N, H, W, 3) uint8 frames in ``inputs``)."""
    from sdk.timing.isolated import TimedCall

    ref = TransformersBaseline(checkpoint)
    data = np.load(inputs)
    if mode == "pipeline":
        frames = list(data)
        return TimedCall(lambda: ref.pipeline_masks(frames), ref.description)
    hw = (int(out_hw[0]), int(out_hw[1]))
    return TimedCall(lambda: ref.model_masks(data, hw), ref.description)
