"""OpenVINO backend: runs OpenVINO IR artifacts (``model.xml`` + ``.bin``) and, directly, ONNX artifacts.

Device "CPU" by default ("GPU", "NPU", "AUTO:GPU,CPU"... where the plugin is installed). Options map to OpenVINO's
compile-time properties and are read back from the compiled model, so ``describe()`` says what is in effect:

- ``precision``: the inference precision hint for float ops. None keeps OpenVINO's default, which on CPUs with
  AVX-512 BF16 / AMX is bf16 (faster than f32, masks agree on nearly every pixel: docs/BENCHMARKS.md); "f32" gives
  FP32 parity with ONNX Runtime; "bf16", "f16" where the device has them. A hint the device does not honour (e.g.
  "f16" on a CPU without FP16 arithmetic, which OpenVINO quietly turns into bf16) is an error, not a silent fallback.
  INT8 artifacts run their quantized layers in int8 whatever the hint; the hint applies to the layers left float.
- ``performance_mode``: "latency" (one request, all cores on it; default) or "throughput" (several streams, each
  on its own cores: ``parallel_calls`` of them run at once, for pipelines that keep that many frames in flight:
  more frames per second at less CPU per frame, each frame taking longer).
- ``threads``: inference threads (0: OpenVINO's choice, one per physical core).
- ``batch``: compile a static-batch-1 IR for batches of this many images (its input reshaped to (batch, 3, h, w)):
  a call with fewer images is padded, one with more runs in chunks. For pipelines that feed a fixed number of
  frames a call (several cameras); None keeps the IR's own shape.

Static-shape artifacts (INT8 IR, reshaped to (1, 3, h, w)) take a batch as one infer request per image, all started
at once, so the device's streams and threads share them.
Thread-safe: each call takes an ``InferRequest`` from a pool (a new one when all are busy, so N threads sharing
one runtime run N requests at once) and puts it back afterwards.
openvino is imported when a runtime opens, never at import time.
"""
from __future__ import annotations

import queue
from pathlib import Path

import numpy as np

from runtimes.base import Runtime, check_threads
from sdk.core.errors import ArtifactError, InputError, require
from sdk.core.manifest import Manifest, require_portable_graph

PRECISIONS = ("f32", "bf16", "f16")
PERFORMANCE_MODES = ("latency", "throughput")


def _prop(compiled, key: str) -> str:
    """A compiled-model property as text ('' where the device does not report it)."""
    try:
        value = compiled.get_property(key)
    except RuntimeError:  # the plugin does not support this property
        return ""
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value).split(".")[-1]


class OpenVINORuntime(Runtime):
    """Runs ``model.xml`` (format "openvino") or ``model.onnx`` (format "onnx") artifacts with OpenVINO.

    device: an OpenVINO device name. precision: None | "f32" | "bf16" | "f16" (see the module docstring).
    performance_mode: "latency" | "throughput". threads: 0 for OpenVINO's default. cache_dir: OpenVINO's model
    cache (saves compile time on GPU/NPU), None for none.
    """

    name = "openvino"
    formats = ("openvino", "onnx")
    concurrent = True  # a pool of infer requests, one per concurrent call

    def __init__(self, artifact: str | Path, manifest: Manifest | None = None, *, device: str = "CPU",
                 precision: str | None = None, performance_mode: str = "latency", threads: int = 0,
                 cache_dir: str | Path | None = None, batch: int | None = None) -> None:
        super().__init__(artifact, manifest)
        if precision is not None and precision not in PRECISIONS:
            raise InputError(f"precision: expected None (OpenVINO's default) or one of {PRECISIONS}, got "
                             f"{precision!r}")
        if performance_mode not in PERFORMANCE_MODES:
            raise InputError(f"performance_mode: expected one of {PERFORMANCE_MODES}, got {performance_mode!r}")
        check_threads(threads, "OpenVINO")
        if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 64):
            raise InputError(f"batch: expected None (the IR's own shape) or an int from 1 to 64, got {batch!r}")
        require_portable_graph(self.manifest, what=f"artifact {self.artifact}", reader="OpenVINO does not read",
                               fix="Run it with runtime='onnxruntime', or export with --graph portable for OpenVINO.")
        ov = require("openvino")
        import openvino.properties as props
        import openvino.properties.hint as hints

        self.ov_version = ov.__version__.split("-")[0]
        core = ov.Core()
        base_device = device.split(":")[0].split(".")[0]
        if base_device not in ("AUTO", "MULTI", "HETERO", "BATCH") and base_device not in core.available_devices \
                and device not in core.available_devices:
            raise ArtifactError(f"device: {device!r} is not available to OpenVINO {self.ov_version} here (available: "
                                f"{core.available_devices}). Install the device's driver (segedge doctor lists "
                                "the devices), or use --device CPU (device 'CPU' in Python).")
        config: dict = {hints.performance_mode: {"latency": hints.PerformanceMode.LATENCY,
                                                 "throughput": hints.PerformanceMode.THROUGHPUT}[performance_mode]}
        if precision is not None:
            config[hints.inference_precision] = precision
        if threads:
            config[props.inference_num_threads] = threads
        if cache_dir is not None:
            config[props.cache_dir] = str(cache_dir)
        try:
            model = core.read_model(str(self.model_path))
            if batch is not None:
                _reshape_batch(model, batch, self.artifact)
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as exc:  # OpenVINO reports read/compile failures as RuntimeError
            raise ArtifactError(f"artifact {self.artifact}: OpenVINO {self.ov_version} cannot load "
                                f"{self.model_path.name} on {device} ({str(exc).strip().splitlines()[0][:300]}). Is "
                                "the artifact complete and made for this OpenVINO? Re-export it.") from None
        graph_inputs = sorted(i.get_any_name() for i in self.compiled.inputs)
        if graph_inputs != sorted(self.input_names):
            raise ArtifactError(f"artifact {self.artifact}: the model's inputs {graph_inputs} differ from the "
                                f"manifest's {sorted(self.input_names)}. Re-export the artifact.")
        outputs = {o.get_any_name() for o in self.compiled.outputs}
        if not set(self.output_names) <= outputs:
            raise ArtifactError(f"artifact {self.artifact}: the model's outputs {sorted(outputs)} lack the "
                                f"manifest's {self.output_names}. Re-export the artifact.")
        pixel = next(i for i in self.compiled.inputs if i.get_any_name() == "pixel_values")
        shape = pixel.get_partial_shape()
        self.static_batch = shape[0].get_length() if shape[0].is_static else None
        self.device = device
        self.requested = {"precision": precision, "performance_mode": performance_mode, "threads": threads}
        self.effective = {
            "precision": _prop(self.compiled, hints.inference_precision()),
            "performance_mode": _prop(self.compiled, hints.performance_mode()).lower(),
            "threads": _prop(self.compiled, props.inference_num_threads()),
        }
        try:  # OpenVINO's count of requests that keep its streams busy: 1 in latency mode
            self.parallel_calls = max(1, int(self.compiled.get_property(props.optimal_number_of_infer_requests())))
        except (RuntimeError, TypeError, ValueError):  # a device that does not report it
            self.parallel_calls = 1
        if precision is not None and self.effective["precision"] not in ("", precision):
            raise ArtifactError(f"precision: asked for {precision}, but OpenVINO {self.ov_version} runs "
                                f"{self.effective['precision']} for it on {device} (the device lacks {precision} "
                                f"arithmetic). Use precision='{self.effective['precision']}' or 'f32', or None for "
                                "the device's default.")
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._requests.put(self.compiled.create_infer_request())
        # OpenVINO's Python binding sets up its numpy bridge on first use, inside a C++ static guard entered while
        # holding the GIL: two threads making their first infer() at once can deadlock there (seen: both stream
        # workers hung in update_inputs on their first frames, throughput mode). Set it up now, in this one thread.
        _ = ov.Tensor(np.zeros(1, np.float32)).data

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = feeds["pixel_values"].shape[0]
        if self.static_batch is not None and n != self.static_batch:
            if self.static_batch != 1:
                return self._run_padded(feeds, n)
            return self._run_parallel([{k: (v[i:i + 1] if k == "pixel_values" else v) for k, v in feeds.items()}
                                       for i in range(n)])
        return self._run(feeds)

    def _run_padded(self, feeds: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """n images on a model compiled for batches of ``static_batch``: chunks of that size, the last one padded
        (with copies of its last image) and its outputs cut back to n."""
        size, parts = self.static_batch, []
        x = feeds["pixel_values"]
        for start in range(0, n, size):
            chunk = x[start:start + size]
            if len(chunk) < size:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), axis=0)])
            out = self._run({**feeds, "pixel_values": chunk})
            parts.append({k: v[:min(size, n - start)] for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k] for k in self.output_names}

    def _take_request(self):
        try:
            return self._requests.get_nowait()
        except queue.Empty:  # every request is busy in another thread: add one to the pool
            return self.compiled.create_infer_request()

    def _run_parallel(self, parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """One image per infer request, all started at once (OpenVINO spreads them over its streams and threads),
        outputs concatenated in order: a batch on a static-batch-1 model (many cameras, one call)."""
        requests = [self._take_request() for _ in parts]
        try:
            for request, part in zip(requests, parts):
                request.start_async(part)
            for request in requests:
                request.wait()
            outs = {k: np.concatenate([np.array(r.get_tensor(k).data) for r in requests]) for k in self.output_names}
        except RuntimeError as exc:  # OpenVINO reports shape/device failures as RuntimeError
            raise InputError(f"openvino: inference failed on {self.device} ({str(exc).strip().splitlines()[0][:300]})"
                             f" for {len(parts)} images of {parts[0]['pixel_values'].shape}. Check the input size "
                             "against the artifact (segedge inspect).") from None
        finally:
            for request in requests:
                self._requests.put(request)
        return outs

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = self._take_request()
        try:
            result = request.infer(feeds)
            # infer() returns copies (share_outputs=False), so the request can go back to the pool at once
            by_name = {port.get_any_name(): np.asarray(value) for port, value in result.items()}
        except RuntimeError as exc:  # OpenVINO reports shape/device failures as RuntimeError
            raise InputError(f"openvino: inference failed on {self.device} ({str(exc).strip().splitlines()[0][:300]})"
                             f" for inputs {({k: v.shape for k, v in feeds.items()})}. Check the input size "
                             "against the artifact (segedge inspect).") from None
        finally:
            self._requests.put(request)
        return {k: by_name[k] for k in self.output_names}

    def _close_impl(self) -> None:
        while not self._requests.empty():
            self._requests.get_nowait()
        del self.compiled

    def describe(self) -> str:
        """e.g. "openvino 2026.4.1 CPU (precision bf16 (default), latency, 2 threads)"."""
        eff = self.effective
        prec = eff["precision"] or "n/a"
        if self.requested["precision"] is None:
            prec += " (default)"
        threads = f", {eff['threads']} threads" if eff["threads"] else ""
        batch = f", static batch {self.static_batch}" if self.static_batch else ""
        streams = f", {self.parallel_calls} streams" if self.parallel_calls > 1 else ""
        return (f"openvino {self.ov_version} {self.device} (precision {prec}, {eff['performance_mode'] or 'n/a'}"
                f"{streams}{threads}{batch})")


def _reshape_batch(model, batch: int, artifact: Path) -> None:
    """``model``'s pixel_values made (batch, 3, h, w) in place; only static-batch-1 IRs with a static size."""
    import openvino as ov

    shape = model.input("pixel_values").get_partial_shape()
    if not (shape.is_static and shape[0].get_length() == 1):
        raise InputError(f"batch: expected an IR with a static (1, 3, h, w) input (an INT8 or --size IR), got "
                         f"{shape} in {artifact}; a dynamic-batch model already takes any batch. Drop batch=")
    try:
        model.reshape({"pixel_values": ov.PartialShape([batch, *[d.get_length() for d in list(shape)[1:]]])})
    except RuntimeError as exc:
        raise ArtifactError(f"artifact {artifact}: OpenVINO cannot reshape it to a batch of {batch} "
                            f"({str(exc).strip().splitlines()[0][:300]}). Drop batch=") from None
