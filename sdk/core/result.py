"""Results and rendering: a small typed result, mask colouring, a colour overlay, and pixel agreement."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdk.core.errors import InputError


def default_palette(num_classes: int) -> list[list[int]]:
    """Distinct, deterministic RGB colours (golden-angle hues) for artifacts whose checkpoint has no palette."""
    import colorsys

    return [[int(255 * v) for v in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65 + 0.35 * (i % 2), 0.95)]
            for i in range(num_classes)]


def colorize(mask: np.ndarray, palette) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 picture in ``palette``'s colours (K [r, g, b] lists or a (K, 3) uint8
    array, indexed by class id; the picture has the palette's channel order). Ids must be below K."""
    return np.asarray(palette, np.uint8)[mask]


def draw_legend(picture: np.ndarray, mask: np.ndarray, class_names: list[str], palette, *,
                max_rows: int = 12) -> np.ndarray:
    """A copy of ``picture`` ((H, W, 3) uint8, the palette's channel order) with a legend in its top-left corner:
    a colour swatch and the name of each class present in ``mask``, largest area first (at most ``max_rows``; the
    rest summed as "+N more"). Text scales with the picture; OpenCV draws it."""
    from sdk.core.errors import require_cv2

    cv2 = require_cv2()
    out = np.ascontiguousarray(picture).copy()
    counts = np.bincount(mask.ravel(), minlength=len(class_names))
    present = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    rows = [(palette[i], f"{class_names[i]} {100 * counts[i] / mask.size:.0f}%") for i in present[:max_rows]]
    if len(present) > max_rows:
        rows.append((None, f"+{len(present) - max_rows} more"))
    h, w = out.shape[:2]
    scale = max(0.3, min(h, w) / 900)
    thick = max(1, round(scale * 1.5))
    line = max(10, round(22 * scale))
    (text_w, _), _ = cv2.getTextSize(max((t for _, t in rows), key=len, default=""), cv2.FONT_HERSHEY_SIMPLEX,
                                      scale, thick)
    box_w, box_h = min(w, text_w + line + 12), min(h, line * len(rows) + 8)
    region = out[:box_h, :box_w]
    region[...] = (region.astype(np.float32) * 0.35).astype(np.uint8)  # a dark panel behind the text
    for r, (colour, text) in enumerate(rows):
        y = 4 + r * line
        if colour is not None:
            cv2.rectangle(out, (4, y + 2), (4 + line - 6, y + line - 4), [int(c) for c in colour], -1)
        cv2.putText(out, text, (line + 4, y + line - 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
    return out


def pixel_agreement(a, b) -> float:
    """Share of pixels where two masks give the same class id: ``a`` and ``b`` are integer arrays of the same shape
    ((H, W) masks, or (N, H, W) batches), or equal-length sequences of such pairs, pooled over all their pixels.
    NaN where there are no pixels (empty masks, or empty sequences)."""
    same, total = agreeing_pixels(a, b)
    return same / total if total else float("nan")


def agreeing_pixels(a, b) -> tuple[int, int]:
    """(pixels where ``a`` and ``b`` agree, pixels), for ``pixel_agreement``'s arguments: sum these over a stream of
    masks and divide at the end."""
    if not isinstance(a, np.ndarray) and len(a) != len(b):
        raise InputError(f"masks: expected two sequences of the same length, got {len(a)} and {len(b)}")
    same = total = 0
    for x, y in [(a, b)] if isinstance(a, np.ndarray) else zip(a, b):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            raise InputError(f"masks: expected the same shape, got {x.shape} and {y.shape}")
        same += int(np.count_nonzero(x == y))
        total += x.size
    return same, total


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
        if int(self.mask.max(initial=0)) >= len(self.class_names) or (self.mask.dtype.kind == "i" and self.mask.size
                                                                        and int(self.mask.min()) < 0):
            raise InputError(f"mask: expected class ids 0..{len(self.class_names) - 1} (one per class name), got "
                             f"ids from {int(self.mask.min())} to {int(self.mask.max())}")
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
        return colorize(self.mask, self.palette)

    def overlay(self, image: np.ndarray, alpha: float = 0.5, *, legend: bool = False) -> np.ndarray:
        """Blend the coloured mask over ``image`` ((H, W, 3) uint8, same colour order as the palette: RGB); with
        ``legend`` the classes present are named in the top-left corner (``draw_legend``)."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[:2] != self.mask.shape \
                or image.shape[2] != 3 or image.dtype != np.uint8:
            got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
            raise InputError(f"image: expected (H, W, 3) uint8 with (H, W) = {self.mask.shape} (the image this "
                             f"result came from), got {got}")
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 <= alpha <= 1.0:
            raise InputError(f"alpha: expected a number from 0 (image only) to 1 (mask only), got {alpha!r}")
        blend = image.astype(np.float32) * (1 - alpha) + self.colorize().astype(np.float32) * alpha
        picture = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
        return draw_legend(picture, self.mask, self.class_names, self.palette) if legend else picture
