"""The CLI on ordinary mistakes: one line and exit 1 (SDK errors) or 2 (usage), never a traceback; predict never
reports files it did not write and never overwrites or loses data (issue 12, items 2, 3, 8, 10)."""
from __future__ import annotations

import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from sdk.cli import main
from sdk.predict_files import output_names, predict_files
from sdk.core.errors import InputError, OutputError
from tiny_artifacts import write_onnx_artifact

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdk.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, **kw)


def _one_line_error(res: subprocess.CompletedProcess, code: int = 1) -> str:
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    if code == 2:  # argparse: the usage, then one error line
        assert lines[0].startswith("usage:") and lines[-1].startswith("segedge "), res.stderr
    else:
        assert len(lines) == 1, res.stderr
    return lines[-1]


def _write(path: Path, seed: int = 0, hw=(64, 96)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8))
    return path


@pytest.fixture()
def art(tmp_path):
    return write_onnx_artifact(tmp_path / "tiny", num_classes=5)


# ------------------------------------------------------------------------------------- item 3: names, overwrite
def test_same_stems_give_distinct_masks(tmp_path, art):
    a, b = _write(tmp_path / "in" / "a" / "frame.png", 1), _write(tmp_path / "in" / "b" / "frame.png", 2)
    c = _write(tmp_path / "in" / "a" / "frame.jpg", 3)
    written = predict_files(art, [str(a), str(b), str(c)], tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == \
        ["a/frame_jpg.png", "a/frame_png.png", "b/frame.png"]
    assert all(p.is_file() for p in written)
    assert len({cv2.imread(str(p), cv2.IMREAD_UNCHANGED).tobytes() for p in written}) == 3


def test_unique_stems_stay_flat():
    assert output_names([Path("x/a.png"), Path("y/b.jpg")]) == ["a", "b"]
    with pytest.raises(InputError, match="given twice"):
        output_names([Path("x/a.png"), Path("x/../x/a.png")])


def test_output_equal_to_input_folder_is_refused(tmp_path, art):
    folder = tmp_path / "frames"
    src = _write(folder / "f1.png")
    before = src.read_bytes()
    with pytest.raises(InputError, match="is also an input folder"):
        predict_files(art, [str(folder)], folder)
    assert src.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["f1.png"]


def test_output_that_would_overwrite_an_input_file(tmp_path, art):
    src = _write(tmp_path / "shot.png")
    before = src.read_bytes()
    with pytest.raises(InputError, match="would overwrite an input image"):
        predict_files(art, [str(src)], tmp_path)
    assert src.read_bytes() == before


def test_overlay_name_collision(tmp_path, art):
    a, b = _write(tmp_path / "in" / "x.png"), _write(tmp_path / "in" / "x_overlay.png")
    with pytest.raises(InputError, match="collide"):
        predict_files(art, [str(a), str(b)], tmp_path / "out")
    assert len(predict_files(art, [str(a), str(b)], tmp_path / "out", overlay=False)) == 2


# ------------------------------------------------------------------------------------ item 2: writes that fail
def test_unwritable_mask_path_is_an_error(tmp_path, art):
    src = _write(tmp_path / "in" / "f.png")
    (tmp_path / "out" / "f.png").mkdir(parents=True)  # the mask's name is taken by a folder: the write fails
    with pytest.raises(OutputError, match="cannot be written"):
        predict_files(art, [str(src)], tmp_path / "out")


def test_file_size_limit_leaves_no_cut_png(tmp_path, art):
    src = _write(tmp_path / "in" / "f.png", hw=(256, 256))
    out = tmp_path / "out"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))

    res = _cli("predict", str(art), str(src), "--output", str(out), preexec_fn=limit)
    line = _one_line_error(res)
    assert "cannot be written" in line and "wrote" not in res.stdout
    assert not any(p.suffix == ".png" and p.stat().st_size > 0 and p.name.startswith("f") and
                   p.stat().st_size <= 512 for p in out.iterdir()), list(out.iterdir())
    assert not list(out.glob(".*partial"))


# --------------------------------------------------------------------------------- items 8, 10: arguments, OS
@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_predict_batch_size_is_a_usage_error(tmp_path, art, value):
    src = _write(tmp_path / "f.png")
    line = _one_line_error(_cli("predict", str(art), str(src), "--output", str(tmp_path / "o"), "--batch-size",
                                value), code=2)
    assert "--batch-size" in line and "expected an integer >= 1" in line


def test_output_is_a_file_or_under_one(tmp_path, art):
    src = _write(tmp_path / "f.png")
    blocker = tmp_path / "taken.txt"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        line = _one_line_error(_cli("predict", str(art), str(src), "--output", str(out)))
        assert "--output" in line and "file" in line
        assert "--output" in _one_line_error(_cli("export", "no-such-checkpoint", "--output", str(out)))
    line = _one_line_error(_cli("stream", str(art), "--source", str(tmp_path), "--no-display", "--stats",
                                str(blocker / "s.json")))
    assert "--stats" in line
    line = _one_line_error(_cli("eval", str(art), "--data", str(tmp_path), "--json", str(blocker / "r.json")))
    assert "--json" in line


def test_bench_unknown_runtime_option(art):
    line = _one_line_error(_cli("bench", str(art), "--size", "64", "64", "--runtime", "onnxruntime",
                                "--runtime-option", "precision=f32", "--repeats", "1", "--settle", "0"))
    assert "takes ['providers', 'threads'], got ['precision']" in line
    line = _one_line_error(_cli("bench", str(art), "--size", "64", "64", "--runtime", "onnxruntime",
                                "--runtime-option", "device=GPU", "--repeats", "1", "--settle", "0"))
    assert "--device GPU: ONNX Runtime here runs on cpu" in line


def _png_claiming(path: Path, w: int, h: int) -> Path:
    ok, buf = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    data = bytearray(buf.tobytes())
    data[16:24] = struct.pack(">II", w, h)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # a valid CRC: only the size lies
    path.write_bytes(bytes(data))
    return path


def test_png_header_claiming_huge_size(tmp_path, art):
    src = _png_claiming(tmp_path / "huge.png", 100000, 100000)
    line = _one_line_error(_cli("predict", str(art), str(src), "--output", str(tmp_path / "o")))
    assert f"image {src}" in line


def test_inspect_into_a_closed_pipe(art):
    res = subprocess.run(f"{sys.executable} -m sdk.cli inspect {art} --json | head -c 20", shell=True, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr
    assert res.stdout.startswith("{")


def test_foreign_errors_become_one_line(capsys, tmp_path, monkeypatch):
    import re

    from sdk.cli import predict

    def boom(args):
        re.compile("(")

    monkeypatch.setattr(predict, "run", boom)
    for exc_source, expect in ((boom, "regular expression '('"),
                               (lambda a: open(tmp_path / "none" / "x"), "No such file or directory")):
        monkeypatch.setattr(sys.modules["sdk.cli.predict"], "run", exc_source)
        import argparse

        ap_args = argparse.Namespace(command="predict", verbose=False, func=exc_source)
        monkeypatch.setattr("sdk.cli.build_parser", lambda: type("P", (), {"parse_args": lambda s, a: ap_args})())
        assert main([]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expect in err[0], err


@pytest.mark.parametrize("args, flag", [
    (("bench", "ART", "--size", "64", "64", "--pause", "-1"), "--pause"),
    (("stream", "ART", "--source", "0", "--output-fps", "-1"), "--output-fps"),
    (("stream", "ART", "--source", "0", "--threads", "-2"), "--threads"),
    (("bench", "ART", "--size", "64", "64", "--repeats", "0"), "--repeats"),
])
def test_numbers_that_mean_something_else_are_usage_errors(art, args, flag):  # found by the sweep
    line = _one_line_error(_cli(*[str(art) if a == "ART" else a for a in args]), code=2)
    assert flag in line


def test_export_opset_beyond_the_exporter(tmp_path):
    line = _one_line_error(_cli("export", "no-such-checkpoint", "--output", str(tmp_path / "x"), "--opset", "99"))
    assert "--opset: expected 17.." in line


def test_quantize_keep_float_regex_checked_first():  # item 10
    from calibration.int8 import plan

    with pytest.raises(InputError, match=r"keep_float '\(' \(--keep-float\): not a regular expression"):
        plan(backend="onnxruntime", keep_float=("(",))
