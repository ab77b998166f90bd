"""What a built engine really runs: per-layer precision and device, read back with TensorRT's engine inspector.

The builder treats FP16/INT8 flags as permissions, not orders: a layer runs in whatever its fastest tactic uses, and
a DLA build with GPU fallback quietly puts on the GPU whatever the DLA cannot take. ``segedge build`` therefore
builds with ``ProfilingVerbosity.DETAILED``, reads every layer's JSON record (``IEngineInspector
.get_layer_information(i, LayerInformationFormat.JSON)``, as Polygraphy's ``inspect model --show layers`` does),
records a summary in model.json, logs it, and fails when what was asked for is not in the engine (no INT8 layer in
an INT8 build, nothing on the DLA in a DLA build). No FP16 layer where FP16 was asked or implied is a warning: on a
small graph FP32 kernels may win the timing, and an FP16 build that came out FP32 is worth saying loudly, not
refusing.

A layer's precision is taken from its tensors' ``Format/Datatype`` strings ("Row major linear FP32", "Channel
major FP16 format where channel % 8 == 0", "Thirty-two wide channel vectorized row major Int8 format", or the
short "Float" / "Half" / "Int8" of Myelin layers; TensorRT 11 splits the key into ``Format`` and ``Datatype``):
int8 if any input is Int8 (a fused Q/DQ convolution or matmul), else fp16 if any tensor is Half, else bf16, else
fp32 if any tensor is Float, else "other" (shape arithmetic, indices, the uint8 mask). DLA subgraphs are layers of
type "DLA" (named ``{ForeignNode[first...last]}``). A Myelin subgraph that TensorRT 8.x shows as one layer (type
"Myelin", a ``{ForeignNode[...]}`` name) is "opaque": its boundary tensors say nothing about the precision inside,
so where such layers exist a missing INT8/FP16 layer is a warning, not an error (TensorRT 10 lists Myelin's kernels
one by one). Pure parsing: everything but ``read_layers`` runs without TensorRT.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from sdk.core.errors import ExportError

log = logging.getLogger("segedge")

PRECISIONS = ("int8", "fp16", "bf16", "fp32", "other", "opaque")
# layer types that move or convert data: an int8 input there (an unfused DequantizeLinear, a reformat) is no INT8
# compute, so they do not count as proof that INT8 was built
DATA_MOVEMENT = ("reformat", "quantize", "scale", "shuffle", "noop", "constant", "copy", "cast", "slice", "concat")
# substrings of a Format/Datatype string, most specific first (BFloat16 contains "float", UInt8 contains "int8")
_DTYPE_WORDS = (("bfloat16", "bf16"), ("bf16", "bf16"), ("uint8", "uint8"), ("int8", "int8"), ("fp16", "fp16"),
                ("half", "fp16"), ("fp32", "fp32"), ("float", "fp32"), ("int32", "int32"), ("int64", "int64"),
                ("bool", "bool"), ("fp8", "fp8"))


def tensor_dtype(description: str) -> str:
    """A tensor's data type from the inspector's format string: "Row major linear FP32" -> "fp32"."""
    text = description.lower()
    for word, dtype in _DTYPE_WORDS:
        if word in text:
            return dtype
    return "unknown"


def _tensors(record: dict, key: str) -> list[str]:
    out = []
    for t in record.get(key) or []:
        if isinstance(t, dict):
            out.append(tensor_dtype(str(t.get("Format/Datatype") or t.get("Datatype") or "")))
    return out


def layer_precision(record: dict) -> str:
    """One of PRECISIONS for a DETAILED layer record (see the module docstring)."""
    kind, name = str(record.get("LayerType", "")).lower(), str(record.get("Name", ""))
    if kind == "myelin" or (name.startswith("{ForeignNode[") and kind != "dla"):
        return "opaque"
    ins, outs = _tensors(record, "Inputs"), _tensors(record, "Outputs")
    if "int8" in ins:
        return "int8"
    for dtype in ("fp16", "bf16", "fp32"):
        if dtype in ins or dtype in outs:
            return dtype
    return "other"


def summarize_layers(records: list[Any]) -> dict:
    """{layers, detailed, by_precision, int8_compute, dla_layers, table}: ``table`` is [name, LayerType,
    precision, device] per layer; ``int8_compute`` counts INT8 layers that compute (not ``DATA_MOVEMENT``).
    Records that are plain strings (an engine built without DETAILED verbosity) count as not detailed."""
    table, detailed = [], bool(records)
    for rec in records:
        if not isinstance(rec, dict):
            detailed = False
            table.append([str(rec), "unknown", "unknown", "unknown"])
            continue
        kind = str(rec.get("LayerType", "unknown"))
        device = "dla" if kind.lower() == "dla" else "gpu"
        table.append([str(rec.get("Name", "")), kind, layer_precision(rec), device])
    by_precision = {p: sum(row[2] == p for row in table) for p in PRECISIONS}
    int8_compute = sum(row[2] == "int8" and not any(w in row[1].lower() for w in DATA_MOVEMENT) for row in table)
    return {"layers": len(table), "detailed": detailed, "by_precision": by_precision, "int8_compute": int8_compute,
            "dla_layers": sum(row[3] == "dla" for row in table), "table": table}


def describe_layers(summary: dict) -> str:
    """One line: "184 engine layers: int8 51, fp16 77, fp32 22, other 34; 3 DLA subgraphs"."""
    if not summary.get("detailed"):
        return f"{summary.get('layers', 0)} engine layers (precisions unknown: no detailed layer information)"
    counts = ", ".join(f"{p} {n}" for p, n in summary["by_precision"].items() if n)
    dla = f"; {summary['dla_layers']} DLA subgraph(s)" if summary.get("dla_layers") else ""
    return f"{summary['layers']} engine layers: {counts}{dla}"


def kept_fp32_layers(summary: dict, onnx_names: list[str]) -> dict[str, str]:
    """Engine layers whose name mentions one of ``onnx_names`` (e.g. the LayerNormalization and Softmax nodes) ->
    their precision, to see whether the FP32 constraint held (fused layers may carry several names)."""
    found = {}
    for name, _, precision, _ in summary.get("table", []):
        if any(n and n in name for n in onnx_names):
            found[name] = precision
    return found


def check_built(summary: dict, *, int8: bool, fp16: bool, dla_core: int | None, command: str) -> list[str]:
    """Raise ExportError when the engine lacks what was asked (INT8 layers, FP16 layers, DLA layers); return
    warnings for what cannot be checked."""
    if not summary.get("detailed"):
        return ["engine layers: no detailed layer information, so the precisions cannot be checked"]
    counts = summary["by_precision"]
    missing: list[str] = []
    unsure: list[str] = []
    if int8 and not summary.get("int8_compute"):
        (unsure if counts.get("opaque") else missing).append(
            "INT8 was asked (--int8) but no layer computes in INT8: the Q/DQ nodes were not fused into any "
            "convolution or matmul")
    if fp16 and not counts.get("fp16"):
        unsure.append("FP16 was asked or implied by --int8, but no layer runs FP16 (FP32 kernels may have won the "
                      "timing; compare with the FP32 engine: segedge bench)")
    if dla_core is not None and not summary.get("dla_layers"):
        missing.append(f"DLA core {dla_core} was asked, but no layer runs on the DLA: everything fell back to the "
                       "GPU (the DLA needs a static shape and FP16/INT8 layers it supports)")
    if missing:
        raise ExportError(f"engine check: {'; '.join(missing + unsure)}. Built: {describe_layers(summary)}. Run "
                          f"with -v for TensorRT's log; rebuild: {command}")
    where = (f", outside the {counts['opaque']} Myelin subgraph(s), whose precision the inspector does not show"
             if counts.get("opaque") else "")
    return [f"engine check: {m}{where}" for m in unsure]


def read_layers(engine: Any, trt: Any) -> list[Any]:
    """Every layer's inspector record (a dict when the engine was built DETAILED, else its name as a string)."""
    inspector = engine.create_engine_inspector()
    records: list[Any] = []
    for i in range(engine.num_layers):
        text = inspector.get_layer_information(i, trt.LayerInformationFormat.JSON)
        try:
            records.append(json.loads(text))
        except ValueError:
            records.append(text)
    return records
