"""The one preprocessing function. Inference, calibration, evaluation and benchmarks all call ``preprocess``.

Leaf module: imports numpy and OpenCV only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sdk.core.errors import InputError

RESIZE_MODES = ("bilinear", "area", "nearest")
COLOR_ORDERS = ("rgb", "bgr")


@dataclass(frozen=True, kw_only=True)
class PreprocessSpec:
    """How an image becomes the network input; stored in every artifact's manifest.

    size_hw: network input (height, width), or None to run at the image's own size.
    mean, std: per channel, in the network's channel order, on the 0..255 pixel scale: x = (pixel - mean) / std.
    channel_order: the order the network was trained on ("rgb" for all public SegFormer weights).
    resize_mode: "bilinear" (OpenCV INTER_LINEAR, half-pixel centres like PyTorch), "area" or "nearest".
    """

    size_hw: tuple[int, int] | None = None
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    channel_order: str = "rgb"
    resize_mode: str = "bilinear"

    def __post_init__(self) -> None:
        if self.size_hw is not None:
            size = tuple(int(v) for v in self.size_hw)
            if len(size) != 2 or min(size) < 32:
                raise InputError(f"size_hw: expected (height, width), both >= 32, got {self.size_hw}")
            object.__setattr__(self, "size_hw", size)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise InputError(f"mean/std: expected 3 values each, std > 0, got mean={self.mean} std={self.std}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.channel_order not in COLOR_ORDERS:
            raise InputError(f"channel_order: expected one of {COLOR_ORDERS}, got {self.channel_order!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise InputError(f"resize_mode: expected one of {RESIZE_MODES}, got {self.resize_mode!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size_hw"] = list(self.size_hw) if self.size_hw else None
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        return cls(size_hw=tuple(d["size_hw"]) if d.get("size_hw") else None, mean=tuple(d["mean"]),
                   std=tuple(d["std"]), channel_order=d.get("channel_order", "rgb"),
                   resize_mode=d.get("resize_mode", "bilinear"))


def check_image(image: object, name: str = "image") -> np.ndarray:
    """Validate one image: (H, W, 3) uint8. Raises InputError saying what came and how to fix it."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name}: expected a numpy array (H, W, 3) uint8, got {type(image).__name__}. "
                         "Read images with cv2.imread (BGR, pass color_order='bgr') or np.asarray(PIL.Image).")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        hint = ("For grayscale repeat the channel: np.repeat(img[..., None], 3, axis=2)." if image.ndim == 2 else
                "Drop alpha with img[..., :3]." if image.ndim == 3 and image.shape[2] == 4 else
                "Convert with np.asarray(img, np.uint8) (scale 0..1 floats by 255 first)." if image.ndim == 3 else
                "Pass one image at a time, or a list of images to predict_batch.")
        raise InputError(f"{name}: expected (H, W, 3) uint8, got {tuple(image.shape)} {image.dtype}. {hint}")
    if image.shape[0] < 32 or image.shape[1] < 32:
        raise InputError(f"{name}: expected at least 32x32 pixels, got {image.shape[0]}x{image.shape[1]}")
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; a clear error if it cannot be decoded."""
    import cv2

    try:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV's CV_IO_MAX_IMAGE_PIXELS
        msg = (str(exc).strip().splitlines() or [""])[-1][:200]
        raise InputError(f"image {path}: cannot be decoded ({msg}); its header may claim an absurd size. Check the "
                         "file, or re-encode it.") from None
    if img is None:
        raise InputError(f"image {path}: cannot be read or decoded (missing, truncated or not an image)")
    return np.ascontiguousarray(img[..., ::-1])


def network_size(spec: PreprocessSpec, image_hw: tuple[int, int]) -> tuple[int, int]:
    return spec.size_hw if spec.size_hw is not None else (int(image_hw[0]), int(image_hw[1]))


def preprocess(images: np.ndarray | list[np.ndarray], spec: PreprocessSpec, *, color_order: str = "rgb") -> np.ndarray:
    """Images -> network input.

    images: one (H, W, 3) uint8 image or a list of them (same size after resizing), channels in ``color_order``.
    Returns a C-contiguous (N, 3, h, w) float32 array, (h, w) = ``spec.size_hw`` or the images' own size.
    """
    import cv2

    if color_order not in COLOR_ORDERS:
        raise InputError(f"color_order: expected one of {COLOR_ORDERS}, got {color_order!r}")
    batch = [images] if isinstance(images, np.ndarray) else list(images)
    if not batch:
        raise InputError("images: expected at least one image, got an empty list")
    interp = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST}[spec.resize_mode]
    swap = color_order != spec.channel_order
    mean = np.asarray(spec.mean, np.float32)
    inv_std = (1.0 / np.asarray(spec.std, np.float64)).astype(np.float32)
    h, w = network_size(spec, check_image(batch[0], "images[0]").shape[:2])
    out = np.empty((len(batch), 3, h, w), np.float32)
    for i, img in enumerate(batch):
        img = check_image(img, f"images[{i}]")
        if img.shape[:2] != (h, w):
            if spec.size_hw is None:
                raise InputError(f"images[{i}]: expected {h}x{w} like images[0] (this model runs at the image's "
                                 f"own size), got {img.shape[0]}x{img.shape[1]}. Batch images of one size.")
            img = cv2.resize(img, (w, h), interpolation=interp)
        x = img[..., ::-1] if swap else img
        # (pixel - mean) / std, written per channel straight into the planar output
        for c in range(3):
            np.multiply(np.subtract(x[..., c], mean[c], dtype=np.float32), inv_std[c], out=out[i, c])
    return out
