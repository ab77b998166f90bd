"""``model.json``: the manifest beside every artifact's model file(s). Runtimes check it on load.

Leaf module: standard library + sdk.core.errors + sdk.core.preprocess.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sdk.core.errors import ArtifactError
from sdk.core.preprocess import PreprocessSpec

MANIFEST_NAME = "model.json"
FORMAT_VERSION = 1
HEADS = ("logits", "mask")
UPSAMPLE_MODES = ("exact", "fast")
GRAPHS = ("portable", "onnxruntime")


@dataclass(frozen=True, kw_only=True)
class TensorInfo:
    """One graph input or output: name, dtype name (numpy), shape with symbolic dims as strings."""

    name: str
    dtype: str
    shape: list[int | str]


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """Everything needed to run and trust an artifact without the checkpoint.

    head: "logits" -> output (N, K, h/4, w/4) float32, upsampled and argmaxed on the host;
          "mask" -> output (N, H, W) class ids computed inside the graph at ``output_size`` (an int64 [2] input).
    upsample: for "mask": "exact" (bilinear logits to the output size, then argmax, as transformers does) or
          "fast" (bilinear to the network input size, argmax, nearest to the output size).
    graph: for ONNX artifacts, "portable" (standard ONNX ops, opset 17: what OpenVINO and TensorRT read) or
          "onnxruntime" (ONNX Runtime's fused attention and NHWC-friendly layout; only ONNX Runtime runs it).
    """

    format: str  # "onnx" | "openvino" | "tensorrt"
    model_file: str
    precision: str  # "fp32" | "fp16" | "int8" ...
    class_names: list[str]
    palette: list[list[int]] | None
    preprocess: PreprocessSpec
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    head: str
    upsample: str | None
    architecture: dict
    source: dict  # path, sha256, layout
    opset: int | None = None
    graph: str = "portable"
    versions: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ArtifactError(f"manifest head: expected one of {HEADS}, got {self.head!r}")
        if self.head == "mask" and self.upsample not in UPSAMPLE_MODES:
            raise ArtifactError(f"manifest upsample: expected one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if self.graph not in GRAPHS:
            raise ArtifactError(f"manifest graph: expected one of {GRAPHS}, got {self.graph!r}")
        if self.palette is not None and len(self.palette) != len(self.class_names):
            raise ArtifactError(f"manifest palette: expected {len(self.class_names)} colours (one per class), "
                                f"got {len(self.palette)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        return d

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, d: dict) -> "Manifest":
        d = dict(d)
        d["preprocess"] = PreprocessSpec.from_dict(d["preprocess"])
        d["inputs"] = [TensorInfo(**t) for t in d["inputs"]]
        d["outputs"] = [TensorInfo(**t) for t in d["outputs"]]
        return cls(**d)


def read_manifest(folder: str | Path) -> Manifest:
    """Read and validate ``<folder>/model.json``; also checks that the model file it names exists."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise ArtifactError(f"artifact {folder}: expected a folder with {MANIFEST_NAME} and the model file, "
                            "but it does not exist or is not a folder. Create one with: segedge export CHECKPOINT "
                            f"--output {folder}")
    if not path.is_file():
        raise ArtifactError(f"artifact {folder}: {MANIFEST_NAME} is missing. Artifacts are made by segedge export; "
                            "re-export the checkpoint into this folder.")
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"artifact {folder}: {MANIFEST_NAME} is not valid JSON ({exc}). Re-export.") from None
    if raw.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"artifact {folder}: manifest format_version {raw.get('format_version')!r}, this SDK "
                            f"reads {FORMAT_VERSION}. Re-export with this version of segedge.")
    try:
        manifest = Manifest.from_dict(raw)
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"artifact {folder}: {MANIFEST_NAME} is incomplete or malformed ({exc}). "
                            "Re-export.") from None
    if not (folder / manifest.model_file).is_file():
        raise ArtifactError(f"artifact {folder}: the model file {manifest.model_file!r} named in {MANIFEST_NAME} "
                            "is missing. Copy the whole artifact folder, or re-export.")
    return manifest
