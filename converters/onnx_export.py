"""Checkpoint -> ONNX artifact (``model.onnx`` + ``model.json``), with a parity check against PyTorch.

The graph is traced from ``converters.folded.ExportSegFormer`` (the decoder's fuse layer folded into the per-stage
Linears: same function, about half the FLOPs) and checked against the original module.
Input ``pixel_values`` (N, 3, H, W) float32 with dynamic N/H/W, opset >= 17 (real LayerNormalization).
Graphs (``graph=``): "portable" (default; standard ops at opset 17, what OpenVINO and TensorRT 8.6+ read) or
"onnxruntime" (opset 20; the encoder in ``converters.ort_graph``'s form: ONNX Runtime's fused MultiHeadAttention,
Mix-FFN as convolutions, NHWC-friendly reshapes -- faster in ONNX Runtime, FP32 and above all INT8, and only there).
Heads (see ``sdk.core.manifest.Manifest``):
- ``logits``: output ``logits`` (N, K, H/4, W/4) float32.
- ``mask`` (default): a second input ``output_size`` (int64 [2], the image's (H, W)) and output ``mask`` (N, H, W)
  uint8 class ids (int32 above 256 classes), so no (N, K, H, W) float tensor ever leaves the runtime.
  ``upsample="exact"``: bilinear logits -> output size, argmax (what transformers' post-processing does).
  ``upsample="fast"``: bilinear logits -> network input size, argmax, nearest -> output size. Cheaper when the
  network runs below the image's resolution (e.g. 512x1024 for 1024x2048 frames).
  ``upsample="refine"`` (default): the exact mask at close to a nearest upsampling's cost. The graph returns
  ``logits`` (N, K, H/4, W/4) float32 and ``argmax`` (N, H/4, W/4) uint8 (int32 above 256 classes) and the host
  interpolates only the cells where neighbouring argmax classes differ (``sdk.core.postprocess.refine_mask``);
  the manifest's head is "refine". On the host because the work is data-dependent and ragged (which pixels,
  which candidate classes): ONNX would need NonZero/GatherND/ScatterND chains that every runtime runs slower.
"""
from __future__ import annotations

import dataclasses
import platform
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sdk.core.errors import ExportError, require
from sdk.core.manifest import GRAPHS, HEADS, UPSAMPLE_MODES, Manifest, TensorInfo
from sdk.core.result import pixel_agreement
from sdk.core.staging import check_output_folder, staged_folder
from sdk.core.preprocess import MAX_INPUT_PIXELS, PreprocessSpec

MIN_OPSET = 17
DEFAULT_OPSET = {"portable": 17, "onnxruntime": 20}


def _mask_dtype(num_classes: int) -> tuple[int, str]:
    from onnx import TensorProto

    return (TensorProto.UINT8, "uint8") if num_classes <= 256 else (TensorProto.INT32, "int32")


def append_mask_head(model, num_classes: int, upsample: str):
    """Append resize + argmax to an exported logits graph (in place); returns the ModelProto. For "refine": keep
    the logits output and add ``argmax`` at the logits' resolution (via float, which TensorRT 8.x casts to uint8)."""
    from onnx import TensorProto, helper

    g = model.graph
    logits = g.output[0].name
    pix = g.input[0].name
    onnx_dtype, _ = _mask_dtype(num_classes)
    if upsample == "refine":
        g.node.extend([helper.make_node("ArgMax", [logits], ["head_argmax"], axis=1, keepdims=0),
                       helper.make_node("Cast", ["head_argmax"], ["head_argmax_float"], to=TensorProto.FLOAT),
                       helper.make_node("Cast", ["head_argmax_float"], ["argmax"], to=onnx_dtype)])
        g.output.append(helper.make_tensor_value_info("argmax", onnx_dtype, ["batch", "height_4", "width_4"]))
        return model
    g.input.append(helper.make_tensor_value_info("output_size", TensorProto.INT64, [2]))
    for value in ((0, 2) if upsample == "exact" else (0, 1, 2, 4)):
        g.initializer.append(helper.make_tensor(f"head_{value}", TensorProto.INT64, [1], [value]))
    linear = dict(mode="linear", coordinate_transformation_mode="half_pixel")
    nodes = [
        helper.make_node("Shape", [logits], ["head_logits_shape"]),
        helper.make_node("Slice", ["head_logits_shape", "head_0", "head_2"], ["head_nk"]),
    ]
    if upsample == "exact":
        nodes += [
            helper.make_node("Concat", ["head_nk", "output_size"], ["head_sizes"], axis=0),
            helper.make_node("Resize", [logits, "", "", "head_sizes"], ["head_up"], **linear),
            helper.make_node("ArgMax", ["head_up"], ["head_argmax"], axis=1, keepdims=0),
            helper.make_node("Cast", ["head_argmax"], ["mask"], to=onnx_dtype),
        ]
    else:
        nodes += [
            helper.make_node("Shape", [pix], ["head_pix_shape"]),
            helper.make_node("Slice", ["head_pix_shape", "head_2", "head_4"], ["head_in_hw"]),
            helper.make_node("Concat", ["head_nk", "head_in_hw"], ["head_sizes"], axis=0),
            helper.make_node("Resize", [logits, "", "", "head_sizes"], ["head_up"], **linear),
            helper.make_node("ArgMax", ["head_up"], ["head_argmax"], axis=1, keepdims=1),
            helper.make_node("Cast", ["head_argmax"], ["head_small"], to=onnx_dtype),
            helper.make_node("Slice", ["head_logits_shape", "head_0", "head_1"], ["head_n"]),
            helper.make_node("Concat", ["head_n", "head_1", "output_size"], ["head_out_sizes"], axis=0),
            helper.make_node("Resize", ["head_small", "", "", "head_out_sizes"], ["head_mask4"], mode="nearest",
                             coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
            helper.make_node("Squeeze", ["head_mask4", "head_1"], ["mask"]),
        ]
    g.node.extend(nodes)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("mask", onnx_dtype, ["batch", "out_height", "out_width"]))
    return model


def max_abs_logit_diff(got: np.ndarray, ref: np.ndarray, shape) -> float:
    """max |got - ref|, refusing non-finite logits on either side: NaN would compare False with every tolerance
    (``max(worst, nan)`` keeps ``worst``) and argmax of NaN is class 0 everywhere, a silently wrong artifact."""
    for name, arr in (("PyTorch", ref), ("ONNX Runtime", got)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ExportError(f"parity: {name} gives {bad} non-finite logits (NaN/inf) of {np.size(arr)} for an input "
                              f"of shape {list(shape)}; expected finite logits. The weights overflow in float32 "
                              "(check the checkpoint for huge or non-finite values) or the graph is broken.")
    diff = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())
    if not np.isfinite(diff):
        raise ExportError(f"parity: the logit difference is not finite ({diff}) for input shape {list(shape)}")
    return diff


def logit_parity(max_abs: float, scale: float, *, atol: float = 1e-4, rtol: float = 1e-5) -> tuple[bool, dict]:
    """Does ONNX Runtime match PyTorch? ``max_abs``: the largest |logit difference|; ``scale``: the largest
    |logit|. Float32 rounding grows with the values, so the tolerance is ``atol + rtol * scale`` (numpy's
    ``allclose`` rule): logits in the hundreds may differ by 1e-4 and still agree to 1e-6 relative. Returns (ok,
    the manifest's parity record: the absolute and the relative difference and the tolerance used)."""
    tolerance = atol + rtol * scale
    return max_abs <= tolerance, {"onnxruntime_vs_torch_max_abs_logit": max_abs,
                                  "onnxruntime_vs_torch_rel_logit": max_abs / scale if scale > 0 else 0.0,
                                  "max_abs_logit": scale, "parity_tolerance": tolerance}


def _torch_reference_mask(logits: np.ndarray, out_hw: tuple[int, int], upsample: str, in_hw: tuple[int, int]):
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(logits)
    if upsample in ("exact", "refine"):
        return F.interpolate(t, size=out_hw, mode="bilinear", align_corners=False).argmax(1).numpy()
    small = F.interpolate(t, size=in_hw, mode="bilinear", align_corners=False).argmax(1, keepdim=True).float()
    return F.interpolate(small, size=out_hw, mode="nearest")[:, 0].long().numpy()


def export_onnx(
    checkpoint: str | Path,
    output: str | Path,
    *,
    size_hw: tuple[int, int] | None = None,
    opset: int | None = None,
    graph: str = "portable",
    head: str = "mask",
    upsample: str | None = None,
    class_names: list[str] | None = None,
    aspect: str = "stretch",
    layer_norm_eps: float | None = None,
    parity_atol: float = 1e-4,
    parity_rtol: float = 1e-5,
    token_merge: str | None = None,
    max_input_pixels: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Export a SegFormer checkpoint (any supported layout) to an ONNX artifact folder; returns the folder.

    size_hw: network input (height, width) recorded in the preprocessing spec; None keeps the checkpoint's own
    (for CamVid-style models: the image's native size). The graph itself accepts any size either way.
    opset: None picks 17 for graph="portable" and 20 (ONNX's Gelu op) for graph="onnxruntime".
    class_names, layer_norm_eps: see ``converters.checkpoints.load_checkpoint``.
    aspect: "stretch" (default), "letterbox" or "pad" (see ``sdk.core.preprocess``), recorded in the spec.
    token_merge: "none" (default), "2x2" or "2x2:1+2+3+4" (``converters.token_merge``): 2x2 query merging in
    those stages; parity is then checked against the merged PyTorch model, and the agreement with the unmerged
    one on the probes is recorded (``parity.token_merge_vs_unmerged``).
    max_input_pixels: the largest network input (h * w) a ``Segmenter`` call may run on this artifact, recorded in
    ``extra.max_input_pixels`` (None: the SDK's default, ``sdk.core.preprocess.MAX_INPUT_PIXELS``); a ``size_hw``
    above the limit is an ExportError, as every frame would be refused.
    output: written whole (``sdk.core.staging``): an earlier artifact there is replaced only once the new one is
    complete, and a folder holding other files is refused unless ``overwrite``.
    Raises ExportError if ONNX Runtime's logits differ from PyTorch's by more than ``parity_atol + parity_rtol *
    max|logit|`` (the tolerance follows the logits' scale: see ``logit_parity``).
    """
    opset, upsample = _check_options(graph, opset, head, upsample)
    _check_input_limit(size_hw, max_input_pixels)
    check_output_folder(output, overwrite=overwrite, sources=(checkpoint,))
    require("torch")  # each missing dependency's message before any work
    onnx = require("onnx")
    require("onnxruntime")
    from tqdm import tqdm

    from converters.checkpoints import load_checkpoint
    from converters.token_merge import export_modules, merge_summary
    from converters.token_merge_spec import parse_token_merge

    out = Path(output)
    steps = tqdm(total=5, desc="export", unit="step", disable=not progress)
    t0 = time.perf_counter()
    steps.set_postfix_str("load checkpoint")
    merge = parse_token_merge(token_merge)
    ck = load_checkpoint(checkpoint, class_names=class_names, layer_norm_eps=layer_norm_eps)
    net, reference = export_modules(ck.model, graph, merge)
    spec = dataclasses.replace(ck.preprocess, size_hw=size_hw or ck.preprocess.size_hw, aspect=aspect)
    steps.update()

    model, parity = _checked_graph(net, reference, ck.model, merge=merge, num_classes=ck.config.num_classes,
                                   probe_hw=spec.size_hw or (256, 320), opset=opset, head=head, upsample=upsample,
                                   parity_atol=parity_atol, parity_rtol=parity_rtol, steps=steps)

    steps.set_postfix_str("write artifact")
    with staged_folder(out, overwrite=overwrite, sources=(checkpoint,)) as stage:  # moved in whole once written
        model.producer_name = "segedge"
        onnx.save(model, str(stage / "model.onnx"))
        extra = {"export_seconds": round(time.perf_counter() - t0, 2),
                 **({"max_input_pixels": int(max_input_pixels)} if max_input_pixels is not None else {}),
                 **({"token_merge": merge_summary(merge, ck.config)} if merge.enabled else {})}
        _manifest(ck, spec, graph=graph, head=head, upsample=upsample, opset=opset, parity=parity,
                  extra=extra).write(stage)
    steps.update()
    steps.close()
    return out


def _checked_graph(net: Any, reference: Any, unmerged: Any, *, merge: Any, num_classes: int,
                   probe_hw: tuple[int, int], opset: int, head: str, upsample: str, parity_atol: float,
                   parity_rtol: float, steps: Any) -> tuple[Any, dict]:
    """(ONNX model, parity record): ``net`` traced to logits and checked against ``reference`` (PyTorch) on random
    probes (with token merging also against the ``unmerged`` model), then, for head="mask", the mask head appended
    and checked. Three of ``steps``."""
    from converters.token_merge import agreement_with_unmerged

    steps.set_postfix_str("trace to ONNX")
    rng = np.random.default_rng(0)
    probe = rng.standard_normal((1, 3, *probe_hw)).astype(np.float32)
    model = _trace_logits(net, probe, opset)
    steps.update()

    steps.set_postfix_str("parity check")
    parity = _probe_parity(model, reference, probe_hw, rng, parity_atol, parity_rtol)
    if merge.enabled:  # on the random probes: real-frame agreement is measured by benchmarks/bench_speed_menu
        parity["token_merge_vs_unmerged"] = agreement_with_unmerged(reference, unmerged, [probe])
    steps.update()

    if head == "mask":
        steps.set_postfix_str("append mask head")
        model, parity["mask_agreement_vs_torch"] = _append_checked_head(model, num_classes, upsample, reference,
                                                                        probe)
    steps.update()
    return model, parity


def _manifest(ck: Any, spec: PreprocessSpec, *, graph: str, head: str, upsample: str, opset: int, parity: dict,
              extra: dict) -> Manifest:
    """The ONNX artifact's model.json."""
    inputs, outputs = _io_tensors(ck.config.num_classes, head, upsample)
    return Manifest(
        format="onnx", model_file="model.onnx", precision="fp32", class_names=ck.class_names,
        palette=ck.palette, preprocess=spec, inputs=inputs, outputs=outputs,
        head="refine" if upsample == "refine" else head, upsample=upsample if head == "mask" else None,
        architecture=ck.config.to_dict(),
        source={"path": str(ck.source), "sha256": ck.sha256, "layout": ck.layout}, opset=opset, graph=graph,
        versions=_versions(), parity=parity, extra=extra,
    )


def _check_options(graph: str, opset: int | None, head: str, upsample: str | None) -> tuple[int, str]:
    """The export's options checked, with their defaults filled in: (opset, upsample)."""
    if graph not in GRAPHS:
        raise ExportError(f"graph: expected one of {GRAPHS}, got {graph!r}")
    opset = DEFAULT_OPSET[graph] if opset is None else opset
    if graph == "onnxruntime" and opset < DEFAULT_OPSET["onnxruntime"]:
        raise ExportError(f"opset: graph='onnxruntime' needs opset >= 20 (ONNX's Gelu op), got {opset}. Leave "
                          "--opset out, or export graph='portable' for an older opset.")
    if opset < MIN_OPSET:
        raise ExportError(f"opset: expected >= {MIN_OPSET} (LayerNormalization is an ONNX op from 17), got {opset}")
    if head not in HEADS:
        raise ExportError(f"head: expected one of {HEADS}, got {head!r}")
    if upsample is None:
        upsample = "refine" if head == "mask" else "exact"
    if upsample not in UPSAMPLE_MODES:
        raise ExportError(f"upsample: expected one of {UPSAMPLE_MODES}, got {upsample!r}")
    if head == "logits" and upsample != "exact":
        raise ExportError(f"upsample={upsample!r} needs head='mask' (a logits head leaves upsampling to the host)")
    return opset, upsample


def _check_input_limit(size_hw: tuple[int, int] | None, max_input_pixels: int | None) -> None:
    if max_input_pixels is not None and (not isinstance(max_input_pixels, int) or isinstance(max_input_pixels, bool)
                                         or max_input_pixels < 1024):
        raise ExportError(f"max_input_pixels: expected an int >= 1024 (network input h * w), got {max_input_pixels!r}")
    limit = MAX_INPUT_PIXELS if max_input_pixels is None else max_input_pixels
    if size_hw is not None and size_hw[0] * size_hw[1] > limit:
        raise ExportError(f"size: {size_hw[0]}x{size_hw[1]} is {size_hw[0] * size_hw[1]} network pixels, over the "
                          f"limit of {limit} a Segmenter call may run (every frame would be refused). Export with "
                          f"--max-input-pixels {size_hw[0] * size_hw[1]} if the device has the memory (attention "
                          "memory grows with the square of the pixel count), or a smaller --size")


def _trace_logits(net, probe: np.ndarray, opset: int):
    """The network traced to an ONNX model with the logits output, batch, height and width dynamic."""
    onnx = require("onnx")
    torch = require("torch")

    with tempfile.TemporaryDirectory(prefix="segedge-export-") as tmp:
        logits_path = Path(tmp) / "logits.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript-based exporter: dynamic H/W export with plain ops; its deprecation notice is noise
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                net, (torch.from_numpy(probe),), str(logits_path),
                input_names=["pixel_values"],
                output_names=["logits"], opset_version=opset, dynamo=False, do_constant_folding=True,
                dynamic_axes={"pixel_values": {0: "batch", 2: "height", 3: "width"},
                              "logits": {0: "batch", 2: "height_4", 3: "width_4"}},
            )
        return onnx.load(str(logits_path))


def _probe_parity(model, reference, probe_hw: tuple[int, int], rng: np.random.Generator, atol: float,
                  rtol: float) -> dict:
    """ONNX Runtime's logits vs PyTorch's on two random probes (the network size, and a smaller batch of 2):
    the manifest's parity record. Raises ExportError past the tolerance (see ``logit_parity``)."""
    ort = require("onnxruntime")
    torch = require("torch")

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    parity: dict = {"probe_shapes": []}
    worst = 0.0
    scale = 0.0  # the largest |logit|: float32 rounding grows with it
    for shape in [(1, 3, *probe_hw), (2, 3, probe_hw[0] // 2 + 8, probe_hw[1] // 2 + 4)]:
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            ref = reference(torch.from_numpy(x)).numpy()
        got = session.run(["logits"], {"pixel_values": x})[0]
        worst = max(worst, max_abs_logit_diff(got, ref, shape))
        parity["probe_shapes"].append(list(shape))
        scale = max(scale, float(np.abs(ref).max()))
    ok, record = logit_parity(worst, scale, atol=atol, rtol=rtol)
    parity.update(record)
    if not ok:
        raise ExportError(f"parity: ONNX Runtime logits differ from PyTorch by {worst:.3g} max abs "
                          f"({record['onnxruntime_vs_torch_rel_logit']:.3g} of the largest |logit| {scale:.3g}), "
                          f"expected <= {record['parity_tolerance']:.3g} ({atol:g} + {rtol:g} x "
                          f"{scale:.3g}). Try another opset (--opset) or report the checkpoint.")
    return parity


def _io_tensors(num_classes: int, head: str, upsample: str) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The artifact's (inputs, outputs): logits; a refine head adds the low-resolution argmax; an in-graph
    exact/fast head takes the output size and returns the mask instead."""
    inputs = [TensorInfo(name="pixel_values", dtype="float32", shape=["batch", 3, "height", "width"])]
    outputs = [TensorInfo(name="logits", dtype="float32", shape=["batch", num_classes, "height_4", "width_4"])]
    if head != "mask":
        return inputs, outputs
    if upsample == "refine":
        return inputs, outputs + [TensorInfo(name="argmax", dtype=_mask_dtype(num_classes)[1],
                                             shape=["batch", "height_4", "width_4"])]
    return (inputs + [TensorInfo(name="output_size", dtype="int64", shape=[2])],
            [TensorInfo(name="mask", dtype=_mask_dtype(num_classes)[1], shape=["batch", "out_height", "out_width"])])


def _append_checked_head(model, num_classes: int, upsample: str, reference, probe: np.ndarray) -> tuple:
    """``append_mask_head`` and its check against PyTorch on the probe, at an output size unlike the input (which
    catches axis mix-ups): (model, pixel agreement). Raises ExportError below 99.9%."""
    onnx = require("onnx")
    ort = require("onnxruntime")
    torch = require("torch")

    model = append_mask_head(model, num_classes, upsample)
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    probe_hw = probe.shape[2:]
    out_hw = (probe_hw[0] + 37, probe_hw[1] - 23)
    with torch.no_grad():
        ref = _torch_reference_mask(reference(torch.from_numpy(probe)).numpy(), out_hw, upsample, probe_hw)
    if upsample == "refine":
        from sdk.core.postprocess import refine_masks

        got = refine_masks(*session.run(["logits", "argmax"], {"pixel_values": probe}), out_hw)
    else:
        got = session.run(["mask"], {"pixel_values": probe, "output_size": np.array(out_hw, np.int64)})[0]
    agreement = pixel_agreement(got, ref)
    if agreement < 0.999:
        raise ExportError(f"parity: the in-graph mask agrees with PyTorch on {agreement:.4%} of pixels, "
                          "expected >= 99.9%")
    return model, agreement


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("segedge", "torch", "onnx", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
