"""Serving on NVIDIA's Triton Inference Server: the model's Python environment (``sdk.serving.env``), a real
``tritonserver`` process (``sdk.serving.server``) and a thin client that returns ``SegmentationResult``
(``sdk.serving.client.TritonSegmenter``). The repository itself is written by ``converters.triton_repo``.

Nothing heavy is imported here: ``tritonclient`` loads when a client is made (``pip install 'segedge[serve]'``).
"""
from __future__ import annotations

__all__ = ["TritonSegmenter", "TritonServer", "ServingError"]


def __getattr__(name: str):
    if name == "ServingError":
        from sdk.serving.errors import ServingError
        return ServingError
    if name == "TritonSegmenter":
        from sdk.serving import client
        return getattr(client, name)
    if name == "TritonServer":
        from sdk.serving.server import TritonServer
        return TritonServer
    raise AttributeError(f"module 'sdk.serving' has no attribute {name!r}")
