"""TensorRT backend: runs ``model.engine`` artifacts made by ``segedge build`` (``converters.tensorrt_build``).

The engine file is a plain serialized TensorRT engine (``trtexec --loadEngine`` and Polygraphy read it); everything
else lives in ``model.json``: labels, preprocessing, and under ``extra["tensorrt"]`` the fingerprint (TensorRT
version, GPU, compute capability, DLA core, precision), the optimization profile and the engine's own I/O.

Memory: one CUDA stream; page-locked host buffers and device buffers per tensor, allocated on first use and grown
only when a larger shape arrives; copies and execution are asynchronous with one synchronize per call. Optional
CUDA-graph capture of the enqueue (re-captured when a shape changes). The CUDA calls go through the driver API
(ctypes, ``runtimes.cuda_ops.DriverCuda``: nothing to install) by default, or through pycuda (``cuda="pycuda"``).

Every supported TensorRT (>= 8.6, ``runtimes.tensorrt_support``) runs by tensor name (``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``); the binding-index API of 8.4 is not used.
TensorRT (and pycuda, when asked for) are imported when a runtime opens, never at import time; the logger subclass is
built in a factory for the same reason (``runtimes.tensorrt_device``, with ``require_tensorrt`` and
``tensorrt_available``, re-exported here).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtimes.base import Runtime
from runtimes.cuda_ops import CUDA_BACKENDS, DriverCuda, PycudaCuda
from runtimes.tensorrt_device import (JETPACK_ROUTE, TENSORRT_MIN, CudaDriver, CudaGraph, EngineFingerprint, ErrorLog,
                                      HostInfo, check_compatibility, device_model, host_platform, require_pycuda,
                                      require_tensorrt, tensorrt_available, tensorrt_logger)
from sdk.core.errors import ArtifactError, InputError
from sdk.core.manifest import Manifest, resolve_artifact

log = logging.getLogger("segedge")

ENGINE_FILE = "model.engine"
__all__ = ["ENGINE_FILE", "JETPACK_ROUTE", "TENSORRT_MIN", "ErrorLog", "ShapeRange", "TensorRTRuntime",
           "engine_manifest_info", "require_pycuda", "require_tensorrt", "tensorrt_available", "tensorrt_logger"]
@dataclass(frozen=True, kw_only=True)
class ShapeRange:
    """One optimization-profile entry. Execution tensors: min/opt/max are shapes. Shape tensors (``values=True``,
    e.g. ``output_size``): min/opt/max are the tensor's values, here the (H, W) range of the mask."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]
    values: bool = False

    def __post_init__(self) -> None:
        lo, mid, hi = (tuple(int(v) for v in x) for x in (self.min, self.opt, self.max))
        if not (len(lo) == len(mid) == len(hi)) or not all(a <= b <= c for a, b, c in zip(lo, mid, hi)):
            raise InputError(f"profile {self.name}: expected min <= opt <= max elementwise with equal lengths, got "
                             f"min={lo} opt={mid} max={hi}")
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "opt", mid)
        object.__setattr__(self, "max", hi)

    def contains(self, value: tuple[int, ...]) -> bool:
        return len(value) == len(self.min) and all(a <= v <= b for a, v, b in zip(self.min, value, self.max))

    def describe(self) -> str:
        return "[" + ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in zip(self.min, self.max)) + "]"

    def to_dict(self) -> dict:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max),
                "values": self.values}

    @classmethod
    def from_dict(cls, d: dict) -> "ShapeRange":
        return cls(name=str(d["name"]), min=tuple(d["min"]), opt=tuple(d["opt"]), max=tuple(d["max"]),
                   values=bool(d.get("values", False)))


@dataclass(frozen=True)
class _Tensor:
    name: str
    index: int
    is_input: bool
    dtype: np.dtype
    on_host: bool  # a shape-tensor input whose values TensorRT reads from host memory


class _Buffer:
    """A page-locked host array and a device allocation of ``count`` elements (``cuda``: a ``runtimes.cuda_ops``
    backend); grown, never shrunk."""

    def __init__(self, cuda: Any, dtype: np.dtype, count: int) -> None:
        self.count = count
        self._cuda = cuda
        self.host, self._host_handle = cuda.host_empty(count, dtype)
        self.device: int = cuda.device_alloc(self.host.nbytes)

    def free(self) -> None:
        self._cuda.free_device(self.device)
        self._cuda.free_host(self._host_handle)


def engine_manifest_info(manifest: Manifest) -> tuple[EngineFingerprint, dict[str, ShapeRange], str]:
    """(fingerprint, profile by tensor name, rebuild command) from a TensorRT artifact's manifest."""
    info = manifest.extra.get("tensorrt")
    if not isinstance(info, dict) or "fingerprint" not in info:
        raise ArtifactError("manifest extra.tensorrt: expected the engine fingerprint written by segedge build, got "
                            "none. Rebuild the engine with segedge build ONNX_ARTIFACT --output FOLDER.")
    try:
        profile = {r.name: r for r in (ShapeRange.from_dict(d) for d in info.get("profile", []))}
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"manifest extra.tensorrt.profile: expected a list of shape ranges, got "
                            f"{info.get('profile')!r} ({exc}). Rebuild with segedge build.") from None
    command = str(info.get("build", {}).get("command") or "segedge build ONNX_ARTIFACT --output FOLDER")
    return EngineFingerprint.from_dict(info["fingerprint"]), profile, command


class TensorRTRuntime(Runtime):
    """Runs ``model.engine`` artifacts with TensorRT.

    device: CUDA device index. dla_core: run a DLA engine on this core (default: the core it was built for).
    cuda_graph: replay the enqueue as a CUDA graph, captured per input shape; worth it for fixed-size streams
    (GPU-only engines). cuda: "driver" (default: the CUDA driver API through ctypes, nothing to install) or "pycuda"
    (``runtimes.cuda_ops``).
    Opening checks the engine's fingerprint against this host first: a TensorRT or GPU mismatch is one line that
    says how to rebuild.
    """

    name = "tensorrt"
    formats = ("tensorrt",)

    def __init__(self, artifact: str | Path, manifest: Manifest | None = None, *, device: int = 0,
                 dla_core: int | None = None, cuda_graph: bool = False, cuda: str = "driver") -> None:
        super().__init__(resolve_artifact(artifact), manifest)
        self.fingerprint, self.profile, self.rebuild_command = engine_manifest_info(self.manifest)
        if cuda not in CUDA_BACKENDS:
            raise InputError(f"cuda: expected one of {CUDA_BACKENDS}, got {cuda!r}")
        version = require_tensorrt()
        pycuda = require_pycuda() if cuda == "pycuda" else None
        import tensorrt as trt

        self._driver = CudaDriver()
        gpu_name, capability = self._driver.device(device)
        self._logger = tensorrt_logger()
        self._trt_runtime = trt.Runtime(self._logger)
        host = HostInfo(tensorrt_version=version, gpu_name=gpu_name, compute_capability=capability,
                        dla_cores=int(self._trt_runtime.num_DLA_cores), platform=host_platform(),
                        sm_count=self._driver.sm_count(device), device_model=device_model())
        for warning in check_compatibility(self.fingerprint, host, rebuild_command=self.rebuild_command,
                                           dla_core=dla_core):
            log.warning(warning)
        self.dla_core = self.fingerprint.dla_core if dla_core is None else dla_core
        if cuda_graph and self.dla_core is not None:
            raise ArtifactError("cuda_graph: expected a GPU-only engine, got a DLA engine (DLA work cannot be captured "
                                "into a CUDA graph). Open it with cuda_graph=False.")
        self.host = host
        self.cuda_graph = cuda_graph
        self.cuda_backend = cuda
        self._buffers: dict[str, _Buffer] = {}
        self._host_values: dict[str, np.ndarray] = {}
        self._generation = 0
        self._mark = 0  # the logger's error count when the current call began
        self._graph: CudaGraph | None = None
        self._graph_key: tuple | None = None
        # the primary context: the one TensorRT's CUDA runtime uses
        self._cuda: Any = DriverCuda(self._driver, device) if pycuda is None else PycudaCuda(pycuda, self._driver,
                                                                                             device)
        self._cuda.push()
        try:
            if self.dla_core is not None:
                self._trt_runtime.DLA_core = self.dla_core
            mark = self._logger.mark()
            engine = self._trt_runtime.deserialize_cuda_engine(self.model_path.read_bytes())
            if engine is None:
                raise ArtifactError(f"artifact {self.artifact}: TensorRT cannot deserialize {self.model_path.name} "
                                    f"({self._logger.last_error(mark)}). Is the file complete? Rebuild it: "
                                    f"{self.rebuild_command}")
            self._engine = engine
            self._context = engine.create_execution_context()
            self._stream = self._cuda.stream()
            self._tensors = self._discover(trt)
        except BaseException:
            self._release()
            raise
        self._cuda.pop()

    def _discover(self, trt: Any) -> list[_Tensor]:
        """The engine's I/O tensors; checks that they match the manifest."""
        tensors = []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            on_host = is_input and self._engine.get_tensor_location(name) == trt.TensorLocation.HOST
            tensors.append(_Tensor(name, i, is_input, np.dtype(trt.nptype(self._engine.get_tensor_dtype(name))),
                                   on_host))
        inputs = sorted(t.name for t in tensors if t.is_input)
        outputs = {t.name for t in tensors if not t.is_input}
        if inputs != sorted(self.input_names) or not set(self.output_names) <= outputs:
            raise ArtifactError(f"artifact {self.artifact}: the engine's inputs {inputs} / outputs {sorted(outputs)} "
                                f"differ from the manifest's {sorted(self.input_names)} / {self.output_names}. "
                                f"Rebuild: {self.rebuild_command}")
        return tensors

    def _check_profile(self, feeds: dict[str, np.ndarray]) -> None:
        for name, arr in feeds.items():
            rng = self.profile.get(name)
            if rng is None:
                continue
            got = tuple(int(v) for v in arr.reshape(-1)) if rng.values else tuple(arr.shape)
            if not rng.contains(got):
                what = "values" if rng.values else "shape"
                hint = ("--min-output-hw/--max-output-hw" if rng.values else "--min-hw/--max-hw/--max-batch")
                raise InputError(f"{name}: expected {what} within the engine's profile {rng.describe()}, got "
                                 f"{list(got)}. Rebuild with a wider {hint}: {self.rebuild_command}")

    def _engine_array(self, t: _Tensor, arr: np.ndarray) -> np.ndarray:
        """The feed in the engine's dtype: int64 output_size -> the int32 the engine was built with (range-checked)."""
        if arr.dtype == t.dtype:
            return np.ascontiguousarray(arr)
        if arr.dtype.kind in "iu" and t.dtype.kind in "iu":
            info = np.iinfo(t.dtype)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise InputError(f"{t.name}: expected values that fit {t.dtype}, got {arr.min()}..{arr.max()}")
            return np.ascontiguousarray(arr.astype(t.dtype))
        raise ArtifactError(f"{t.name}: the engine takes {t.dtype}, the manifest says {arr.dtype}. Rebuild: "
                            f"{self.rebuild_command}")

    def _buffer(self, t: _Tensor, count: int) -> _Buffer:
        buf = self._buffers.get(t.name)
        if buf is None or buf.count < count:
            if buf is not None:
                buf.free()
            buf = self._buffers[t.name] = _Buffer(self._cuda, t.dtype, count)
            self._generation += 1  # addresses changed: a captured graph is stale
        return buf

    def _set_inputs(self, feeds: dict[str, np.ndarray]) -> None:
        ctx: Any = self._context
        for t in self._tensors:
            if not t.is_input:
                continue
            arr = feeds[t.name]
            if t.on_host:
                values = self._host_values.get(t.name)
                if values is None or values.shape != arr.shape:
                    values = self._host_values[t.name] = np.empty(arr.shape, t.dtype)
                values[...] = arr
                ctx.set_tensor_address(t.name, values.ctypes.data)
                continue
            if not ctx.set_input_shape(t.name, tuple(arr.shape)):
                raise InputError(f"{t.name}: TensorRT rejected shape {arr.shape} "
                                 f"({self._logger.last_error(self._mark)})")
            buf = self._buffer(t, arr.size)
            np.copyto(buf.host[:arr.size], arr.reshape(-1))
            self._cuda.to_device(buf.device, buf.host[:arr.size], self._stream)
            ctx.set_tensor_address(t.name, buf.device)

    def _output_shape(self, t: _Tensor) -> tuple[int, ...]:
        dims = self._context.get_tensor_shape(t.name)
        shape = tuple(int(dims[i]) for i in range(len(dims)))
        if any(d < 0 for d in shape):
            raise ArtifactError(f"{t.name}: TensorRT could not infer the output shape ({shape}; "
                                f"{self._logger.last_error(self._mark)})")
        return shape

    def _enqueue(self) -> bool:
        return bool(self._context.execute_async_v3(self._stream))

    def _execute(self, key: tuple) -> None:
        if not self.cuda_graph:
            if not self._enqueue():
                raise ArtifactError(f"TensorRT: execution failed ({self._logger.last_error(self._mark)})")
            return
        if self._graph is None or self._graph_key != key:
            if self._graph is not None:
                self._graph.close()
                self._graph = None
            # one plain enqueue first: it applies the new shapes (TensorRT's deferred updates) outside the capture
            if not self._enqueue():
                raise ArtifactError(f"TensorRT: execution failed ({self._logger.last_error(self._mark)})")
            self._graph = self._driver.capture_graph(self._stream, self._enqueue)
            self._graph_key = key
        self._graph.launch()

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_profile(feeds)
        by_name = {t.name: t for t in self._tensors}
        engine_feeds = {name: self._engine_array(by_name[name], arr) for name, arr in feeds.items()}
        self._cuda.push()
        self._mark = self._logger.mark()
        try:
            self._set_inputs(engine_feeds)
            outputs = []
            for t in self._tensors:
                if t.is_input:
                    continue
                shape = self._output_shape(t)
                buf = self._buffer(t, math.prod(shape))
                self._context.set_tensor_address(t.name, buf.device)
                outputs.append((t, shape, buf))
            key = (tuple((n, a.shape, tuple(a.reshape(-1).tolist()) if by_name[n].on_host else ())
                         for n, a in sorted(engine_feeds.items())), self._generation)
            self._execute(key)
            for t, shape, buf in outputs:
                self._cuda.to_host(buf.host[:math.prod(shape)], buf.device, self._stream)
            self._cuda.synchronize(self._stream)
        finally:
            self._cuda.pop()
        wanted = {info.name: np.dtype(info.dtype) for info in self.manifest.outputs}
        return {t.name: buf.host[:math.prod(shape)].reshape(shape).astype(wanted[t.name], copy=True)
                for t, shape, buf in outputs if t.name in wanted}

    def _close_impl(self) -> None:
        self._cuda.push()
        self._release()

    def _release(self) -> None:
        """With this runtime's context pushed: free the CUDA graph, the buffers, the execution context, the engine
        and the stream; then pop the context and drop this runtime's reference to it (``runtimes.cuda_ops``: from
        any thread), leaving the calling thread's context stack as it was before the push."""
        try:
            if self._graph is not None:
                self._graph.close()
                self._graph = None
            stream = getattr(self, "_stream", None)
            if stream is not None:
                self._cuda.synchronize(stream)
            for buf in self._buffers.values():
                buf.free()
            self._buffers = {}
            for name in ("_context", "_engine"):
                if hasattr(self, name):
                    delattr(self, name)
            if stream is not None:
                del self._stream
                self._cuda.destroy_stream(stream)
        finally:
            self._cuda.pop()
            self._cuda.release()

    def describe(self) -> str:
        board = self.host.device_model or self.host.gpu_name
        where = f"DLA core {self.dla_core} + GPU of {board}" if self.dla_core is not None else board
        return (f"TensorRT {self.host.tensorrt_version} on {where} ({self.host.sm}), {self.fingerprint.precision}"
                f"{', CUDA graph' if self.cuda_graph else ''}{', pycuda' if self.cuda_backend == 'pycuda' else ''}")
