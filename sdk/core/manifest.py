"""``model.json``: the manifest beside every artifact's model file(s). Runtimes check it on load.

Leaf module: standard library + sdk.core.errors + sdk.core.preprocess.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sdk.core.errors import ArtifactError
from sdk.core.media import VIDEO_SUFFIXES
from sdk.core.preprocess import PreprocessSpec

MANIFEST_NAME = "model.json"
FORMAT_VERSION = 1
HEADS = ("logits", "mask", "refine")
UPSAMPLE_MODES = ("refine", "exact", "fast")
GRAPHS = ("portable", "onnxruntime")
# tensor names that may be written into deployment configs (nvinfer's INI, Triton's config.pbtxt) as they are
TENSOR_NAME = re.compile(r"[A-Za-z0-9_.:/\-]{1,128}")
# a class name is one line of text: no control characters (line breaks would shift every label after it in
# labels.txt, or add keys to an INI file), no Unicode line/paragraph separators
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def class_name_problem(name: object) -> str | None:
    """None for a usable class name (a non-empty single line of text, at most 200 characters), else what is
    wrong with it. Checked where names enter (checkpoint metadata, --labels, model.json)."""
    if not isinstance(name, str) or not name.strip():
        return "not a non-empty string"
    if _NOT_ONE_LINE.search(name):
        return f"{name[:40]!r} has a line break or control character"
    if len(name) > 200:
        return f"{name[:40]!r}... is longer than 200 characters"
    return None


@dataclass(frozen=True, kw_only=True)
class TensorInfo:
    """One graph input or output: name, dtype name (numpy), shape with symbolic dims as strings."""

    name: str
    dtype: str
    shape: list[int | str]


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """Everything needed to run and trust an artifact without the checkpoint.

    head: "logits" -> output (N, K, h/4, w/4) float32, upsampled and argmaxed on the host;
          "mask" -> output (N, H, W) class ids computed inside the graph at ``output_size`` (an int64 [2] input).
    upsample: for "mask": "exact" (bilinear logits to the output size, then argmax, as transformers does) or
          "fast" (bilinear to the network input size, argmax, nearest to the output size).
    head "refine" (upsample "refine", the default of new exports): outputs ``logits`` (N, K, h/4, w/4) float32 and
          ``argmax`` (N, h/4, w/4) class ids; the host makes the exact head's mask from them at any image size
          (``sdk.core.postprocess.refine_mask``), interpolating only where neighbouring argmax classes differ.
    graph: for ONNX artifacts, "portable" (standard ONNX ops, opset 17: what OpenVINO and TensorRT read) or
          "onnxruntime" (ONNX Runtime's fused attention and NHWC-friendly layout; only ONNX Runtime runs it).
    """

    format: str  # "onnx" | "openvino" | "tensorrt"
    model_file: str
    precision: str  # "fp32" | "fp16" | "int8" ...
    class_names: list[str]
    palette: list[list[int]] | None
    preprocess: PreprocessSpec
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    head: str
    upsample: str | None
    architecture: dict
    source: dict  # path, sha256, layout
    opset: int | None = None
    graph: str = "portable"
    versions: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ArtifactError(f"manifest head: expected one of {HEADS}, got {self.head!r}")
        if self.head == "mask" and self.upsample not in ("exact", "fast"):
            raise ArtifactError(f"manifest upsample: expected 'exact' or 'fast' for a mask head, got {self.upsample!r}")
        if self.head == "refine" and self.upsample != "refine":
            raise ArtifactError(f"manifest upsample: expected 'refine' for a refine head, got {self.upsample!r}")
        if self.graph not in GRAPHS:
            raise ArtifactError(f"manifest graph: expected one of {GRAPHS}, got {self.graph!r}")
        _check_fields(self)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        return d

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, d: dict) -> "Manifest":
        d = dict(d)
        d["preprocess"] = PreprocessSpec.from_dict(d["preprocess"])
        d["inputs"] = [TensorInfo(**t) for t in d["inputs"]]
        d["outputs"] = [TensorInfo(**t) for t in d["outputs"]]
        return cls(**d)


def _check_fields(m: Manifest) -> None:
    """Types and cross-field consistency: class names vs palette vs the architecture's class count."""
    def fail(name: str, expected: str, got) -> None:
        raise ArtifactError(f"manifest {name}: expected {expected}, got {str(got)[:80]!r}")

    if not isinstance(m.model_file, str) or not m.model_file or Path(m.model_file).name != m.model_file:
        fail("model_file", "a file name inside the artifact folder (no directories)", m.model_file)
    names = m.class_names
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        fail("class_names", "a non-empty list of non-empty strings (one per class id)", names)
    bad = next((i for i, n in enumerate(names) if class_name_problem(n)), None)
    if bad is not None:
        raise ArtifactError(f"manifest class_names[{bad}]: expected one line of text, got "
                            f"{class_name_problem(names[bad])}. Re-export with --labels.")
    if m.palette is not None:
        if not isinstance(m.palette, list) or not all(
                isinstance(c, list) and len(c) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
                for c in m.palette):
            fail("palette", "null or a list of [r, g, b] integers 0..255", m.palette)
        if len(m.palette) != len(names):
            raise ArtifactError(f"manifest palette: expected {len(names)} colours (one per class), "
                                f"got {len(m.palette)}")
    if not isinstance(m.preprocess, PreprocessSpec):
        fail("preprocess", "a preprocessing object (size_hw, mean, std, ...)", m.preprocess)
    for name in ("inputs", "outputs"):
        value = getattr(m, name)
        if not isinstance(value, list) or not value or not all(isinstance(t, TensorInfo) for t in value):
            fail(name, "a non-empty list of {name, dtype, shape} tensors", value)
    for name in ("architecture", "source", "versions", "parity", "extra"):
        if not isinstance(getattr(m, name), dict):
            fail(name, "an object", getattr(m, name))
    for name in ("format", "precision"):
        if not isinstance(getattr(m, name), str):
            fail(name, "a string", getattr(m, name))
    odd = next((t.name for t in (*m.inputs, *m.outputs) if not TENSOR_NAME.fullmatch(str(t.name))), None)
    if odd is not None:
        fail("inputs/outputs", "tensor names of letters, digits and _ . : / - (at most 128)", odd)
    ins, outs = {t.name for t in m.inputs}, {t.name for t in m.outputs}
    need_in = {"pixel_values", "output_size"} if m.head == "mask" else {"pixel_values"}
    need_out = {"mask"} if m.head == "mask" else {"logits"}
    if not need_in <= ins or not need_out <= outs or (m.head != "mask" and "output_size" in ins):
        raise ArtifactError(f"manifest head {m.head!r}: expected inputs {sorted(need_in)} and outputs including "
                            f"{sorted(need_out)}, got inputs {sorted(ins)} and outputs {sorted(outs)}. The head does "
                            "not match the graph: re-export.")
    k = m.architecture.get("num_classes")
    if k is not None and k != len(names):
        raise ArtifactError(f"manifest class_names: the model has {k} output classes (architecture.num_classes), "
                            f"but {len(names)} names are listed. Give one name per class, or re-export.")


def _check_raw(raw) -> None:
    """Shapes of the JSON before the typed records are built, so a bad field is named, not a Python error."""
    if not isinstance(raw, dict):
        raise ArtifactError(f"expected a JSON object, got {type(raw).__name__}")
    pp = raw.get("preprocess")
    if not isinstance(pp, dict):
        raise ArtifactError(f"preprocess: expected an object with size_hw, mean, std, got {pp!r}")
    for key in ("mean", "std"):
        v = pp.get(key)
        if not (isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                              and abs(x) < float("inf") for x in v)):
            raise ArtifactError(f"preprocess.{key}: expected 3 finite numbers (one per channel, 0..255 scale), got "
                                f"{v!r}")
    size = pp.get("size_hw")
    if size is not None and not (isinstance(size, list) and len(size) == 2
                                 and all(isinstance(x, int) and not isinstance(x, bool) for x in size)):
        raise ArtifactError(f"preprocess.size_hw: expected null or [height, width] integers, got {size!r}")
    for key in ("inputs", "outputs"):
        v = raw.get(key)
        if not isinstance(v, list) or not all(isinstance(t, dict) for t in v):
            raise ArtifactError(f"{key}: expected a list of {{name, dtype, shape}} objects, got {str(v)[:80]!r}")
        for t in v:
            if not isinstance(t.get("name"), str) or not isinstance(t.get("shape"), list):
                raise ArtifactError(f"{key}: expected {{name: str, dtype: str, shape: list}}, got {str(t)[:80]!r}")
            try:
                import numpy as np

                np.dtype(t.get("dtype"))
            except TypeError:
                raise ArtifactError(f"{key} {t['name']!r}: dtype {t.get('dtype')!r} is not a numpy dtype name")


MAX_JSON_DEPTH = 32  # a manifest or a checkpoint's config nests a few levels; deeper is damage or an attack


def _cut(exc: BaseException, limit: int = 300) -> str:
    """An error's text for a message, cut to ``limit`` characters (a field's value may be quoted whole in it)."""
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _depth(value) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d <= MAX_JSON_DEPTH:
                stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def read_json(path: str | Path, *, error: type[Exception] = ArtifactError, what: str | None = None,
              fix: str = "") -> object:
    """A JSON file, or ``error`` with one line naming the file: unreadable, not JSON, or nested deeper than
    ``MAX_JSON_DEPTH`` (Python's parser would raise RecursionError; the reason quoted is cut to 200 characters).
    what: how the message names the file (default its path); fix: what to do, appended."""
    path = Path(path)
    name = what or str(path)
    try:
        raw = json.loads(path.read_text())
    except RecursionError:
        raw = None
        too_deep = True
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = str(getattr(exc, "strerror", None) or exc)[:200]
        raise error(f"{name} is unreadable ({reason}); expected a JSON file. {fix}".rstrip()) from None
    else:
        too_deep = _depth(raw) > MAX_JSON_DEPTH
    if too_deep:
        raise error(f"{name} is unreadable: expected a JSON file nested at most {MAX_JSON_DEPTH} levels deep, got "
                    f"deeper; the file is damaged or not what it claims. {fix}".rstrip())
    return raw


def read_manifest(folder: str | Path) -> Manifest:
    """Read and validate ``<folder>/model.json``; also checks that the model file it names exists."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    looks_like_checkpoint = (folder.is_file() and folder.suffix.lower() in (".pth", ".pt", ".bin", ".safetensors")) \
        or (folder.is_dir() and (folder / "config.json").is_file() and not path.is_file())
    if looks_like_checkpoint:
        raise ArtifactError(f"artifact {folder}: is a checkpoint, not an artifact. Export it first: segedge export "
                            f"{folder} --output out/model, then pass out/model")
    if folder.is_file() and folder.suffix.lower() in VIDEO_SUFFIXES:
        raise ArtifactError(f"artifact {folder}: is a video, not an artifact folder. Pass the artifact first; to "
                            f"segment a video use segedge stream ARTIFACT --source {folder}")
    if not folder.is_dir():
        raise ArtifactError(f"artifact {folder}: expected a folder with {MANIFEST_NAME} and the model file, "
                            "but it does not exist or is not a folder. Create one with: segedge export CHECKPOINT "
                            f"--output {folder}")
    if not path.is_file():
        raise ArtifactError(f"artifact {folder}: {MANIFEST_NAME} is missing. Artifacts are made by segedge export; "
                            "re-export the checkpoint into this folder.")
    raw = read_json(path, what=f"artifact {folder}: {MANIFEST_NAME}", fix="Re-export.")
    if not isinstance(raw, dict):
        raise ArtifactError(f"artifact {folder}: {MANIFEST_NAME} must hold a JSON object, got "
                            f"{type(raw).__name__}. Re-export.")
    if raw.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"artifact {folder}: manifest format_version {raw.get('format_version')!r}, this SDK "
                            f"reads {FORMAT_VERSION}. Re-export with this version of segedge.")
    try:
        _check_raw(raw)
        manifest = Manifest.from_dict(raw)
    except ArtifactError as exc:
        raise ArtifactError(f"artifact {folder}: {MANIFEST_NAME}: {_cut(exc)}. Fix the field or re-export.") from None
    except (KeyError, TypeError, ValueError, RecursionError) as exc:  # InputError (a ValueError) from PreprocessSpec
        raise ArtifactError(f"artifact {folder}: {MANIFEST_NAME} is incomplete or malformed "
                            f"({type(exc).__name__}: {_cut(exc)}). Re-export.") from None
    if not (folder / manifest.model_file).is_file():
        raise ArtifactError(f"artifact {folder}: the model file {manifest.model_file!r} named in {MANIFEST_NAME} "
                            "is missing. Copy the whole artifact folder, or re-export.")
    return manifest


def resolve_artifact(path: str | Path) -> Path:
    """An artifact folder, or a file inside one (``out/b0.engine/model.engine``, ``.../model.json``) -> the folder.

    A model file with no ``model.json`` naming it beside it is an error: a bare engine (e.g. from trtexec) has no
    labels or preprocessing.
    """
    p = Path(path)
    if not p.is_file():
        return p
    manifest = p.parent / MANIFEST_NAME
    if p.name == MANIFEST_NAME:
        return p.parent
    if manifest.is_file():
        try:
            named = read_json(manifest).get("model_file")
        except (ArtifactError, AttributeError):
            return p.parent  # read_manifest reports the broken manifest properly
        if named == p.name:
            return p.parent
    raise ArtifactError(f"artifact {p}: expected an artifact folder, or the model file inside one with a "
                        f"{MANIFEST_NAME} naming it, got a file without one. A bare engine has no labels or "
                        "preprocessing: build it with segedge build ONNX_ARTIFACT --output FOLDER.")


def model_feeds(manifest: Manifest, pixel_values, output_hw) -> dict:
    """The feed ``Runtime.infer`` takes for this artifact: ``pixel_values`` ((N, 3, h, w) float32, as
    ``sdk.core.preprocess.preprocess`` makes it) and, where the artifact has the input (a mask head), ``output_size``:
    ``output_hw``, the mask's (height, width), as int64 [2]."""
    import numpy as np

    feeds = {"pixel_values": pixel_values}
    if any(t.name == "output_size" for t in manifest.inputs):
        feeds["output_size"] = np.asarray(output_hw, np.int64)
    return feeds


def require_portable_graph(manifest: Manifest, *, what: str, reader: str, fix: str,
                           error: type[Exception] = ArtifactError) -> None:
    """Refuse a graph that only ONNX Runtime runs (``graph`` "onnxruntime": its com.microsoft ops) where another
    toolkit must read it. what: the artifact as the message names it ("artifact out/b0"); reader: who cannot
    ("OpenVINO does not read"); fix: what to do instead (a sentence); error: the class to raise."""
    if manifest.graph != "portable":
        raise error(f"{what}: its graph is {manifest.graph!r} (ONNX Runtime's com.microsoft ops), which {reader}. "
                    f"{fix}")
