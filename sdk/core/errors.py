"""One error hierarchy for the SDK. Messages say what was expected, what came, and what to do."""
from __future__ import annotations


class SegEdgeError(Exception):
    """Base class of every error the SDK raises on purpose; the CLI prints these as one line (exit 1)."""


class CheckpointError(SegEdgeError):
    """A checkpoint is unreadable, unsafe, truncated, or does not match the SegFormer layouts we know."""


class LabelsError(SegEdgeError):
    """Class names or palette do not match the checkpoint's head."""


class InputError(SegEdgeError, ValueError):
    """An image or batch of the wrong shape, dtype or colour order."""


class ArtifactError(SegEdgeError):
    """An artifact folder is missing files, has a bad manifest, or was made for another runtime or device."""


class ExportError(SegEdgeError):
    """ONNX export failed or its parity check against PyTorch did not hold."""


class MissingDependencyError(SegEdgeError, ImportError):
    """An optional dependency is not installed; the message names the pip extra that provides it."""


# The extra of segedge that installs each optional module (pyproject.toml's [project.optional-dependencies]): the
# one table that require(), segedge doctor, the report's up-front check and open_runtime name extras from. TensorRT
# and pycuda come from JetPack, not pip (docs/JETSON.md); "jetson" is what the device side installs with them.
EXTRAS = {"onnxruntime": "cpu", "openvino": "cpu", "cv2": "cpu", "torch": "convert", "onnx": "convert",
          "onnxscript": "convert", "safetensors": "convert", "nncf": "quantize", "matplotlib": "report",
          "tensorrt": "jetson", "pycuda": "jetson", "transformers": "test", "tritonclient": "serve"}


def extras_for(modules) -> str:
    """The extras that install ``modules``, comma-separated in ``EXTRAS``' order (``cpu,convert,report``), for a
    ``pip install 'segedge[...]'`` line."""
    wanted = {EXTRAS[m.split(".")[0]] for m in modules}
    return ",".join(e for e in dict.fromkeys(EXTRAS.values()) if e in wanted)


def require(module: str, extra: str | None = None):
    """Import an optional heavy dependency where it is used; a missing one names the extra that installs it
    (``EXTRAS``; ``extra`` where the context needs another, e.g. onnx on a Jetson, from the jetson extra)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = extra or EXTRAS[module.split(".")[0]]
        raise MissingDependencyError(
            f"{module} is not installed (needed here: {exc}). Install it with: pip install 'segedge[{extra}]'"
        ) from exc


def require_cv2():
    """OpenCV, or one line saying how to get it: on a Jetson the system's (GStreamer, CUDA), elsewhere the pip wheel."""
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError(
            f"cv2 (OpenCV) is not installed (needed here: {exc}). On a Jetson use JetPack's OpenCV (sudo apt install "
            "python3-opencv) in a venv made with --system-site-packages, see docs/JETSON.md; elsewhere "
            "pip install 'segedge[cpu]'") from exc
    return cv2


class SourceError(SegEdgeError):
    """A video source (camera, file, URL, image folder, GStreamer pipeline) cannot be opened, or died."""


class OutputError(SegEdgeError):
    """A stream output (video file, display window) cannot be opened or written."""
