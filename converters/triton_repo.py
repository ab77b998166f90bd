"""A Triton model repository that serves an artifact through the project's own ``Segmenter`` (Python backend).

``write_triton_python_repository(artifact, repo)`` writes::

    <repo>/<name>/config.pbtxt        backend "python", IMAGE uint8 (N, H, W, 3) -> MASK (N, H, W), dynamic batching
    <repo>/<name>/labels.txt          one class name per class id (also in the config's class_names parameter)
    <repo>/<name>/requirements.txt    what the model's Python needs (numpy<2, segedge with its runtime extra)
    <repo>/<name>/1/model.py          converters/triton_python_model.py
    <repo>/<name>/1/artifact/         the artifact's files (model.json + model file)

Why the Python backend and not Triton's own onnxruntime/openvino/tensorrt_plan backend behind an ensemble: the
preprocessing (resize mode, letterbox/pad), the refine head and the crop back to the image's size live in
``Segmenter``; served masks are then the in-process masks, for every artifact format and head, by construction. An
ensemble would split them into two Python steps around the native model (two more round trips through shared memory
per request) and the native backends are not in the ``nvidia-pytriton`` build this project tests with (it ships
only the Python backend), so the ensemble was not measurable here.

Nothing in the repository names a path of the writing machine; the Python environment is given at serve time
(``segedge serve --env``, ``sdk.serving.env``).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from converters.deploy_configs import LABELS_FILE, default_model_name, labels_text, one_line, pbtxt_string
from sdk.core.errors import EXTRAS, ArtifactError, InputError
from sdk.core.manifest import read_manifest, resolve_artifact

MODEL_SOURCE = Path(__file__).with_name("triton_python_model.py")
INPUT_NAME, OUTPUT_NAME = "IMAGE", "MASK"
# artifact format -> the extra that installs the runtime it runs in (sdk.core.errors.EXTRAS)
RUNTIME_EXTRAS = {fmt: EXTRAS[module] for fmt, module in (("onnx", "onnxruntime"), ("openvino", "openvino"),
                                                          ("tensorrt", "tensorrt"))}


def _segedge_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("segedge")
    except PackageNotFoundError:
        return ""


def requirements_text(fmt: str) -> str:
    """requirements.txt: the model's Python packages (Triton's Python-backend stub runs model.py with them)."""
    pin = _segedge_version()
    extra = RUNTIME_EXTRAS.get(fmt, "cpu")
    lines = ["# The Python that Triton's Python backend runs model.py with needs these (pip install -r).",
             "# numpy < 2: the backend stub is built against numpy 1.x; with numpy 2 every output comes back empty.",
             "numpy<2",
             "# opencv-python-headless 4.12+ requires numpy 2",
             "opencv-python-headless<4.12",
             f"segedge[{extra}]" + (f"=={pin}" if pin else "")]
    if fmt == "tensorrt":
        lines.append("# TensorRT and pycuda: the device's own (JetPack / the Triton container's), see docs/JETSON.md")
    return "\n".join(lines) + "\n"


def triton_python_config(manifest, *, model_name: str, max_batch_size: int = 8, instance_count: int = 1,
                         max_queue_delay_us: int = 2000, kind: str | None = None, runtime: str = "auto",
                         color_order: str = "rgb") -> str:
    """config.pbtxt text for the Python-backend model: IMAGE (N, H, W, 3) uint8 -> MASK (N, H, W) class ids, the
    class names and palette as JSON in ``parameters``, ``dynamic_batching`` up to ``max_batch_size`` frames waiting
    at most ``max_queue_delay_us`` for a batch to fill, ``instance_count`` model instances (processes)."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", model_name):
        raise InputError(f"model_name: expected letters, digits, '_', '-' or '.', got {model_name!r}")
    for name, value, low in (("max_batch_size", max_batch_size, 1), ("instance_count", instance_count, 1),
                             ("max_queue_delay_us", max_queue_delay_us, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InputError(f"{name}: expected an int >= {low}, got {value!r}")
    kind = kind or ("KIND_GPU" if manifest.format == "tensorrt" else "KIND_CPU")
    if kind not in ("KIND_GPU", "KIND_CPU", "KIND_AUTO"):
        raise InputError(f"kind: expected KIND_GPU, KIND_CPU or KIND_AUTO, got {kind!r}")
    if color_order not in ("rgb", "bgr"):
        raise InputError(f"color_order: expected 'rgb' or 'bgr', got {color_order!r}")
    labels_text(manifest)  # checks every class name is one line
    mask_type = "TYPE_UINT8" if manifest.num_classes <= 256 else "TYPE_INT32"
    params = {"class_names": json.dumps(list(manifest.class_names)),
              "palette": json.dumps(manifest.palette) if manifest.palette else "",
              "runtime": runtime, "color_order": color_order, "format": manifest.format,
              "precision": str(manifest.precision)}
    lines = [f"# Triton model configuration written by segedge: {manifest.num_classes} classes, "
             f"{one_line(manifest.precision)} {one_line(manifest.format)}, head {one_line(manifest.head)}, run by "
             "segedge's Segmenter in Triton's Python backend.",
             "# IMAGE: (N, H, W, 3) uint8 frames (color_order below), any size the artifact takes; MASK: (N, H, W) "
             "class ids at the frame's size. Class names: labels.txt and the class_names parameter.",
             "# The model's Python needs requirements.txt (numpy<2); segedge serve runs it with a prepared env.",
             f"name: {pbtxt_string(model_name)}",
             'backend: "python"',
             f"max_batch_size: {max_batch_size}",
             "input [", "  {", f"    name: {pbtxt_string(INPUT_NAME)}", "    data_type: TYPE_UINT8",
             "    dims: [ -1, -1, 3 ]", "  }", "]",
             "output [", "  {", f"    name: {pbtxt_string(OUTPUT_NAME)}", f"    data_type: {mask_type}",
             "    dims: [ -1, -1 ]", "  }", "]",
             "instance_group [", "  {", f"    count: {instance_count}", f"    kind: {kind}", "  }", "]",
             "dynamic_batching {", f"  max_queue_delay_microseconds: {max_queue_delay_us}", "}"]
    for key, value in params.items():
        lines += ["parameters {", f"  key: {pbtxt_string(key)}",
                  f"  value {{ string_value: {pbtxt_string(value)} }}", "}"]
    return "\n".join(lines) + "\n"


def write_triton_python_repository(artifact: str | Path, repository: str | Path, *, model_name: str | None = None,
                                   version: int = 1, **options) -> Path:
    """Write (or replace) ``<repository>/<model_name>`` serving ``artifact`` through the Python backend; ``options``
    go to ``triton_python_config``. Returns the model folder."""
    folder = resolve_artifact(artifact)
    manifest = read_manifest(folder)
    name = model_name or default_model_name(folder)
    if not isinstance(version, int) or version < 1:
        raise InputError(f"version: expected an int >= 1, got {version!r}")
    text = triton_python_config(manifest, model_name=name, **options)
    model_dir = Path(repository) / name
    target = model_dir / str(version) / "artifact"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    files = [p for p in folder.iterdir() if p.is_file()]
    if not any(p.name == manifest.model_file for p in files):
        raise ArtifactError(f"artifact {folder}: expected {manifest.model_file} in it, found none")
    for path in files:
        shutil.copyfile(path, target / path.name)
    shutil.copyfile(MODEL_SOURCE, model_dir / str(version) / "model.py")
    (model_dir / LABELS_FILE).write_text(labels_text(manifest))
    (model_dir / "requirements.txt").write_text(requirements_text(manifest.format))
    (model_dir / "config.pbtxt").write_text(text)
    return model_dir
