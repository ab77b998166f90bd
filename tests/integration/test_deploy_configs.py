"""DeepStream nvinfer and Triton configurations, parsed back against their documented schemas.

Triton: config.pbtxt is parsed with protobuf's strict text-format parser against a descriptor built here from
Triton's ``model_config.proto`` (triton-inference-server/common, the fields we emit, with their real names,
numbers and types): an unknown field, a wrong type or a bad enum value fails the parse.
DeepStream: the nvinfer file is INI-like (GKeyFile); it is read with configparser and every key must be one that
Gst-nvinfer's property parser knows (``gstnvinfer_property_parser.h``).
"""
from __future__ import annotations

import configparser
from pathlib import Path

import numpy as np
import pytest

from converters.deploy_configs import (DEEPSTREAM_CONFIG, deepstream_config, triton_config,
                                       write_deepstream_config, write_triton_repository)
from converters.tensorrt_build import plan_profile
from sdk.core.errors import ArtifactError, InputError
from sdk.core.manifest import Manifest, TensorInfo, read_manifest
from sdk.core.preprocess import PreprocessSpec
from tiny_artifacts import write_engine_artifact, write_onnx_artifact

# Gst-nvinfer [property] keys (CONFIG_GROUP_INFER_* in gstnvinfer_property_parser.h)
NVINFER_KEYS = {
    "gie-unique-id", "process-mode", "interval", "labelfile-path", "gpu-id", "secondary-reinfer-interval",
    "output-tensor-meta", "enable-dla", "use-dla-core", "batch-size", "tensor-meta-pool-size", "network-mode",
    "model-engine-file", "int8-calib-file", "workspace-size", "output-blob-names", "is-classifier", "network-type",
    "force-implicit-batch-dim", "infer-dims", "output-io-formats", "layer-device-precision", "model-color-format",
    "net-scale-factor", "offsets", "mean-file", "maintain-aspect-ratio", "symmetric-padding", "scaling-filter",
    "scaling-compute-hw", "network-input-order", "input-tensor-from-meta", "custom-lib-path", "parse-bbox-func-name",
    "parse-bbox-instance-mask-func-name", "engine-create-func-name", "parse-classifier-func-name",
    "custom-network-config", "model-file", "proto-file", "uff-file", "uff-input-order", "input-dims",
    "uff-input-dims", "uff-input-blob-name", "tlt-encoded-model", "tlt-model-key", "onnx-file",
    "num-detected-classes", "enable-dbscan", "cluster-mode", "classifier-type", "classifier-threshold",
    "classifier-async-mode", "segmentation-threshold", "segmentation-output-order", "output-instance-mask",
    "input-object-min-width", "input-object-min-height", "input-object-max-width", "input-object-max-height",
    "operate-on-gie-id", "operate-on-class-ids", "filter-out-class-ids",
}


def _triton_model_config_class():
    """inference.ModelConfig (the subset segedge emits) from Triton's model_config.proto, field numbers included."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="segedge_test_model_config.proto", package="inference",
                                             syntax="proto3")
    data_type = fdp.enum_type.add(name="DataType")
    for i, n in enumerate(["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
                           "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32",
                           "TYPE_FP64", "TYPE_STRING", "TYPE_BF16"]):
        data_type.value.add(name=n, number=i)

    def message(name, fields, parent=None):
        msg = (parent.nested_type if parent is not None else fdp.message_type).add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
        return msg

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("ModelTensorReshape", [("shape", 1, F.TYPE_INT64, rep, None)])
    model_input = message("ModelInput", [
        ("name", 1, F.TYPE_STRING, opt, None), ("data_type", 2, F.TYPE_ENUM, opt, ".inference.DataType"),
        ("format", 3, F.TYPE_ENUM, opt, ".inference.ModelInput.Format"), ("dims", 4, F.TYPE_INT64, rep, None),
        ("reshape", 5, F.TYPE_MESSAGE, opt, ".inference.ModelTensorReshape"),
        ("is_shape_tensor", 6, F.TYPE_BOOL, opt, None), ("allow_ragged_batch", 7, F.TYPE_BOOL, opt, None),
        ("optional", 8, F.TYPE_BOOL, opt, None)])
    fmt = model_input.enum_type.add(name="Format")
    for i, n in enumerate(["FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW"]):
        fmt.value.add(name=n, number=i)
    message("ModelOutput", [
        ("name", 1, F.TYPE_STRING, opt, None), ("data_type", 2, F.TYPE_ENUM, opt, ".inference.DataType"),
        ("dims", 3, F.TYPE_INT64, rep, None), ("reshape", 5, F.TYPE_MESSAGE, opt, ".inference.ModelTensorReshape"),
        ("label_filename", 4, F.TYPE_STRING, opt, None), ("is_shape_tensor", 6, F.TYPE_BOOL, opt, None)])
    group = message("ModelInstanceGroup", [
        ("name", 1, F.TYPE_STRING, opt, None), ("kind", 4, F.TYPE_ENUM, opt, ".inference.ModelInstanceGroup.Kind"),
        ("count", 2, F.TYPE_INT32, opt, None), ("gpus", 3, F.TYPE_INT32, rep, None),
        ("secondary_devices", 8, F.TYPE_MESSAGE, rep, ".inference.ModelInstanceGroup.SecondaryDevice"),
        ("profile", 5, F.TYPE_STRING, rep, None), ("passive", 7, F.TYPE_BOOL, opt, None),
        ("host_policy", 9, F.TYPE_STRING, opt, None)])
    kind = group.enum_type.add(name="Kind")
    for i, n in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=n, number=i)
    secondary = message("SecondaryDevice", [
        ("kind", 1, F.TYPE_ENUM, opt, ".inference.ModelInstanceGroup.SecondaryDevice.SecondaryDeviceKind"),
        ("device_id", 2, F.TYPE_INT64, opt, None)], parent=group)
    secondary.enum_type.add(name="SecondaryDeviceKind").value.add(name="KIND_NVDLA", number=0)
    message("ModelDynamicBatching", [
        ("preferred_batch_size", 1, F.TYPE_INT32, rep, None), ("max_queue_delay_microseconds", 2, F.TYPE_UINT64, opt,
                                                                None),
        ("preserve_ordering", 3, F.TYPE_BOOL, opt, None)])
    message("ModelConfig", [
        ("name", 1, F.TYPE_STRING, opt, None), ("platform", 2, F.TYPE_STRING, opt, None),
        ("backend", 17, F.TYPE_STRING, opt, None), ("max_batch_size", 4, F.TYPE_INT32, opt, None),
        ("input", 5, F.TYPE_MESSAGE, rep, ".inference.ModelInput"),
        ("output", 6, F.TYPE_MESSAGE, rep, ".inference.ModelOutput"),
        ("dynamic_batching", 11, F.TYPE_MESSAGE, opt, ".inference.ModelDynamicBatching"),
        ("instance_group", 7, F.TYPE_MESSAGE, rep, ".inference.ModelInstanceGroup"),
        ("default_model_filename", 8, F.TYPE_STRING, opt, None)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def parse_pbtxt(text: str):
    from google.protobuf import text_format

    return text_format.Parse(text, _triton_model_config_class()())


def read_nvinfer(path: Path) -> configparser.SectionProxy:
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str  # GKeyFile keys are case-sensitive
    cp.read_string(path.read_text())
    assert cp.sections() == ["property"]
    unknown = set(cp["property"]) - NVINFER_KEYS
    assert not unknown, f"keys Gst-nvinfer does not know: {unknown}"
    return cp["property"]


def _engine(tmp_path: Path, name: str = "b0.engine", *, head: str = "logits", size_hw=(128, 160),
            softmax: bool = True, max_batch: int = 4, channel_order: str = "rgb", **kw) -> Path:
    onnx_dir = write_onnx_artifact(tmp_path / f"{name}-onnx", head=head, size_hw=size_hw, channel_order=channel_order)
    profile = plan_profile(read_manifest(onnx_dir), max_batch=max_batch)
    return write_engine_artifact(tmp_path / name, onnx_dir, softmax=softmax, profile=profile, **kw)


# ---------------------------------------------------------------- DeepStream

def test_deepstream_config_parses_and_matches_the_preprocessing(tmp_path):
    engine_dir = _engine(tmp_path)
    path = write_deepstream_config(engine_dir, tmp_path / "ds", batch_size=2)
    assert path.name == DEEPSTREAM_CONFIG
    p = read_nvinfer(path)
    assert (p["network-type"], p["output-blob-names"], p["num-detected-classes"]) == ("2", "logits", "5")
    assert (p["infer-dims"], p["batch-size"], p["network-mode"]) == ("3;128;160", "2", "2")  # fp16 -> 2
    assert (p["model-color-format"], p["maintain-aspect-ratio"], p["scaling-filter"]) == ("0", "0", "1")
    assert (path.parent / p["model-engine-file"]).resolve() == (engine_dir / "model.engine").resolve()
    labels = (path.parent / p["labelfile-path"]).read_text().splitlines()
    assert labels == read_manifest(engine_dir).class_names
    # nvinfer computes y = net-scale-factor * (x - offsets[c]); ours is (x - mean[c]) / std[c]
    spec = PreprocessSpec()
    x = np.arange(256, dtype=np.float64)[:, None]
    offsets = np.array([float(v) for v in p["offsets"].split(";")])
    ds = float(p["net-scale-factor"]) * (x - offsets)
    ours = (x - np.array(spec.mean)) / np.array(spec.std)
    np.testing.assert_allclose(offsets, spec.mean, rtol=1e-6)
    assert np.max(np.abs(ds - ours)) <= 0.02 * np.max(np.abs(ours))
    assert "enable-dla" not in p


def test_deepstream_bgr_dla_and_dynamic_size(tmp_path):
    engine_dir = _engine(tmp_path, size_hw=None, channel_order="bgr", fp16=False, int8=True, dla_core=1)
    p = read_nvinfer(write_deepstream_config(engine_dir, tmp_path / "ds"))
    assert p["model-color-format"] == "1" and p["network-mode"] == "1"
    assert (p["enable-dla"], p["use-dla-core"]) == ("1", "1")
    assert p["infer-dims"] == "3;512;512"  # no fixed preprocessing size: the profile's opt


def test_deepstream_refusals(tmp_path):
    mask = _engine(tmp_path, "mask", head="mask")
    with pytest.raises(ArtifactError, match=r"got head 'mask'\. Export with segedge export --head logits"):
        write_deepstream_config(mask, tmp_path / "ds")
    plain = _engine(tmp_path, "plain", softmax=False)
    with pytest.raises(ArtifactError, match="without Softmax.*--softmax"):
        write_deepstream_config(plain, tmp_path / "ds")
    onnx_dir = write_onnx_artifact(tmp_path / "onnx", head="logits")
    with pytest.raises(ArtifactError, match="expected a TensorRT engine artifact"):
        write_deepstream_config(onnx_dir, tmp_path / "ds")
    with pytest.raises(InputError, match=r"batch_size: expected 1\.\.4"):
        write_deepstream_config(_engine(tmp_path, "b"), tmp_path / "ds", batch_size=8)


def test_deepstream_per_channel_std_needs_consent(tmp_path):
    m = read_manifest(_engine(tmp_path))
    skewed = Manifest.from_dict({**m.to_dict(), "preprocess": PreprocessSpec(size_hw=(128, 160),
                                                                              std=(58.0, 30.0, 57.0)).to_dict()})
    with pytest.raises(ArtifactError, match=r"one net-scale-factor .* std_tolerance="):
        deepstream_config(skewed, engine_file="model.engine")
    assert "net-scale-factor=" in deepstream_config(skewed, engine_file="model.engine", std_tolerance=0.5)


# ---------------------------------------------------------------- Triton

def test_triton_tensorrt_mask_head(tmp_path):
    engine_dir = _engine(tmp_path, head="mask", size_hw=None)
    model_dir = write_triton_repository(engine_dir, tmp_path / "repo")
    assert model_dir.name == "b0_engine"
    assert (model_dir / "1" / "model.plan").read_bytes() == (engine_dir / "model.engine").read_bytes()
    assert (model_dir / "labels.txt").read_text().splitlines() == read_manifest(engine_dir).class_names
    cfg = parse_pbtxt((model_dir / "config.pbtxt").read_text())
    assert (cfg.name, cfg.platform, cfg.max_batch_size) == ("b0_engine", "tensorrt_plan", 0)
    inputs = {t.name: t for t in cfg.input}
    assert list(inputs["pixel_values"].dims) == [-1, 3, -1, -1]
    size = inputs["output_size"]
    assert list(size.dims) == [2] and size.is_shape_tensor and size.data_type == 8  # TYPE_INT32, as the engine
    (mask,) = cfg.output
    assert (mask.name, mask.data_type, list(mask.dims)) == ("mask", 2, [-1, -1, -1])  # TYPE_UINT8
    # label_filename is for classification outputs only (Triton's model_config.proto): not on a segmentation mask;
    # the class names sit beside the config, named in its header
    assert not mask.label_filename and "labels.txt" in (model_dir / "config.pbtxt").read_text().splitlines()[1]
    (group,) = cfg.instance_group
    assert group.kind == 1 and group.count == 1  # KIND_GPU
    assert not cfg.HasField("dynamic_batching")
    with pytest.raises(InputError, match="expected 0 for a mask-head model"):
        triton_config(read_manifest(engine_dir), model_name="m", max_batch_size=4)


def test_triton_tensorrt_logits_head_batches_and_names_the_dla(tmp_path):
    engine_dir = _engine(tmp_path, fp16=False, int8=True, dla_core=0)
    cfg = parse_pbtxt(triton_config(read_manifest(engine_dir), model_name="segformer", instance_count=2))
    assert cfg.max_batch_size == 4 and cfg.HasField("dynamic_batching")
    assert list(cfg.input[0].dims) == [3, -1, -1] and list(cfg.output[0].dims) == [5, -1, -1]
    assert cfg.input[0].data_type == 11 and cfg.output[0].data_type == 11  # TYPE_FP32
    (group,) = cfg.instance_group
    assert group.count == 2 and group.secondary_devices[0].device_id == 0  # KIND_NVDLA
    with pytest.raises(InputError, match=r"max_batch_size: expected 0\.\.4"):
        triton_config(read_manifest(engine_dir), model_name="segformer", max_batch_size=8)


def test_triton_onnx_matches_the_graph(tmp_path):
    import onnx

    onnx_dir = write_onnx_artifact(tmp_path / "b0-fp32")
    model_dir = write_triton_repository(onnx_dir, tmp_path / "repo", model_name="b0_onnx", gpus=[0],
                                        kind="KIND_GPU")
    cfg = parse_pbtxt((model_dir / "config.pbtxt").read_text())
    assert (cfg.platform, cfg.max_batch_size) == ("onnxruntime_onnx", 0)
    graph = onnx.load(str(model_dir / "1" / "model.onnx")).graph
    want = {i.name: [d.dim_value if d.HasField("dim_value") else -1 for d in i.type.tensor_type.shape.dim]
            for i in graph.input}
    assert {t.name: list(t.dims) for t in cfg.input} == want
    assert {t.name: t.data_type for t in cfg.input} == {"pixel_values": 11, "output_size": 9}  # FP32, INT64
    assert not any(t.is_shape_tensor for t in cfg.input)
    assert list(cfg.instance_group[0].gpus) == [0] and cfg.instance_group[0].kind == 1


def test_triton_openvino_copies_xml_and_bin(tmp_path):
    folder = tmp_path / "b0-ov"
    folder.mkdir()
    (folder / "model.xml").write_text("<net/>")
    (folder / "model.bin").write_bytes(b"\0" * 8)
    Manifest(format="openvino", model_file="model.xml", precision="int8", class_names=["a", "b"], palette=None,
             preprocess=PreprocessSpec(), head="logits", upsample=None, architecture={}, source={},
             inputs=[TensorInfo(name="pixel_values", dtype="float32", shape=["batch", 3, "height", "width"])],
             outputs=[TensorInfo(name="logits", dtype="float32", shape=["batch", 2, "h4", "w4"])]).write(folder)
    model_dir = write_triton_repository(folder, tmp_path / "repo")
    cfg = parse_pbtxt((model_dir / "config.pbtxt").read_text())
    assert (cfg.backend, cfg.platform, cfg.default_model_filename) == ("openvino", "", "model.xml")
    assert cfg.max_batch_size == 8 and list(cfg.input[0].dims) == [3, -1, -1]
    assert cfg.instance_group[0].kind == 2  # KIND_CPU
    assert (model_dir / "1" / "model.xml").is_file() and (model_dir / "1" / "model.bin").is_file()


def test_triton_schema_check_is_strict():
    with pytest.raises(Exception, match="no_such_field"):
        parse_pbtxt('name: "x"\nno_such_field: 1\n')
    with pytest.raises(Exception, match="TYPE_FLOAT"):
        parse_pbtxt('input [ { name: "x" data_type: TYPE_FLOAT dims: [ 1 ] } ]\n')


# ---------------------------------------------------------------- DeepStream: resize modes and aspect (issue 24 item 4)

def _restyle(engine_dir: Path, **preprocess) -> Path:
    """The engine artifact's model.json with other preprocessing (as an export with those options writes it)."""
    import json

    raw = json.loads((engine_dir / "model.json").read_text())
    raw["preprocess"] = {**raw["preprocess"], **preprocess}
    (engine_dir / "model.json").write_text(json.dumps(raw))
    return engine_dir


@pytest.mark.parametrize("resize_mode,scaling_filter,note", [
    ("bilinear", "1", None), ("nearest", "0", None), ("area", "1", "no area filter"),
    ("pil_bilinear", "1", "does not antialias")])
def test_deepstream_config_per_resize_mode(tmp_path, resize_mode, scaling_filter, note):
    """Every resize mode an export can record maps to an nvinfer filter (a Hugging Face checkpoint that resizes
    records pil_bilinear: it raised KeyError before); what nvinfer approximates is said in the header."""
    engine_dir = _restyle(_engine(tmp_path), resize_mode=resize_mode)
    path = write_deepstream_config(engine_dir, tmp_path / "ds")
    assert read_nvinfer(path)["scaling-filter"] == scaling_filter
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    assert any(note in line for line in header) if note else not any("filter" in line for line in header)


def test_deepstream_config_per_aspect_mode(tmp_path):
    stretch = read_nvinfer(write_deepstream_config(_engine(tmp_path, "s"), tmp_path / "ds-s"))
    assert stretch["maintain-aspect-ratio"] == "0" and "symmetric-padding" not in stretch
    # letterbox: scaled to fit and padded bottom/right, as segedge's preprocessing pads (not centred)
    path = write_deepstream_config(_restyle(_engine(tmp_path, "l"), aspect="letterbox"), tmp_path / "ds-l")
    letterbox = read_nvinfer(path)
    assert (letterbox["maintain-aspect-ratio"], letterbox["symmetric-padding"]) == ("1", "0")
    assert "pads with black" in path.read_text()
    # pad: no resize, padded to the stride; nvinfer always scales to infer-dims: refused with the export to use
    with pytest.raises(ArtifactError, match=r"--aspect pad.*--aspect letterbox --size H W"):
        write_deepstream_config(_restyle(_engine(tmp_path, "p"), aspect="pad"), tmp_path / "ds-p")


# ---------------------------------------------------------------- deepstream-app for N sources (issue 23 item 4)

# deepstream-app groups and the keys its parser knows (apps-common deepstream_config_file_parser.c)
DEEPSTREAM_APP_KEYS = {
    "application": {"enable-perf-measurement", "perf-measurement-interval-sec", "gie-kitti-output-dir",
                    "kitti-track-output-dir"},
    "tiled-display": {"enable", "rows", "columns", "width", "height", "gpu-id", "nvbuf-memory-type"},
    "source": {"enable", "type", "uri", "num-sources", "gpu-id", "cudadec-memtype", "nvbuf-memory-type", "latency",
               "camera-width", "camera-height", "camera-fps-n", "camera-fps-d", "camera-csi-sensor-id",
               "camera-v4l2-dev-node", "intra-decode-enable", "num-decode-surfaces", "num-extra-surfaces",
               "drop-frame-interval", "camera-id"},
    "streammux": {"gpu-id", "live-source", "batch-size", "batched-push-timeout", "width", "height",
                  "enable-padding", "nvbuf-memory-type"},
    "primary-gie": {"enable", "gpu-id", "batch-size", "gie-unique-id", "nvbuf-memory-type", "config-file",
                    "model-engine-file", "labelfile-path", "interval", "bbox-border-color", "bbox-bg-color",
                    "operate-on-gie-id", "operate-on-class-ids", "infer-raw-output-dir"},
    "osd": {"enable", "gpu-id", "process-mode", "border-width", "border-color", "text-size", "text-color",
            "text-bg-color", "font", "show-clock", "clock-x-offset", "clock-y-offset", "clock-text-size",
            "clock-color", "nvbuf-memory-type"},
    "sink": {"enable", "type", "width", "height", "sync", "qos", "container", "codec", "bitrate", "iframeinterval",
             "output-file", "source-id", "rtsp-port", "udp-port", "display-id", "overlay-id", "offset-x", "offset-y",
             "gpu-id", "nvbuf-memory-type"},
}


def read_deepstream_app(path: Path) -> configparser.ConfigParser:
    import re

    cp = configparser.ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str
    cp.read_string(path.read_text())
    for section in cp.sections():
        group = re.sub(r"\d+$", "", section) if section.startswith(("source", "sink")) else section
        assert group in DEEPSTREAM_APP_KEYS, f"group deepstream-app does not know: [{section}]"
        unknown = set(cp[section]) - DEEPSTREAM_APP_KEYS[group]
        assert not unknown, f"[{section}] keys deepstream-app does not know: {unknown}"
    return cp


@pytest.mark.parametrize("sources,grid", [(1, (1, 1)), (3, (2, 2)), (4, (2, 2)), (6, (2, 3))])
def test_deepstream_app_for_n_sources(tmp_path, sources, grid):
    from converters.deploy_configs import write_deepstream_app

    engine_dir = _engine(tmp_path, max_batch=8)
    app, infer = write_deepstream_app(engine_dir, tmp_path / "ds", sources=sources)
    cp = read_deepstream_app(app)
    assert [s for s in cp.sections() if s.startswith("source")] == [f"source{k}" for k in range(sources)]
    assert cp["streammux"]["batch-size"] == cp["primary-gie"]["batch-size"] == str(sources)
    assert read_nvinfer(infer)["batch-size"] == str(sources)
    assert (int(cp["tiled-display"]["rows"]), int(cp["tiled-display"]["columns"])) == grid
    assert (app.parent / cp["primary-gie"]["config-file"]).resolve() == infer.resolve()
    assert all(cp[f"source{k}"]["type"] == "3" and cp[f"source{k}"]["uri"].startswith("file://")
               for k in range(sources))


def test_deepstream_app_refusals_and_uris(tmp_path):
    from converters.deploy_configs import deepstream_app_config, write_deepstream_app

    engine_dir = _engine(tmp_path, max_batch=4)
    with pytest.raises(InputError, match=r"batch_size: expected 1\.\.4 .* Rebuild with --max-batch 6"):
        write_deepstream_app(engine_dir, tmp_path / "ds", sources=6)
    text = deepstream_app_config(infer_config="infer.txt", sources=2, uris=["rtsp://cam/a", "rtsp://cam/b"])
    assert "uri=rtsp://cam/a" in text and "uri=rtsp://cam/b" in text
    with pytest.raises(InputError, match="one URI for all sources or 3"):
        deepstream_app_config(infer_config="infer.txt", sources=3, uris=["a", "b"])
    with pytest.raises(ArtifactError, match="no line breaks"):
        deepstream_app_config(infer_config="infer.txt", sources=1, uris=["file:///x.mp4\n[sink1]\ntype=4"])


def test_deploy_config_cli_sources(tmp_path, capsys):
    from sdk.cli import main

    engine_dir = _engine(tmp_path, max_batch=4)
    assert main(["deploy-config", "deepstream", str(engine_dir), "--output", str(tmp_path / "ds"),
                 "--sources", "4"]) == 0
    assert "next: deepstream-app -c" in capsys.readouterr().out
    assert read_deepstream_app(tmp_path / "ds" / "deepstream_app_segformer.txt")["streammux"]["batch-size"] == "4"


# ---------------------------------------------------------------- injection through manifest strings (issue 27 item 16)

def _raw(engine_dir: Path) -> dict:
    import json

    return json.loads((engine_dir / "model.json").read_text())


def test_manifest_refuses_names_that_would_inject_into_configs(tmp_path):
    import json

    engine_dir = _engine(tmp_path)
    for field, value, match in [
            ("class_names", ["road", "car\n[property]\ncustom-lib-path=/tmp/x.so", "a", "b", "c"], "line break"),
            ("class_names", ["road", "car\u2028x", "a", "b", "c"], "line break"),
            ("outputs", [{"name": "logits\ncustom-lib-path=/tmp/x.so", "dtype": "float32",
                          "shape": ["batch", 5, "h", "w"]}], "tensor names"),
            ("outputs", [{"name": 'logits" } ] backend: "python', "dtype": "float32",
                          "shape": ["batch", 5, "h", "w"]}], "tensor names")]:
        raw = _raw(engine_dir)
        raw[field] = value
        (tmp_path / "bad").mkdir(exist_ok=True)
        (tmp_path / "bad" / "model.json").write_text(json.dumps(raw))
        (tmp_path / "bad" / "model.engine").write_bytes(b"x")
        with pytest.raises(ArtifactError, match=match):
            write_deepstream_config(tmp_path / "bad", tmp_path / "ds")
        with pytest.raises(ArtifactError, match=match):
            write_triton_repository(tmp_path / "bad", tmp_path / "repo")


def test_checkpoint_and_labels_names_are_checked_where_they_enter():
    from converters.checkpoint_checks import labels_from_meta
    from sdk.core.errors import LabelsError

    meta = {"config": {"id2label": {"0": "road", "1": "car\ncustom-lib-path=/tmp/x.so"}}}
    with pytest.raises(LabelsError, match="one line each.*--labels"):
        labels_from_meta(meta, "huggingface", Path("ckpt"))
    assert labels_from_meta({"config": {"id2label": {"0": "road", "1": "car; truck"}}}, "huggingface",
                            Path("ckpt"))[0] == ["road", "car; truck"]


def test_engine_io_names_and_paths_cannot_add_config_entries(tmp_path):
    import json

    engine_dir = _engine(tmp_path, head="mask", size_hw=None)
    raw = _raw(engine_dir)
    raw["extra"]["tensorrt"]["io"][0]["name"] = 'pixel_values" } ] parameters { key: "x'
    (engine_dir / "model.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="extra.tensorrt.io name: expected a tensor name"):
        write_triton_repository(engine_dir, tmp_path / "repo")
    odd = _engine(tmp_path, "b0\ncustom-lib-path=x.engine")  # a folder name with a line break
    with pytest.raises(ArtifactError, match="model-engine-file: expected no line breaks"):
        write_deepstream_config(odd, tmp_path / "ds")
    # a ';' splits a DeepStream label line: refused there, kept in Triton's labels.txt (one name per line)
    semi = _engine(tmp_path, "semi")
    raw = _raw(semi)
    raw["class_names"] = ["road", "car; truck", "a", "b", "c"]
    (semi / "model.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="DeepStream's label parser"):
        write_deepstream_config(semi, tmp_path / "ds2")
    model_dir = write_triton_repository(semi, tmp_path / "repo2")
    assert (model_dir / "labels.txt").read_text().splitlines()[1] == "car; truck"


def test_triton_strings_are_quoted_protobuf_text():
    from converters.deploy_configs import pbtxt_string

    for value in ('plain', 'a"b', 'back\\slash', 'x" backend: "python'):
        cfg = parse_pbtxt(f"name: {pbtxt_string(value)}\n")
        assert cfg.name == value and not cfg.backend
