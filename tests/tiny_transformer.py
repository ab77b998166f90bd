"""Tiny real ONNX graphs with what SegFormer has and the conv-only tiny artifacts lack: LayerNormalization, MatMul
on tokens, Softmax (test code only; no torch).

``tiny_transformer_model``: tokens (B, N, C) in, for graph rewrites. ``write_transformer_artifact``: an image model
shaped like segedge's export -- pixel_values -> stride-4 conv -> tokens (B, HW, C) -> LayerNorm -> MatMul -> Softmax
-> MatMul -> LayerNorm -> back to (B, C, H, W) -> classifier conv -> logits, plus the real mask head -- and its
model.json, so ``segedge build`` can build it on a device (every supported TensorRT, >= 8.6, parses LayerNormalization
as one op).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sdk.core.manifest import Manifest, TensorInfo
from sdk.core.preprocess import PreprocessSpec


def _block(rng, channels: int, tokens: str, out: str, prefix: str = "/block"):
    """LayerNorm -> MatMul -> Softmax -> MatMul -> LayerNorm over ``tokens`` (B, N, C): (nodes, initializers)."""
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), f"{prefix}/ln_scale"),
             numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), f"{prefix}/ln_bias"),
             numpy_helper.from_array((rng.standard_normal((channels, channels)) / channels).astype(np.float32),
                                     f"{prefix}/w")]
    nodes = [helper.make_node("LayerNormalization", [tokens, f"{prefix}/ln_scale", f"{prefix}/ln_bias"],
                              [f"{prefix}/normed"], axis=-1, epsilon=1e-6, name=f"{prefix}/norm1/LayerNormalization"),
             helper.make_node("MatMul", [f"{prefix}/normed", f"{prefix}/w"], [f"{prefix}/scores"],
                              name=f"{prefix}/attn/MatMul"),
             helper.make_node("Softmax", [f"{prefix}/scores"], [f"{prefix}/probs"], axis=-1,
                              name=f"{prefix}/attn/Softmax"),
             helper.make_node("MatMul", [f"{prefix}/probs", f"{prefix}/w"], [f"{prefix}/mixed"],
                              name=f"{prefix}/attn/MatMul_1"),
             helper.make_node("LayerNormalization", [f"{prefix}/mixed", f"{prefix}/ln_scale"], [out], axis=-1,
                              name=f"{prefix}/norm2/LayerNormalization")]
    return nodes, inits


def tiny_transformer_model(channels: int = 8, seed: int = 0):
    """tokens (B, N, C) -> LayerNormalization -> MatMul -> Softmax -> MatMul -> LayerNormalization -> out; opset 17."""
    from onnx import TensorProto, helper

    nodes, inits = _block(np.random.default_rng(seed), channels, "tokens", "out")
    graph = helper.make_graph(
        nodes, "tiny_transformer",
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "n", channels])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "n", channels])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def tiny_segformer_model(num_classes: int = 5, channels: int = 8, seed: int = 0):
    """pixel_values (N, 3, H, W) -> logits (N, K, H/4, W/4) through one transformer block on the tokens."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = _block(rng, channels, "tokens", "tokens_out")
    inits += [numpy_helper.from_array(rng.standard_normal((channels, 3, 4, 4)).astype(np.float32) * 0.3, "embed_w"),
              numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32) * 0.1, "embed_b"),
              numpy_helper.from_array(rng.standard_normal((num_classes, channels, 1, 1)).astype(np.float32), "cls_w"),
              numpy_helper.from_array(rng.standard_normal(num_classes).astype(np.float32), "cls_b"),
              numpy_helper.from_array(np.array([0, channels, -1], np.int64), "flat_shape")]
    nodes = [helper.make_node("Conv", ["pixel_values", "embed_w", "embed_b"], ["embed"], kernel_shape=[4, 4],
                              strides=[4, 4], name="/patch_embed/Conv"),
             helper.make_node("Reshape", ["embed", "flat_shape"], ["embed_flat"], name="/patch_embed/Reshape"),
             helper.make_node("Transpose", ["embed_flat"], ["tokens"], perm=[0, 2, 1], name="/patch_embed/Transpose"),
             *nodes,
             helper.make_node("Transpose", ["tokens_out"], ["map_flat"], perm=[0, 2, 1], name="/block/Transpose"),
             helper.make_node("Shape", ["embed"], ["embed_shape"], name="/block/Shape"),
             helper.make_node("Reshape", ["map_flat", "embed_shape"], ["feature"], name="/block/Reshape"),
             helper.make_node("Conv", ["feature", "cls_w", "cls_b"], ["logits"], kernel_shape=[1, 1],
                              name="/decoder/classifier/Conv")]
    graph = helper.make_graph(
        nodes, "tiny_segformer_transformer",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes, "height_4", "width_4"])],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def write_transformer_artifact(folder: Path, *, head: str = "mask", num_classes: int = 5) -> Path:
    """``tiny_segformer_model`` as an FP32 ONNX artifact (mask head with exact upsampling, or logits)."""
    import onnx

    from converters.onnx_export import append_mask_head

    model = tiny_segformer_model(num_classes)
    inputs = [TensorInfo(name="pixel_values", dtype="float32", shape=["batch", 3, "height", "width"])]
    outputs = [TensorInfo(name="logits", dtype="float32", shape=["batch", num_classes, "height_4", "width_4"])]
    if head == "mask":
        model = append_mask_head(model, num_classes, "exact")
        inputs.append(TensorInfo(name="output_size", dtype="int64", shape=[2]))
        outputs = [TensorInfo(name="mask", dtype="uint8", shape=["batch", "out_height", "out_width"])]
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    Manifest(format="onnx", model_file="model.onnx", precision="fp32",
             class_names=[f"class_{i}" for i in range(num_classes)], palette=None, preprocess=PreprocessSpec(),
             inputs=inputs, outputs=outputs, head=head, upsample="exact" if head == "mask" else None,
             architecture={"variant": "tiny-transformer"}, source={"path": "tiny", "sha256": "0" * 64,
                                                                  "layout": "test"}, opset=17).write(folder)
    return folder
