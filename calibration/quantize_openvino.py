"""INT8 post-training quantization for OpenVINO with NNCF: FP32 ONNX artifact + calibration frames -> INT8 IR artifact.

The recipe (each choice measured on SegFormer-B0 / CamVid, ``benchmarks.bench_openvino``; the numbers are in
docs/BENCHMARKS.md, "Design notes"):

- **Static shape first.** The model is reshaped to (1, 3, h, w) before quantizing: OpenVINO then plans memory once,
  and nothing in the quantized graph depends on a resolution it was not calibrated at.
- **Depthwise convolutions stay float, always.** The Mix-FFN's 3x3 depthwise conv sits behind a (B, N, C) ->
  (B, C, H, W) reshape. NNCF quantizes a depthwise conv's input per channel and propagates that quantizer up through
  the reshape onto the fc1 output, where "channel" is axis 1 = the token axis: one range per token, baked from the
  calibration frames (so the model only runs at the calibration resolution) and wrong for every other image: mIoU
  collapses. OpenVINO's CPU plugin has no int8 depthwise kernel anyway.
- **The attention stays float** (``keep_attention_float``): Q.K^T and softmax.V have no weights; ``ov.convert_model``
  fuses them with the Softmax into one ScaledDotProductAttention op that the CPU runs as one MHA kernel; quantizing
  its inputs adds FakeQuantize ops around it.
- ``model_type="transformer"`` (NNCF's transformer scheme: LayerNorm, Softmax, GELU and residual Adds left to the
  float path, SmoothQuant on the Linears with ``smooth_quant_alpha``); symmetric ("performance") preset.
- What is quantized: the Linears (q, kv, proj, fc1, fc2), the patch-merging and spatial-reduction convs and the
  decoder's 1x1 convs + classifier (``keep_decoder_float`` to leave those float). The resize/argmax mask head is
  never quantized. Float layers run at the runtime's precision hint (bf16 by default on such CPUs).

The gain over OpenVINO's bf16 default is bounded: INT8 speeds up the Linears and dense convs only, while the
attention kernel, depthwise convs, resizes, LayerNorms and the argmax head run as before; NNCF's defaults (no model
type, nothing ignored) were no faster and lost most of the accuracy.

With ``eval_data`` ((image, label) pairs, e.g. ``calibration.datasets.CamVid``) and ``max_drop`` (mIoU points),
``nncf.quantize_with_accuracy_control`` reverts the most harmful quantized layers to float until the drop is met.
If it cannot be met, the best model NNCF found is kept, marked ``extra.accuracy_aware.max_drop_met = false`` (and
``extra.quantization.max_drop_met``) with the measured drop, and a warning says so.
Calibration frames go through ``sdk.core.preprocess.preprocess`` with the artifact's spec.
"""
from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from calibration.metrics import ConfusionMatrix
from calibration.sets import CalibrationSet
from converters.openvino_export import MODEL_XML, read_onnx_artifact, save_ir, static_manifest
from sdk.core.errors import InputError, require
from sdk.core.manifest import Manifest, model_feeds
from sdk.core.preprocess import PreprocessSpec, check_size_hw, preprocess
from sdk.core.result import pixel_agreement

log = logging.getLogger("segedge")

PRESETS = ("performance", "mixed")
MODEL_TYPES = ("transformer", None)


class AccuracyDropWarning(UserWarning):
    """quantize_openvino could not meet ``max_drop``; the best model found was kept and marked in model.json."""


def _attention_ops(model) -> list[str]:
    """Names of the attention ops: ScaledDotProductAttention (``ov.convert_model`` fuses Q.K^T, Softmax and .V into
    it) and any MatMul whose two inputs are both activations (the unfused form)."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() == "ScaledDotProductAttention":
            names.append(op.get_friendly_name())
        elif op.get_type_name() == "MatMul":
            sources = [op.input_value(i).get_node() for i in range(2)]
            if not any(_is_constant(s) for s in sources):
                names.append(op.get_friendly_name())
    return names


def _is_constant(node) -> bool:
    # weights may reach a MatMul through Convert / Transpose / Reshape of a Constant
    while node.get_type_name() in ("Convert", "Transpose", "Reshape") and node.get_input_size():
        node = node.input_value(0).get_node()
    return node.get_type_name() == "Constant"


def _ops_matching(model, patterns: Iterable[str]) -> dict[str, list[str]]:
    import re

    names = [op.get_friendly_name() for op in model.get_ordered_ops()
             if op.get_type_name() not in ("Constant", "Parameter", "Result")]
    return {p: [n for n in names if re.search(p, n)] for p in patterns}


def _feeds(image: np.ndarray, spec: PreprocessSpec, manifest: Manifest) -> dict[str, np.ndarray]:
    """NNCF's calibration transform: the inference preprocessing and feeds (letterbox/pad as ``Segmenter`` does)."""
    from sdk.core.postprocess import padded_output_hw
    from sdk.core.preprocess import layout

    hw = image.shape[:2]
    return model_feeds(manifest, preprocess(image, spec), padded_output_hw(hw, *layout(spec, hw)))


def _mask(compiled, image: np.ndarray, spec: PreprocessSpec, manifest: Manifest) -> np.ndarray:
    """(H, W) class ids of a compiled model on ``image``, through the inference path (``sdk.segmenter.infer_masks``:
    the same preprocessing and the same un-letterboxed, un-padded postprocessing as ``Segmenter``)."""
    from sdk.segmenter import infer_masks

    def infer(feeds: dict) -> dict:
        return {port.get_any_name(): np.asarray(v) for port, v in compiled(feeds).items()}

    return infer_masks(infer, manifest, [image], spec=spec, what="OpenVINO model")[0]


def _make_validation_fn(spec: PreprocessSpec, manifest: Manifest, ignore_index: int = 255):
    """NNCF's ``validation_fn(compiled_model, items) -> (mIoU over the items, [per-item mIoU])``."""
    num_classes = manifest.num_classes

    def validation_fn(compiled, items) -> tuple[float, list[float]]:
        total = ConfusionMatrix(num_classes, ignore_index)
        per_item = []
        for image, label in items:
            mask = _mask(compiled, image, spec, manifest)
            one = ConfusionMatrix(num_classes, ignore_index)
            one.update(mask, label)
            total.counts += one.counts
            per_item.append(one.miou() if np.isfinite(one.miou()) else 0.0)
        return total.miou(), per_item

    return validation_fn


def _compile_f32(model):
    ov = require("openvino")
    import openvino.properties.hint as hints

    return ov.Core().compile_model(model, "CPU", {hints.inference_precision: "f32"})


def quantize_openvino(fp32_onnx_artifact: str | Path, calib: CalibrationSet, output: str | Path, *,
                      size_hw: tuple[int, int], preset: str = "performance", model_type: str | None = "transformer",
                      smooth_quant_alpha: float | None = 0.95, keep_attention_float: bool = True,
                      keep_decoder_float: bool = False, ignored_scope: Iterable[str] | None = None,
                      subset_size: int | None = None, fast_bias_correction: bool = True,
                      eval_data: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
                      max_drop: float | None = None, max_iterations: int | None = None,
                      overflow_fix: str | None = None, progress: bool = True) -> Path:
    """FP32 ONNX artifact + calibration set -> INT8 OpenVINO IR artifact folder (static shape); returns the folder.

    size_hw: the static network input (height, width); required (INT8 is calibrated at one resolution).
    preset: "performance" (symmetric activations) or "mixed" (asymmetric). model_type: "transformer" or None.
    smooth_quant_alpha: SmoothQuant migration strength for the Linears (None: NNCF's default, -1: off).
    ignored_scope: extra regexes on OpenVINO node names (= the ONNX node names, e.g. '/encoder/stages.0/') to keep
    float; each must match a node. subset_size: calibration frames used (None: all of ``calib``).
    eval_data + max_drop (mIoU points): accuracy-controlled quantization (see the module docstring);
    max_iterations bounds how many layer groups it may revert.
    overflow_fix: NNCF's ``OverflowFix`` ("enable": 7-bit weights everywhere, for CPUs without VNNI where u8 x s8
    products saturate; "first_layer_only"; "disable"); None: NNCF's default. ``calibration.quantize`` sets it from
    the target CPU.
    """
    _check_options(overflow_fix, preset, model_type, size_hw, len(calib), eval_data is None, max_drop, subset_size)
    nncf = require("nncf")
    ov = require("openvino")

    src, out = Path(fp32_onnx_artifact), Path(output)
    if out.resolve() == src.resolve():
        raise InputError(f"output: expected a folder other than the FP32 artifact {src}")
    t0 = time.perf_counter()
    model, manifest = read_onnx_artifact(src, size_hw)
    spec, inputs = static_manifest(manifest, size_hw)

    scope, attention, patterns = _float_scope(nncf, model, keep_attention_float, keep_decoder_float, ignored_scope)
    recipe = {"preset": preset, "model_type": model_type, "smooth_quant_alpha": smooth_quant_alpha,
              "keep_attention_float": keep_attention_float, "keep_decoder_float": keep_decoder_float,
              "fast_bias_correction": fast_bias_correction, "static_shape": [1, 3, *check_size_hw(size_hw)],
              "float_always": "GroupConvolution (depthwise)", "overflow_fix": overflow_fix or "nncf default"}
    kwargs, sq = _nncf_options(nncf, preset=preset, model_type=model_type, smooth_quant_alpha=smooth_quant_alpha,
                               overflow_fix=overflow_fix, subset_size=subset_size or len(calib),
                               fast_bias_correction=fast_bias_correction, scope=scope)
    # NNCF's dataset = any iterable + a transform: the frames, through the inference preprocessing
    calib_ds = nncf.Dataset(calib.frames, lambda frame: _feeds(frame, spec, manifest))
    quantized, accuracy = _run_nncf(nncf, model, calib_ds, kwargs, sq, eval_data=eval_data, max_drop=max_drop,
                                    max_iterations=max_iterations, spec=spec, manifest=manifest, progress=progress)
    seconds = round(time.perf_counter() - t0, 1)

    out.mkdir(parents=True, exist_ok=True)
    save_ir(ov, quantized, out / MODEL_XML, compress_to_fp16=False)
    parity = {**manifest.parity, **_int8_agreement(src, out, calib, spec, manifest)}
    quant = {
        "tool": f"nncf {nncf.__version__} + openvino {ov.__version__.split('-')[0]}",
        "nncf": nncf.__version__, "openvino": ov.__version__.split("-")[0], "recipe": recipe,
        "ignored_scope": {"names": attention, "patterns": patterns, "types": ["GroupConvolution"],
                          "user_patterns": list(ignored_scope or [])},
        "calibration": {"description": calib.description, "fingerprint": calib.fingerprint, "frames": len(calib),
                        "subset_size": kwargs["subset_size"]},
        "seconds": seconds,
    }
    extra = {**manifest.extra, "openvino": {"version": quant["openvino"], "static_shape": recipe["static_shape"],
                                            "compress_to_fp16": False, "converted_from": str(src)},
             "quantization": quant}
    if accuracy is not None:
        quant["max_drop_met"] = accuracy["max_drop_met"]
        quant["measured_drop_points"] = accuracy["measured_drop_points"]
        extra["accuracy_aware"] = accuracy
    result = dataclasses.replace(
        manifest, format="openvino", model_file=MODEL_XML, precision="int8", preprocess=spec, inputs=inputs,
        versions={**manifest.versions, "openvino": quant["openvino"], "nncf": nncf.__version__}, parity=parity,
        extra=extra)
    result.write(out)
    if accuracy is not None and not accuracy["max_drop_met"]:
        _warn_drop_not_met(accuracy, max_drop, out)
    return out


def _nncf_options(nncf: Any, *, preset: str, model_type: str | None, smooth_quant_alpha: float | None,
                  overflow_fix: str | None, subset_size: int, fast_bias_correction: bool,
                  scope: Any) -> tuple[dict, dict]:
    """(nncf.quantize's keyword arguments, its advanced parameters) for the recipe."""
    sq = {} if smooth_quant_alpha is None else {"smooth_quant_alphas": nncf.AdvancedSmoothQuantParameters(
        matmul=smooth_quant_alpha)}
    if overflow_fix is not None:
        from nncf.quantization.advanced_parameters import OverflowFix

        sq["overflow_fix"] = OverflowFix(overflow_fix)
    kwargs = dict(
        preset=nncf.QuantizationPreset.PERFORMANCE if preset == "performance" else nncf.QuantizationPreset.MIXED,
        model_type=nncf.ModelType.TRANSFORMER if model_type == "transformer" else None,
        subset_size=subset_size, fast_bias_correction=fast_bias_correction, ignored_scope=scope,
    )
    return kwargs, sq


def _run_nncf(nncf: Any, model: Any, calib_ds: Any, kwargs: dict, sq: dict, *,
              eval_data: Iterable[tuple[np.ndarray, np.ndarray]] | None, max_drop: float | None,
              max_iterations: int | None, spec: PreprocessSpec, manifest: Manifest,
              progress: bool) -> tuple[Any, dict | None]:
    """(quantized model, accuracy-control record or None): plain ``nncf.quantize``, or accuracy-controlled with
    ``eval_data`` and ``max_drop``; NNCF's log quiet unless ``progress``."""
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    if not progress:
        nncf_log.setLevel(logging.ERROR)
    try:
        if eval_data is None or max_drop is None:
            quantized = nncf.quantize(model, calib_ds, advanced_parameters=nncf.AdvancedQuantizationParameters(**sq),
                                      **kwargs)
            return quantized, None
        return _with_accuracy_control(nncf, model, calib_ds, list(eval_data), spec, manifest, kwargs, sq, max_drop,
                                      max_iterations)
    finally:
        nncf_log.setLevel(level)


def _check_options(overflow_fix: str | None, preset: str, model_type: str | None, size_hw, frames: int,
                   no_eval_data: bool, max_drop: float | None, subset_size: int | None) -> None:
    """quantize_openvino's options, checked before any work."""
    if overflow_fix not in (None, "enable", "first_layer_only", "disable"):
        raise InputError(f"overflow_fix: expected None, 'enable', 'first_layer_only' or 'disable', got "
                         f"{overflow_fix!r}")
    if preset not in PRESETS:
        raise InputError(f"preset: expected one of {PRESETS}, got {preset!r}")
    if model_type not in MODEL_TYPES:
        raise InputError(f"model_type: expected one of {MODEL_TYPES}, got {model_type!r}")
    if size_hw is None:
        raise InputError("size_hw: INT8 needs a static input size (height, width), e.g. size_hw=(512, 512); the "
                         "quantized model runs at that size only (images are resized to it by the preprocessing)")
    if frames == 0:
        raise InputError("calibration set: expected at least one frame, got none. Pass a folder of images, a video "
                         "or a .txt list to calibration.sets.load_calibration_set.")
    if no_eval_data != (max_drop is None):
        raise InputError("eval_data and max_drop go together: give both for accuracy-controlled quantization, "
                         "or neither")
    if subset_size is not None and not 0 < subset_size <= frames:
        raise InputError(f"subset_size: expected 1..{frames} (the calibration set's size), got {subset_size}")


def _float_scope(nncf, model, keep_attention_float: bool, keep_decoder_float: bool,
                 ignored_scope: Iterable[str] | None) -> tuple:
    """NNCF's IgnoredScope, the attention ops and the patterns in it: (scope, attention, patterns)."""
    # what stays float: depthwise convs (always), attention matmuls (by default), the decoder (optional), the user's
    attention = _attention_ops(model) if keep_attention_float else []
    patterns = list(ignored_scope or [])
    if keep_decoder_float:
        patterns.append(r"^/decoder/")
    matched = _ops_matching(model, patterns)
    unmatched = [p for p, hits in matched.items() if not hits]
    if unmatched:
        raise InputError(f"ignored_scope: {unmatched} match no node of the model. Patterns are regexes on OpenVINO "
                         "node names (the ONNX names), e.g. '^/encoder/stages\\.0/' or '/ffn/fc2/'.")
    scope = nncf.IgnoredScope(names=attention, patterns=patterns, types=["GroupConvolution"], validate=False)
    return scope, attention, patterns


def _warn_drop_not_met(accuracy: dict, max_drop: float | None, out: Path) -> None:
    """The log line and AccuracyDropWarning (at quantize_openvino's caller) when max_drop was not met."""
    msg = (f"max_drop {max_drop} mIoU points NOT met: the best INT8 model found drops "
           f"{accuracy['measured_drop_points']:.2f} points (FP32 {100 * accuracy['fp32_miou']:.2f} -> INT8 "
           f"{100 * accuracy['int8_miou']:.2f} on {accuracy['eval_images']} images, "
           f"{len(accuracy['reverted_to_float'])} layers reverted to float). It was kept in {out} and marked "
           "extra.accuracy_aware.max_drop_met=false. Allow a larger max_drop, calibrate on more or more "
           "representative frames, or use the FP32/FP16 IR.")
    log.warning(msg)
    warnings.warn(msg, AccuracyDropWarning, stacklevel=3)


def _with_accuracy_control(nncf, model, calib_ds, eval_items: list, spec: PreprocessSpec, manifest: Manifest,
                           kwargs: dict, sq: dict, max_drop: float, max_iterations: int | None):
    """nncf.quantize_with_accuracy_control with our mIoU; returns (model, the accuracy record for model.json)."""
    if not eval_items:
        raise InputError("eval_data: expected (image, label) pairs, got none")
    validation_fn = _make_validation_fn(spec, manifest)
    val_ds = nncf.Dataset(eval_items, lambda item: _feeds(item[0], spec, manifest))
    restorer = {"num_ranking_workers": 1}
    if max_iterations is not None:
        restorer["max_num_iterations"] = max_iterations
    quantized = nncf.quantize_with_accuracy_control(
        model, calib_ds, val_ds, validation_fn, max_drop=max_drop / 100.0, drop_type=nncf.DropType.ABSOLUTE,
        advanced_quantization_parameters=nncf.AdvancedQuantizationParameters(**sq),
        advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(**restorer), **kwargs)
    # the measured drop of what is kept, with the float layers of both models in f32 (as NNCF validates)
    fp32_miou, _ = validation_fn(_compile_f32(model), eval_items)
    int8_miou, _ = validation_fn(_compile_f32(quantized), eval_items)
    drop = 100.0 * (fp32_miou - int8_miou)
    scope = kwargs["ignored_scope"]
    reverted = sorted(_quantized_layers(model, scope.names, scope.patterns) - _quantized_layers_of(quantized))
    return quantized, {
        "max_drop_points": max_drop, "measured_drop_points": round(drop, 4), "max_drop_met": drop <= max_drop,
        "fp32_miou": fp32_miou, "int8_miou": int8_miou, "eval_images": len(eval_items),
        "reverted_to_float": reverted, "max_iterations": max_iterations,
    }


def _quantized_layers_of(model) -> set[str]:
    """Names of the layers that take a FakeQuantize'd weight in a quantized model."""
    names = set()
    for op in model.get_ordered_ops():
        if op.get_type_name() in ("MatMul", "Convolution"):
            for i in range(op.get_input_size()):
                node = op.input_value(i).get_node()
                while node.get_type_name() in ("Convert", "Transpose", "Reshape", "Multiply", "Subtract"):
                    node = node.input_value(0).get_node()
                if node.get_type_name() == "FakeQuantize" or node.get_element_type().get_type_name() == "i8":
                    names.add(op.get_friendly_name())
                    break
    return names


def _quantized_layers(model, names: list[str], patterns: list[str]) -> set[str]:
    """Names of the layers with weights that the recipe quantizes (before any accuracy control)."""
    import re

    out = set()
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        if op.get_type_name() in ("MatMul", "Convolution") and name not in names \
                and not any(re.search(p, name) for p in patterns):
            if any(_is_constant(op.input_value(i).get_node()) for i in range(2)):
                out.add(name)
    return out


def _int8_agreement(fp32_artifact: Path, int8_artifact: Path, calib: CalibrationSet, spec: PreprocessSpec,
                    manifest: Manifest, frames: int = 4) -> dict:
    """Mask agreement of INT8 (at the CPU's default precision for its float parts: what ``Segmenter`` runs) vs FP32
    (the f32 hint) on a few calibration frames: a sanity record. The INT8 model under the f32 hint is not what ships,
    and on some CPUs (seen with AMX) it agrees less with FP32 than the default does."""
    ov = require("openvino")
    core = ov.Core()
    fp32 = _compile_f32(core.read_model(str(fp32_artifact / manifest.model_file)))
    int8 = core.compile_model(core.read_model(str(int8_artifact / MODEL_XML)), "CPU")
    picked = calib.frames[:: max(1, len(calib) // frames)][:frames]
    a, b = [], []
    for frame in picked:
        a.append(_mask(fp32, frame, spec, manifest))
        b.append(_mask(int8, frame, spec, manifest))
    return {"int8_vs_fp32_mask_agreement": pixel_agreement(a, b), "int8_vs_fp32_frames": len(picked),
            "int8_vs_fp32_note": "INT8 at the CPU default precision, FP32 with the f32 hint, on calibration "
                                                "frames"}


__all__ = ["quantize_openvino", "AccuracyDropWarning"]
