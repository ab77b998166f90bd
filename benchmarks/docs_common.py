"""Helpers shared by benchmarks/make_docs.py and benchmarks/docs_sections.py: number formatting, Markdown tables and
the machine/software lines shown beside every section. Imports only the standard library and sdk.core.cpu.
"""
from __future__ import annotations

from typing import Any

from sdk.core.cpu import cpu_class

# the flags shown beside every table: the ones that decide the INT8/BF16 kernels (subset of sdk.timing.KEY_CPU_FLAGS)
X86_ISA = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
ARM_ISA = ("asimddp", "sve", "sve2", "i8mm", "bf16")


# ------------------------------------------------------------------------------------------------------ formatting
def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fmt(v: Any, spec: str = ".1f") -> str:
    """A number as ``spec`` ("-" for None or anything else); never "-0.00"."""
    if not is_num(v):
        return "-" if v is None else str(v)
    out = f"{v:{spec}}"
    return f"{0.0:{spec}}" if out.startswith("-") and float(out) == 0 else out


def pct(v: Any) -> str:
    return fmt(100 * v, ".2f") if is_num(v) else "-"


def ratio(num: Any, den: Any) -> str:
    """num / den as "1.54x" (den the faster one's time, or the slower one's FPS), "-" when either is missing."""
    return f"{num / den:.2f}x" if is_num(num) and is_num(den) and den else "-"


def hw(v: Any) -> str:
    return f"{v[0]}x{v[1]}" if isinstance(v, (list, tuple)) and len(v) == 2 else fmt(v)


def dig(d: Any, *keys: Any) -> Any:
    """d[k0][k1]... or None where any level is missing."""
    for k in keys:
        if isinstance(d, dict):
            d = d.get(k)
        elif isinstance(d, list) and isinstance(k, int) and -len(d) <= k < len(d):
            d = d[k]
        else:
            return None
    return d


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


# ---------------------------------------------------------------------------------------------------- the machine
def machine(d: dict) -> str:
    """One line: CPU model and count, CPU class (sdk.core.cpu.cpu_class) and the ISA flags, or "ISA not recorded"."""
    env = d.get("environment") if isinstance(d.get("environment"), dict) else {}
    isa = next((x for x in (env.get("cpu_isa"), env.get("isa"), d.get("machine")) if isinstance(x, dict)), {})
    model = env.get("cpu_model") or d.get("cpu")
    cpus = env.get("usable_cpus") or env.get("logical_cpus") or d.get("cpu_count")
    head = ", ".join(p for p in (model, f"{cpus} CPUs" if cpus else None) if p) or "CPU not recorded"
    flags = next((set(f) for f in (env.get("cpu_flags"), env.get("cpu_key_flags"), isa.get("flags"))
                  if isinstance(f, list) and f), None)
    arch = isa.get("machine") or next((a for a in ("aarch64", "arm64", "x86_64") if a in str(env.get("platform"))),
                                      "x86_64")
    if flags is None:
        return f"Machine: {head}; ISA not recorded."
    shown = ARM_ISA if arch in ("aarch64", "arm64") else X86_ISA
    have = [f for f in shown if f in flags]
    cls = isa.get("class") or cpu_class(frozenset(flags), arch)
    lacks = [f for f in shown if f not in flags]
    line = f"Machine: {head}; CPU class `{cls}`; ISA: {' '.join(have) or 'none of ' + ' '.join(shown)}"
    return line + (f" (not: {' '.join(lacks)})." if lacks and have else ".")


def software(d: dict) -> str | None:
    v = dig(d, "environment", "versions") or {}
    names = (("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO"), ("nncf", "NNCF"), ("tensorrt", "TensorRT"),
             ("torch", "PyTorch"), ("transformers", "transformers"), ("python", "Python"))
    parts = [f"{label} {v[k]}" for k, label in names if isinstance(v, dict) and v.get(k)]
    return f"Software: {', '.join(parts)}." if parts else None

