"""ONNX artifact -> OpenVINO IR artifact (``model.xml`` + ``model.bin`` + ``model.json``), with a parity check
against ONNX Runtime on the ONNX artifact.

The IR is converted from the exported ONNX (``ov.convert_model`` on ``model.onnx``), not from the torch module:
converting the module directly gave a model 45-55% slower on this CPU (its traced graph keeps the tokens <-> map
reshapes and the unfolded decoder that the ONNX export has already simplified).

``size_hw`` reshapes ``pixel_values`` to a static (1, 3, h, w) (``output_size`` stays as it is: the mask is still
made at any image size). A static shape lets OpenVINO plan memory once, and INT8 needs it (see
``calibration.quantize_openvino``); ``OpenVINORuntime`` runs a batch through a static model one image at a time.
Weights are stored in FP32 unless ``compress_to_fp16``: FP16 weights halve the file, and CPUs decompress them at
load time (the inference precision is chosen at run time, see ``runtimes.openvino``).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from sdk.core.errors import ExportError, InputError, OutputError, require
from sdk.core.manifest import MANIFEST_NAME, Manifest, TensorInfo, model_feeds, read_manifest, require_portable_graph
from sdk.core.preprocess import PreprocessSpec, check_size_hw
from sdk.core.result import pixel_agreement
from sdk.core.staging import check_output_folder, repoint, staged_folder

MODEL_XML = "model.xml"
ONNX_SUBDIR = "onnx-fp32"  # export_ir from a checkpoint: the ONNX artifact it converts, kept inside
# parity of the IR (run with the f32 hint) against ONNX Runtime on the ONNX artifact
LOGIT_ATOL = {"fp32": 1e-3, "fp16": 5e-2}
MASK_AGREEMENT_MIN = {"fp32": 0.999, "fp16": 0.99}


def read_onnx_artifact(onnx_artifact: str | Path, size_hw: tuple[int, int] | None = None):
    """(ov.Model, Manifest) of an FP32 ONNX artifact, with ``pixel_values`` reshaped to (1, 3, h, w) if size_hw."""
    ov = require("openvino")
    src = Path(onnx_artifact)
    manifest = read_manifest(src)
    if manifest.format != "onnx" or manifest.precision != "fp32":
        raise InputError(f"artifact {src}: expected an FP32 ONNX artifact (made by segedge export), got "
                         f"{manifest.format} {manifest.precision}")
    require_portable_graph(manifest, what=f"artifact {src}", reader="OpenVINO does not read", error=InputError,
                           fix="Convert a portable export: segedge export CHECKPOINT --graph portable (the default), "
                               "or pass the checkpoint itself.")
    model = ov.convert_model(str(src / manifest.model_file))
    if size_hw is not None:
        h, w = check_size_hw(size_hw)
        shapes = {}
        for port in model.inputs:
            name = port.get_any_name()
            shapes[name] = ov.PartialShape([1, 3, h, w]) if name == "pixel_values" else port.get_partial_shape()
        try:
            model.reshape(shapes)
        except RuntimeError as exc:
            raise ExportError(f"size_hw {size_hw}: OpenVINO cannot reshape the model to (1, 3, {h}, {w}) "
                              f"({str(exc).strip().splitlines()[0][:200]})") from None
    return model, manifest


def static_manifest(manifest: Manifest, size_hw: tuple[int, int] | None) -> tuple[PreprocessSpec, list[TensorInfo]]:
    """The preprocessing spec and input list of an artifact reshaped to ``size_hw`` (unchanged if None)."""
    if size_hw is None:
        return manifest.preprocess, list(manifest.inputs)
    h, w = check_size_hw(size_hw)
    spec = dataclasses.replace(manifest.preprocess, size_hw=(h, w))
    inputs = [TensorInfo(name=t.name, dtype=t.dtype, shape=["batch", 3, h, w]) if t.name == "pixel_values" else t
              for t in manifest.inputs]
    return spec, inputs


def probe_parity(ir_model_path: Path, onnx_artifact: Path, manifest: Manifest, size_hw: tuple[int, int] | None,
                 *, precision: str = "f32") -> dict:
    """Run the IR (with the ``precision`` hint) and ONNX Runtime on a seeded probe input; compare.

    Logits head: max |logit difference|. Mask head: the fraction of mask pixels that agree (at an output size
    unlike the input size, which catches axis mix-ups)."""
    ov = require("openvino")
    ort = require("onnxruntime")
    import openvino.properties.hint as hints

    probe_hw = size_hw or manifest.preprocess.size_hw or (256, 320)
    x = np.random.default_rng(0).standard_normal((1, 3, *probe_hw)).astype(np.float32)
    feeds = model_feeds(manifest, x, (probe_hw[0] + 37, probe_hw[1] - 23))
    compiled = ov.Core().compile_model(str(ir_model_path), "CPU", {hints.inference_precision: precision})
    got = {p.get_any_name(): v for p, v in compiled.create_infer_request().infer(feeds).items()}
    session = ort.InferenceSession(str(onnx_artifact / manifest.model_file), providers=["CPUExecutionProvider"])
    name = manifest.outputs[0].name
    ref = session.run([name], feeds)[0]
    out: dict = {"probe_shape": list(x.shape), "openvino_hint": precision}
    if manifest.head == "mask":
        out["openvino_vs_onnxruntime_mask_agreement"] = pixel_agreement(got[name], ref)
    else:
        out["openvino_vs_onnxruntime_max_abs_logit"] = float(np.abs(got[name] - ref).max())
    return out


def _versions(manifest: Manifest, ov) -> dict:
    return {**manifest.versions, "openvino": ov.__version__.split("-")[0]}


def export_openvino(onnx_artifact: str | Path, output: str | Path, *, size_hw: tuple[int, int] | None = None,
                    compress_to_fp16: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """FP32 ONNX artifact folder -> OpenVINO IR artifact folder (``model.xml``/``.bin`` + ``model.json``).

    size_hw: static network input (height, width), recorded in the preprocessing spec; None keeps the ONNX
    artifact's dynamic shape. compress_to_fp16: store weights as FP16 (precision "fp16" in the manifest).
    output: written whole (``sdk.core.staging``): an earlier artifact there is replaced only once the new one is
    complete (a full disk or Ctrl-C leaves it as it was), and a folder holding other files is refused unless
    ``overwrite``.
    Raises ExportError if the IR, run with the f32 hint, disagrees with ONNX Runtime on the probe input.
    """
    require("openvino")
    src, out = Path(onnx_artifact), Path(output)
    if out.resolve() == src.resolve():
        raise InputError(f"output: expected a folder other than the ONNX artifact {src} (both have model.json)")
    with staged_folder(out, overwrite=overwrite, sources=(src,)) as stage:
        write_ir(src, stage, size_hw=size_hw, compress_to_fp16=compress_to_fp16, progress=progress)
    return out


def save_ir(ov, model, path: Path, *, compress_to_fp16: bool) -> None:
    """``ov.save_model`` with its raw errors ("iostream error", "Can't open bin file") made one line that names the
    folder and the likely cause (a full disk, a read-only folder)."""
    try:
        ov.save_model(model, str(path), compress_to_fp16=compress_to_fp16)
    except (RuntimeError, OSError) as exc:
        detail = (str(exc).strip().splitlines() or [""])[-1][:160]
        raise OutputError(f"output {path.parent}: the OpenVINO IR could not be written ({detail}); is the disk full "
                          "or the folder read-only? Free some space or pick another --output") from None


def write_ir(src: Path, out: Path, *, size_hw: tuple[int, int] | None = None, compress_to_fp16: bool = False,
             progress: bool = True) -> Path:
    """``export_openvino``'s work, written straight into ``out`` (a staging folder: callers stage it)."""
    ov = require("openvino")
    from tqdm import tqdm

    steps = tqdm(total=3, desc="openvino", unit="step", disable=not progress)
    t0 = time.perf_counter()
    steps.set_postfix_str("convert")
    model, manifest = read_onnx_artifact(src, size_hw)
    steps.update()

    steps.set_postfix_str("save + parity")
    out.mkdir(parents=True, exist_ok=True)
    save_ir(ov, model, out / MODEL_XML, compress_to_fp16=compress_to_fp16)
    precision = "fp16" if compress_to_fp16 else "fp32"
    parity = probe_parity(out / MODEL_XML, src, manifest, size_hw)
    key = "openvino_vs_onnxruntime_mask_agreement" if manifest.head == "mask" else \
        "openvino_vs_onnxruntime_max_abs_logit"
    value = parity[key]
    bad = value < MASK_AGREEMENT_MIN[precision] if manifest.head == "mask" else not value <= LOGIT_ATOL[precision]
    if bad:
        limit = (f">= {MASK_AGREEMENT_MIN[precision]:.1%}" if manifest.head == "mask"
                 else f"<= {LOGIT_ATOL[precision]:g}")
        raise ExportError(f"parity: the {precision} IR (f32 hint) vs ONNX Runtime: {key} = {value:.6g}, expected "
                          f"{limit}. Report the model; the ONNX artifact still runs with runtime='onnxruntime'.")
    steps.update()

    steps.set_postfix_str("write manifest")
    spec, inputs = static_manifest(manifest, size_hw)
    result = dataclasses.replace(
        manifest, format="openvino", model_file=MODEL_XML, precision=precision, preprocess=spec, inputs=inputs,
        versions=_versions(manifest, ov), parity={**manifest.parity, **parity},
        extra={**manifest.extra, "openvino": {
            "version": ov.__version__.split("-")[0], "static_shape": [1, 3, *check_size_hw(size_hw)] if size_hw else None,
            "compress_to_fp16": compress_to_fp16, "converted_from": str(src),
            "seconds": round(time.perf_counter() - t0, 2)}},
    )
    result.write(out)
    steps.update()
    steps.close()
    return out


def export_ir(source: str | Path, output: str | Path, *, precision: str = "fp32",
              size_hw: tuple[int, int] | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """``source``: a checkpoint (any supported layout) or an FP32 portable ONNX artifact folder. precision: "fp32"
    or "fp16" (weights stored as FP16). size_hw: a static (height, width) network input; None keeps the dynamic
    shape. The output is written whole (``sdk.core.staging``; a folder of other files needs ``overwrite``).
    Returns the IR artifact folder. From a checkpoint the portable ONNX artifact is exported first, into
    ``output/onnx-fp32`` (kept: the IR's parity is checked against it, and it runs anywhere ONNX Runtime does)."""
    if precision not in ("fp32", "fp16"):
        raise InputError(f"--precision: expected fp32 or fp16, got {precision!r}. For INT8 use segedge quantize "
                         "--backend openvino")
    src, out = Path(source), Path(output)
    fp16 = precision == "fp16"
    if (src / MANIFEST_NAME).is_file():
        return export_openvino(src, out, size_hw=size_hw, compress_to_fp16=fp16, overwrite=overwrite,
                               progress=progress)
    from converters.onnx_export import export_onnx

    check_output_folder(out, overwrite=overwrite, sources=(src,))
    with staged_folder(out, overwrite=overwrite, sources=(src,)) as stage:  # the ONNX artifact inside, both whole
        onnx_dir = export_onnx(src, stage / ONNX_SUBDIR, graph="portable", progress=progress)
        write_ir(onnx_dir, stage, size_hw=size_hw, compress_to_fp16=fp16, progress=progress)
        repoint(stage, stage, out.resolve())
    return out
