"""A Q/DQ ONNX model's float parts in FP16, for TensorRT's strongly typed builds (``float_precision="fp16"``).

A strongly typed network (TensorRT 10 with Q/DQ, the only kind on TensorRT 11) runs every tensor in the type the
ONNX graph gives it: from an FP32 Q/DQ graph, everything between the Q/DQ pairs -- LayerNorm inputs, attention,
GELU, residual adds, the decoder's resizes and the full-resolution mask head -- stays FP32, and INT8 is then hardly
faster than FP16. This rewrite makes those parts FP16 in the graph itself, the way NVIDIA ModelOpt's ONNX PTQ does
(``high_precision_dtype="fp16"``: opset >= 19, so that Q/DQ take FP16 scales and dequantize straight to FP16):

- the data path -- every float tensor computed from the network input, the int8 tensors between Q and DQ included
  -- becomes FP16, with the float weights, biases, Q/DQ scales and constants it reads;
- shape arithmetic (anything computed from ``Shape``/``Size`` or from ``output_size``), ``Resize`` scales and roi
  stay as they were, so sizes stay exact;
- ``keep_fp32_ops`` (default LayerNormalization and Softmax, where FP16 overflows after attention) run in FP32
  between two Casts; so does every float node computed from a tensor in ``keep_fp32_after`` (default ``logits``:
  the head's resize and argmax), as one FP32 island without casts inside;
- graph inputs and outputs keep their types (a Cast after ``pixel_values``, one before a float output).

The model is moved to opset 19 first with ONNX's version converter. It still runs in ONNX Runtime (which inserts
float32 casts for CPU kernels without FP16), so its accuracy is measured here like any other artifact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdk.core.errors import InputError

KEEP_FP32_OPS = ("LayerNormalization", "Softmax")
KEEP_FP32_AFTER = ("logits",)  # the head: the logits' resize and argmax (class ids decided at FP32)
FP16_OPSET = 19  # QuantizeLinear/DequantizeLinear with float16 scales
SHAPE_OPS = ("Shape", "Size")
# inputs that stay as they are whatever the data type: Resize roi and scales (float32 by the ONNX spec)
UNTYPED_INPUTS = {"Resize": (1, 2)}


def _elem_types(model: Any) -> dict[str, int]:
    g = model.graph
    types = {t.name: t.data_type for t in g.initializer}
    for vi in (*g.input, *g.output, *g.value_info):
        types[vi.name] = vi.type.tensor_type.elem_type
    return types


def float_parts_to_fp16(model: Any, *, keep_fp32_ops: tuple[str, ...] = KEEP_FP32_OPS,
                        keep_fp32_after: tuple[str, ...] = KEEP_FP32_AFTER) -> tuple[Any, dict]:
    """(new ModelProto, record of what changed) for a Q/DQ (or plain) FP32 model; see the module docstring."""
    import onnx

    model = onnx.shape_inference.infer_shapes(_at_fp16_opset(model))
    g = model.graph
    types = _elem_types(model)
    inits = {t.name: t for t in g.initializer}
    consumers: dict[str, list[tuple[Any, int]]] = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))
    data, data_nodes = _data_path(g, types, inits)
    blocked = _blocked(data_nodes, keep_fp32_ops, keep_fp32_after)
    edits = _Edits(record={"opset": FP16_OPSET, "kept_fp32": sorted(n.name for n in data_nodes if id(n) in blocked),
                           "initializers_fp16": 0, "casts_added": 0})
    island = {out for n in data_nodes if id(n) in blocked for out in n.output}  # FP32 tensors of blocked nodes
    fp32_name: dict[str, str] = {}  # a blocked node's output -> the name its FP32 value has after renaming
    converted: dict[str, str] = {}  # float32 initializer/constant name -> its float16 twin
    retyped: set[str] = set()  # tensors outside the data path that become float16 (weight DequantizeLinear outputs)
    outputs = {o.name for o in g.output}
    # the float parts of weight Q/DQ chains and the scales of activation Q/DQ follow their data consumer
    for node in data_nodes:
        if id(node) in blocked:
            _keep_fp32(node, edits, data=data, types=types, island=island, fp32_name=fp32_name, outputs=outputs,
                       consumers=consumers, blocked=blocked)
        else:
            _to_fp16(node, g, edits, data=data, types=types, inits=inits, converted=converted, retyped=retyped)
    _keep_io_types(g, edits, data=data, types=types, consumers=consumers, blocked=blocked)
    edits.insert_into(g)
    read = {name for node in g.node for name in node.input} | outputs
    unused = [t for t in g.initializer if t.name not in read]  # the float32 originals of the twins
    for t in unused:
        g.initializer.remove(t)
    kept = [vi for vi in g.value_info if vi.name not in data and vi.name not in retyped]
    del g.value_info[:]
    g.value_info.extend(kept)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model, edits.record


def _at_fp16_opset(model: Any) -> Any:
    """``model`` at ``FP16_OPSET`` (ONNX's version converter from an older opset; a newer one is refused)."""
    from onnx import version_converter

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset > FP16_OPSET:
        raise InputError(f"model opset: expected <= {FP16_OPSET} (the FP16 rewrite targets opset {FP16_OPSET}), got "
                         f"{opset}")
    return version_converter.convert_version(model, FP16_OPSET) if opset < FP16_OPSET else model


def _data_path(g: Any, types: dict[str, int], inits: dict) -> tuple[set[str], list[Any]]:
    """(the data path's tensors, its nodes in graph order): float tensors from the float graph inputs, through every
    node but Shape/Size (Q's int8 outputs count as data too, so the DequantizeLinear after them is a data node)."""
    from onnx import TensorProto

    data = {i.name for i in g.input if types.get(i.name) == TensorProto.FLOAT and i.name not in inits}
    data_nodes = []
    for node in g.node:  # ONNX graphs are topologically sorted
        if node.op_type in SHAPE_OPS or not any(name in data for name in node.input):
            continue
        data_nodes.append(node)
        for out in node.output:
            if types.get(out) == TensorProto.FLOAT or node.op_type == "QuantizeLinear":
                data.add(out)
    return data, data_nodes


def _blocked(data_nodes: list[Any], keep_fp32_ops: tuple[str, ...], keep_fp32_after: tuple[str, ...]) -> set[int]:
    """id() of the data nodes that stay FP32: ``keep_fp32_ops`` and every float node computed from
    ``keep_fp32_after``."""
    blocked = {id(n) for n in data_nodes if n.op_type in keep_fp32_ops}
    downstream = set(keep_fp32_after)
    for node in data_nodes:  # topological order
        if any(name in downstream for name in node.input):
            blocked.add(id(node))
            downstream.update(node.output)
    return blocked


@dataclass
class _Edits:
    """The Casts to insert before and after existing nodes (by ``id(node)``, in the order made) and the record of
    what changed."""

    record: dict[str, Any]
    before: dict[int, list[Any]] = field(default_factory=dict)
    after: dict[int, list[Any]] = field(default_factory=dict)

    def cast(self, src: str, dst: str, to: int, node: Any, *, after: bool = False) -> None:
        from onnx import helper

        where = self.after if after else self.before
        where.setdefault(id(node), []).append(helper.make_node("Cast", [src], [dst], to=to, name=f"{dst}/segedge_cast"))
        self.record["casts_added"] += 1

    def insert_into(self, g: Any) -> None:
        order = []
        for node in g.node:
            order += self.before.get(id(node), []) + [node] + self.after.get(id(node), [])
        del g.node[:]
        g.node.extend(order)


def _keep_fp32(node: Any, edits: _Edits, *, data: set[str], types: dict[str, int], island: set[str],
               fp32_name: dict[str, str], outputs: set[str], consumers: dict, blocked: set[int]) -> None:
    """A blocked node: FP32 inputs (a Cast from the FP16 data path, none from inside the island) and FP16 copies of
    its outputs for the FP16 nodes that read them; a graph output keeps its float32 value."""
    from onnx import TensorProto

    for i, name in enumerate(node.input):
        if name in island:  # from another blocked node: FP32 already, no cast inside an island
            node.input[i] = fp32_name.get(name, name)
        elif name in data and types.get(name) == TensorProto.FLOAT:
            node.input[i] = f"{name}_fp32_for_{node.name or node.op_type}"
            edits.cast(name, node.input[i], TensorProto.FLOAT, node)
    for j, out in enumerate(node.output):
        if out not in data:
            continue
        if out in outputs:  # a graph output keeps its float32 value
            if consumers.get(out):
                raise InputError(f"{out}: a graph output of {node.op_type} that other nodes read too; "
                                 "expected it to be read by nothing else. Keep the model FP32.")
            continue
        if all(id(c) in blocked for c, _ in consumers.get(out, [])):
            continue  # read only inside the island: stays FP32
        node.output[j] = fp32_name[out] = f"{out}_fp32"
        edits.cast(node.output[j], out, TensorProto.FLOAT16, node, after=True)


def _to_fp16(node: Any, g: Any, edits: _Edits, *, data: set[str], types: dict[str, int], inits: dict,
             converted: dict[str, str], retyped: set[str]) -> None:
    """A data node that turns FP16: the float32 weights, scales and constants it reads get FP16 twins (a weight
    Q/DQ chain is retyped in place), and a Cast to float32 becomes one to float16."""
    from onnx import TensorProto, numpy_helper

    skip = UNTYPED_INPUTS.get(node.op_type, ())
    for i, name in enumerate(node.input):
        if not name or i in skip or name in data or types.get(name) != TensorProto.FLOAT:
            continue
        if _weight_chain_fp16(g, name, inits, converted, edits.record):
            retyped.add(name)
            continue
        if name not in converted:
            twin = f"{name}_fp16"
            if name in inits:
                arr = numpy_helper.to_array(inits[name])
                g.initializer.append(numpy_helper.from_array(arr.astype(np.float16), twin))
                edits.record["initializers_fp16"] += 1
            else:
                edits.cast(name, twin, TensorProto.FLOAT16, node)
            converted[name] = twin
        node.input[i] = converted[name]
    if node.op_type == "Cast":
        for a in node.attribute:
            if a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16


def _keep_io_types(g: Any, edits: _Edits, *, data: set[str], types: dict[str, int], consumers: dict,
                   blocked: set[int]) -> None:
    """Graph inputs and outputs keep their types: a Cast to FP16 after each float input (first in the graph), one
    back to float32 before each float output an FP16 node makes."""
    from onnx import TensorProto, helper

    for inp in g.input:
        if inp.name in data and types.get(inp.name) == TensorProto.FLOAT:
            twin = f"{inp.name}_fp16"
            for node, i in consumers.get(inp.name, []):
                if id(node) not in blocked:
                    node.input[i] = twin
            g.node.insert(0, helper.make_node("Cast", [inp.name], [twin], to=TensorProto.FLOAT16,
                                              name=f"{twin}/segedge_cast"))
            edits.record["casts_added"] += 1
    for out in g.output:
        if out.name in data and types.get(out.name) == TensorProto.FLOAT:
            producer = next(n for n in g.node if out.name in n.output)
            if id(producer) in blocked:
                continue  # already float32 there (the Cast back to FP16 feeds only the other consumers)
            _rename(g, out.name, f"{out.name}_fp16")
            edits.cast(f"{out.name}_fp16", out.name, TensorProto.FLOAT, producer, after=True)


def _rename(g: Any, old: str, new: str) -> None:
    """Rename a tensor's producer output and every consumer input (not graph outputs)."""
    for node in g.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]


def _weight_chain_fp16(g: Any, name: str, inits: dict, converted: dict, record: dict[str, Any]) -> bool:
    """A weight's DequantizeLinear (output ``name``, kept) made to yield float16: its scale becomes a float16 twin,
    and in TensorRT's weight form ``float init -> QuantizeLinear -> DequantizeLinear`` the float weight too. Also
    the form with int8 weights stored (``int8 init -> DequantizeLinear``). False when ``name`` is no such chain."""
    from onnx import TensorProto, numpy_helper

    dq = next((n for n in g.node if name in n.output and n.op_type == "DequantizeLinear"), None)
    if dq is None:
        return False
    q = next((n for n in g.node if dq.input[0] in n.output and n.op_type == "QuantizeLinear"), None)
    if q is not None and q.input[0] in inits:
        targets = [(q, 0), (q, 1), (dq, 1)]
    elif q is None and dq.input[0] in inits:
        targets = [(dq, 1)]
    else:
        return False
    if not all(n.input[i] in converted or (n.input[i] in inits and inits[n.input[i]].data_type == TensorProto.FLOAT)
               for n, i in targets):
        return False
    for node, index in targets:
        src = node.input[index]
        if src in converted:  # a scale shared by Q and DQ, already converted
            node.input[index] = converted[src]
            continue
        twin = f"{src}_fp16"
        g.initializer.append(numpy_helper.from_array(numpy_helper.to_array(inits[src]).astype(np.float16), twin))
        converted[src] = twin
        record["initializers_fp16"] += 1
        node.input[index] = twin
    return True
