"""Image corruptions for robustness evaluation, after Hendrycks & Dietterich (ImageNet-C, ICLR 2019), the protocol
the SegFormer paper follows on Cityscapes-C (Xie et al., NeurIPS 2021, section 4.4): the same corruption functions
and severity constants, five levels each. Implemented with numpy + OpenCV (no extra dependency); noise is seeded,
so a corrupted set is the same for every model it is compared on.

Each function takes and returns an (H, W, 3) uint8 RGB image.
"""
from __future__ import annotations

import numpy as np

from sdk.core.errors import InputError

# severity 1..5 -> parameter, as in ImageNet-C (imagecorruptions)
_NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)  # of the 0..1 range
_BLUR_SIGMA = (1, 2, 3, 4, 6)  # pixels
_BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)  # added to HSV value, 0..1
_CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)  # factor about the image mean
_JPEG_QUALITY = (25, 18, 15, 10, 7)


def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32) / 255 + rng.normal(0, _NOISE_STD[severity - 1], image.shape).astype(np.float32)
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def gaussian_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), sigmaX=_BLUR_SIGMA[severity - 1], borderType=cv2.BORDER_REFLECT)


def brightness(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    hsv = cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2HSV)
    hsv[..., 2] = np.clip(hsv[..., 2] + _BRIGHTNESS[severity - 1], 0, 1)
    return (np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0, 1) * 255).round().astype(np.uint8)


def contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32) / 255
    mean = x.mean(axis=(0, 1), keepdims=True)
    return (np.clip((x - mean) * _CONTRAST[severity - 1] + mean, 0, 1) * 255).round().astype(np.uint8)


def jpeg(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY[severity - 1]])
    if not ok:
        raise InputError("jpeg corruption: OpenCV could not encode the image")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None:
        raise InputError("jpeg corruption: OpenCV could not decode its own JPEG")
    return np.ascontiguousarray(decoded[..., ::-1])


CORRUPTIONS = {"gaussian_noise": gaussian_noise, "gaussian_blur": gaussian_blur, "brightness": brightness,
               "contrast": contrast, "jpeg": jpeg}


def check_corruptions(names, severity: int) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise InputError(f"corruptions: expected names from {sorted(CORRUPTIONS)}, got {unknown}")
    if severity not in (1, 2, 3, 4, 5):
        raise InputError(f"corruption severity: expected 1..5 (ImageNet-C levels), got {severity}")
    return names


def corrupt(image: np.ndarray, name: str, severity: int = 3, *, seed: int = 0) -> np.ndarray:
    """``image`` under corruption ``name`` at ``severity`` (1..5); ``seed`` fixes the noise (use the image index)."""
    check_corruptions([name], severity)
    return CORRUPTIONS[name](image, severity, np.random.default_rng(seed))
