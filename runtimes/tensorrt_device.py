"""What a TensorRT engine was built for, what this host is, and the CUDA driver calls both need.

A serialized engine runs only with the TensorRT version that built it and on GPUs of the same compute capability
(sm_XY); a DLA engine also needs that DLA core. ``EngineFingerprint`` is recorded in the artifact's ``model.json``
(``extra["tensorrt"]["fingerprint"]``) at build time and ``check_compatibility`` compares it with ``HostInfo``
before deserializing, so a mismatch is one clear line that says how to rebuild instead of a TensorRT
"serialization assertion" deep in the log.

The CUDA driver (``libcuda.so.1``) is reached with ctypes: device name and compute capability for the fingerprint
(the builder needs no pycuda) and stream capture into CUDA graphs (pycuda has no stable graph API across the
versions JetPack ships). Importing this module loads nothing.
"""
from __future__ import annotations

import ctypes
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from sdk.core.errors import ArtifactError, MissingDependencyError

# CUdevice_attribute values from cuda.h (stable since CUDA 2.x)
_CC_MAJOR, _CC_MINOR = 75, 76
_CAPTURE_MODE_GLOBAL = 0  # CU_STREAM_CAPTURE_MODE_GLOBAL, what the TensorRT docs use for enqueueV3 capture


@dataclass(frozen=True, kw_only=True)
class EngineFingerprint:
    """Where an engine can run. ``compute_capability`` as "8.7"; ``dla_core`` None for GPU-only engines."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    dla_core: int | None
    precision: str
    strongly_typed: bool = False
    platform: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EngineFingerprint":
        try:
            fp = cls(tensorrt_version=str(d["tensorrt_version"]), gpu_name=str(d["gpu_name"]),
                     compute_capability=str(d["compute_capability"]),
                     dla_core=None if d.get("dla_core") is None else int(d["dla_core"]),
                     precision=str(d["precision"]), strongly_typed=bool(d.get("strongly_typed", False)),
                     platform=str(d.get("platform", "")))
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

    @property
    def sm(self) -> str:
        return sm_name(self.compute_capability)


def sm_name(compute_capability: str) -> str:
    """"8.7" -> "sm_87"."""
    return "sm_" + compute_capability.replace(".", "")


def version_tuple(version: str, parts: int = 3) -> tuple[int, ...]:
    """"10.3.0.30" -> (10, 3, 0); missing or non-numeric parts count as 0."""
    out = []
    for piece in version.split(".")[:parts]:
        digits = re.match(r"\d+", piece.strip())
        out.append(int(digits.group()) if digits else 0)
    return tuple(out + [0] * (parts - len(out)))


def _short_versions(a: str, b: str) -> tuple[str, str]:
    """The shortest spellings that still tell two TensorRT versions apart: "10.3" vs "8.6", "8.6.1" vs "8.6.2";
    "10.3" for both when they agree (the mismatch is then the GPU)."""
    for n in (2, 3):
        sa, sb = ".".join(a.split(".")[:n]), ".".join(b.split(".")[:n])
        if sa != sb:
            return sa, sb
    return ".".join(a.split(".")[:2]), ".".join(b.split(".")[:2])


def check_compatibility(built: EngineFingerprint, host: HostInfo, *, rebuild_command: str,
                        dla_core: int | None = None) -> list[str]:
    """Raise ArtifactError if the engine cannot run here; return warnings for what runs but is not ideal.

    TensorRT versions must agree on major.minor.patch (serialized engines are tied to the exact release unless
    built version-compatible, which segedge does not do) and the compute capability must be equal.
    ``dla_core``: the core the caller wants (None: the one the engine was built for).
    """
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
    if built.gpu_name != host.gpu_name:
        warnings.append(f"engine was built on {built.gpu_name!r}, this host is {host.gpu_name!r} (both "
                        f"{host.sm}): it runs, but its kernels were timed on the other GPU; rebuild here for "
                        f"the best speed: {rebuild_command}")
    return warnings


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
