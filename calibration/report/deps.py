"""The modules a ``segedge report`` run needs, checked before any work: a missing matplotlib (the plots) or nncf
(OpenVINO INT8) otherwise shows only after every variant was built, scored and timed.

``find_spec`` looks a module up without importing it, so the check costs milliseconds and imports nothing heavy.
TensorRT is not required: where it (or a GPU) is absent the TensorRT variants are built as Q/DQ models and scored
in ONNX Runtime, as the report says.
"""
from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Iterable

from sdk.core.errors import InputError, MissingDependencyError, extras_for

# module -> what the report needs it for (the extra that installs it: sdk.core.errors.EXTRAS)
_WHY = {"onnxruntime": "the FP32 reference and scoring", "cv2": "reading images and video",
        "matplotlib": "the plots in report.html", "torch": "exporting the checkpoint",
        "onnx": "exporting and INT8 quantization", "safetensors": "reading the checkpoint",
        "openvino": "the OpenVINO variants", "nncf": "OpenVINO INT8"}
KNOWN_BACKENDS = ("onnxruntime", "openvino", "tensorrt")


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def report_dependencies(backends: Iterable[str], *, precisions: Iterable[str] | None = None,
                        from_checkpoint: bool = True) -> list[str]:
    """The modules a report over ``backends`` (and ``precisions``; None: all) needs, in a stable order."""
    backends = list(backends)
    unknown = [b for b in backends if b not in KNOWN_BACKENDS]
    if unknown:
        raise InputError(f"--backends: expected a comma list of {', '.join(KNOWN_BACKENDS)}, got {', '.join(unknown)}")
    int8 = precisions is None or "int8" in set(precisions)
    needs = ["onnxruntime", "cv2", "matplotlib"]
    if from_checkpoint:
        needs += ["torch", "onnx", "safetensors"]
    if int8 and ("onnxruntime" in backends or "tensorrt" in backends):
        needs.append("onnx")  # ONNX Runtime's quantizer (also the Q/DQ model for TensorRT) edits the ONNX graph
    if "openvino" in backends:
        needs.append("openvino")
        if int8:
            needs.append("nncf")
    return list(dict.fromkeys(needs))


def check_report_dependencies(backends: Iterable[str], *, precisions: Iterable[str] | None = None,
                              source: str | Path | None = None) -> None:
    """Raise MissingDependencyError naming every missing module and the one pip command that installs them all.

    source: the report's checkpoint or FP32 artifact (an artifact folder needs no conversion packages); None:
    assume a checkpoint."""
    from_checkpoint = source is None or not (Path(source) / "model.json").is_file()
    missing = [m for m in report_dependencies(backends, precisions=precisions, from_checkpoint=from_checkpoint)
               if not _installed(m)]
    if not missing:
        return
    what = "; ".join(f"{m} ({_WHY[m]})" for m in missing)
    raise MissingDependencyError(f"report over --backends {','.join(backends)}: needs {what}, not installed here "
                                 f"(checked before any work). Install: pip install 'segedge[{extras_for(missing)}]'")
