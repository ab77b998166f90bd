"""The CUDA work the TensorRT runtime needs -- its primary context, one stream, page-locked host and device buffers,
asynchronous copies -- behind one small interface with two implementations:

- ``DriverCuda`` (the primary path, ``TensorRTRuntime(cuda="driver")``): the CUDA driver API through ctypes, the
  same ``libcuda.so.1`` that ``runtimes.tensorrt_device.CudaDriver`` already calls for the fingerprint and CUDA
  graphs. Why primary: the driver library is on every machine that runs TensorRT (it comes with the NVIDIA driver,
  and with L4T on a Jetson), so nothing is compiled or installed for it, on any JetPack or Python. pycuda is
  source-only on PyPI and must be compiled against each device's CUDA; cuda-python (``cuda.bindings``, what
  NVIDIA's TensorRT samples moved to) is a pip wheel per CUDA major version, one more thing to match to JetPack.
- ``PycudaCuda`` (``cuda="pycuda"``): the same through pycuda, for setups that already have it; kept as it ran
  before, including its context quirks (see ``release``).

The page-locked host memory is shown to numpy as an array over the allocation (``host_array``), so numpy writes
and reads it in place. Importing this module loads nothing.
"""
from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np

from runtimes.tensorrt_device import CudaDriver

CUDA_BACKENDS = ("driver", "pycuda")


def host_array(address: int, count: int, dtype: np.dtype) -> np.ndarray:
    """A writable numpy array of ``count`` ``dtype`` items over memory at ``address`` (not owned by numpy)."""
    nbytes = max(count, 1) * np.dtype(dtype).itemsize
    raw = (ctypes.c_uint8 * nbytes).from_address(address)
    return np.frombuffer(memoryview(raw), dtype=dtype, count=max(count, 1))


class DriverCuda:
    """Primary context, stream, memory and copies through the CUDA driver API (ctypes)."""

    name = "driver"

    def __init__(self, driver: CudaDriver, device: int) -> None:
        self._driver, self._lib, self._device = driver, driver._lib, device
        lib, ptr, size, u64 = self._lib, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint64
        # 64-bit handles and sizes: without argtypes ctypes would pass Python ints as 32-bit C ints
        for name, args in (("cuDevicePrimaryCtxRetain", [ctypes.POINTER(ptr), ctypes.c_int]),
                           ("cuCtxPushCurrent_v2", [ptr]), ("cuCtxPopCurrent_v2", [ctypes.POINTER(ptr)]),
                           ("cuStreamCreate", [ctypes.POINTER(ptr), ctypes.c_uint]),
                           ("cuStreamSynchronize", [ptr]), ("cuStreamDestroy_v2", [ptr]),
                           ("cuMemAlloc_v2", [ctypes.POINTER(u64), size]), ("cuMemFree_v2", [u64]),
                           ("cuMemAllocHost_v2", [ctypes.POINTER(ptr), size]), ("cuMemFreeHost", [ptr]),
                           ("cuMemcpyHtoDAsync_v2", [u64, ptr, size, ptr]),
                           ("cuMemcpyDtoHAsync_v2", [ptr, u64, size, ptr])):
            getattr(lib, name).argtypes = args
        dev = ctypes.c_int()
        driver._check(lib.cuDeviceGet(ctypes.byref(dev), device), "cuDeviceGet")
        ctx = ptr()
        driver._check(lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "cuDevicePrimaryCtxRetain")
        self.context_handle = int(ctx.value or 0)
        self._released = False

    def push(self) -> None:
        self._driver._check(self._lib.cuCtxPushCurrent_v2(ctypes.c_void_p(self.context_handle)), "cuCtxPushCurrent")

    def pop(self) -> None:
        popped = ctypes.c_void_p()
        self._driver._check(self._lib.cuCtxPopCurrent_v2(ctypes.byref(popped)), "cuCtxPopCurrent")

    def release(self) -> None:
        """Drop the primary-context reference taken at open (from any thread; once)."""
        if not self._released:
            self._released = True
            self._driver.release_primary_context(self._device)

    def stream(self) -> int:
        handle = ctypes.c_void_p()
        self._driver._check(self._lib.cuStreamCreate(ctypes.byref(handle), 0), "cuStreamCreate")
        return int(handle.value or 0)

    def synchronize(self, stream: int) -> None:
        self._driver._check(self._lib.cuStreamSynchronize(ctypes.c_void_p(stream)), "cuStreamSynchronize")

    def destroy_stream(self, stream: int) -> None:
        self._driver._check(self._lib.cuStreamDestroy_v2(ctypes.c_void_p(stream)), "cuStreamDestroy")

    def host_empty(self, count: int, dtype: np.dtype) -> tuple[np.ndarray, int]:
        """(array, handle) of page-locked host memory for ``count`` items."""
        address = ctypes.c_void_p()
        nbytes = max(count, 1) * np.dtype(dtype).itemsize
        self._driver._check(self._lib.cuMemAllocHost_v2(ctypes.byref(address), nbytes), "cuMemAllocHost")
        return host_array(int(address.value or 0), count, dtype), int(address.value or 0)

    def free_host(self, handle: int) -> None:
        self._lib.cuMemFreeHost(ctypes.c_void_p(handle))

    def device_alloc(self, nbytes: int) -> int:
        address = ctypes.c_uint64()
        self._driver._check(self._lib.cuMemAlloc_v2(ctypes.byref(address), max(nbytes, 1)), "cuMemAlloc")
        return int(address.value)

    def free_device(self, address: int) -> None:
        self._lib.cuMemFree_v2(ctypes.c_uint64(address))

    def to_device(self, address: int, host: np.ndarray, stream: int) -> None:
        self._driver._check(self._lib.cuMemcpyHtoDAsync_v2(ctypes.c_uint64(address), ctypes.c_void_p(host.ctypes.data),
                                                           host.nbytes, ctypes.c_void_p(stream)), "cuMemcpyHtoDAsync")

    def to_host(self, host: np.ndarray, address: int, stream: int) -> None:
        self._driver._check(self._lib.cuMemcpyDtoHAsync_v2(ctypes.c_void_p(host.ctypes.data), ctypes.c_uint64(address),
                                                           host.nbytes, ctypes.c_void_p(stream)), "cuMemcpyDtoHAsync")


class PycudaCuda:
    """The same through pycuda (``cuda="pycuda"``)."""

    name = "pycuda"

    def __init__(self, cuda: Any, driver: CudaDriver, device: int) -> None:
        cuda.init()
        self._cuda, self._driver, self._device = cuda, driver, device
        self._ctx = cuda.Device(device).retain_primary_context()  # the context TensorRT's CUDA runtime uses
        self.context_handle = int(self._ctx.handle)
        self._thread = threading.get_ident()
        self._streams: dict[int, Any] = {}
        self._hosts: dict[int, Any] = {}
        self._devices: dict[int, Any] = {}

    def push(self) -> None:
        self._ctx.push()

    def pop(self) -> None:
        self._ctx.pop()

    def release(self) -> None:
        """With the context popped. pycuda's ``detach()`` of a context that is not current (in its own bookkeeping)
        and was made in this thread pushes it, releases it and, for a primary context (``cuDevicePrimaryCtxRelease``),
        leaves it pushed (src/cpp/cuda.hpp: "pop is implicit in detach" holds for cuCtxDetach only): that push is
        popped here. Closed from another thread, pycuda's detach() releases nothing ("leaked out-of-thread context"):
        the primary context is then released through the driver."""
        current = self._cuda.Context.get_current()
        same_thread = threading.get_ident() == self._thread
        pushes = same_thread and (current is None or current != self._ctx)
        self._ctx.detach()
        if pushes:
            self._driver.pop_if_current(self.context_handle)
        elif not same_thread:
            self._driver.release_primary_context(self._device)

    def stream(self) -> int:
        stream = self._cuda.Stream()
        self._streams[int(stream.handle)] = stream
        return int(stream.handle)

    def synchronize(self, stream: int) -> None:
        self._streams[stream].synchronize()

    def destroy_stream(self, stream: int) -> None:
        self._streams.pop(stream, None)  # pycuda destroys it when its last reference goes, inside its context

    def host_empty(self, count: int, dtype: np.dtype) -> tuple[np.ndarray, int]:
        array = self._cuda.pagelocked_empty(max(count, 1), dtype)
        self._hosts[array.ctypes.data] = array.base  # pycuda's PagelockedHostAllocation behind the array
        return array, int(array.ctypes.data)

    def free_host(self, handle: int) -> None:
        self._hosts.pop(handle).free()

    def device_alloc(self, nbytes: int) -> int:
        allocation = self._cuda.mem_alloc(max(nbytes, 1))
        self._devices[int(allocation)] = allocation
        return int(allocation)

    def free_device(self, address: int) -> None:
        self._devices.pop(address).free()

    def to_device(self, address: int, host: np.ndarray, stream: int) -> None:
        self._cuda.memcpy_htod_async(self._devices[address], host, self._streams[stream])

    def to_host(self, host: np.ndarray, address: int, stream: int) -> None:
        self._cuda.memcpy_dtoh_async(host, self._devices[address], self._streams[stream])
