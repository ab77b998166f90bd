"""``Segmenter``: image -> preprocess -> runtime -> postprocess -> ``SegmentationResult``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtimes import open_runtime
from runtimes.base import Runtime
from sdk.core.errors import InputError
from sdk.core.postprocess import logits_to_mask
from sdk.core.preprocess import COLOR_ORDERS, check_image, preprocess
from sdk.core.result import SegmentationResult, default_palette


class Segmenter:
    """Semantic segmentation with any artifact behind one API.

    >>> seg = Segmenter.from_artifact("out/b0-fp32")        # runtime="auto"
    >>> result = seg(image)                                  # (H, W, 3) uint8, RGB unless color_order="bgr"
    >>> result.mask                                          # (H, W) class ids at the image's resolution
    """

    def __init__(self, runtime: Runtime, *, color_order: str = "rgb") -> None:
        if color_order not in COLOR_ORDERS:
            raise InputError(f"color_order: expected one of {COLOR_ORDERS}, got {color_order!r}")
        self.runtime = runtime
        self.manifest = runtime.manifest
        self.color_order = color_order
        self.class_names = list(self.manifest.class_names)
        self.palette = self.manifest.palette or default_palette(len(self.class_names))

    @classmethod
    def from_artifact(cls, path: str | Path, *, runtime: str = "auto", color_order: str = "rgb",
                      **runtime_options) -> "Segmenter":
        """Open an artifact folder (``model.json`` + model file). ``runtime_options`` go to the runtime."""
        return cls(open_runtime(path, runtime, **runtime_options), color_order=color_order)

    def __call__(self, image: np.ndarray) -> SegmentationResult:
        """Segment one (H, W, 3) uint8 image; the mask comes back at (H, W)."""
        return self.predict_batch([check_image(image)])[0]

    def predict_batch(self, images: list[np.ndarray], *, batch_size: int = 8) -> list[SegmentationResult]:
        """Segment many images; consecutive images of the same size run together, up to ``batch_size``."""
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        images = [check_image(img, f"images[{i}]") for i, img in enumerate(images)]
        results: list[SegmentationResult] = []
        start = 0
        while start < len(images):
            hw = images[start].shape[:2]
            stop = start + 1
            while stop < len(images) and stop - start < batch_size and images[stop].shape[:2] == hw:
                stop += 1
            results.extend(self._run(images[start:stop], hw))
            start = stop
        return results

    def _run(self, images: list[np.ndarray], hw: tuple[int, int]) -> list[SegmentationResult]:
        x = preprocess(images, self.manifest.preprocess, color_order=self.color_order)
        feeds = {"pixel_values": x}
        if self.manifest.head == "mask":
            feeds["output_size"] = np.asarray(hw, np.int64)
            masks = self.runtime.infer(feeds)["mask"]
        else:
            logits = self.runtime.infer(feeds)["logits"]
            masks = np.stack([logits_to_mask(lg, hw) for lg in logits])
        return [SegmentationResult(m, self.class_names, self.palette) for m in masks]

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.manifest
        return (f"Segmenter({m.architecture.get('variant', '?')}, {m.num_classes} classes, {m.precision}, "
                f"{self.runtime.describe()})")
