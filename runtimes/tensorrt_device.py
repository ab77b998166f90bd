"""What a TensorRT engine was built for, what this host is, and the CUDA driver calls both need.

A serialized engine runs only with the TensorRT version that built it, on the same CPU architecture, and on GPUs of
the same compute capability (sm_XY); a DLA engine also needs that DLA core. ``EngineFingerprint`` is recorded in
the artifact's ``model.json`` (``extra["tensorrt"]["fingerprint"]``) at build time and ``check_compatibility``
compares it with ``HostInfo`` before deserializing, so a mismatch is one clear line that says how to rebuild
instead of a TensorRT "serialization assertion" deep in the log.

The CUDA device name is "Orin" on every Orin module (AGX, NX, Nano), so the fingerprint also keeps the GPU's SM
count and the board from ``/proc/device-tree/model`` ("NVIDIA Jetson AGX Orin Developer Kit"): an engine built on
another module of the same family runs, with a warning that its kernels were timed on other hardware.

The CUDA driver (``libcuda.so.1``) is reached with ctypes: device name, compute capability and SM count for the
fingerprint (the builder needs no pycuda), stream capture into CUDA graphs (pycuda has no stable graph API across
the versions JetPack ships) and the context-stack check at close. Also here: finding TensorRT and pycuda
(``require_tensorrt``, ``require_pycuda``, ``tensorrt_available``) and the process-wide TensorRT logger.
Importing this module loads nothing.
"""
from __future__ import annotations

import ctypes
import logging
import platform
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from runtimes.tensorrt_support import INSTALL_TENSORRT, TENSORRT_MIN, unsupported_reason, version_tuple
from sdk.core.errors import ArtifactError, MissingDependencyError

log = logging.getLogger("segedge")

# CUdevice_attribute values from cuda.h (stable since CUDA 2.x)
_SM_COUNT, _CC_MAJOR, _CC_MINOR = 16, 75, 76  # MULTIPROCESSOR_COUNT, COMPUTE_CAPABILITY_MAJOR/MINOR
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
_CAPTURE_MODE_GLOBAL = 0  # CU_STREAM_CAPTURE_MODE_GLOBAL, what the TensorRT docs use for enqueueV3 capture


@dataclass(frozen=True, kw_only=True)
class EngineFingerprint:
    """Where an engine can run. ``compute_capability`` as "8.7"; ``dla_core`` None for GPU-only engines;
    ``sm_count`` 0 and ``device_model`` "" where unknown (engines built before they were recorded; non-Jetson
    hosts have no device-tree model)."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    dla_core: int | None
    precision: str
    strongly_typed: bool = False
    platform: str = ""
    sm_count: int = 0
    device_model: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EngineFingerprint":
        try:
            fp = cls(tensorrt_version=str(d["tensorrt_version"]), gpu_name=str(d["gpu_name"]),
                     compute_capability=str(d["compute_capability"]),
                     dla_core=None if d.get("dla_core") is None else int(d["dla_core"]),
                     precision=str(d["precision"]), strongly_typed=bool(d.get("strongly_typed", False)),
                     platform=str(d.get("platform", "")), sm_count=int(d.get("sm_count", 0)),
                     device_model=str(d.get("device_model", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"engine fingerprint: expected tensorrt_version, gpu_name, compute_capability, "
                                f"dla_core and precision in model.json, got {d!r} ({exc}). Rebuild with "
                                "segedge build.") from None
        return fp

    @property
    def sm(self) -> str:
        return sm_name(self.compute_capability)


@dataclass(frozen=True, kw_only=True)
class HostInfo:
    """This machine as TensorRT sees it."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    dla_cores: int = 0
    platform: str = ""
    sm_count: int = 0
    device_model: str = ""

    @property
    def sm(self) -> str:
        return sm_name(self.compute_capability)


def sm_name(compute_capability: str) -> str:
    """"8.7" -> "sm_87"."""
    return "sm_" + compute_capability.replace(".", "")


def _short_versions(a: str, b: str) -> tuple[str, str]:
    """The shortest spellings that still tell two TensorRT versions apart: "10.3" vs "8.6", "8.6.1" vs "8.6.2";
    "10.3" for both when they agree (the mismatch is then the GPU)."""
    for n in (2, 3):
        sa, sb = ".".join(a.split(".")[:n]), ".".join(b.split(".")[:n])
        if sa != sb:
            return sa, sb
    return ".".join(a.split(".")[:2]), ".".join(b.split(".")[:2])


def _machine(platform_text: str) -> str:
    """"aarch64 L4T R36.4.0" -> "aarch64"; "" when unknown."""
    return platform_text.split(" ", 1)[0] if platform_text else ""


def _hardware(name: str, sm_count: int, model: str) -> str:
    """"'NVIDIA Jetson AGX Orin Developer Kit' (Orin, 16 SMs)" or "'Orin'" when nothing else is known."""
    detail = ", ".join(x for x in (name if model else "", f"{sm_count} SMs" if sm_count else "") if x)
    return f"{(model or name)!r}" + (f" ({detail})" if detail else "")


def check_compatibility(built: EngineFingerprint, host: HostInfo, *, rebuild_command: str,
                        dla_core: int | None = None) -> list[str]:
    """Raise ArtifactError if the engine cannot run here; return warnings for what runs but is not ideal.

    TensorRT versions must agree on major.minor.patch (serialized engines are tied to the exact release unless
    built version-compatible, which segedge does not do), the CPU architecture (x86_64 vs aarch64: different
    TensorRT builds) and the compute capability must be equal. Same sm_XY but another GPU name, SM count or board
    (AGX vs NX vs Nano Orin): a warning. ``dla_core``: the core the caller wants (None: the one it was built for).
    """
    built_machine, host_machine = _machine(built.platform), _machine(host.platform)
    if built_machine and host_machine and built_machine != host_machine:
        raise ArtifactError(f"engine was built on {built_machine} ({built.platform}); this host is {host_machine} "
                            f"({host.platform}). Rebuild it on the target: {rebuild_command}")
    same_trt = version_tuple(built.tensorrt_version) == version_tuple(host.tensorrt_version)
    if not same_trt or built.compute_capability != host.compute_capability:
        b, h = _short_versions(built.tensorrt_version, host.tensorrt_version)
        raise ArtifactError(f"engine was built with TensorRT {b} for {built.sm}; this host has TensorRT {h} on "
                            f"{host.sm}. Rebuild it on the target: {rebuild_command}")
    core = built.dla_core if dla_core is None else dla_core
    if core is not None and not 0 <= core < host.dla_cores:
        if host.dla_cores:
            raise ArtifactError(f"engine runs on DLA core {core}; this host has DLA cores 0..{host.dla_cores - 1}. "
                                f"Open it with dla_core=0, or rebuild it: {rebuild_command}")
        raise ArtifactError(f"engine runs on DLA core {core}; this host has no DLA. Rebuild it for the GPU only "
                            f"(drop --dla): {rebuild_command}")
    warnings = []
    other_sms = bool(built.sm_count and host.sm_count and built.sm_count != host.sm_count)
    other_board = bool(built.device_model and host.device_model and built.device_model != host.device_model)
    if built.gpu_name != host.gpu_name or other_sms or other_board:
        warnings.append(f"engine was built on {_hardware(built.gpu_name, built.sm_count, built.device_model)}, "
                        f"this host is {_hardware(host.gpu_name, host.sm_count, host.device_model)} (both "
                        f"{host.sm}): it runs, but its kernels were timed on the other GPU; rebuild here for "
                        f"the best speed: {rebuild_command}")
    return warnings


def device_model() -> str:
    """The board, e.g. "NVIDIA Jetson AGX Orin Developer Kit", from /proc/device-tree/model; "" where absent."""
    try:
        return DEVICE_TREE_MODEL.read_bytes().decode(errors="replace").replace("\x00", "").strip()
    except OSError:
        return ""


def host_platform() -> str:
    """"aarch64 L4T R36.4.0" on a Jetson (from /etc/nv_tegra_release), else the machine and OS."""
    release = Path("/etc/nv_tegra_release")
    text = release.read_text(errors="replace") if release.is_file() else ""
    if text.startswith("# R"):
        # "# R36 (release), REVISION: 4.0, GCID: ..." -> "R36.4.0"
        major = text[2:].split(" ", 1)[0]
        revision = text.split("REVISION:", 1)[1].split(",", 1)[0].strip() if "REVISION:" in text else ""
        return f"{platform.machine()} L4T {major}.{revision}" if revision else f"{platform.machine()} L4T {major}"
    return f"{platform.machine()} {platform.system()}"


class CudaDriver:
    """The few CUDA driver API calls we need, through ctypes (no CUDA toolkit or pycuda required)."""

    def __init__(self) -> None:
        try:
            self._lib: Any = ctypes.CDLL("libcuda.so.1")
        except OSError as exc:
            raise MissingDependencyError(f"CUDA driver: libcuda.so.1 cannot be loaded ({exc}); this host has no "
                                         "NVIDIA driver. TensorRT engines need an NVIDIA GPU (a Jetson, or a "
                                         "CUDA host with the driver installed).") from None
        self._check(self._lib.cuInit(0), "cuInit")

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            name = ctypes.c_char_p()
            self._lib.cuGetErrorName(status, ctypes.byref(name))
            label = name.value.decode() if name.value else f"error {status}"
            raise ArtifactError(f"CUDA {what}: expected CUDA_SUCCESS, got {label}. Check the GPU with nvidia-smi "
                                "(tegrastats on a Jetson) and that no other process holds it.")

    def device(self, index: int = 0) -> tuple[str, str]:
        """(name, compute capability "X.Y") of GPU ``index``."""
        count = ctypes.c_int()
        self._check(self._lib.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
        if not 0 <= index < count.value:
            raise ArtifactError(f"device: expected a GPU index in 0..{count.value - 1}, got {index}")
        dev = ctypes.c_int()
        self._check(self._lib.cuDeviceGet(ctypes.byref(dev), index), "cuDeviceGet")
        name = ctypes.create_string_buffer(256)
        self._check(self._lib.cuDeviceGetName(name, 256, dev), "cuDeviceGetName")
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self._lib.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, dev), "cuDeviceGetAttribute")
        self._check(self._lib.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, dev), "cuDeviceGetAttribute")
        return name.value.decode(errors="replace"), f"{major.value}.{minor.value}"

    def sm_count(self, index: int = 0) -> int:
        """Streaming multiprocessors of GPU ``index`` (AGX Orin 16, Orin NX 16GB and Orin Nano 8GB 8)."""
        dev = ctypes.c_int()
        self._check(self._lib.cuDeviceGet(ctypes.byref(dev), index), "cuDeviceGet")
        count = ctypes.c_int()
        self._check(self._lib.cuDeviceGetAttribute(ctypes.byref(count), _SM_COUNT, dev), "cuDeviceGetAttribute")
        return int(count.value)

    def current_context(self) -> int:
        """This thread's current CUDA context handle (0: none)."""
        current = ctypes.c_void_p()
        self._check(self._lib.cuCtxGetCurrent(ctypes.byref(current)), "cuCtxGetCurrent")
        return int(current.value or 0)

    def pop_if_current(self, context_handle: int) -> bool:
        """Pop ``context_handle`` off this thread's CUDA context stack if it is on top; True if it was (the runtime
        calls it after pycuda's detach of its primary context, which leaves that context pushed)."""
        if not context_handle or self.current_context() != context_handle:
            return False
        popped = ctypes.c_void_p()
        self._check(self._lib.cuCtxPopCurrent_v2(ctypes.byref(popped)), "cuCtxPopCurrent")
        return True

    def release_primary_context(self, index: int = 0) -> None:
        """Drop one reference to GPU ``index``'s primary context (``cuDevicePrimaryCtxRelease``, from any thread)."""
        dev = ctypes.c_int()
        self._check(self._lib.cuDeviceGet(ctypes.byref(dev), index), "cuDeviceGet")
        release = getattr(self._lib, "cuDevicePrimaryCtxRelease_v2", None) or self._lib.cuDevicePrimaryCtxRelease
        self._check(release(dev), "cuDevicePrimaryCtxRelease")

    def capture_graph(self, stream_handle: int, enqueue: Callable[[], bool]) -> "CudaGraph":
        """Capture what ``enqueue`` puts on the stream into an instantiated CUDA graph (CUDA >= 11.4)."""
        stream = ctypes.c_void_p(stream_handle)
        graph = ctypes.c_void_p()
        self._check(self._lib.cuStreamBeginCapture_v2(stream, _CAPTURE_MODE_GLOBAL), "cuStreamBeginCapture")
        ok = False
        try:
            ok = bool(enqueue())
        finally:
            status = self._lib.cuStreamEndCapture(stream, ctypes.byref(graph))
        if not ok or status != 0 or not graph.value:
            if graph.value:
                self._lib.cuGraphDestroy(graph)
            raise ArtifactError("cuda_graph: expected TensorRT's enqueue to be capturable into a CUDA graph, but "
                                "the capture failed (DLA layers, data-dependent shapes or an old driver). Open the "
                                "runtime with cuda_graph=False.")
        exec_ = ctypes.c_void_p()
        try:
            self._check(self._lib.cuGraphInstantiateWithFlags(ctypes.byref(exec_), graph, ctypes.c_ulonglong(0)),
                        "cuGraphInstantiateWithFlags")
        finally:
            self._lib.cuGraphDestroy(graph)
        return CudaGraph(self, exec_, stream)


class CudaGraph:
    """An instantiated CUDA graph bound to one stream; ``launch()`` replays it, ``close()`` frees it."""

    def __init__(self, driver: CudaDriver, exec_: ctypes.c_void_p, stream: ctypes.c_void_p) -> None:
        self._driver, self._exec, self._stream = driver, exec_, stream

    def launch(self) -> None:
        self._driver._check(self._driver._lib.cuGraphLaunch(self._exec, self._stream), "cuGraphLaunch")

    def close(self) -> None:
        if self._exec.value:
            self._driver._lib.cuGraphExecDestroy(self._exec)
            self._exec = ctypes.c_void_p()


# the supported TensorRT lines and the one install message live in runtimes.tensorrt_support (the support table)
JETPACK_ROUTE = INSTALL_TENSORRT


def require_tensorrt() -> str:
    """Check that the real TensorRT Python package is importable and a supported version (``runtimes.
    tensorrt_support``: >= 8.6); return its version.

    ``tensorrt-stubs`` installs an empty ``tensorrt`` namespace package, so a successful import is not enough.
    """
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise MissingDependencyError(f"tensorrt is not installed ({exc}). {JETPACK_ROUTE}") from exc
    if not hasattr(trt, "Builder"):
        raise MissingDependencyError(
            "tensorrt is not installed (only type stubs found: 'import tensorrt' resolves to the tensorrt-stubs "
            f"package). {JETPACK_ROUTE}")
    version = str(trt.__version__)
    reason = unsupported_reason(version)
    if reason is not None:
        raise MissingDependencyError(reason)
    return version


def require_pycuda() -> Any:
    """``pycuda.driver`` for ``TensorRTRuntime(cuda="pycuda")``, or one clear error: pycuda is not part of JetPack and
    compiles against the device's CUDA (the default runtime path calls the CUDA driver and needs no pycuda)."""
    import importlib

    try:
        cuda = importlib.import_module("pycuda.driver")  # no stubs: Any, like every pycuda object here
    except ImportError as exc:
        raise MissingDependencyError(
            f"pycuda is not installed ({exc}); it is needed only for cuda='pycuda' (the default, cuda='driver', calls "
            "the CUDA driver directly). On a Jetson: PATH=/usr/local/cuda/bin:$PATH pip install 'pycuda>=2022.2' (it "
            "compiles against JetPack's CUDA). See docs/JETSON.md.") from exc
    return cuda


def tensorrt_available() -> tuple[bool, str]:
    """Whether TensorRT engines can be built and run here: (True, "TensorRT 10.3.0.30 on Orin (sm_87), CUDA through
    the driver"), or (False, the reason: no real or supported TensorRT, no CUDA driver or GPU). pycuda is not needed
    (the runtime calls the CUDA driver; ``cuda="pycuda"`` is optional). Creates no CUDA context."""
    from importlib.util import find_spec

    from sdk.core.errors import SegEdgeError

    try:
        version = require_tensorrt()
    except MissingDependencyError as exc:
        return False, str(exc)
    try:
        name, capability = CudaDriver().device(0)
    except SegEdgeError as exc:
        return False, str(exc)
    extra = ", pycuda also installed" if find_spec("pycuda") is not None else ""
    return True, f"TensorRT {version} on {name} (sm_{capability.replace('.', '')}), CUDA through the driver{extra}"


class ErrorLog:
    """The last few TensorRT errors, numbered, so that a message quotes an error of the call that failed and never
    a stale one: take ``mark()`` before a TensorRT call, ask ``last_error(since=mark)`` after it."""

    def __init__(self, keep: int = 32) -> None:
        self._errors: deque[tuple[int, str]] = deque(maxlen=keep)
        self._count = 0

    def add(self, msg: str) -> None:
        self._count += 1
        self._errors.append((self._count, msg))

    def mark(self) -> int:
        return self._count

    def last_error(self, since: int = 0) -> str:
        if self._errors and self._errors[-1][0] > since:
            return self._errors[-1][1].splitlines()[0][:300] or "an empty error message"
        return "no error logged"


_LOGGER: Any = None


def tensorrt_logger() -> Any:
    """The process-wide ``trt.ILogger``: TensorRT's messages go to the "segedge" logger (INFO and VERBOSE at DEBUG);
    errors go to an ``ErrorLog`` (``mark()`` / ``last_error(since)``) for our own messages. The subclass is defined
    here, on first use."""
    global _LOGGER
    if _LOGGER is None:
        import tensorrt as trt

        levels = {trt.ILogger.INTERNAL_ERROR: logging.ERROR, trt.ILogger.ERROR: logging.ERROR,
                  trt.ILogger.WARNING: logging.WARNING, trt.ILogger.INFO: logging.DEBUG,
                  trt.ILogger.VERBOSE: logging.DEBUG}

        class _Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors = ErrorLog()

            def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
                level = levels.get(severity, logging.INFO)
                if level >= logging.ERROR:
                    self.errors.add(msg)
                log.log(level, "TensorRT: %s", msg)

            def mark(self) -> int:
                return self.errors.mark()

            def last_error(self, since: int = 0) -> str:
                return self.errors.last_error(since)

        _LOGGER = _Logger()
    return _LOGGER
