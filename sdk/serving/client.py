"""``TritonSegmenter``: the served model behind the ``Segmenter`` call, so switching is one line::

    seg = Segmenter.from_artifact("out/b0")                    # in this process
    seg = TritonSegmenter("127.0.0.1:8001", "b0")              # on a Triton server (gRPC; protocol="http": 8000)
    result = seg(image)                                         # SegmentationResult either way

Thin: the frame goes as one IMAGE tensor ((1, H, W, 3) uint8), the MASK comes back; class names and palette come
from the model's config (its ``class_names`` / ``palette`` parameters, written by ``segedge deploy-config triton``).
``tritonclient`` is imported here only (``pip install 'segedge[serve]'``). Not thread-safe: one per thread, made in
the thread that uses it (tritonclient's HTTP client is gevent-based and refuses other threads).
"""
from __future__ import annotations

import json

import numpy as np

from sdk.core.errors import InputError, require
from sdk.core.preprocess import check_image
from sdk.core.result import SegmentationResult, default_palette
from sdk.serving.errors import ServingError

PROTOCOLS = ("grpc", "http")


class TritonSegmenter:
    """A model served by ``segedge serve`` (or any Triton with a repository from ``segedge deploy-config triton``).

    url: "host:port" (gRPC 8001 or HTTP 8000 by default). protocol: "grpc" or "http". timeout_s: per request.
    A request the server refuses raises ``ServingError`` with the server's message (the server keeps serving)."""

    def __init__(self, url: str = "127.0.0.1:8001", model_name: str = "segformer", *, protocol: str = "grpc",
                 timeout_s: float = 60.0) -> None:
        if protocol not in PROTOCOLS:
            raise InputError(f"protocol: expected one of {PROTOCOLS}, got {protocol!r}")
        self.protocol, self.url, self.model_name, self.timeout_s = protocol, url, model_name, timeout_s
        self._tc = require(f"tritonclient.{protocol}")
        self._utils = require("tritonclient.utils")
        self.client = self._tc.InferenceServerClient(url=url)
        try:
            config = self.client.get_model_config(model_name)
        except self._utils.InferenceServerException as exc:
            raise ServingError(f"model {model_name!r} on {protocol}://{url}: {exc.message()}. Is the server "
                               "running (segedge serve) and the name right (GET /v2/models)?") from None
        config = config.config if protocol == "grpc" else config
        params = self._parameters(config)
        if "class_names" not in params:
            raise ServingError(f"model {model_name!r} on {url}: expected a segedge model (a class_names parameter in "
                               "its config), got none. Write the repository with segedge deploy-config triton.")
        self.class_names: list[str] = json.loads(params["class_names"])
        self.palette = json.loads(params["palette"]) if params.get("palette") else default_palette(
            len(self.class_names))
        self.max_batch_size = int(config["max_batch_size"] if protocol == "http" else config.max_batch_size)

    def _parameters(self, config) -> dict[str, str]:
        if self.protocol == "http":
            return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        return {k: v.string_value for k, v in config.parameters.items()}

    def infer_masks(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, H, W) class ids from one request."""
        tensor = self._tc.InferInput("IMAGE", list(images.shape), "UINT8")
        tensor.set_data_from_numpy(np.ascontiguousarray(images))
        try:
            kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
            reply = self.client.infer(self.model_name, [tensor], outputs=[self._tc.InferRequestedOutput("MASK")],
                                      **kwargs)
        except self._utils.InferenceServerException as exc:
            raise ServingError(f"{self.protocol}://{self.url} {self.model_name}: {exc.message()}") from None
        masks = reply.as_numpy("MASK")
        if masks is None or masks.shape != images.shape[:3]:
            raise ServingError(f"{self.model_name}: expected masks of shape {images.shape[:3]}, got "
                               f"{None if masks is None else masks.shape}. Is the model's Python on numpy<2?")
        return masks

    def __call__(self, image: np.ndarray) -> SegmentationResult:
        """Segment one (H, W, 3) uint8 RGB image on the server."""
        mask = self.infer_masks(check_image(image)[None])[0]
        return SegmentationResult(mask, self.class_names, self.palette)

    def predict_batch(self, images: list[np.ndarray], *, batch_size: int | None = None) -> list[SegmentationResult]:
        """Consecutive images of one size go in one request of up to ``batch_size`` (default the model's max)."""
        batch_size = batch_size or max(1, self.max_batch_size)
        images = [check_image(img, f"images[{i}]") for i, img in enumerate(images)]
        results: list[SegmentationResult] = []
        start = 0
        while start < len(images):
            stop = start + 1
            while stop < len(images) and stop - start < batch_size and images[stop].shape == images[start].shape:
                stop += 1
            masks = self.infer_masks(np.stack(images[start:stop]))
            results += [SegmentationResult(m, self.class_names, self.palette) for m in masks]
            start = stop
        return results

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "TritonSegmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
