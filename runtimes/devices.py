"""``device=``: one name for where an artifact runs, mapped to what each runtime calls a device.

| device | ONNX artifact | OpenVINO IR | TensorRT engine |
|---|---|---|---|
| cpu | ONNX Runtime, CPU provider | OpenVINO CPU | error |
| cuda, cuda:0 | ONNX Runtime, CUDA provider (onnxruntime-gpu) | error | GPU 0 |
| cuda:N (or N) | error (ONNX Runtime takes GPU 0 here) | error | GPU N |
| tensorrt | ONNX Runtime, TensorRT provider | error | GPU 0 |
| GPU, GPU.1, NPU, AUTO | OpenVINO on that device (it reads ONNX) | OpenVINO on that device | error |

With runtime "auto" the runtime follows the device (an ONNX artifact on GPU/NPU goes to OpenVINO, an engine to
TensorRT), so a device is never measured between runtimes; with a runtime named, a device it does not have is an
error that says which devices it has. ``open_runtime(..., device=)`` and ``Segmenter.from_artifact(..., device=)``
apply this table; the CLI's ``--device`` passes its value through.

Imports nothing heavy: the artifact's format comes from its manifest.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from sdk.core.errors import InputError

log = logging.getLogger("segedge")

OPENVINO_DEVICES = re.compile(r"^(CPU|GPU|NPU|AUTO|MULTI|HETERO|BATCH)([.:].*)?$", re.IGNORECASE)
CUDA = re.compile(r"^cuda(?::(\d+))?$", re.IGNORECASE)


def _name(device: str | int) -> str:
    """The device as text: a GPU index (TensorRT's own ``device=N``) becomes "N"."""
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
        return str(device)
    if isinstance(device, str) and device.strip():
        return device.strip()
    raise InputError(f"device: expected a name (cpu, cuda[:N], tensorrt, GPU[.N], NPU, AUTO) or a GPU index >= 0, "
                     f"got {device!r}")


def device_options(fmt: str, runtime: str, device: str | int | None) -> tuple[str, dict]:
    """(runtime name, runtime constructor options) that run an artifact of format ``fmt`` ("onnx", "openvino",
    "engine") on ``device`` (see the table); ``runtime``: "auto" or a runtime's name. No device: (runtime, {})."""
    if device is None:
        return runtime, {}
    device = _name(device)
    cuda = CUDA.match(device)
    ov = OPENVINO_DEVICES.match(device)
    if runtime == "auto":
        if fmt == "engine":
            runtime = "tensorrt"
        elif fmt == "openvino" or (ov and device.lower() != "cpu"):
            runtime = "openvino"
        else:
            runtime = "onnxruntime"
        log.info("--device %s: %s artifact -> %s", device, fmt, runtime)
    if runtime == "onnxruntime":
        if device.lower() == "cpu":
            return runtime, {"providers": ["cpu"]}
        if cuda and (cuda.group(1) in (None, "0")):
            return runtime, {"providers": ["cuda", "cpu"]}
        if device.lower() == "tensorrt":
            return runtime, {"providers": ["tensorrt", "cuda", "cpu"]}
        raise InputError(f"--device {device}: ONNX Runtime here runs on cpu, cuda (GPU 0) or tensorrt. For OpenVINO "
                         "devices (GPU, NPU) use --runtime openvino or --runtime auto (runtime='openvino' or 'auto' "
                         "in Python)")
    if runtime == "openvino":
        if ov:
            return runtime, {"device": device.upper()}
        raise InputError(f"--device {device}: OpenVINO devices are CPU, GPU[.N], NPU or AUTO (see segedge doctor). "
                         "For an NVIDIA GPU use an ONNX artifact with --device cuda, or a TensorRT engine")
    if runtime == "tensorrt":
        if cuda:
            return runtime, {"device": int(cuda.group(1) or 0)}
        if device.isdigit():
            return runtime, {"device": int(device)}
        raise InputError(f"--device {device}: a TensorRT engine runs on an NVIDIA GPU: --device cuda or cuda:N")
    return runtime, {}


def runtime_for_device(artifact: str | Path, runtime: str, device: str | int | None) -> tuple[str, dict]:
    """``device_options`` for an artifact folder (or its model file): reads the format from its manifest."""
    if device is None:
        return runtime, {}
    from sdk.core.manifest import read_manifest, resolve_artifact

    return device_options(read_manifest(resolve_artifact(artifact)).format, runtime, device)


def merge_options(device: str | int, mapped: dict, options: dict) -> dict:
    """The device's options with the caller's; a key both give with different values is an error (which one was
    meant?)."""
    clash = sorted(k for k in mapped if k in options and options[k] != mapped[k])
    if clash:
        k = clash[0]
        raise InputError(f"--device {device} means {k}={mapped[k]!r}, but {k}={options[k]!r} was given too: expected "
                         f"one of them. Drop the {k} option, or the device")
    return {**mapped, **options}
