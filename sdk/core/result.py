"""Results and rendering: a small typed result and a colour overlay."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdk.core.errors import InputError


def default_palette(num_classes: int) -> list[list[int]]:
    """Distinct, deterministic RGB colours (golden-angle hues) for artifacts whose checkpoint has no palette."""
    import colorsys

    return [[int(255 * v) for v in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65 + 0.35 * (i % 2), 0.95)]
            for i in range(num_classes)]


@dataclass(frozen=True)
class SegmentationResult:
    """mask: (H, W) class ids (uint8, or int32 above 256 classes) at the image's own resolution.
    class_names[i] names class id i; palette[i] is its RGB colour."""

    mask: np.ndarray
    class_names: list[str]
    palette: list[list[int]]

    def __post_init__(self) -> None:
        if not isinstance(self.mask, np.ndarray) or self.mask.ndim != 2 or self.mask.dtype.kind not in "iu":
            got = f"{self.mask.shape} {self.mask.dtype}" if isinstance(self.mask, np.ndarray) else type(self.mask)
            raise InputError(f"mask: expected a 2D integer np.ndarray (H, W), got {got}")
        if len(self.palette) != len(self.class_names):
            raise InputError(f"palette: expected {len(self.class_names)} colours, got {len(self.palette)}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape  # type: ignore[return-value]

    def class_areas(self) -> dict[str, float]:
        """Fraction of the image covered by each class present."""
        counts = np.bincount(self.mask.ravel(), minlength=len(self.class_names))
        total = self.mask.size
        return {self.class_names[i]: float(counts[i] / total) for i in np.flatnonzero(counts)}

    def colorize(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB picture of the mask in the palette's colours."""
        return np.asarray(self.palette, np.uint8)[self.mask]

    def overlay(self, image: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """Blend the coloured mask over ``image`` ((H, W, 3) uint8, same colour order as the palette: RGB)."""
        if image.shape[:2] != self.mask.shape or image.ndim != 3:
            raise InputError(f"image: expected (H, W, 3) with (H, W) = {self.mask.shape}, got {image.shape}")
        blend = image.astype(np.float32) * (1 - alpha) + self.colorize().astype(np.float32) * alpha
        return np.clip(blend + 0.5, 0, 255).astype(np.uint8)
