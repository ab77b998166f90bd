"""Careless and hostile inputs of issue 27 items 20 and 22: deeply nested JSON in a manifest, config.json or
preprocessor_config.json is one line naming the file (not an uncaught RecursionError), an over-long value is not
quoted whole; `--token-merge 2x2:` with no stages, `--holdout 15` of 16 frames and `verify --samples -2` say what
they do or name the flag."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from calibration.int8 import split_holdout
from calibration.sets import load_calibration_set
from sdk.core.errors import ArtifactError, CheckpointError, InputError
from sdk.core.manifest import read_manifest
from tiny_artifacts import write_onnx_artifact


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_manifest_is_one_line_naming_the_file(tmp_path, depth, capsys):
    from sdk.cli import main

    art = write_onnx_artifact(tmp_path / "a")
    m = json.loads((art / "model.json").read_text())
    (art / "model.json").write_text(json.dumps(m)[:-1] + f', "deep": {_nested(depth)}}}')
    with pytest.raises(ArtifactError, match=r"model\.json is unreadable.*nested at most 32"):
        read_manifest(art)
    assert main(["inspect", str(art)]) == 1
    err = capsys.readouterr().err
    assert "model.json" in err and "Traceback" not in err and len(err) < 600


def test_an_over_long_value_is_not_quoted_whole(tmp_path):
    art = write_onnx_artifact(tmp_path / "a")
    m = json.loads((art / "model.json").read_text())
    m["preprocess"]["mean"] = [[1.0] * 5000, 2.0, 3.0]
    (art / "model.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError) as info:
        read_manifest(art)
    assert "model.json" in str(info.value) and len(str(info.value)) < 800


@pytest.mark.parametrize("name", ["config.json", "preprocessor_config.json"])
def test_deeply_nested_checkpoint_json_names_the_file(tmp_path, hf_model, name):
    from converters.checkpoints import load_checkpoint

    folder = tmp_path / "hf"
    shutil.copytree(hf_model, folder)
    raw = json.loads((folder / name).read_text())
    (folder / name).write_text(json.dumps(raw)[:-1] + f', "deep": {_nested(50_000)}}}')
    with pytest.raises(CheckpointError, match=rf"{name} is unreadable.*nested"):
        load_checkpoint(folder)


def test_token_merge_colon_without_stages_is_refused():
    from converters.token_merge_spec import parse_token_merge

    with pytest.raises(InputError, match=r"no stages after it.*'2x2:1\+2'"):
        parse_token_merge("2x2:")
    assert parse_token_merge("2x2").stages == parse_token_merge("2x2:1+2").stages


@pytest.mark.parametrize("n, holdout", [(16, 15), (16, 14), (16, 8), (9, 8), (40, None)])
def test_holdout_holds_out_exactly_what_it_says(n, holdout):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(n)]
    calib = load_calibration_set(iter(frames), num_samples=n)
    kept, held = split_holdout(calib, holdout)
    want = holdout if holdout is not None else min(8, n // 8)
    assert len(held) == want and len(kept) == n - want


def test_verify_samples_names_the_flag(tmp_path):
    from calibration.verify import verify

    art = write_onnx_artifact(tmp_path / "a")
    with pytest.raises(InputError, match=r"samples \(--samples\): expected an int >= 0"):
        verify(art, data=tmp_path, samples=-2)


def test_stretch_warning_once_in_the_cli_format_with_a_command_that_exists(tmp_path, capsys):
    """Item 8: the stretch warning names `segedge export --aspect letterbox` (quantize has no --aspect), shows once
    per run and frame size as `segedge CMD: warning: ...`, and not where the checkpoint's processor stretches."""
    import cv2

    from sdk.cli import main

    art = write_onnx_artifact(tmp_path / "a", size_hw=(64, 64))
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"{i}.png"), np.full((48, 96, 3), 40 * i, np.uint8))
    assert main(["predict", str(art), str(images), "--output", str(tmp_path / "masks")]) == 0
    err = capsys.readouterr().err
    assert err.count("segedge predict: warning: image 48x96: its aspect differs") == 1
    assert "segedge export CHECKPOINT --aspect letterbox --size 64 64" in err and "quantize --aspect" not in err
    assert "UserWarning" not in err and ".py:" not in err
    # a checkpoint whose own processor resizes (pil_bilinear) was trained on stretched frames: no warning
    import warnings

    from sdk.core.preprocess import PreprocessSpec, preprocess

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preprocess(np.zeros((48, 96, 3), np.uint8), PreprocessSpec(size_hw=(64, 64), resize_mode="pil_bilinear"))


def test_quantize_openvino_prints_no_nncf_info_lines(tmp_path):
    """Item 10: importing nncf reset its logger to INFO after quantize had lowered it (18 INFO:nncf lines without
    -q); nncf is now imported, and the extra checked, before any work."""
    import subprocess
    import sys
    from pathlib import Path

    import cv2

    pytest.importorskip("nncf", reason="needs nncf (pip install 'segedge[quantize]')")
    root = Path(__file__).resolve().parents[2]
    art = write_onnx_artifact(tmp_path / "a", head="logits")
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        cv2.imwrite(str(frames / f"{i}.png"), cv2.resize(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8), (64, 48)))
    proc = subprocess.run([sys.executable, "-m", "sdk.cli", "quantize", str(art), "--backend", "openvino", "--calib",
                           str(frames), "--output", str(tmp_path / "q"), "--keep-below-min"],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "INFO:nncf" not in proc.stdout + proc.stderr and "held-out agreement" in proc.stdout


def test_quantize_openvino_without_nncf_fails_before_the_export(tmp_path, monkeypatch):
    import sys

    from calibration import quantize
    from sdk.core.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(MissingDependencyError, match=r"segedge\[quantize\]"):
        quantize(tmp_path / "checkpoint-never-read", tmp_path / "out", backend="openvino", calib=tmp_path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("module, named", [("PIL", "Pillow"), ("transformers", "transformers")])
def test_bench_baseline_names_what_it_needs(tmp_path, monkeypatch, capsys, module, named):
    """Item 11: the pytorch baseline needs torch, transformers and Pillow: a missing one is one line naming it and
    the extra (the Pillow error used to come out of transformers garbled, as a bug to report)."""
    import sys

    from sdk.cli import main

    art = write_onnx_artifact(tmp_path / "a")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, module, None)
    assert main(["bench", str(art), "--size", "64", "64", "--repeats", "1", "--warmup", "0", "--settle", "0",
                 "--baseline", "pytorch", str(hf)]) == 1
    err = capsys.readouterr().err
    assert f"{named} is not installed" in err and "segedge[convert,baseline]" in err and "report" not in err


def test_eval_ignore_index_and_the_reference_drop(tmp_path, capsys):
    """Item 12: an images/ + labels/ set whose void label is not 255 is scored with --ignore-index (the error said
    to set the ignore index, with no option to); item 15: eval --reference prints the reference's mIoU and the drop."""
    import cv2

    from calibration import quantize
    from sdk.cli import main

    art = write_onnx_artifact(tmp_path / "a", num_classes=5)
    data = tmp_path / "set"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(data / "images" / f"{i}.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        label = rng.integers(0, 5, (48, 64), dtype=np.uint8)
        label[:8] = 9  # the set's void label
        cv2.imwrite(str(data / "labels" / f"{i}.png"), label)
    assert main(["eval", str(art), "--data", str(data)]) == 1
    assert "--ignore-index" in capsys.readouterr().err
    assert main(["eval", str(art), "--data", str(data), "--ignore-index", "9"]) == 0
    assert "mIoU" in capsys.readouterr().out
    assert main(["eval", str(art), "--data", str(data), "--ignore-index", "300"]) == 1
    assert "--ignore-index" in capsys.readouterr().err
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(20)]
    int8 = quantize(art, tmp_path / "q", backend="onnxruntime", calib=frames, progress=False).artifact
    assert main(["eval", str(int8), "--data", str(data), "--ignore-index", "9", "--reference", str(art)]) == 0
    assert "reference mIoU" in (out := capsys.readouterr().out) and "points" in out


def test_predict_writes_a_coloured_mask_and_an_overlay_with_a_legend(tmp_path, capsys):
    """Item 15: class-id PNGs look black; a _color.png beside each, and the overlay names the classes present."""
    import cv2

    from sdk.cli import main
    from sdk.core.result import SegmentationResult, default_palette, draw_legend

    art = write_onnx_artifact(tmp_path / "a", num_classes=5)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(images / "street.png"), rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    assert main(["predict", str(art), str(images), "--output", str(tmp_path / "masks")]) == 0
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["street.png", "street_color.png",
                                                                      "street_overlay.png"]
    mask = cv2.imread(str(tmp_path / "masks" / "street.png"), cv2.IMREAD_UNCHANGED)
    color = cv2.imread(str(tmp_path / "masks" / "street_color.png"))[..., ::-1]
    m = read_manifest(art)
    result = SegmentationResult(mask, m.class_names, m.palette or default_palette(5))
    np.testing.assert_array_equal(color, result.colorize())
    image = cv2.imread(str(images / "street.png"))[..., ::-1]
    plain, with_legend = result.overlay(image), result.overlay(image, legend=True)
    assert not np.array_equal(plain[:20, :40], with_legend[:20, :40])  # the legend's panel in the corner
    assert np.array_equal(plain[-20:, -20:], with_legend[-20:, -20:])  # the rest as it was
    many = draw_legend(plain, np.arange(120 * 160).reshape(120, 160) % 5, [f"c{i}" for i in range(5)],
                       result.palette, max_rows=2)
    assert many.shape == plain.shape


def test_an_error_during_a_progress_bar_starts_its_own_line(tmp_path, capsys):
    """Item 13 (the CLI part): a bar still drawn when a command fails is closed before the error is printed, so the
    error does not land on the bar's line."""
    import sys

    from tqdm import tqdm

    from sdk.cli import main

    bar = tqdm(total=10, desc="work", file=sys.stderr)  # drawn and not closed, as a command's bar is when it fails
    bar.update(3)
    assert main(["inspect", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "3/10" in err and "\nsegedge inspect: error:" in err


def test_predict_skips_bad_files_and_says_so(tmp_path, capsys):
    """Items 6, 7: a truncated image, one over the artifact's input limit and a 20x30 one are listed at the end,
    named by file and flag, while the others are segmented (exit 1); --strict stops at the first; subfolders and
    non-image files in a folder are named too."""
    import cv2

    from sdk.cli import main

    art = write_onnx_artifact(tmp_path / "a", num_classes=5)
    m = json.loads((art / "model.json").read_text())
    m["extra"]["max_input_pixels"] = 64 * 64
    (art / "model.json").write_text(json.dumps(m))
    shots = tmp_path / "shots"
    (shots / "more").mkdir(parents=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(shots / "a_good.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    cv2.imwrite(str(shots / "b_big.png"), rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    cv2.imwrite(str(shots / "c_tiny.png"), rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    good = (shots / "a_good.png").read_bytes()
    (shots / "d_truncated.png").write_bytes(good[: len(good) // 2])
    cv2.imwrite(str(shots / "e_good.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    (shots / "notes.txt").write_text("not an image")
    out = tmp_path / "masks"
    assert main(["predict", str(art), str(shots), "--output", str(out), "--no-overlay"]) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["a_good.png", "e_good.png"]
    assert "skipped 3 images" in captured.err
    for name in ("b_big.png", "c_tiny.png", "d_truncated.png"):
        assert str(shots / name) in captured.err
    assert "images[" not in captured.err and "--max-input-pixels" in captured.err
    assert "1 subfolder (more" in captured.out and "1 file that is not an image (notes.txt)" in captured.out
    assert main(["predict", str(art), str(shots), "--output", str(tmp_path / "strict"), "--strict"]) == 1
    assert "b_big.png" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "strict").iterdir()) == ["a_good.png", "a_good_color.png",
                                                                       "a_good_overlay.png"]
