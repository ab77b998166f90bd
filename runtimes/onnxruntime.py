"""ONNX Runtime backend: CPU here; CUDA and TensorRT execution providers selectable where installed."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtimes.base import Runtime, check_threads
from sdk.core.errors import ArtifactError, InputError, require
from sdk.core.manifest import MANIFEST_NAME, Manifest

PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider", "openvino": "OpenVINOExecutionProvider"}


class OnnxRuntime(Runtime):
    """Runs ``model.onnx`` artifacts.

    providers: ONNX Runtime execution providers in priority order, by alias ("cpu", "cuda", "tensorrt") or full
    name; a provider this onnxruntime build lacks is an error (no silent fallback). threads: intra-op threads
    (0: ONNX Runtime's default).
    """

    name = "onnxruntime"
    formats = ("onnx",)
    concurrent = True  # InferenceSession.run is thread-safe

    def __init__(self, artifact: str | Path, manifest: Manifest | None = None, *,
                 providers: list[str] | tuple[str, ...] = ("cpu",), threads: int = 0) -> None:
        super().__init__(artifact, manifest)
        check_threads(threads, "ONNX Runtime")
        if isinstance(providers, str) or not providers or not all(isinstance(p, str) for p in providers):
            raise InputError(f"providers: expected a non-empty list of provider names (e.g. ['cpu'] or "
                             f"['cuda', 'cpu']), got {providers!r}")
        ort = require("onnxruntime")
        wanted = [PROVIDER_ALIASES.get(p, p) for p in providers]
        available = ort.get_available_providers()
        missing = [p for p in wanted if p not in available]
        if missing:
            raise ArtifactError(f"onnxruntime providers: {missing} are not in this onnxruntime build (available: "
                                f"{available}). Install onnxruntime-gpu for CUDA/TensorRT, or run on the CPU "
                                "(--device cpu; the 'cpu' provider in Python).")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.model_path), sess_options=opts, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ArtifactError(f"artifact {self.artifact}: ONNX Runtime cannot load {self.model_path.name} "
                                f"({str(exc).splitlines()[0][:300]}). Is the file complete? Re-export it.") from None
        graph_inputs = sorted(i.name for i in self.session.get_inputs())
        if graph_inputs != sorted(self.input_names):
            raise ArtifactError(f"artifact {self.artifact}: the model's inputs {graph_inputs} differ from the "
                                f"manifest's {sorted(self.input_names)}. Re-export the artifact.")
        outputs = {o.name: o for o in self.session.get_outputs()}
        if not set(self.output_names) <= set(outputs):
            raise ArtifactError(f"artifact {self.artifact}: the model's outputs {sorted(outputs)} lack the "
                                f"manifest's {self.output_names}. Re-export the artifact (or restore model.json).")
        for info in self.manifest.outputs:
            have = outputs[info.name].type  # e.g. "tensor(uint8)"
            if have != f"tensor({'float' if info.dtype == 'float32' else info.dtype})":
                raise ArtifactError(f"artifact {self.artifact}: output {info.name!r} is {have} in the model, "
                                    f"{info.dtype} in {MANIFEST_NAME}. Re-export the artifact (or restore its "
                                    f"{MANIFEST_NAME}).")
        logits = outputs.get("logits")
        if logits is not None and len(logits.shape) == 4 and isinstance(logits.shape[1], int) \
                and logits.shape[1] != self.manifest.num_classes:
            raise ArtifactError(f"artifact {self.artifact}: the model outputs {logits.shape[1]} classes, but "
                                f"{MANIFEST_NAME} names {self.manifest.num_classes}. Give one name per class, or "
                                "re-export.")
        self.providers = self.session.get_providers()

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, values))

    def _close_impl(self) -> None:
        del self.session

    def describe(self) -> str:
        return f"onnxruntime {require('onnxruntime', 'cpu').__version__} ({', '.join(self.providers)})"
