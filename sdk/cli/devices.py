"""``--device`` for predict, stream, bench and eval: the flag only. Its value goes to the library as ``device=``
(``Segmenter.from_artifact``, ``runtimes.open_runtime``), which maps it to a runtime and its options: the table is
in ``runtimes/devices.py``.
"""
from __future__ import annotations

HELP = ("device: cpu, cuda[:N] (ONNX Runtime's CUDA provider, or the GPU of a TensorRT engine), tensorrt (ONNX "
        "Runtime's TensorRT provider), GPU[.N] / NPU / AUTO (OpenVINO; an ONNX artifact then runs in OpenVINO). "
        "Default: the runtime's own (CPU)")


def add_device_argument(parser) -> None:
    """Add ``--device`` to a subcommand's parser."""
    parser.add_argument("--device", help=HELP)
