"""Which JetPack / TensorRT lines segedge supports, and what each builds: the one support table.

``JETPACK_LINES`` is the table docs/JETSON.md shows (``support_table_markdown`` renders it; a test keeps the two
equal), ``segedge doctor`` marks the row of the device it runs on, and ``converters.tensorrt_plan`` decides the
build from ``typing_for`` and ``dla_for``. The facts behind it:

- segedge needs Python >= 3.10 (pyproject's requires-python). JetPack 5.x ships Python 3.8 and TensorRT 8.4 / 8.5,
  and TensorRT 8.4's ONNX parser has no UINT8 (onnx-tensorrt 8.4-GA ``convertDtype``), so it cannot parse a mask
  or refine head: JetPack 5 and TensorRT < 8.6 are not supported. JetPack 6.x (Python 3.10) has TensorRT 8.6 (6.0)
  or 10.3 (6.1, 6.2). JetPack 7.2 (Python 3.12) runs on Orin with TensorRT 10.16, which does not support Orin's DLA;
  JetPack 7.2.2+ brings TensorRT 11.4.1 (AGX Orin, Thor) with the DLA back, strongly typed only.
- Weak typing (FP16/INT8 builder flags, precision constraints) is deprecated from TensorRT 10.12 and gone in 11:
  from 10.12 every build is strongly typed (the ONNX carries the float types), up to 10.11 weakly typed.
- The DLA runs INT8 only from implicit quantization on TensorRT <= 10 (NVIDIA/TensorRT#2222, Model-Optimizer
  PR #1661): explicit Q/DQ layers fall back to the GPU, so ``--int8 --dla`` is refused there.

Pure data and plain functions: importing this module loads nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

TENSORRT_MIN = (8, 6)  # the oldest TensorRT segedge builds and runs (JetPack 6.0)
WEAK_TYPING_MAX = (10, 11)  # weakly typed builds up to 10.11; strongly typed from 10.12 (deprecation) and on 11
# The one install message for TensorRT (segedge doctor, opening an engine without TensorRT, segedge build). The
# `jetson` extra installs only onnx: TensorRT comes from JetPack, never from pip on a Jetson.
INSTALL_TENSORRT = ("TensorRT comes with JetPack on a Jetson: sudo apt install python3-libnvinfer (part of "
                    "nvidia-jetpack), then a venv made with --system-site-packages and pip install --no-deps "
                    "segedge (pip's tensorrt wheels are not JetPack's and would shadow it); on a CUDA host install "
                    "the TensorRT that matches its CUDA. The runtime calls the CUDA driver itself (no pycuda "
                    "needed). See docs/JETSON.md.")


@dataclass(frozen=True, kw_only=True)
class JetPackLine:
    """One row of the support table. ``tensorrt``: the version JetPack ships ("8.6.2"); ``supported`` False rows
    say why in ``builds``."""

    jetpack: str
    l4t: str
    modules: str
    tensorrt: str
    cuda: str
    python: str
    supported: bool
    builds: str
    dla: str


JETPACK_LINES = (
    JetPackLine(jetpack="5.x", l4t="R35", modules="Xavier, Orin", tensorrt="8.4 / 8.5", cuda="11.4", python="3.8",
                supported=False, builds="not supported: Python 3.8 (segedge needs >= 3.10); TensorRT 8.4 cannot "
                "parse the mask or refine head", dla="-"),
    JetPackLine(jetpack="6.0", l4t="R36.3", modules="Orin", tensorrt="8.6.2", cuda="12.2", python="3.10",
                supported=True, builds="weakly typed: --fp16, --int8 (+ FP16 for the rest)",
                dla="FP16 (--fp16 --dla)"),
    JetPackLine(jetpack="6.1, 6.2", l4t="R36.4", modules="Orin", tensorrt="10.3.0", cuda="12.6", python="3.10",
                supported=True, builds="weakly typed; a --float fp16 Q/DQ graph strongly typed",
                dla="FP16 (--fp16 --dla)"),
    JetPackLine(jetpack="7.2", l4t="R39.2", modules="Orin, Thor", tensorrt="10.16", cuda="13.2", python="3.12",
                supported=True, builds="strongly typed: --fp16/--int8 make the graph's float parts FP16 "
                "(LayerNorm, Softmax, head FP32)", dla="none (TensorRT 10.16 has no Orin DLA)"),
    JetPackLine(jetpack="7.2.2+", l4t="R39.2", modules="AGX Orin, Thor", tensorrt="11.4.1", cuda="13.2",
                python="3.12", supported=True, builds="strongly typed, as 10.16", dla="FP16, INT8 (strongly typed)"),
)


def version_tuple(version: str, parts: int = 3) -> tuple[int, ...]:
    """"10.3.0.30" -> (10, 3, 0); missing or non-numeric parts count as 0."""
    out = []
    for piece in version.split(".")[:parts]:
        digits = re.match(r"\d+", piece.strip())
        out.append(int(digits.group()) if digits else 0)
    return tuple(out + [0] * (parts - len(out)))


def _tuple(version: str, parts: int = 2) -> tuple[int, ...]:
    return version_tuple(version, parts)


def unsupported_reason(version: str) -> str | None:
    """None where segedge supports this TensorRT, else the one line that says why and what to use."""
    if _tuple(version) < TENSORRT_MIN:
        return (f"TensorRT {version} is not supported: segedge needs TensorRT >= {TENSORRT_MIN[0]}.{TENSORRT_MIN[1]} "
                "(JetPack 6.0 or later; JetPack 5's TensorRT 8.4/8.5 comes with Python 3.8, and segedge needs "
                "Python >= 3.10). Flash JetPack 6.x or 7.2; see docs/JETSON.md's support table.")
    return None


def strongly_typed_only(version: str) -> bool:
    """True from TensorRT 10.12: every build strongly typed (weak typing deprecated in 10.12, gone in 11)."""
    return _tuple(version) > WEAK_TYPING_MAX


def dla_refusal(version: str, *, int8: bool) -> str | None:
    """None where this TensorRT can put the asked precision on the DLA, else why not and the route that works."""
    v = _tuple(version)
    if v > WEAK_TYPING_MAX and v < (11, 0):
        return (f"dla_core: TensorRT {version} (JetPack 7.2) does not support Orin's DLA; build for the GPU (drop "
                "--dla), or use JetPack 6.x (TensorRT 8.6 / 10.3) or JetPack 7.2.2+ (TensorRT 11.4.1) for the DLA")
    if int8 and v < (11, 0):
        return (f"dla_core: on TensorRT {version} the DLA runs INT8 only from implicit quantization (a calibrator); "
                "a Q/DQ artifact's INT8 layers fall back to the GPU, so --int8 --dla would put no INT8 on the DLA. "
                "Build FP16 for the DLA from the FP32 export instead: segedge build FP32_ARTIFACT --output OUT "
                "--fp16 --dla CORE (or use TensorRT 11.4.1, JetPack 7.2.2+, for INT8 on the DLA)")
    return None


def line_for_l4t(l4t: str) -> JetPackLine | None:
    """The table row for an L4T release ("R36.4.0" -> JetPack 6.1, 6.2); None where unknown."""
    for line in JETPACK_LINES:
        if l4t == line.l4t or l4t.startswith(line.l4t + "."):
            return line
    return None


def line_for_tensorrt(version: str) -> JetPackLine | None:
    """The table row whose TensorRT this is (by major.minor); None where no JetPack ships it."""
    v = _tuple(version)
    for line in JETPACK_LINES:
        for spelled in line.tensorrt.split(" / "):
            if _tuple(spelled) == v:
                return line
    return None


def support_table_markdown() -> str:
    """The support table as docs/JETSON.md shows it."""
    rows = ["| JetPack | L4T | modules | TensorRT | CUDA | Python | segedge builds | DLA |",
            "|---|---|---|---|---|---|---|---|"]
    for line in JETPACK_LINES:
        rows.append(f"| {line.jetpack} | {line.l4t} | {line.modules} | {line.tensorrt} | {line.cuda} | {line.python} "
                    f"| {line.builds} | {line.dla} |")
    return "\n".join(rows)
