"""Hostile or careless artifacts and calls: manifests that contradict their model, threads sharing one Segmenter,
numbers that mean something else, frames too large for a native-resolution model (issue 12, items 4, 5, 8, 9, 12).
Tiny real ONNX artifacts (tests/tiny_artifacts.py), real ONNX Runtime and OpenVINO."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from sdk import Segmenter
from sdk.core.errors import ArtifactError, InputError
from sdk.core.manifest import read_manifest
from tiny_artifacts import write_onnx_artifact


def _edit(folder: Path, fn) -> Path:
    m = json.loads((folder / "model.json").read_text())
    fn(m)
    (folder / "model.json").write_text(json.dumps(m))
    return folder


def _image(h=64, w=96, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture()
def art(tmp_path):
    return write_onnx_artifact(tmp_path / "tiny", num_classes=5)


# ---------------------------------------------------------------------------------- item 4: class names vs model
def test_fewer_names_than_the_mask_head_returns(art):
    _edit(art, lambda m: m.update(class_names=["a"]))
    with Segmenter.from_artifact(art) as seg, pytest.raises(ArtifactError, match="returned class id [1-4], but its "
                                                                               "manifest names 1 classes"):
        seg(_image())


def test_names_vs_architecture_classes(art):
    _edit(art, lambda m: (m.update(class_names=[f"c{i}" for i in range(20)]),
                          m["architecture"].update(num_classes=5)))
    with pytest.raises(ArtifactError, match="model has 5 output classes .* but 20 names"):
        read_manifest(art)


def test_names_vs_logits_output(tmp_path):
    art = _edit(write_onnx_artifact(tmp_path / "lg", head="logits", num_classes=5),
                lambda m: m.update(class_names=[f"c{i}" for i in range(20)]))
    with pytest.raises(ArtifactError, match="outputs 5 classes, but model.json names 20"):
        Segmenter.from_artifact(art)


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(class_names="road"), "class_names: expected a non-empty list"),
    (lambda m: m.update(class_names=[]), "class_names: expected a non-empty list"),
    (lambda m: m.update(class_names=[1, 2, 3, 4, 5]), "class_names"),
    (lambda m: m.update(palette=[[0, 0, 0]] * 4), "palette: expected 5 colours"),
    (lambda m: m.update(palette=[[0, 0, 300]] * 5), "palette: expected null or a list"),
    (lambda m: m.update(preprocess=None), "preprocess: expected an object"),  # item 12
    (lambda m: m["preprocess"].update(mean=["123", 116, 103]), r"model\.json: preprocess\.mean: expected 3 finite"),
    (lambda m: m["preprocess"].update(mean=[float("nan"), 116, 103]), "preprocess.mean: expected 3 finite"),
    (lambda m: m["preprocess"].update(std=[float("inf"), 1, 1]), "preprocess.std: expected 3 finite"),
    (lambda m: m.update(extra=[1]), "extra: expected an object"),
    (lambda m: m.update(head="logits"), "head 'logits': expected inputs"),
    (lambda m: m["outputs"][0].update(dtype="float32"), "output 'mask' is tensor.uint8. in the model, float32"),
    (lambda m: m["preprocess"].update(std=[0, 1, 1]), "std > 0"),
    (lambda m: m["preprocess"].update(size_hw=[512]), "size_hw"),
    (lambda m: m.update(model_file="../../etc/passwd"), "model_file: expected a file name"),
    (lambda m: m.update(outputs="mask"), "outputs: expected a list"),
    (lambda m: m["outputs"][0].update(dtype="uint9"), "not a numpy dtype"),
    (lambda m: m.pop("inputs"), "inputs: expected a list"),
    (lambda m: m.pop("head"), "incomplete or malformed"),
])
def test_manifest_fields(art, edit, match):
    _edit(art, edit)
    with pytest.raises(ArtifactError, match=match):
        Segmenter.from_artifact(art)


def test_manifest_not_an_object(art):
    (art / "model.json").write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="must hold a JSON object"):
        read_manifest(art)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_renamed_outputs_fail_at_load(art, runtime):  # item 12
    _edit(art, lambda m: m["outputs"][0].update(name="labels"))
    with pytest.raises(ArtifactError, match="outputs"):
        Segmenter.from_artifact(art, runtime=runtime)
    _edit(art, lambda m: (m["outputs"][0].update(name="mask"), m["outputs"].append(
        {"name": "extra_scores", "dtype": "float32", "shape": ["batch"]})))
    with pytest.raises(ArtifactError, match="outputs .* lack the manifest's"):  # the model file is checked at load
        Segmenter.from_artifact(art, runtime=runtime)


# ---------------------------------------------------------------------------------------- item 5: threads
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_one_segmenter_shared_by_threads(art, runtime):
    images = [_image(64 + 32 * (i % 2), 96, seed=i) for i in range(8)]
    with Segmenter.from_artifact(art, runtime=runtime) as seg:
        expected = [seg(img).mask for img in images]
        errors: list[BaseException] = []
        results: dict[int, list[np.ndarray]] = {}

        def work(t: int) -> None:
            try:
                results[t] = [seg(images[(t + k) % 8]).mask for k in range(16)]
            except BaseException as exc:  # noqa: BLE001 -- collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert not errors, errors
    for t, masks in results.items():
        for k, mask in enumerate(masks):
            assert np.array_equal(mask, expected[(t + k) % 8])
    assert len(results) == 4


# ------------------------------------------------------------------------------ item 8: numbers that mean else
def test_thread_count_typo_is_refused_not_started(art):
    with pytest.raises(InputError, match="threads: expected an int from 0"):
        Segmenter.from_artifact(art, runtime="onnxruntime", threads=10**6)


def test_overlay_arguments(art):
    with Segmenter.from_artifact(art) as seg:
        res = seg(_image())
    assert res.overlay(_image()).shape == (64, 96, 3)
    for image, alpha in ((_image().astype(np.float32), 0.5), ([1, 2], 0.5), (_image(32, 32), 0.5), (_image(), 5)):
        with pytest.raises(InputError):
            res.overlay(image, alpha=alpha)


def test_batch_size_and_threads_refused(art):
    with Segmenter.from_artifact(art) as seg:
        for bad in (0, -1, 1.5, True):
            with pytest.raises(InputError, match="batch_size: expected an int >= 1"):
                seg.predict_batch([_image()], batch_size=bad)
        assert len(seg.predict_batch([_image(), _image()], batch_size=1)) == 2
    for runtime in ("onnxruntime", "openvino"):
        with pytest.raises(InputError, match="threads: expected an int from 0"):
            Segmenter.from_artifact(art, runtime=runtime, threads=-1)


def test_unknown_runtime_option(art):  # item 10: bench --runtime-option precision=f32 on ONNX Runtime
    with pytest.raises(InputError, match=r"onnxruntime runtime takes \['providers', 'threads'\], got \['precision'\]"):
        Segmenter.from_artifact(art, runtime="onnxruntime", precision="f32")
    with pytest.raises(InputError, match="--device GPU: ONNX Runtime here runs on cpu"):  # device= is the table's
        Segmenter.from_artifact(art, runtime="onnxruntime", device="GPU")


def test_predict_batch_input_forms(art):
    with Segmenter.from_artifact(art) as seg:
        with pytest.raises(InputError, match="images"):
            seg.predict_batch(_image())  # one image, not a list
        with pytest.raises(InputError, match="images"):
            seg.predict_batch("frame.png")
        assert seg.predict_batch([]) == []
        stacked = np.stack([_image(seed=1), _image(seed=2)])
        assert [r.mask.shape for r in seg.predict_batch(stacked)] == [(64, 96), (64, 96)]
        view = _image(128, 192)[::2, ::2]  # non-contiguous keeps working
        assert np.array_equal(seg(view).mask, seg(np.ascontiguousarray(view)).mask)


# ------------------------------------------------------------------------------------------ item 9: size guard
def test_native_resolution_size_guard(art):
    with Segmenter.from_artifact(art) as seg:
        with pytest.raises(InputError, match=r"4000x6000 would run the network at 4000x6000 .*--size"):
            seg(np.zeros((4000, 6000, 3), np.uint8))
    with Segmenter.from_artifact(art, max_input_pixels=64 * 64) as seg:
        assert seg(_image(64, 64)).mask.shape == (64, 64)
        with pytest.raises(InputError, match="over this Segmenter's limit"):
            seg(_image(64, 96))


def test_export_records_the_input_limit_and_converters_keep_it(tmp_path, hf_model):
    """segedge export --max-input-pixels: recorded in model.json, carried into the OpenVINO IR, and honoured by
    Segmenter; a fixed --size over the limit is refused at export, before any work."""
    from converters.onnx_export import export_onnx
    from converters.openvino_export import export_openvino
    from sdk.core.errors import ExportError

    with pytest.raises(ExportError, match=r"2048x4096 is 8388608 network pixels, over the limit of 4194304.*"
                                          r"--max-input-pixels 8388608"):
        export_onnx(hf_model, tmp_path / "big", size_hw=(2048, 4096), progress=False)
    with pytest.raises(ExportError, match="max_input_pixels: expected an int >= 1024"):
        export_onnx(hf_model, tmp_path / "bad", max_input_pixels=100, progress=False)
    assert not (tmp_path / "big").exists() and not (tmp_path / "bad").exists()

    onnx_art = export_onnx(hf_model, tmp_path / "limited", max_input_pixels=128 * 160, progress=False)
    assert read_manifest(onnx_art).extra["max_input_pixels"] == 128 * 160
    ir = export_openvino(onnx_art, tmp_path / "limited-ir", progress=False)
    assert read_manifest(ir).extra["max_input_pixels"] == 128 * 160
    with Segmenter.from_artifact(ir) as seg:
        assert seg.max_input_pixels == 128 * 160
        assert seg(_image(128, 160)).mask.shape == (128, 160)
        with pytest.raises(InputError, match="over this Segmenter's limit"):
            seg(_image(160, 160))


def test_resizing_model_takes_large_frames(tmp_path):
    art = write_onnx_artifact(tmp_path / "sized", size_hw=(64, 64))
    with Segmenter.from_artifact(art) as seg:  # the network runs at 64x64 whatever the frame's size
        assert seg(np.zeros((2100, 2100, 3), np.uint8)).mask.shape == (2100, 2100)
        with pytest.raises(InputError, match="expected at most 89.5 MP"):
            seg(np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (10000, 10000, 3)))


def test_one_class_head_keeps_working(tmp_path):
    art = write_onnx_artifact(tmp_path / "one", num_classes=1)
    with Segmenter.from_artifact(art) as seg:
        res = seg(_image())
    assert res.mask.max() == 0 and res.class_areas() == {"class_0": 1.0}
