"""``Segmenter``: image -> preprocess -> runtime -> postprocess -> ``SegmentationResult``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtimes import open_runtime
from runtimes.base import Runtime
from sdk.core.errors import ArtifactError, InputError
from sdk.core.manifest import model_feeds
from sdk.core.postprocess import masks_from_logits, padded_output_hw
from sdk.core.preprocess import (COLOR_ORDERS, MAX_INPUT_PIXELS, PreprocessSpec, check_image, layout, network_size,
                                 preprocess)
from sdk.core.result import SegmentationResult, default_palette

# images (and so masks and full-size logits inside the mask head) larger than this are refused: PIL's bomb limit
MAX_IMAGE_PIXELS = 89_478_485


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"


class Segmenter:
    """Semantic segmentation with any artifact behind one API.

    >>> seg = Segmenter.from_artifact("out/b0-fp32")        # runtime="auto"
    >>> result = seg(image)                                  # (H, W, 3) uint8, RGB unless color_order="bgr"
    >>> result.mask                                          # (H, W) class ids at the image's resolution

    Thread-safe on every runtime: one Segmenter may be shared by several threads. ONNX Runtime sessions run calls
    concurrently, OpenVINO takes an infer request per call from a pool, and runtimes that cannot (TensorRT's
    execution context) serialise calls with a lock.

    max_input_pixels: the largest network input (h * w) a call may run; models without a fixed input size run at
    the image's own size, and a larger frame is refused with how to run it (export with --size). Default: the
    manifest's ``extra.max_input_pixels``, else ``MAX_INPUT_PIXELS`` (2048 x 2048).
    """

    def __init__(self, runtime: Runtime, *, color_order: str = "rgb", max_input_pixels: int | None = None) -> None:
        if color_order not in COLOR_ORDERS:
            raise InputError(f"color_order: expected one of {COLOR_ORDERS}, got {color_order!r}")
        if max_input_pixels is None:
            max_input_pixels = runtime.manifest.extra.get("max_input_pixels", MAX_INPUT_PIXELS)
        if not isinstance(max_input_pixels, int) or isinstance(max_input_pixels, bool) or max_input_pixels < 1024:
            raise InputError(f"max_input_pixels: expected an int >= 1024, got {max_input_pixels!r}")
        self.max_input_pixels = max_input_pixels
        self.runtime = runtime
        self.manifest = runtime.manifest
        self.color_order = color_order
        self.class_names = list(self.manifest.class_names)
        self.palette = self.manifest.palette or default_palette(len(self.class_names))

    @classmethod
    def from_artifact(cls, path: str | Path, *, runtime: str = "auto", device: str | int | None = None,
                      color_order: str = "rgb", max_input_pixels: int | None = None,
                      **runtime_options) -> "Segmenter":
        """Open an artifact folder (``model.json`` + model file). device: cpu, cuda[:N], tensorrt, GPU[.N], NPU,
        AUTO (``runtimes.devices``; with runtime "auto" it picks the runtime). ``runtime_options`` go to the
        runtime."""
        if color_order not in COLOR_ORDERS:
            raise InputError(f"color_order: expected one of {COLOR_ORDERS}, got {color_order!r}")
        rt = open_runtime(path, runtime, device=device, **runtime_options)
        try:
            return cls(rt, color_order=color_order, max_input_pixels=max_input_pixels)
        except BaseException:
            rt.close()
            raise

    def __call__(self, image: np.ndarray) -> SegmentationResult:
        """Segment one (H, W, 3) uint8 image; the mask comes back at (H, W)."""
        return self._segment([self.check_input(image)], 1, self.color_order)[0]

    def predict_batch(self, images: list[np.ndarray], *, batch_size: int = 8,
                      color_order: str | None = None) -> list[SegmentationResult]:
        """Segment many images; consecutive images of the same size run together, up to ``batch_size``.
        ``color_order``: the images' channel order, default the Segmenter's (stream pipelines pass "bgr": decoded
        frames come as BGR)."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"batch_size: expected an int >= 1, got {batch_size!r}")
        if color_order is None:
            color_order = self.color_order
        elif color_order not in COLOR_ORDERS:
            raise InputError(f"color_order: expected one of {COLOR_ORDERS}, got {color_order!r}")
        if isinstance(images, np.ndarray):
            if images.ndim != 4:
                raise InputError(f"images: expected a list of (H, W, 3) uint8 images or an (N, H, W, 3) array, got "
                                 f"shape {images.shape}. Call seg(image) for one image.")
            images = list(images)
        if isinstance(images, (str, bytes, dict)) or not hasattr(images, "__iter__"):
            raise InputError(f"images: expected a list of (H, W, 3) uint8 images, got {type(images).__name__}")
        images = [self.check_input(img, f"images[{i}]") for i, img in enumerate(images)]
        return self._segment(images, batch_size, color_order)

    def _segment(self, images: list[np.ndarray], batch_size: int, color_order: str) -> list[SegmentationResult]:
        """Checked images -> results, consecutive images of one size in batches of up to ``batch_size``."""
        results: list[SegmentationResult] = []
        start = 0
        while start < len(images):
            hw = images[start].shape[:2]
            stop = start + 1
            while stop < len(images) and stop - start < batch_size and images[stop].shape[:2] == hw:
                stop += 1
            results.extend(self._run(images[start:stop], color_order))
            start = stop
        return results

    def check_input(self, image: np.ndarray, name: str = "image") -> np.ndarray:
        """Validate one image as a call would (a (H, W, 3) uint8 array of at least 32x32, within the size limits),
        naming it ``name`` in the error (e.g. its file); returns it. Lets a caller skip a bad file and go on."""
        return self._check_size(check_image(image, name), name)

    def _check_size(self, image: np.ndarray, name: str) -> np.ndarray:
        h, w = image.shape[:2]
        if h * w > MAX_IMAGE_PIXELS:
            raise InputError(f"{name}: expected at most {_mp(MAX_IMAGE_PIXELS)}, got {h}x{w} ({_mp(h * w)}); the "
                             "mask alone would not fit comfortably. Downscale the frame or cut it into tiles.")
        nh, nw = network_size(self.manifest.preprocess, (h, w))
        if nh * nw > self.max_input_pixels:
            raise InputError(
                f"{name}: {h}x{w} would run the network at {nh}x{nw} ({_mp(nh * nw)}), over this Segmenter's limit "
                f"of {_mp(self.max_input_pixels)} (attention memory grows with the square of the pixel count). "
                "Export with a network size, e.g. segedge export CHECKPOINT --size 1024 1536 (frames are resized "
                "to it and masks come back at full size), downscale the frame, or raise the limit (segedge export "
                "--max-input-pixels N; max_input_pixels= in Python).")
        return image

    def _run(self, images: list[np.ndarray], color_order: str) -> list[SegmentationResult]:
        masks = infer_masks(self.runtime.infer, self.manifest, images, color_order=color_order,
                            what=f"artifact {self.runtime.artifact}")
        return [SegmentationResult(m, self.class_names, self.palette) for m in masks]

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.manifest
        choice = getattr(self.runtime, "auto_choice", None)  # runtime="auto": which runtime and why
        return (f"Segmenter({m.architecture.get('variant', '?')}, {m.num_classes} classes, {m.precision}, "
                f"{self.runtime.describe()}{f'; auto: {choice.reason}' if choice else ''})")


def infer_masks(infer, manifest, images: list[np.ndarray], *, spec: PreprocessSpec | None = None,
                color_order: str = "rgb", what: str = "artifact") -> np.ndarray:
    """The one inference path, image -> mask: ``preprocess`` (``spec``, default the manifest's), the model's feeds,
    ``infer`` (feeds dict -> outputs dict by name, e.g. ``Runtime.infer``), then the head's postprocessing, which
    un-letterboxes and un-pads (the content's part of the output only) so the masks come back at the images' size.

    Everything that compares masks (``Segmenter``, quantize's held-out agreement, ``segedge verify``, NNCF's
    accuracy control) calls it, so a letterbox or pad artifact is measured the way it is run. images: (H, W, 3)
    uint8, all of one size. spec: another preprocessing for the same model (the FP32 source of an INT8 artifact,
    run through the INT8's static spec). Returns (N, H, W) class ids; an ArtifactError names ``what`` if the
    model's outputs do not fit its manifest."""
    spec = spec or manifest.preprocess
    hw = images[0].shape[:2]
    num_classes = len(manifest.class_names)
    x = preprocess(images, spec, color_order=color_order)
    net_hw, content_hw = layout(spec, hw)  # letterbox/pad: the image fills content_hw
    outputs = infer(model_feeds(manifest, x, padded_output_hw(hw, net_hw, content_hw)))
    if manifest.head == "mask":
        masks = outputs["mask"][:, :hw[0], :hw[1]]
    else:  # "logits" (exact on the host) or "refine" (logits + low-resolution argmax, refined on the host)
        logits = outputs["logits"]
        if logits.ndim != 4 or logits.shape[1] != num_classes:
            raise ArtifactError(f"{what}: the model returned logits of shape {logits.shape}, expected (N, "
                                f"{num_classes}, h, w) for the {num_classes} classes its manifest names. Re-export.")
        masks = masks_from_logits(outputs, hw, net_hw=net_hw, content_hw=content_hw)
    if masks.shape != (len(images), *hw):
        raise ArtifactError(f"{what}: the model returned masks of shape {masks.shape}, expected "
                            f"{(len(images), *hw)}. Re-export it with this version of segedge.")
    top = int(masks.max()) if masks.size else 0
    if top >= num_classes or (masks.dtype.kind == "i" and masks.size and int(masks.min()) < 0):
        raise ArtifactError(f"{what}: the model returned class id {top}, but its manifest names {num_classes} "
                            f"classes (ids 0..{num_classes - 1}). The manifest's class_names do not match the model: "
                            "re-export, or give one name per output class.")
    return masks
