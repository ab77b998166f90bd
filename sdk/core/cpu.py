"""CPU classes for INT8: which instruction set a machine multiplies 8-bit values with, and whether it can saturate.

Why it matters: ONNX Runtime and OpenVINO run u8 x s8 products on x86 with VNNI (``vpdpbusd``: products summed
straight into 32 bits) where the CPU has it. Without VNNI (AVX2, AVX-512 without VNNI) they use ``vpmaddubsw``,
which sums pairs of products into 16 bits with saturation: an INT8 model calibrated on a VNNI machine loses
accuracy there (B0 on CamVid test, ONNX Runtime: -0.80 mIoU and 97.95% agreement with FP32 on an AVX2 CPU, against
-0.17 / 99.09% on VNNI). The fix is in the recipe: 7-bit weights (ONNX Runtime ``reduce_range``, NNCF
``overflow_fix``). arm64 kernels accumulate in 32 bits (``sdot``/``smlal``), so they are treated as not saturating.

Classes (``CPU_CLASSES``): "vnni" (AVX-512 VNNI or AVX-VNNI), "avx512" (AVX-512 without VNNI), "avx2" (AVX2 or
older x86), "arm64". Leaf module: standard library + sdk.core.errors.
"""
from __future__ import annotations

import logging
import platform
from functools import lru_cache
from pathlib import Path

from sdk.core.errors import InputError

log = logging.getLogger("segedge")

CPU_CLASSES = ("vnni", "avx512", "avx2", "arm64")
TARGET_CPUS = ("auto", *CPU_CLASSES)
SATURATING = frozenset({"avx512", "avx2"})  # u8 x s8 pairs summed into 16 bits: INT8 needs 7-bit weights here
# the flags (as /proc/cpuinfo spells them) that decide the class and that manifests record
ISA_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "asimddp", "sve")


def cpu_class(flags: frozenset[str] | set[str], machine: str) -> str:
    """The class of a CPU from its ISA flags (``/proc/cpuinfo`` spelling) and ``platform.machine()``."""
    if machine.lower() in ("aarch64", "arm64"):
        return "arm64"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return "vnni"
    if "avx512f" in flags and "avx512bw" in flags:
        return "avx512"
    return "avx2"


def saturates(cls: str) -> bool:
    """True where 8-bit products can saturate (no VNNI on x86): INT8 made for a non-saturating class loses accuracy."""
    return cls in SATURATING


def _read_flags() -> frozenset[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return frozenset(value.split())
    return frozenset()


@lru_cache(maxsize=1)
def host_isa() -> dict:
    """This machine: ``{"class": ..., "machine": ..., "flags": [the ISA_FLAGS it has]}`` (what manifests record)."""
    flags = _read_flags()
    machine = platform.machine()
    return {"class": cpu_class(flags, machine), "machine": machine, "flags": [f for f in ISA_FLAGS if f in flags]}


def resolve_target_cpu(target_cpu: str, host: dict | None = None) -> str:
    """``target_cpu`` as a class: "auto" is the host's."""
    if target_cpu not in TARGET_CPUS:
        raise InputError(f"target_cpu: expected one of {TARGET_CPUS}, got {target_cpu!r}. Pick the class of the CPU "
                         "the artifact will run on, or 'auto' for this machine's.")
    return (host or host_isa())["class"] if target_cpu == "auto" else target_cpu


def saturation_warning(manifest, artifact: str | Path, host: dict | None = None) -> str | None:
    """The warning for an INT8 CPU artifact opened on a CPU class that can saturate when it was not made for one,
    or None. ``manifest``: a ``sdk.core.manifest.Manifest``."""
    if manifest.precision != "int8" or manifest.format not in ("onnx", "openvino"):
        return None
    quant = manifest.extra.get("quantization", {})
    if quant.get("target") == "tensorrt":  # a Q/DQ model for TensorRT on a GPU, run here only to measure it
        return None
    host = host or host_isa()
    if not saturates(host["class"]):
        return None
    made_for = manifest.extra.get("target_cpu", {}).get("cpu")
    if made_for is not None and saturates(made_for):
        return None
    backend = "openvino" if manifest.format == "openvino" else "onnxruntime"
    why = (f"it was made for CPU class {made_for!r}" if made_for else "it records no target CPU (made before "
           "segedge knew about CPU classes)")
    return (f"artifact {artifact}: INT8 with 8-bit weights, but {why} and this CPU is {host['class']!r} (no VNNI: "
            "u8 x s8 products are summed pairwise into 16 bits and can saturate, which costs accuracy). "
            f"Re-quantize for this CPU: segedge quantize CHECKPOINT --backend {backend} --target-cpu "
            f"{host['class']} --calib FRAMES --output OUT; then segedge verify OUT")


_warned: set[str] = set()


def warn_if_saturating(manifest, artifact: str | Path) -> None:
    """Log ``saturation_warning`` once per artifact path (called when a runtime opens an artifact)."""
    message = saturation_warning(manifest, artifact)
    if message and str(artifact) not in _warned:
        _warned.add(str(artifact))
        log.warning(message)
