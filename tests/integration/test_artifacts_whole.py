"""Artifacts written whole (issue 27 items 5, 21), quantize's minimum (item 2) and verify's references (item 17).

An export, export-openvino or quantize into a folder holding an earlier artifact replaces it only once the new
one is complete: interrupted (Ctrl-C) or failing at several moments, the old artifact is left intact and loadable
and no half-written folder is left beside it. A folder of other files is refused unless --overwrite. Real ONNX
Runtime / OpenVINO on the tiny real graph from ``tests/tiny_artifacts``; one real checkpoint export."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration import quantize
from calibration.int8 import BelowMinimumError
from sdk import Segmenter
from sdk.core.errors import ArtifactError, OutputError
from sdk.core.manifest import read_manifest
from sdk.core.records import ReferenceRecord
from tiny_artifacts import write_onnx_artifact


def _frames(n: int, hw=(48, 64), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
        out.append(cv2.resize(small, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR))
    return out


def _write_frames(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(_frames(n)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f[..., ::-1])
    return folder


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory):
    return write_onnx_artifact(tmp_path_factory.mktemp("tiny") / "fp32", head="logits")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def _old_artifact(tmp_path: Path) -> tuple[Path, dict]:
    old = write_onnx_artifact(tmp_path / "out", head="mask", num_classes=3)
    return old, _snapshot(old)


def _still_loads(folder: Path, before: dict) -> None:
    assert _snapshot(folder) == before
    with Segmenter.from_artifact(folder) as seg:
        assert seg(_frames(1)[0]).mask.shape == (48, 64)
    _no_leftovers(folder.parent)


@pytest.mark.parametrize("where", ["backend", "record", "install"])
def test_interrupted_quantize_leaves_the_old_artifact(tmp_path, tiny_fp32, monkeypatch, where):
    import calibration.int8 as int8
    import sdk.core.staging as staging

    old, before = _old_artifact(tmp_path)
    target = {"backend": (int8, "_run_backend"), "record": (int8, "_record"), "install": (staging, "_install")}[where]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(*target, interrupted)
    with pytest.raises(KeyboardInterrupt):
        quantize(tiny_fp32, old, backend="onnxruntime", calib=_frames(20), progress=False)
    _still_loads(old, before)


def test_failing_quantize_leaves_nothing_where_there_was_nothing(tmp_path, tiny_fp32, monkeypatch):
    import calibration.int8 as int8

    monkeypatch.setattr(int8, "_record", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        quantize(tiny_fp32, tmp_path / "new", backend="onnxruntime", calib=_frames(20), progress=False)
    assert not (tmp_path / "new").exists()
    _no_leftovers(tmp_path)


def test_quantize_replaces_an_earlier_artifact_whole(tmp_path, tiny_fp32, capsys):
    """An OpenVINO IR's model.xml/.bin in the folder do not survive an ONNX Runtime INT8 written there (inspect
    counted them), and an export's fp32/ from a failed run is not left behind."""
    from sdk.cli import main

    out = tmp_path / "out"
    write_onnx_artifact(out, head="mask", num_classes=3)
    (out / "model.xml").write_text("<net/>")
    (out / "model.bin").write_bytes(b"\0")
    calib = _write_frames(tmp_path / "frames", 20)
    assert main(["quantize", str(tiny_fp32), "--backend", "onnxruntime", "--calib", str(calib), "--output", str(out),
                 "--min-agreement", "0.5", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx", "reference"]
    assert read_manifest(out).precision == "int8"
    _no_leftovers(tmp_path)


def test_a_folder_of_other_files_is_refused_unless_overwrite(tmp_path, tiny_fp32, capsys):
    from sdk.cli import main

    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"not ours")
    calib = _write_frames(tmp_path / "frames", 20)
    args = ["quantize", str(tiny_fp32), "--backend", "onnxruntime", "--calib", str(calib), "--output", str(out),
            "--min-agreement", "0.5", "-q"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "holiday.jpg" in err and "--overwrite" in err
    assert (out / "holiday.jpg").read_bytes() == b"not ours"
    assert main(args + ["--overwrite"]) == 0
    assert not (out / "holiday.jpg").exists() and (out / "model.onnx").is_file()
    # the source inside the output would be deleted by replacing it: always refused
    inner = write_onnx_artifact(tmp_path / "outer" / "fp32", head="logits")
    with pytest.raises(OutputError, match="replace the input"):
        quantize(inner, tmp_path / "outer", backend="onnxruntime", calib=_frames(20), overwrite=True, progress=False)
    assert (inner / "model.onnx").is_file()


@pytest.mark.parametrize("where", ["save", "parity"])
def test_interrupted_export_openvino_leaves_the_old_artifact(tmp_path, tiny_fp32, monkeypatch, where):
    pytest.importorskip("openvino", reason="needs openvino")
    import converters.openvino_export as ove
    from converters.openvino_export import export_openvino

    old, before = _old_artifact(tmp_path)
    if where == "save":  # a full disk: OpenVINO's own words ("iostream error") become one line naming the folder
        def full(*args, **kwargs):
            raise RuntimeError("Exception from src/core/src/pass/serialize.cpp:1314:\niostream error")

        monkeypatch.setattr(ove.require("openvino", "cpu"), "save_model", full)
        with pytest.raises(OutputError, match="could not be written.*iostream error.*disk full"):
            export_openvino(tiny_fp32, old, progress=False)
    else:
        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(ove, "probe_parity", interrupted)
        with pytest.raises(KeyboardInterrupt):
            export_openvino(tiny_fp32, old, progress=False)
    _still_loads(old, before)
    # and done whole: the IR replaces the ONNX artifact, no model.onnx left beside model.xml
    monkeypatch.undo()
    export_openvino(tiny_fp32, old, progress=False)
    assert sorted(p.name for p in old.iterdir()) == ["model.bin", "model.json", "model.xml"]


def test_export_openvino_into_a_read_only_folder_is_one_line(tmp_path, tiny_fp32, capsys):
    pytest.importorskip("openvino", reason="needs openvino")
    from sdk.cli import main

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["export-openvino", str(tiny_fp32), "--output", str(ro / "ir"), "-q"]) == 1
        assert "writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_interrupted_checkpoint_export_leaves_the_old_artifact(tmp_path, hf_model, monkeypatch, one_torch_thread):
    import converters.onnx_export as exp

    old, before = _old_artifact(tmp_path)

    def interrupted(*args, **kwargs):  # called after model.onnx is written, before the manifest
        raise KeyboardInterrupt

    monkeypatch.setattr(exp, "_versions", interrupted)
    with pytest.raises(KeyboardInterrupt):
        exp.export_onnx(hf_model, old, size_hw=(64, 96), progress=False)
    _still_loads(old, before)


# --- item 2: one rule for quantize and verify ---------------------------------------------------------------------

def test_quantize_under_the_minimum_fails_loudly_unless_kept(tmp_path, tiny_fp32, capsys):
    from sdk.cli import main

    calib = _write_frames(tmp_path / "frames", 24)
    out = tmp_path / "q"
    args = ["quantize", str(tiny_fp32), "--backend", "onnxruntime", "--calib", str(calib), "--output", str(out), "-q"]
    assert main(args + ["--min-agreement", "0.99999"]) == 1
    err = capsys.readouterr().err
    assert "under the 100.00% minimum" in err or "under the 99.99% minimum" in err or "minimum" in err
    assert "--keep-below-min" in err and "--num-samples" in err and "--max-drop" in err and "--keep-float" in err
    assert not out.exists()
    assert main(args + ["--min-agreement", "0.99999", "--keep-below-min"]) == 0
    captured = capsys.readouterr()
    assert "WARNING" in captured.err and "verify will fail it" in captured.err
    # the same rule in verify: it fails what quantize kept under the minimum, and passes at the same minimum as made
    assert main(["verify", str(out), "--min-agreement", "0.99999"]) == 1
    recorded = ReferenceRecord.read(read_manifest(out)).agreement
    capsys.readouterr()
    assert main(["verify", str(out), "--min-agreement", str(recorded)]) == 0
    with pytest.raises(BelowMinimumError):
        quantize(tiny_fp32, tmp_path / "py", backend="onnxruntime", calib=_frames(20), min_agreement=0.99999,
                 progress=False)
    assert not (tmp_path / "py").exists()


# --- item 17: verify reads only what lies inside the artifact, and compares something ---------------------------

@pytest.fixture()
def quantized(tmp_path, tiny_fp32):
    return quantize(tiny_fp32, tmp_path / "q", backend="onnxruntime", calib=_frames(24), progress=False).artifact


def _edit_reference(art: Path, **changes) -> None:
    m = json.loads((art / "model.json").read_text())
    m["extra"]["reference"].update(changes)
    (art / "model.json").write_text(json.dumps(m))


@pytest.mark.parametrize("changes", [{"folder": ".."}, {"folder": "/etc"}, {"frames": ["../../frame.png"]},
                                     {"masks": ["/etc/hostname"]}, {"frames": [], "masks": []},
                                     {"frames": ["frame_00.png"]}])
def test_verify_refuses_references_outside_the_artifact_or_none(quantized, changes):
    from calibration.verify import verify

    _edit_reference(quantized, **changes)
    with pytest.raises(ArtifactError, match="reference record"):
        verify(quantized, min_agreement=0.5)


def test_verify_blames_a_corrupt_reference_mask_on_the_reference(quantized, capsys):
    from sdk.cli import main

    ref = ReferenceRecord.read(read_manifest(quantized))
    path = quantized / ref.folder / ref.masks[0]
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    mask[0, 0] = 200  # the tiny model has 5 classes
    cv2.imwrite(str(path), mask)
    assert main(["verify", str(quantized), "--min-agreement", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "reference mask" in err and "the reference is damaged, not the model" in err


# --- item 5: build, report and demo write whole too -----------------------------------------------------------------

def _fake_build(fail: bool):
    def build_engine(onnx_artifact, output, **options):
        out = Path(output)
        (out / "model.engine").write_bytes(b"half an engine")
        if fail:
            raise KeyboardInterrupt
        from runtimes.tensorrt import ShapeRange
        from tiny_artifacts import write_engine_artifact

        write_engine_artifact(out, Path(onnx_artifact), profile=[ShapeRange(name="pixel_values", min=(1, 3, 64, 64),
                                                                            opt=(1, 3, 64, 64), max=(1, 3, 64, 64))])
        return out

    return build_engine


def test_build_writes_whole(tmp_path, tiny_fp32, monkeypatch, capsys):
    """segedge build (TensorRT is not needed here: the builder is replaced by one that writes, then stops)."""
    import converters.tensorrt_build as tb
    from sdk.cli import main

    old, before = _old_artifact(tmp_path)
    monkeypatch.setattr(tb, "build_engine", _fake_build(fail=True))
    assert main(["build", str(tiny_fp32), "--output", str(old)]) == 130  # Ctrl-C
    _still_loads(old, before)
    monkeypatch.setattr(tb, "build_engine", _fake_build(fail=False))
    main(["build", str(tiny_fp32), "--output", str(old)])  # (the stand-in's manifest lacks build timings to print)
    assert sorted(p.name for p in old.iterdir()) == ["model.engine", "model.json"]  # the new folder, moved in whole
    assert read_manifest(old).format == "tensorrt"
    _no_leftovers(tmp_path)


def test_report_writes_whole(tmp_path, monkeypatch, capsys):
    import calibration.report as report
    from calibration.report import make_report

    out = tmp_path / "report"
    (out / "artifacts" / "ort-int8").mkdir(parents=True)
    (out / "report.json").write_text("{}")
    (out / "artifacts" / "ort-int8" / "model.onnx").write_bytes(b"earlier")
    before = _snapshot(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "eval_items", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_report(tmp_path / "ckpt", out, calib=tmp_path, eval_set=tmp_path, backends=("onnxruntime",))
    assert _snapshot(out) == before
    _no_leftovers(tmp_path)
    other = tmp_path / "docs"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt.*--overwrite"):
        make_report(tmp_path / "ckpt", other, calib=tmp_path, eval_set=tmp_path, backends=("onnxruntime",))
    assert (other / "notes.txt").read_text() == "mine"


def test_demo_replaces_the_last_runs_masks(tmp_path, capsys):
    from sdk.cli import main

    out = tmp_path / "demo"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / "0001TP_008550.png").write_bytes(b"a mask of the last run")
    assert main(["demo", "--camvid", "none", "--frames", "1", "--save", "1", "--output", str(out), "-q"]) == 0
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["street_00.png", "street_00_color.png",
                                                                 "street_00_overlay.png"]
    _no_leftovers(out)
