"""segedge: trained SegFormer -> INT8 edge artifacts (TensorRT, OpenVINO, ONNX Runtime) behind one API.

``from sdk import Segmenter``. Heavy modules load on first use, so ``import sdk`` stays light.

Layers (``tests/unit/test_layers.py`` enforces them on every import, lazy ones included): ``sdk.core`` (contracts:
errors, manifest, preprocess, postprocess, result) imports nothing else from the project; ``runtimes`` imports
``sdk.core``; ``sdk.segmenter`` and ``sdk.timing`` import those two; ``converters`` those; ``calibration`` those and
``converters``; ``sdk.stream`` imports ``sdk.core``, ``sdk.segmenter`` and ``runtimes``; ``sdk.cli`` may import
everything but ``benchmarks``; nothing imports ``sdk.cli`` or ``benchmarks`` except ``benchmarks`` and the tests.
"""
from __future__ import annotations

from sdk.core.errors import (ArtifactError, CheckpointError, ExportError, InputError, LabelsError,
                        MissingDependencyError, OutputError, SegEdgeError, SourceError)

__all__ = ["Segmenter", "SegmentationResult", "PreprocessSpec", "Manifest", "SegEdgeError", "CheckpointError",
           "LabelsError", "InputError", "ArtifactError", "ExportError", "MissingDependencyError", "SourceError",
           "OutputError"]


def __getattr__(name: str):
    if name == "Segmenter":
        from sdk.segmenter import Segmenter
        return Segmenter
    if name == "SegmentationResult":
        from sdk.core.result import SegmentationResult
        return SegmentationResult
    if name == "PreprocessSpec":
        from sdk.core.preprocess import PreprocessSpec
        return PreprocessSpec
    if name == "Manifest":
        from sdk.core.manifest import Manifest
        return Manifest
    raise AttributeError(f"module 'sdk' has no attribute {name!r}")
