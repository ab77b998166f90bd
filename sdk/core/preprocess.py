"""The one preprocessing function. Inference, calibration, evaluation and benchmarks all call ``preprocess``.

Resize modes: "bilinear" (OpenCV INTER_LINEAR: half-pixel centres like PyTorch, no antialiasing), "area",
"nearest", and "pil_bilinear": PIL's BILINEAR filter, which transformers' image processors use (a triangle filter
widened by the downscale factor, so it antialiases when shrinking; 8-bit fixed-point, horizontal pass first).
"pil_bilinear" runs PIL where it is installed (the exact reference) and otherwise the same filter in numpy: bit-
identical to PIL 13 for common shapes, at most 1 grey level off on some pixels where PIL orders its two passes
differently (vertical first).
Aspect modes (``aspect``): "stretch" (resize to ``size_hw`` whatever the frame's shape), "letterbox" (scale to
fit inside ``size_hw`` keeping the aspect, pad bottom/right with the mean colour, i.e. 0 after normalising) and
"pad" (no resize: pad bottom/right to a multiple of the network's stride, 32). ``layout`` says where the content
lies; the masks come back at the image's own size either way.

Leaf module: imports numpy and OpenCV (and PIL when present), and sdk.core's errors and parallel, only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import math
import warnings

import numpy as np

from sdk.core.errors import InputError, require_cv2
from sdk.core.parallel import host_parts, run_parts

RESIZE_MODES = ("bilinear", "area", "nearest", "pil_bilinear")
ASPECT_MODES = ("stretch", "letterbox", "pad")
COLOR_ORDERS = ("rgb", "bgr")
STRIDE = 32  # SegFormer's deepest stage runs at 1/32
# SegFormer's stage-1 attention memory grows with the square of the network's pixel count (B0 at 4000x6000 asks
# for ~140 GB); 2048x2048 needs ~4 GB. An artifact may state its own limit in manifest.extra["max_input_pixels"]:
# the Segmenter's default limit, and what an export checks a fixed size against
MAX_INPUT_PIXELS = 2048 * 2048
# "stretch" warns when a frame's aspect differs from a fixed network size's by more than this factor
ASPECT_TOLERANCE = 1.1


@dataclass(frozen=True, kw_only=True)
class PreprocessSpec:
    """How an image becomes the network input; stored in every artifact's manifest.

    size_hw: network input (height, width), or None to run at the image's own size.
    mean, std: per channel, in the network's channel order, on the 0..255 pixel scale: x = (pixel - mean) / std.
    channel_order: the order the network was trained on ("rgb" for all public SegFormer weights).
    resize_mode: "bilinear" (OpenCV INTER_LINEAR, half-pixel centres like PyTorch), "area", "nearest" or
        "pil_bilinear" (PIL's antialiasing bilinear, as transformers' image processors resize).
    aspect: "stretch", "letterbox" (needs size_hw) or "pad" (see the module docstring).
    """

    size_hw: tuple[int, int] | None = None
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    channel_order: str = "rgb"
    resize_mode: str = "bilinear"
    aspect: str = "stretch"

    def __post_init__(self) -> None:
        if self.size_hw is not None:
            object.__setattr__(self, "size_hw", check_size_hw(self.size_hw))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise InputError(f"mean/std: expected 3 values each, std > 0, got mean={self.mean} std={self.std}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.channel_order not in COLOR_ORDERS:
            raise InputError(f"channel_order: expected one of {COLOR_ORDERS}, got {self.channel_order!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise InputError(f"resize_mode: expected one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.aspect not in ASPECT_MODES:
            raise InputError(f"aspect: expected one of {ASPECT_MODES}, got {self.aspect!r}")
        if self.aspect == "letterbox" and self.size_hw is None:
            raise InputError("aspect: 'letterbox' needs a network size (size_hw), got None. Give size_hw, or use "
                             "aspect='pad' to run at the image's own size padded to the stride.")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size_hw"] = list(self.size_hw) if self.size_hw else None
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        return cls(size_hw=tuple(d["size_hw"]) if d.get("size_hw") else None, mean=tuple(d["mean"]),
                   std=tuple(d["std"]), channel_order=d.get("channel_order", "rgb"),
                   resize_mode=d.get("resize_mode", "bilinear"), aspect=d.get("aspect", "stretch"))


def check_size_hw(value: object, what: str = "size_hw") -> tuple[int, int]:
    """The one (height, width) check of every size option (network input, static shapes, engine profiles, timing
    sizes): two integers, both at least ``STRIDE``, since the deepest stage runs at 1/32 and a smaller side leaves it
    no token. Returns them as a tuple of ints; ``what`` names the option in the message."""
    try:
        hw = tuple(int(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected (height, width), got {value!r}") from None
    if len(hw) != 2 or min(hw) < STRIDE:
        raise InputError(f"{what}: expected (height, width), both >= {STRIDE}, got {value!r}")
    return hw[0], hw[1]


class AspectWarning(UserWarning):
    """A frame stretched to a network size of another aspect. Not raised where the checkpoint's own image processor
    resizes (resize mode "pil_bilinear", as transformers' processors do): the model was trained on stretched frames.
    ``segedge`` shows it once per run and frame size, in its own format."""


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
    if image.shape[0] < STRIDE or image.shape[1] < STRIDE:
        raise InputError(f"{name}: expected at least {STRIDE}x{STRIDE} pixels, got {image.shape[0]}x{image.shape[1]}")
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; a clear error if it cannot be decoded."""
    cv2 = require_cv2()

    try:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV's CV_IO_MAX_IMAGE_PIXELS
        msg = (str(exc).strip().splitlines() or [""])[-1][:200]
        raise InputError(f"image {path}: cannot be decoded ({msg}); its header may claim an absurd size. Check the "
                         "file, or re-encode it.") from None
    if img is None:
        raise InputError(f"image {path}: cannot be read or decoded (missing, truncated or not an image)")
    return np.ascontiguousarray(img[..., ::-1])


def _ceil_stride(n: int) -> int:
    return -(-int(n) // STRIDE) * STRIDE


def network_size(spec: PreprocessSpec, image_hw: tuple[int, int]) -> tuple[int, int]:
    """The network input (h, w) for an image of ``image_hw``."""
    if spec.size_hw is not None:
        return spec.size_hw
    if spec.aspect == "pad":
        return _ceil_stride(image_hw[0]), _ceil_stride(image_hw[1])
    return int(image_hw[0]), int(image_hw[1])


def layout(spec: PreprocessSpec, image_hw: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(network (h, w), content (h, w)): the image fills the content box at the top-left of the network input;
    the rest is padding. content == network except for "letterbox" and "pad"."""
    net = network_size(spec, image_hw)
    h, w = int(image_hw[0]), int(image_hw[1])
    if spec.aspect == "pad" and spec.size_hw is None:
        return net, (h, w)
    if spec.aspect == "stretch":
        return net, net
    if spec.aspect == "pad":  # a fixed network size: pad what fits, shrink (keeping the aspect) what does not
        scale = min(1.0, net[0] / h, net[1] / w)
    else:
        scale = min(net[0] / h, net[1] / w)
    return net, (min(net[0], max(1, round(h * scale))), min(net[1], max(1, round(w * scale))))


def aspect_mismatch(spec: PreprocessSpec, image_hw: tuple[int, int]) -> float:
    """How much "stretch" distorts an image of ``image_hw`` into a fixed network size: the ratio of the two
    aspects, >= 1 (1.0 when nothing is stretched or the network runs at the image's own shape)."""
    if spec.size_hw is None or spec.aspect != "stretch":
        return 1.0
    a = (image_hw[1] / image_hw[0]) / (spec.size_hw[1] / spec.size_hw[0])
    return max(a, 1 / a)


def resize_pil_bilinear(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 as PIL's ``Image.resize((w, h), Image.BILINEAR)`` (PIL itself where
    installed, in horizontal bands side by side on the usable cores where that is bit-identical, see
    ``_pil_bands``; else numpy, horizontal pass first, see the module docstring)."""
    try:
        from PIL import Image
    except ImportError:
        return _pil_bilinear_numpy(img, hw)
    size = (int(hw[1]), int(hw[0]))
    bands = _pil_bands(img.shape[0], size[1], host_parts() if img.shape[0] * img.shape[1] >= _BAND_PIXELS else 1)
    if not bands:
        return np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))

    def band(b: tuple[int, int, int, float, float]) -> np.ndarray:
        r0, r1, rows, top, bottom = b
        slab = Image.fromarray(img[r0:r1])
        return np.asarray(slab.resize((size[0], rows), Image.BILINEAR, box=(0, top, img.shape[1], bottom)))

    return np.concatenate(run_parts(band, bands))


_BAND_PIXELS = 1 << 18  # below this a frame resizes in well under a millisecond: not worth a thread hand-off


def _pil_bands(n_in: int, n_out: int, parts: int) -> list[tuple[int, int, int, float, float]]:
    """Output-row bands for ``parts`` PIL resizes that give exactly the rows of one full resize, or [] where that
    cannot be guaranteed. A band is (first input row, end input row, output rows, box top, box bottom): PIL resizes
    the input rows r0:r1 with box (0, top, W, bottom) to ``output rows`` rows.

    PIL places output row i at the centre ``box_top + (i + 0.5) * scale`` (libImaging/Resample.c,
    precompute_coeffs) and weights the input rows around it. When the scale n_in / n_out is a dyadic rational
    (a power of two below the line: 2, 45/32, 15/8, ...) every such centre and box edge is exact in PIL's float
    and double arithmetic, so a band's row i + o0 gets the same input rows and the same weights as the full
    resize's row i + o0: bit-identical output. Other scales, or no vertical resize, get [] (one full resize)."""
    scale = Fraction(n_in, n_out)
    if parts < 2 or n_in == n_out or scale.denominator & (scale.denominator - 1) or n_out < 64 * parts:
        return []
    support = max(float(scale), 1.0)  # the bilinear filter's support, widened by the downscale factor
    bands = []
    for j in range(parts):
        o0, o1 = j * n_out // parts, (j + 1) * n_out // parts
        in0, in1 = o0 * scale, o1 * scale
        # the input rows the band's outputs read, with a row to spare on each side (never clamped by the slab)
        r0 = max(0, math.floor(in0 - support) - 1)
        r1 = min(n_in, math.ceil(in1 + support) + 1)
        top, bottom = in0 - r0, in1 - r0
        if float(np.float32(top)) != top or float(np.float32(bottom)) != bottom:  # PIL passes the box as floats
            return []
        bands.append((r0, r1, o1 - o0, float(top), float(bottom)))
    return bands


_PRECISION_BITS = 32 - 8 - 2  # PIL's fixed point for 8-bit images (libImaging/Resample.c)


def _pil_coeffs(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter: (first input index
    (n_out,), int64 weights (n_out, taps)), weights 0 past each output's last tap."""
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    center = (np.arange(n_out) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), n_in) - xmin
    x = np.arange(taps)[None, :]
    w = np.maximum(0.0, 1.0 - np.abs((x + xmin[:, None] - center[:, None] + 0.5) / filterscale))
    w = np.where(x < xmax[:, None], w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total != 0, w / np.where(total == 0, 1, total), 0.0)
    fixed = np.where(w < 0, -0.5 + w * (1 << _PRECISION_BITS), 0.5 + w * (1 << _PRECISION_BITS))
    return xmin, np.trunc(fixed).astype(np.int64)


def _pil_pass(img: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    xmin, k = _pil_coeffs(img.shape[axis], n_out)
    src = np.moveaxis(img, axis, 0)
    acc = np.full((n_out, *src.shape[1:]), 1 << (_PRECISION_BITS - 1), np.int64)
    for t in range(k.shape[1]):
        idx = np.minimum(xmin + t, src.shape[0] - 1)
        acc += src[idx].astype(np.int64) * k[:, t].reshape(-1, *([1] * (src.ndim - 1)))
    out = np.clip(acc >> _PRECISION_BITS, 0, 255).astype(np.uint8)
    return np.moveaxis(out, 0, axis)


def _pil_bilinear_numpy(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    out = img
    if hw[1] != img.shape[1]:
        out = _pil_pass(out, int(hw[1]), axis=1)  # PIL: horizontal pass first
    if hw[0] != img.shape[0]:
        out = _pil_pass(out, int(hw[0]), axis=0)
    return np.ascontiguousarray(out)


def _resize(img: np.ndarray, hw: tuple[int, int], mode: str) -> np.ndarray:
    cv2 = require_cv2()

    if mode == "pil_bilinear":
        return resize_pil_bilinear(img, hw)
    interp = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST}[mode]
    return cv2.resize(img, (int(hw[1]), int(hw[0])), interpolation=interp)


def preprocess(images: np.ndarray | list[np.ndarray], spec: PreprocessSpec, *, color_order: str = "rgb") -> np.ndarray:
    """Images -> network input.

    images: one (H, W, 3) uint8 image or a list of them (same size after resizing), channels in ``color_order``.
    Returns a C-contiguous (N, 3, h, w) float32 array, (h, w) = ``network_size(spec, image size)``; with
    "letterbox"/"pad" each image fills its ``layout`` content box at the top-left and the rest is 0.
    Warns (once per frame size) when "stretch" distorts a frame's aspect by more than ``ASPECT_TOLERANCE``.
    """
    if color_order not in COLOR_ORDERS:
        raise InputError(f"color_order: expected one of {COLOR_ORDERS}, got {color_order!r}")
    batch = [images] if isinstance(images, np.ndarray) else list(images)
    if not batch:
        raise InputError("images: expected at least one image, got an empty list")
    swap = color_order != spec.channel_order
    mean = np.asarray(spec.mean, np.float32)
    inv_std = (1.0 / np.asarray(spec.std, np.float64)).astype(np.float32)
    first_hw = check_image(batch[0], "images[0]").shape[:2]
    h, w = network_size(spec, first_hw)
    fill = np.empty if spec.aspect == "stretch" else np.zeros
    out = None
    for i, img in enumerate(batch):
        img = check_image(img, f"images[{i}]")
        if spec.size_hw is None and img.shape[:2] != first_hw:
            raise InputError(f"images[{i}]: expected {first_hw[0]}x{first_hw[1]} like images[0] (this model runs at "
                             f"the image's own size), got {img.shape[0]}x{img.shape[1]}. Batch images of one size.")
        _, (ch, cw) = layout(spec, img.shape[:2])
        distortion = aspect_mismatch(spec, img.shape[:2])
        if distortion > ASPECT_TOLERANCE and spec.resize_mode != "pil_bilinear":
            warnings.warn(AspectWarning(
                f"image {img.shape[0]}x{img.shape[1]}: its aspect differs from the network's {h}x{w} by "
                f"{distortion:.2f}x and is stretched to it. Keep the aspect: export with segedge export CHECKPOINT "
                f"--aspect letterbox --size {h} {w} (aspect='letterbox' in Python; quantize that artifact for "
                "INT8), or give --size of the frames' shape"), stacklevel=2)
        if img.shape[:2] != (ch, cw):
            img = _resize(img, (ch, cw), spec.resize_mode)
        if out is None:  # allocated after the first resize: before it, both run ~1 ms slower (measured, 1024x2048)
            out = fill((len(batch), 3, h, w), np.float32)
        x = img[..., ::-1] if swap else img
        # (pixel - mean) / std, written per channel straight into the planar output
        for c in range(3):
            np.multiply(np.subtract(x[..., c], mean[c], dtype=np.float32), inv_std[c], out=out[i, c, :ch, :cw])
    return out
