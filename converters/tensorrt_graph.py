"""ONNX graph checks and rewrites that ``segedge build`` applies before TensorRT's ONNX parser sees the graph.

Every rewrite is exact or within float rounding, is checked on ONNX Runtime by the test suite, and is listed in the
engine's model.json (``extra.tensorrt.build.graph_changes``):

- ``output_size`` (the mask head's int64 [2] input, which feeds ``Resize`` sizes and so is a shape tensor) becomes an
  int32 input followed by a Cast to int64: TensorRT 8.x engines take shape-tensor I/O in Int32 only (NvInfer.h,
  ``ITensor::isShapeTensor``: "If a tensor is a shape tensor and becomes an engine input or output ... Such a shape
  tensor must have type Int32"); 10.x takes either, so one engine layout serves every version. (Every supported
  TensorRT, >= 8.6, parses ``LayerNormalization`` as one op.)
- The mask head keeps class ids in float32 until one final Cast to uint8: TensorRT 8.x's parser casts to and from
  UINT8 only from FLOAT/HALF (onnx-tensorrt 8.5 ``Cast`` importer) and resizes no integer tensors.
- Optionally a Softmax over classes after a logits head (DeepStream's segmentation parser reads probabilities).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sdk.core.errors import ExportError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def check_qdq(model: Any) -> int:
    """Count Q/DQ nodes; raise for what TensorRT's ONNX parser cannot take: zero points other than int8 0
    (asymmetric or uint8 quantization; a QuantizeLinear without a zero point quantizes to uint8, ONNX's default) and
    DequantizeLinear of int32 biases (onnx/onnx-tensorrt#850)."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    count, asymmetric, biases = 0, [], []
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        count += 1
        name = node.name or node.output[0]
        source = inits.get(node.input[0])
        if node.op_type == "DequantizeLinear" and source is not None and source.data_type == TensorProto.INT32:
            biases.append(name)
            continue
        zero = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zero is not None and (zero.data_type != TensorProto.INT8 or np.any(numpy_helper.to_array(zero) != 0)):
            asymmetric.append(name)
        elif zero is None and node.op_type == "QuantizeLinear":
            asymmetric.append(name)  # no zero point: ONNX quantizes to uint8 (its default type)
        elif zero is None and source is not None and source.data_type != TensorProto.INT8:
            asymmetric.append(name)  # a stored weight of another type (uint8) with the default zero point
    if asymmetric:
        raise ExportError(f"int8: TensorRT takes symmetric int8 Q/DQ (zero point 0 of type int8), got "
                          f"{len(asymmetric)} of {count} Q/DQ nodes with another zero point (first: {asymmetric[0]}). "
                          "Quantize for TensorRT: segedge quantize FP32_ARTIFACT --backend tensorrt --calib FRAMES "
                          "--output OUT")
    if biases:
        raise ExportError(f"int8: expected float biases, got {len(biases)} DequantizeLinear nodes of int32 biases "
                          f"(first: {biases[0]}), which TensorRT's ONNX parser refuses (onnx/onnx-tensorrt#850). "
                          "Quantize with the biases kept float (ONNX Runtime quantize_static: extra_options "
                          "QuantizeBias=False).")
    return count


def float16_tensors(model: Any) -> int:
    """How many float16 tensors (initializers, Q/DQ scales, Cast targets, typed values) the graph has: > 0 for a
    Q/DQ model whose float parts were made FP16 (``quantize_onnxruntime(..., float_precision="fp16")``)."""
    from onnx import TensorProto

    g = model.graph
    count = sum(t.data_type == TensorProto.FLOAT16 for t in g.initializer)
    count += sum(vi.type.tensor_type.elem_type == TensorProto.FLOAT16 for vi in (*g.value_info, *g.input, *g.output))
    for node in g.node:
        count += sum(a.name == "to" and a.i == TensorProto.FLOAT16 for a in node.attribute if node.op_type == "Cast")
    return count


def _producer(graph: Any, name: str) -> Any:
    for node in graph.node:
        if name in node.output:
            return node
    raise ExportError(f"graph: expected a node producing {name!r}, found none. Re-export the artifact.")


def _rename_output(node: Any, old: str, new: str) -> None:
    node.output[list(node.output).index(old)] = new


def prepare_onnx(model: Any, *, softmax: bool = False) -> list[str]:
    """Rewrite an exported SegFormer graph in place for TensorRT (see the module docstring); return what changed.

    softmax: append Softmax over classes to a logits head, for DeepStream's segmentation parser, which takes class
    probabilities (it labels a pixel -1 unless a score beats max(-1, segmentation-threshold)). The output keeps
    its name ``logits``; its argmax is unchanged.
    """
    from onnx import TensorProto, helper

    g = model.graph
    changes: list[str] = []
    for inp in g.input:
        if inp.name == "output_size" and inp.type.tensor_type.elem_type == TensorProto.INT64:
            inp.type.tensor_type.elem_type = TensorProto.INT32
            for node in g.node:
                for i, name in enumerate(node.input):
                    if name == "output_size":
                        node.input[i] = "output_size_int64"
            g.node.insert(0, helper.make_node("Cast", ["output_size"], ["output_size_int64"], to=TensorProto.INT64,
                                              name="segedge_output_size_to_int64"))
            changes.append("output_size: int64 input -> int32 input + Cast to int64 (TensorRT 8.x shape-tensor "
                           "inputs must be int32)")
    outputs = {o.name: o for o in g.output}
    if "mask" in outputs:
        mask_type = outputs["mask"].type.tensor_type.elem_type
        chain: list[Any] = []
        node = _producer(g, "mask")
        while node.op_type != "ArgMax":
            if len(chain) > 8 or node.op_type not in ("Cast", "Resize", "Squeeze", "Unsqueeze", "Reshape"):
                raise ExportError(f"mask head: expected Cast/Resize/Squeeze between ArgMax and 'mask', got "
                                  f"{node.op_type}. Re-export the artifact with segedge export.")
            chain.append(node)
            node = _producer(g, node.input[0])
        for node in chain:
            for attr in node.attribute:
                if node.op_type == "Cast" and attr.name == "to" and attr.i == mask_type:
                    attr.i = TensorProto.FLOAT
        renamed = {out for node in chain for out in node.output}
        kept = [vi for vi in g.value_info if vi.name not in renamed]  # their recorded types are stale now
        del g.value_info[:]
        g.value_info.extend(kept)
        _rename_output(chain[0], "mask", "mask_float")
        g.node.append(helper.make_node("Cast", ["mask_float"], ["mask"], to=mask_type, name="segedge_mask_cast"))
        changes.append("mask: class ids stay float32 until one final Cast (TensorRT 8.x casts UINT8 only from "
                       "FLOAT/HALF and resizes no integer tensors)")
    if softmax:
        if "logits" not in outputs:
            raise ExportError("softmax: expected a logits-head artifact (segedge export --head logits), got outputs "
                              f"{sorted(outputs)}")
        _rename_output(_producer(g, "logits"), "logits", "logits_raw")
        g.node.append(helper.make_node("Softmax", ["logits_raw"], ["logits"], axis=1, name="segedge_softmax"))
        changes.append("logits: Softmax over classes appended (DeepStream's segmentation parser reads probabilities)")
    return changes
