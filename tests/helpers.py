"""Helpers shared by the model and checkpoint tests (test code only: the package never imports this).

Reference models come from ``transformers`` (a test-only dependency), imported inside the functions that need it.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

# the ../shared paths are conftest's (one set); VIDEO is re-exported for the stream tests that import it from here
from conftest import CAMVID, VIDEO  # noqa: F401

# A small non-published architecture: non-default heads, sr ratios, MLP ratios and strides, so that the loader has
# to take them from config.json (heads, strides) or from tensor shapes (the rest).
CUSTOM_ARCH = dict(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 2, 1], num_attention_heads=[2, 2, 4, 4],
                   sr_ratios=[4, 2, 2, 1], mlp_ratios=[2, 2, 4, 4], strides=[4, 2, 2, 1], decoder_hidden_size=64)


def hf_config(variant: str, num_labels: int, *, class_names: list[str] | None = None):
    """A transformers ``SegformerConfig`` for a published variant (b0..b5) or "custom" (``CUSTOM_ARCH``)."""
    from transformers import SegformerConfig

    from converters.model import MIT_VARIANTS

    if variant == "custom":
        arch = dict(CUSTOM_ARCH)
    else:
        hs, ds, width = MIT_VARIANTS[variant]
        arch = dict(hidden_sizes=list(hs), depths=list(ds), decoder_hidden_size=width)
    names = class_names or [f"thing_{i}" for i in range(num_labels)]
    return SegformerConfig(num_labels=num_labels, id2label=dict(enumerate(names)),
                           label2id={n: i for i, n in enumerate(names)}, **arch)


@torch.no_grad()
def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights at a scale that keeps activations O(1) (transformers' std-0.02 init makes every logit tiny,
    which would make a 1e-4 comparison meaningless), non-trivial LayerNorm affines, and BatchNorm running stats far
    from (0, 1) so that eval-mode BN really transforms its input."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            fan_in = m.weight[0].numel()
            m.weight.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=g)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.1, generator=g)
        elif isinstance(m, nn.LayerNorm):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.1, generator=g)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.2, generator=g)
            m.running_mean.normal_(0.0, 0.5, generator=g)
            m.running_var.uniform_(0.25, 4.0, generator=g)
            m.num_batches_tracked.fill_(1234)
    return model


def random_hf_model(variant: str, num_labels: int, *, seed: int = 0, class_names: list[str] | None = None):
    """A random-weight transformers ``SegformerForSemanticSegmentation`` in eval mode."""
    from transformers import SegformerForSemanticSegmentation

    torch.manual_seed(seed)
    model = SegformerForSemanticSegmentation(hf_config(variant, num_labels, class_names=class_names))
    return randomize(model, seed).eval()


def save_hf_folder(model, folder: Path) -> Path:
    """``save_pretrained`` (config.json + model.safetensors with the hub key names)."""
    model.save_pretrained(folder)
    return folder


def save_hf_bin_folder(model, folder: Path, *, names: str) -> Path:
    """A Hugging Face folder with ``pytorch_model.bin`` beside ``config.json``.

    transformers 5 ignores ``save_pretrained(safe_serialization=False)`` (it always writes safetensors), so the .bin
    is written with torch.save: ``names="hub"`` stores the hub key names (what transformers 4 wrote, and what .bin
    files on the hub carry), ``names="v5"`` stores ``model.state_dict()`` of transformers 5 as it is in memory
    (``segformer.stages.0.blocks.0.attention.q_proj.weight``...).
    """
    from safetensors.torch import load_file

    folder.mkdir(parents=True, exist_ok=True)
    if names == "hub":
        scratch = folder / "_safetensors"
        model.save_pretrained(scratch)
        sd = load_file(str(scratch / "model.safetensors"))
        shutil.copy(scratch / "config.json", folder / "config.json")
        shutil.rmtree(scratch)
    elif names == "v5":
        model.config.save_pretrained(folder)
        sd = {k: v.clone() for k, v in model.state_dict().items()}
    else:
        raise ValueError(f"names: expected 'hub' or 'v5', got {names!r}")
    torch.save(sd, folder / "pytorch_model.bin")
    return folder


def pixels(shape: tuple[int, int, int, int], seed: int = 0) -> torch.Tensor:
    """A normalised-image-like float32 input (N(0, 1) per pixel)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def hf_logits(model, x: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=x).logits


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"
    return (a - b).abs().max().item()


def first_val_image() -> tuple[Path, np.ndarray]:
    """The first CamVid val image (sorted by name) as (path, RGB uint8 (360, 480, 3))."""
    import cv2

    path = sorted((CAMVID / "val").glob("*.png"))[0]
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"cannot read {path}"
    return path, np.ascontiguousarray(bgr[..., ::-1])


def video_frames(n: int, video: Path = VIDEO) -> list[np.ndarray]:
    """The first ``n`` frames of ``video`` as (H, W, 3) uint8 BGR, decoded by OpenCV."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = [cap.read()[1] for _ in range(n)]
    cap.release()
    return frames


def mp4_frames(path: Path) -> int:
    """Frames OpenCV can decode from a written mp4 (0 if it does not open: e.g. no index written)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.isOpened() and cap.read()[0]:
        n += 1
    cap.release()
    return n


def wrapping_runtime(runtime):
    """A Runtime subclass instance around a real runtime, for test doubles that watch or slow its calls: override
    ``_infer_impl`` (call ``self.inner.infer``). ``Runtime.infer`` runs on the wrapper as on any runtime (checks,
    the call record, the recording's gate), so what the override sees is what a backend's ``_infer_impl`` sees."""
    from runtimes.base import Runtime

    class Wrapping(Runtime):
        name = "wrapping"
        formats = (runtime.manifest.format,)
        concurrent = True  # the inner runtime serialises what it must
        parallel_calls = runtime.parallel_calls

        def __init__(self) -> None:
            super().__init__(runtime.artifact, runtime.manifest)
            self.inner = runtime

        def _infer_impl(self, feeds):
            return self.inner.infer(feeds)

        def describe(self) -> str:
            return self.inner.describe()

    return Wrapping
