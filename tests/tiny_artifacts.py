"""Tiny real artifacts for the TensorRT and deployment-config tests (test code only).

``write_onnx_artifact``: a real ONNX graph shaped like segedge's export (``pixel_values`` -> stride-4 conv ->
``logits``, plus the real mask or refine head from ``converters.onnx_export.append_mask_head``), optionally with Q/DQ
nodes, and its model.json. ``write_engine_artifact``: the model.json that ``segedge build`` writes (made by the builder's
own ``engine_manifest``) beside a placeholder engine file; it serves config emission only, never engine behaviour.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from converters.tensorrt_build import engine_manifest, precision_name
from runtimes.tensorrt import ENGINE_FILE, ShapeRange
from runtimes.tensorrt_device import EngineFingerprint
from sdk.core.manifest import Manifest, TensorInfo
from sdk.core.preprocess import PreprocessSpec

ORIN = dict(tensorrt_version="10.3.0.30", gpu_name="Orin", compute_capability="8.7", platform="aarch64 L4T R36.4.0")


def tiny_logits_model(num_classes: int = 5, *, qdq: bool = False, zero_point_type: str = "int8", seed: int = 0):
    """pixel_values (N, 3, H, W) -> Conv 4x4 stride 4 -> Relu -> Conv 1x1 (the classifier) -> logits (N, K, H/4,
    W/4); dynamic N, H, W; opset 17. Two convs, like SegFormer's patch embedding and classifier, so a quantizer that
    keeps the classifier float still has a layer to quantize."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 4, 4)).astype(np.float32) * 0.3, "w1"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32) * 0.1, "b1"),
             numpy_helper.from_array(rng.standard_normal((num_classes, 8, 1, 1)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.standard_normal(num_classes).astype(np.float32), "b2")]
    nodes, conv_in = [], "pixel_values"
    if qdq:
        zp_type = {"int8": np.int8, "uint8": np.uint8}[zero_point_type]
        inits += [numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"),
                  numpy_helper.from_array(np.array(0, zp_type), "x_zero")]
        nodes += [helper.make_node("QuantizeLinear", ["pixel_values", "x_scale", "x_zero"], ["x_q"]),
                  helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"])]
        conv_in = "x_dq"
    nodes += [helper.make_node("Conv", [conv_in, "w1", "b1"], ["embed"], kernel_shape=[4, 4], strides=[4, 4],
                               name="patch_embed"),
              helper.make_node("Relu", ["embed"], ["embed_relu"]),
              helper.make_node("Conv", ["embed_relu", "w2", "b2"], ["logits"], kernel_shape=[1, 1], name="classifier")]
    graph = helper.make_graph(
        nodes, "tiny_segformer",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes, "height_4", "width_4"])],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def write_onnx_artifact(folder: Path, *, head: str = "mask", upsample: str = "exact",
                        size_hw: tuple[int, int] | None = None, num_classes: int = 5, qdq: bool = False,
                        zero_point_type: str = "int8", channel_order: str = "rgb", aspect: str = "stretch") -> Path:
    import onnx

    from converters.onnx_export import append_mask_head

    model = tiny_logits_model(num_classes, qdq=qdq, zero_point_type=zero_point_type)
    inputs = [TensorInfo(name="pixel_values", dtype="float32", shape=["batch", 3, "height", "width"])]
    outputs = [TensorInfo(name="logits", dtype="float32", shape=["batch", num_classes, "height_4", "width_4"])]
    if head == "mask":
        model = append_mask_head(model, num_classes, upsample)
        inputs.append(TensorInfo(name="output_size", dtype="int64", shape=[2]))
        outputs = [TensorInfo(name="mask", dtype="uint8", shape=["batch", "out_height", "out_width"])]
    elif head == "refine":  # the default export's head: logits + their argmax, refined on the host
        model = append_mask_head(model, num_classes, "refine")
        outputs.append(TensorInfo(name="argmax", dtype="uint8", shape=["batch", "height_4", "width_4"]))
        upsample = "refine"
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    Manifest(format="onnx", model_file="model.onnx", precision="int8" if qdq else "fp32",
             class_names=[f"class_{i}" for i in range(num_classes)], palette=None,
             preprocess=PreprocessSpec(size_hw=size_hw, channel_order=channel_order, aspect=aspect), inputs=inputs,
             outputs=outputs, head=head, upsample=upsample if head in ("mask", "refine") else None,
             architecture={"variant": "tiny"}, source={"path": "tiny", "sha256": "0" * 64, "layout": "test"},
             opset=17).write(folder)
    return folder


def engine_io(onnx_manifest: Manifest) -> list[dict]:
    """The I/O that segedge build records for this artifact: output_size becomes an int32 host shape tensor."""
    io = [{"name": "pixel_values", "input": True, "dtype": "float32", "shape": [-1, 3, -1, -1], "host": False}]
    if onnx_manifest.head == "mask":
        io.append({"name": "output_size", "input": True, "dtype": "int32", "shape": [2], "host": True})
        io.append({"name": "mask", "input": False, "dtype": "uint8", "shape": [-1, -1, -1], "host": False})
    else:
        k = onnx_manifest.num_classes
        io.append({"name": "logits", "input": False, "dtype": "float32", "shape": [-1, k, -1, -1], "host": False})
        if onnx_manifest.head == "refine":
            io.append({"name": "argmax", "input": False, "dtype": "uint8", "shape": [-1, -1, -1], "host": False})
    return io


def write_engine_artifact(folder: Path, onnx_folder: Path, *, fp16: bool = True, int8: bool = False,
                          dla_core: int | None = None, softmax: bool = False, profile: list[ShapeRange],
                          **fingerprint) -> Path:
    from sdk.core.manifest import read_manifest

    onnx_manifest = read_manifest(onnx_folder)
    fp = EngineFingerprint(**{**ORIN, **fingerprint}, dla_core=dla_core, precision=precision_name(fp16=fp16, int8=int8))
    build = {"command": f"segedge build {onnx_folder} --output {folder}", "softmax": softmax, "graph_changes": []}
    manifest = engine_manifest(onnx_manifest, onnx_sha256="0" * 64, onnx_artifact=onnx_folder, fingerprint=fp,
                               profile=profile, io=engine_io(onnx_manifest), build=build)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ENGINE_FILE).write_bytes(b"placeholder: deployment-config tests never run it")
    manifest.write(folder)
    return folder
