"""The Triton Python-backend model that ``segedge deploy-config triton`` copies into a repository as ``1/model.py``.

Triton loads it with its own Python (the backend stub's); that Python must have numpy < 2 (the stub is built against
numpy 1.x: with numpy 2 outputs come back empty) and segedge with its runtime extras installed: see
``requirements.txt`` beside ``config.pbtxt`` and ``sdk.serving.env``. Nothing here names a path on the machine that
wrote the repository: the artifact is ``<model folder>/<version>/artifact``.

IMAGE: (N, H, W, 3) uint8, RGB unless the config's ``color_order`` parameter says bgr; any H, W the artifact takes.
MASK: (N, H, W) class ids (uint8, int32 above 256 classes) at the image's size, computed by the project's own
``Segmenter`` (the same preprocessing, runtime and mask head as in-process inference, so the masks are equal).
Requests Triton's dynamic batcher put together (same H, W) run as one model batch. A request the Segmenter refuses
(too small, over the artifact's max_input_pixels, ...) gets its own error response; the others in the batch are
answered, and the model keeps serving.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sdk.core.errors import InputError, SegEdgeError
from sdk.core.preprocess import STRIDE
from sdk.segmenter import Segmenter


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        # Triton's Python backend provides it; imported here so that the module imports anywhere (tests import
        # every module of the package)
        import triton_python_backend_utils as pb_utils

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        artifact = Path(args["model_repository"]) / args["model_version"] / "artifact"
        options = {}
        if params.get("format") == "tensorrt" and args.get("model_instance_kind") == "GPU":
            options["device"] = int(args["model_instance_device_id"])  # the GPU Triton gave this instance
        self.segmenter = Segmenter.from_artifact(artifact, runtime=params.get("runtime", "auto"),
                                                 color_order=params.get("color_order", "rgb"), **options)
        self.batch_size = max(1, int(config.get("max_batch_size", 1)))
        output = pb_utils.get_output_config_by_name(config, "MASK")
        self.mask_dtype = pb_utils.triton_string_to_numpy(output["data_type"])

    def _answer(self, masks: np.ndarray):
        return self.pb.InferenceResponse(output_tensors=[self.pb.Tensor("MASK", masks.astype(self.mask_dtype))])

    def _error(self, exc: BaseException, what: str):
        text = str(exc) if isinstance(exc, SegEdgeError) else f"{type(exc).__name__}: {exc}"
        return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(f"{what}: {text}"))

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        batches: list[tuple[int, np.ndarray]] = []
        for i, request in enumerate(requests):
            images = self.pb.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            if images.ndim != 4 or images.shape[0] == 0 or 0 in images.shape[1:3]:
                responses[i] = self._error(InputError(
                    f"expected (N, H, W, 3) uint8 images with H, W >= {STRIDE}, got shape {tuple(images.shape)}. Send "
                    "one (H, W, 3) RGB frame per batch row."), "IMAGE")
            else:
                batches.append((i, images))
        if batches:
            images = [img for _, batch in batches for img in batch]
            try:  # one model call for everything the batcher put together
                masks = [r.mask for r in self.segmenter.predict_batch(images, batch_size=self.batch_size)]
            except Exception:  # one request is bad: answer each on its own, so the others still get their masks
                masks = None
            start = 0
            for i, batch in batches:
                if masks is not None:
                    responses[i] = self._answer(np.stack(masks[start:start + len(batch)]))
                else:
                    try:
                        results = self.segmenter.predict_batch(list(batch), batch_size=self.batch_size)
                        responses[i] = self._answer(np.stack([r.mask for r in results]))
                    except Exception as exc:  # noqa: BLE001 - every failure is this request's answer
                        responses[i] = self._error(exc, "IMAGE")
                start += len(batch)
        return responses

    def finalize(self) -> None:
        self.segmenter.close()

