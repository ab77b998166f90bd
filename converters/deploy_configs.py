"""DeepStream (Gst-nvinfer) and Triton configurations from an artifact: one model.json drives every deployment.

DeepStream: a ``[property]`` config for a segmentation nvinfer (network-type=2). nvinfer feeds only the image input
and its segmentation parser takes the first output as (C, H, W) float class scores, labelling a pixel -1 unless a
score beats max(-1, segmentation-threshold). So the engine must have a logits head with Softmax appended
(``segedge export --head logits`` then ``segedge build --softmax``); other artifacts are refused with that fix.
Preprocessing maps to ``y = net-scale-factor * (x - offsets[c])``: offsets = the mean, and one scale for all
channels, so a per-channel std is approximated by its harmonic mean when the channels differ by at most
``std_tolerance`` (SegFormer's ImageNet std: 1.3%). Resize: nvinfer's filters are nearest and bilinear
(``scaling-filter``); "pil_bilinear" (transformers' antialiasing resize) and "area" become bilinear, said in the
config's header. Aspect: "stretch" -> ``maintain-aspect-ratio=0``; "letterbox" -> ``maintain-aspect-ratio=1`` and
``symmetric-padding=0`` (the image at the top-left, padded bottom/right, as segedge pads); "pad" (no resize, padded
to the stride) is refused: nvinfer always scales frames to ``infer-dims``.
``deepstream_app_config``: a deepstream-app configuration for N sources around that nvinfer config: N
``[sourceK]`` groups, ``[streammux]`` and ``[primary-gie]`` batch-size N, a ``[tiled-display]`` grid.

What comes from the manifest is written so that it cannot add keys or groups: tensor and class names are checked
where they enter (``sdk.core.manifest``: tensor names of ``[A-Za-z0-9_.:/-]``, class names one line each) and again
here; paths with control characters are refused, and Triton strings are written as quoted protobuf text.

Triton: a model repository (``<repo>/<name>/config.pbtxt``, ``1/model.plan|model.onnx|model.xml+bin``,
``labels.txt``) for the tensorrt_plan, onnxruntime_onnx and openvino backends. The mask head's ``output_size``
input has no batch dimension, so those models get ``max_batch_size: 0`` (full shapes, batch included);
logits-head models batch dynamically.
"""
from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

from runtimes.tensorrt import engine_manifest_info
from sdk.core.errors import ArtifactError, InputError
from sdk.core.manifest import TENSOR_NAME, Manifest, class_name_problem, read_manifest, resolve_artifact
from sdk.core.preprocess import STRIDE

DEEPSTREAM_CONFIG = "config_infer_primary_segformer.txt"
LABELS_FILE = "labels.txt"
# Gst-nvinfer values: network-mode 0 FP32, 1 INT8, 2 FP16; model-color-format 0 RGB, 1 BGR;
# scaling-filter = NvBufSurfTransform_Inter: 0 nearest, 1 bilinear
DS_NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2, "int8+fp16": 1}
DS_COLOR_FORMAT = {"rgb": 0, "bgr": 1}
DS_SCALING_FILTER = {"nearest": 0, "bilinear": 1, "area": 1, "pil_bilinear": 1}
# resize modes nvinfer has no filter for: said in the config's header
DS_FILTER_NOTES = {"area": "preprocessing resizes with 'area'; nvinfer has no area filter, bilinear is used",
                   "pil_bilinear": "preprocessing resizes with PIL's antialiasing bilinear (transformers'); nvinfer's "
                                   "bilinear does not antialias when shrinking, so masks may differ slightly at edges"}
DEEPSTREAM_APP_CONFIG = "deepstream_app_segformer.txt"
DEEPSTREAM_SAMPLE_URI = "file:///opt/nvidia/deepstream/deepstream/samples/streams/sample_1080p_h264.mp4"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
TRITON_TYPES = {"bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "int32": "TYPE_INT32",
                "int64": "TYPE_INT64", "float16": "TYPE_FP16", "float32": "TYPE_FP32"}
# format -> (config key, value, the file name Triton looks for in the version folder)
TRITON_BACKENDS = {"tensorrt": ("platform", "tensorrt_plan", "model.plan"),
                   "onnx": ("platform", "onnxruntime_onnx", "model.onnx"),
                   "openvino": ("backend", "openvino", "model.xml")}


def _network_hw(manifest: Manifest) -> tuple[int, int]:
    """The network input size DeepStream scales frames to: the preprocessing size, else the engine profile's opt."""
    if manifest.preprocess.size_hw is not None:
        return manifest.preprocess.size_hw
    _, profile, _ = engine_manifest_info(manifest)
    opt = profile[manifest.inputs[0].name].opt
    return opt[2], opt[3]


def one_line(text: object) -> str:
    """Text for a config comment: control characters shown escaped, so a comment stays one line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def _keyfile_value(value: str, what: str) -> str:
    """A GKeyFile (nvinfer / deepstream-app) string value: control characters refused (a line break would add a
    key), backslashes and a leading space escaped as GKeyFile reads them."""
    if _CONTROL.search(value):
        raise ArtifactError(f"{what}: expected no line breaks or control characters in a DeepStream config value, got "
                            f"{one_line(value)[:80]!r}. Rename the folder or file.")
    value = value.replace("\\", "\\\\")
    return "\\s" + value[1:] if value.startswith(" ") else value


def _tensor_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not TENSOR_NAME.fullmatch(name):
        raise ArtifactError(f"{what}: expected a tensor name of letters, digits and _ . : / -, got "
                            f"{one_line(name)[:80]!r}. Rebuild the artifact with segedge.")
    return name


def labels_text(manifest: Manifest, *, deepstream: bool = False) -> str:
    """labels.txt: one class name per line (checked again here: a line break would shift every label after it).
    DeepStream splits a line at ';', so there a ';' in a name is refused."""
    for i, name in enumerate(manifest.class_names):
        problem = class_name_problem(name)
        if problem is None and deepstream and ";" in name:
            problem = f"{name[:40]!r} has a ';', which DeepStream's label parser splits at"
        if problem:
            raise ArtifactError(f"class_names[{i}]: expected one line of text per class, got {problem}. Re-export "
                                "with --labels.")
    return "\n".join(manifest.class_names) + "\n"


def deepstream_config(manifest: Manifest, *, engine_file: str, labels_file: str = LABELS_FILE, batch_size: int = 1,
                      gpu_id: int = 0, segmentation_threshold: float = 0.0, std_tolerance: float = 0.02,
                      gie_unique_id: int = 1, interval: int = 0) -> str:
    """The Gst-nvinfer config text for a TensorRT engine artifact (see the module docstring for what it needs).

    engine_file / labels_file: paths as nvinfer should read them (relative paths resolve against the config's
    folder). batch_size: frames per inference, at most the engine profile's max batch.
    """
    if manifest.format != "tensorrt":
        raise ArtifactError(f"DeepStream config: expected a TensorRT engine artifact (segedge build), got format "
                            f"{manifest.format!r}")
    fingerprint, profile, command = engine_manifest_info(manifest)
    build = manifest.extra["tensorrt"].get("build", {})
    if manifest.head != "logits" or not build.get("softmax"):
        raise ArtifactError(f"DeepStream config: expected an engine with a logits head and Softmax (nvinfer feeds only "
                            f"the image and its segmentation parser reads class probabilities), got head "
                            f"{manifest.head!r}{'' if manifest.head != 'logits' else ' without Softmax'}. Export "
                            "with segedge export --head logits, then segedge build ... --softmax")
    pixel = profile[manifest.inputs[0].name]
    if not 1 <= batch_size <= pixel.max[0]:
        raise InputError(f"batch_size: expected 1..{pixel.max[0]} (the engine's max batch), got {batch_size}. "
                         f"Rebuild with --max-batch {batch_size}: {command}")
    h, w = _network_hw(manifest)
    if not pixel.contains((batch_size, pixel.min[1], h, w)):
        raise ArtifactError(f"DeepStream config: the network size {h}x{w} is outside the engine's profile "
                            f"{pixel.describe()}. Rebuild with --opt-hw {h} {w}: {command}")
    spec = manifest.preprocess
    inv = [1.0 / s for s in spec.std]
    scale = sum(inv) / len(inv)  # one scale for all channels: the mean of 1/std (the harmonic mean of std)
    deviation = max(abs(scale * s - 1.0) for s in spec.std)
    if deviation > std_tolerance:
        raise ArtifactError(f"DeepStream config: nvinfer takes one net-scale-factor for all channels; expected the "
                            f"per-channel std {list(spec.std)} within {std_tolerance:.1%} of one value, got "
                            f"{deviation:.1%}. Pass std_tolerance={deviation:.3f} to accept the approximation.")
    if spec.aspect == "pad":
        raise ArtifactError(f"DeepStream config: the artifact's preprocessing pads frames to a multiple of {STRIDE} "
                            "without resizing (--aspect pad); nvinfer always scales frames to its infer-dims. Export with "
                            "--aspect letterbox --size H W (nvinfer's maintain-aspect-ratio) or --aspect stretch "
                            "--size H W, then rebuild the engine.")
    notes = [f"# {DS_FILTER_NOTES[spec.resize_mode]}"] if spec.resize_mode in DS_FILTER_NOTES else []
    letterbox = spec.aspect == "letterbox"
    if letterbox:
        notes.append("# letterbox: the frame is scaled to fit and padded bottom/right as segedge does; nvinfer pads "
                     "with black where segedge pads with the mean colour")
    output = _tensor_name(manifest.outputs[0].name, "output-blob-names")
    lines = [
        f"# Gst-nvinfer config written by segedge for {one_line(manifest.architecture.get('variant', 'SegFormer'))} "
        f"({manifest.num_classes} classes).",
        f"# Engine: TensorRT {fingerprint.tensorrt_version}, {fingerprint.sm}, {fingerprint.precision}: run it with "
        "the DeepStream whose TensorRT is that version, on that GPU.",
        f"# Rebuild on another device: {one_line(command)}",
        f"# Preprocessing: y = net-scale-factor * (x - offsets); std {list(spec.std)} -> one scale "
        f"(max deviation {deviation:.2%}).",
        *notes,
        "[property]",
        f"gpu-id={gpu_id}",
        f"net-scale-factor={scale:.10g}",
        "offsets=" + ";".join(f"{m:.6g}" for m in spec.mean),
        f"model-color-format={DS_COLOR_FORMAT[spec.channel_order]}",
        f"scaling-filter={DS_SCALING_FILTER[spec.resize_mode]}",
        f"maintain-aspect-ratio={int(letterbox)}",
        *(["symmetric-padding=0"] if letterbox else []),
        f"model-engine-file={_keyfile_value(engine_file, 'model-engine-file')}",
        f"labelfile-path={_keyfile_value(labels_file, 'labelfile-path')}",
        f"infer-dims={pixel.min[1]};{h};{w}",
        f"batch-size={batch_size}",
        f"network-mode={DS_NETWORK_MODE[fingerprint.precision]}",
        "network-type=2",
        f"num-detected-classes={manifest.num_classes}",
        f"output-blob-names={output}",
        f"segmentation-threshold={segmentation_threshold:g}",
        "process-mode=1",
        f"gie-unique-id={gie_unique_id}",
        f"interval={interval}",
        "output-tensor-meta=0",
    ]
    if fingerprint.dla_core is not None:
        lines += ["enable-dla=1", f"use-dla-core={fingerprint.dla_core}"]
    return "\n".join(lines) + "\n"


def write_deepstream_config(artifact: str | Path, output_dir: str | Path, *, config_name: str = DEEPSTREAM_CONFIG,
                            **options) -> Path:
    """Write the nvinfer config and labels.txt into ``output_dir``; the engine stays in the artifact and is named by
    a path relative to the config. ``options`` go to ``deepstream_config``. Returns the config path."""
    folder = resolve_artifact(artifact)
    manifest = read_manifest(folder)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine = os.path.relpath(folder.resolve() / manifest.model_file, out.resolve())
    text = deepstream_config(manifest, engine_file=engine, labels_file=LABELS_FILE, **options)
    (out / LABELS_FILE).write_text(labels_text(manifest, deepstream=True))
    path = out / config_name
    path.write_text(text)
    return path


def tiler_grid(sources: int) -> tuple[int, int]:
    """(rows, columns) of nvmultistreamtiler for ``sources`` streams: the squarest grid, wider than tall."""
    columns = math.ceil(math.sqrt(sources))
    return math.ceil(sources / columns), columns


def deepstream_app_config(*, infer_config: str, sources: int, uris: list[str] | None = None, gpu_id: int = 0,
                          muxer_hw: tuple[int, int] = (1080, 1920), tiled_hw: tuple[int, int] = (720, 1280)) -> str:
    """A deepstream-app configuration: ``sources`` URI sources (``uris``: one per source, or one for all; default
    DeepStream's sample video), nvstreammux and the primary nvinfer at batch-size ``sources``, a tiler grid
    (``tiler_grid``), OSD and a fakesink (set ``[sink0] type=2`` for a window). ``infer_config``: the nvinfer
    config's path as deepstream-app should read it (relative to this file)."""
    if sources < 1:
        raise InputError(f"sources: expected >= 1, got {sources}")
    uris = list(uris or [DEEPSTREAM_SAMPLE_URI])
    if len(uris) not in (1, sources):
        raise InputError(f"uris: expected one URI for all sources or {sources} (one per source), got {len(uris)}")
    rows, columns = tiler_grid(sources)
    lines = [f"# deepstream-app configuration written by segedge: {sources} source(s) batched into one nvinfer call.",
             "# The class map of each frame is in its NvDsInferSegmentationMeta; deepstream-app draws no "
             "segmentation overlay (add nvsegvisual in your own pipeline to see it).",
             "[application]", "enable-perf-measurement=1", "perf-measurement-interval-sec=5", "",
             "[tiled-display]", "enable=1", f"rows={rows}", f"columns={columns}", f"width={tiled_hw[1]}",
             f"height={tiled_hw[0]}", f"gpu-id={gpu_id}", ""]
    for k in range(sources):
        uri = uris[k if len(uris) > 1 else 0]
        lines += [f"[source{k}]", "enable=1", "type=3", f"uri={_keyfile_value(uri, f'source{k} uri')}",
                  "num-sources=1", f"gpu-id={gpu_id}", ""]
    lines += ["[streammux]", f"gpu-id={gpu_id}", "live-source=0", f"batch-size={sources}",
              "batched-push-timeout=40000", f"width={muxer_hw[1]}", f"height={muxer_hw[0]}", "enable-padding=0", "",
              "[primary-gie]", "enable=1", f"gpu-id={gpu_id}", f"batch-size={sources}", "gie-unique-id=1",
              f"config-file={_keyfile_value(infer_config, 'config-file')}", "",
              "[osd]", "enable=1", f"gpu-id={gpu_id}", "border-width=1", "text-size=15", "", "[sink0]", "enable=1",
              "type=1", "sync=0", f"gpu-id={gpu_id}"]
    return "\n".join(lines) + "\n"


def write_deepstream_app(artifact: str | Path, output_dir: str | Path, *, sources: int, uris: list[str] | None = None,
                         gpu_id: int = 0, **options) -> tuple[Path, Path]:
    """The nvinfer config (batch-size ``sources``, which must fit the engine's max batch) and a deepstream-app
    config for ``sources`` streams around it, in ``output_dir``; returns (app config, nvinfer config)."""
    infer = write_deepstream_config(artifact, output_dir, batch_size=sources, gpu_id=gpu_id, **options)
    app = Path(output_dir) / DEEPSTREAM_APP_CONFIG
    app.write_text(deepstream_app_config(infer_config=infer.name, sources=sources, uris=uris, gpu_id=gpu_id))
    return app, infer


def pbtxt_string(value: str) -> str:
    """A protobuf text-format string literal: quoted, backslash and quote escaped, control characters refused."""
    if _CONTROL.search(value):
        raise ArtifactError(f"Triton config: expected no control characters in {one_line(value)[:80]!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dims(shape: list) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def _triton_tensors(manifest: Manifest) -> tuple[list[dict], list[dict]]:
    """(inputs, outputs) as the backend sees them: name, dtype name, full shape with -1, shape-tensor flag."""
    if manifest.format == "tensorrt":
        io = manifest.extra["tensorrt"].get("io") or []
        if not io:
            raise ArtifactError("Triton config: expected the engine's I/O in model.json (extra.tensorrt.io), got "
                                "none. Rebuild with segedge build.")
        tensors = [{"name": _tensor_name(t["name"], "extra.tensorrt.io name"), "dtype": t["dtype"],
                    "shape": _dims(t["shape"]), "shape_tensor": t["host"], "input": t["input"]} for t in io]
        return [t for t in tensors if t["input"]], [t for t in tensors if not t["input"]]
    ins = [{"name": t.name, "dtype": t.dtype, "shape": _dims(t.shape), "shape_tensor": False} for t in manifest.inputs]
    outs = [{"name": t.name, "dtype": t.dtype, "shape": _dims(t.shape), "shape_tensor": False}
            for t in manifest.outputs]
    return ins, outs


def triton_config(manifest: Manifest, *, model_name: str, max_batch_size: int | None = None,
                  instance_count: int = 1, kind: str | None = None, gpus: list[int] | None = None,
                  dynamic_batching: bool = True, labels_file: str | None = LABELS_FILE) -> str:
    """config.pbtxt text (protobuf text format of Triton's ModelConfig) for an artifact.

    max_batch_size: None -> 0 for mask heads; for logits heads the engine profile's max batch (TensorRT) or 8.
    kind: "KIND_GPU" / "KIND_CPU" / "KIND_AUTO"; default GPU for TensorRT, CPU for ONNX Runtime and OpenVINO.
    A DLA engine gets its DLA core as a secondary device of the instance group. labels_file: named in a comment
    only: Triton's ``label_filename`` is for classification outputs (it maps an output's top-k indices to labels)
    and would be wrong on a segmentation mask or a logits map.
    """
    if manifest.format not in TRITON_BACKENDS:
        raise ArtifactError(f"Triton config: expected one of {sorted(TRITON_BACKENDS)} artifacts, got "
                            f"{manifest.format!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", model_name):
        raise InputError(f"model_name: expected letters, digits, '_', '-' or '.', got {model_name!r}")
    key, value, _ = TRITON_BACKENDS[manifest.format]
    fingerprint, engine_max = None, None
    if manifest.format == "tensorrt":
        fingerprint, profile, _ = engine_manifest_info(manifest)
        engine_max = profile[manifest.inputs[0].name].max[0]
    max_batch_size = _triton_max_batch(manifest, max_batch_size, engine_max)
    kind = kind or ("KIND_GPU" if manifest.format == "tensorrt" else "KIND_CPU")
    if kind not in ("KIND_GPU", "KIND_CPU", "KIND_AUTO"):
        raise InputError(f"kind: expected KIND_GPU, KIND_CPU or KIND_AUTO, got {kind!r}")
    if instance_count < 1:
        raise InputError(f"instance_count: expected >= 1, got {instance_count}")

    inputs, outputs = _triton_tensors(manifest)
    wanted = {t.name for t in manifest.outputs}
    outputs = [t for t in outputs if t["name"] in wanted]
    lines = [f"# Triton model configuration written by segedge: {manifest.num_classes} classes, "
             f"{one_line(manifest.precision)}, head {manifest.head}."]
    if labels_file:
        lines.append(f"# Class names, one per class id: {one_line(labels_file)} (no label_filename: that is for "
                     "classification outputs).")
    if fingerprint is not None:
        lines.append(f"# TensorRT plan built with TensorRT {one_line(fingerprint.tensorrt_version)} for "
                     f"{one_line(fingerprint.sm)}: serve it with a Triton release built on that TensorRT, on that "
                     "GPU.")
    lines += [f"name: {pbtxt_string(model_name)}", f"{key}: {pbtxt_string(value)}",
              f"max_batch_size: {max_batch_size}"]
    if manifest.format == "openvino":
        lines.append('default_model_filename: "model.xml"')
    lines += _triton_section("input", inputs, batched=bool(max_batch_size))
    lines += _triton_section("output", outputs, batched=bool(max_batch_size))
    group = ["instance_group [", "  {", f"    count: {instance_count}", f"    kind: {kind}"]
    if gpus:
        group.append("    gpus: [ " + ", ".join(str(g) for g in gpus) + " ]")
    if fingerprint is not None and fingerprint.dla_core is not None:
        group += ["    secondary_devices [", "      {", "        kind: KIND_NVDLA",
                  f"        device_id: {fingerprint.dla_core}",
                  "      }", "    ]"]
    lines += group + ["  }", "]"]
    if max_batch_size and dynamic_batching:
        lines.append("dynamic_batching { }")
    return "\n".join(lines) + "\n"


def _triton_max_batch(manifest: Manifest, max_batch_size: int | None, engine_max: int | None) -> int:
    """The config's max_batch_size: 0 for mask heads (refused otherwise); for logits heads the one given, else the
    engine profile's max batch, else 8; never above the engine's."""
    if manifest.head == "mask":
        if max_batch_size:
            raise InputError(f"max_batch_size: expected 0 for a mask-head model (its output_size input [2] has no "
                             f"batch dimension for Triton to batch along), got {max_batch_size}. Export with "
                             "--head logits for dynamic batching.")
        max_batch_size = 0
    elif max_batch_size is None:
        max_batch_size = engine_max or 8
    if max_batch_size < 0 or (engine_max is not None and max_batch_size > engine_max):
        raise InputError(f"max_batch_size: expected 0..{engine_max if engine_max is not None else 'any'} (the "
                         f"engine's max batch), got {max_batch_size}")
    return max_batch_size


def _triton_section(name: str, tensors: list[dict], *, batched: bool) -> list[str]:
    """``input [...]`` / ``output [...]``: one block per tensor; ``batched``: without the batch dimension, which
    Triton adds itself."""
    blocks = []
    for t in tensors:
        if t["dtype"] not in TRITON_TYPES:
            raise ArtifactError(f"Triton config: tensor {t['name']} has dtype {t['dtype']}, expected one of "
                                f"{sorted(TRITON_TYPES)}")
        shape = t["shape"][1:] if batched else t["shape"]
        body = [f"    name: {pbtxt_string(_tensor_name(t['name'], 'Triton tensor'))}",
                f"    data_type: {TRITON_TYPES[t['dtype']]}",
                "    dims: [ " + ", ".join(str(d) for d in shape) + " ]"]
        if t["shape_tensor"]:
            body.append("    is_shape_tensor: true")
        blocks.append(["  {", *body, "  }"])
    lines = [f"{name} ["]
    for i, block in enumerate(blocks):
        lines += block[:-1] + ["  }," if i < len(blocks) - 1 else "  }"]
    return lines + ["]"]


def default_model_name(folder: Path) -> str:
    """A Triton model name from an artifact folder name: "b0.engine" -> "b0_engine"."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", folder.resolve().name) or "segformer"


def write_triton_repository(artifact: str | Path, repository: str | Path, *, model_name: str | None = None,
                            version: int = 1, **options) -> Path:
    """Add the artifact to a Triton model repository: ``<repository>/<model_name>/config.pbtxt``, ``labels.txt``
    and ``<version>/model.plan`` (or model.onnx, or model.xml + model.bin). ``options`` go to ``triton_config``.
    Returns the model folder."""
    folder = resolve_artifact(artifact)
    manifest = read_manifest(folder)
    name = model_name or default_model_name(folder)
    text = triton_config(manifest, model_name=name, **options)
    if version < 1:
        raise InputError(f"version: expected >= 1, got {version}")
    model_dir = Path(repository) / name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    target = TRITON_BACKENDS[manifest.format][2]
    shutil.copyfile(folder / manifest.model_file, version_dir / target)
    if manifest.format == "openvino":
        weights = (folder / manifest.model_file).with_suffix(".bin")
        if not weights.is_file():
            raise ArtifactError(f"artifact {folder}: expected {weights.name} beside {manifest.model_file}, found none")
        shutil.copyfile(weights, version_dir / "model.bin")
    (model_dir / LABELS_FILE).write_text(labels_text(manifest))
    (model_dir / "config.pbtxt").write_text(text)
    return model_dir
