"""``--device`` for predict, stream, bench and eval: one flag, mapped to what each runtime calls a device.

| --device | ONNX artifact | OpenVINO IR | TensorRT engine |
|---|---|---|---|
| cpu | ONNX Runtime, CPU provider | OpenVINO CPU | error |
| cuda, cuda:0 | ONNX Runtime, CUDA provider (onnxruntime-gpu) | error | GPU 0 |
| cuda:N | error (ONNX Runtime takes GPU 0 here) | error | GPU N |
| tensorrt | ONNX Runtime, TensorRT provider | error | GPU 0 |
| GPU, GPU.1, NPU, AUTO | OpenVINO on that device (it reads ONNX) | OpenVINO on that device | error |

With ``--runtime auto`` the runtime follows the device (an ONNX artifact on GPU/NPU goes to OpenVINO); with a
runtime named, a device it does not have is an error that says which devices it has.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from sdk.core.errors import InputError

log = logging.getLogger("segedge")

OPENVINO_DEVICES = re.compile(r"^(CPU|GPU|NPU|AUTO|MULTI|HETERO)([.:].*)?$", re.IGNORECASE)
CUDA = re.compile(r"^cuda(?::(\d+))?$", re.IGNORECASE)
HELP = ("device: cpu, cuda[:N] (ONNX Runtime's CUDA provider, or the GPU of a TensorRT engine), tensorrt (ONNX "
        "Runtime's TensorRT provider), GPU[.N] / NPU / AUTO (OpenVINO; an ONNX artifact then runs in OpenVINO). "
        "Default: the runtime's own (CPU)")


def add_device_argument(parser) -> None:
    """Add ``--device`` to a subcommand's parser."""
    parser.add_argument("--device", help=HELP)


def _format(artifact: str | Path) -> str:
    from runtimes.tensorrt import resolve_artifact
    from sdk.core.manifest import read_manifest

    return read_manifest(resolve_artifact(artifact)).format


def runtime_for_device(artifact: str | Path, runtime: str, device: str | None) -> tuple[str, dict]:
    """(runtime name or "auto", runtime constructor options) that run ``artifact`` on ``device`` (see the table)."""
    if device is None:
        return runtime, {}
    device = device.strip()
    fmt = _format(artifact)
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
                         "devices (GPU, NPU) use --runtime openvino or --runtime auto")
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
