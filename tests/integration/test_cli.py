"""``segedge`` end to end: exit codes, one-line errors, --help without optional extras."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np

from sdk.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdk.cli", *args], capture_output=True, text=True, timeout=600)


def test_help_works_without_heavy_imports():
    code = ("import sys; from sdk.cli import build_parser; build_parser().format_help(); import sdk, runtimes; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'openvino', 'tensorrt', 'onnx') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert run_cli("--help").returncode == 0
    assert "--upsample" in run_cli("export", "--help").stdout


def test_usage_error_exits_2():
    res = run_cli("export")
    assert res.returncode == 2 and "required" in res.stderr


def test_sdk_error_is_one_line_exit_1(tmp_path):
    res = run_cli("predict", str(tmp_path / "missing"), "x.png", "--output", str(tmp_path / "o"))
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "segedge predict: error: artifact" in lines[0], res.stderr
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    res = run_cli("export", str(bad), "--output", str(tmp_path / "o"), "-q")
    assert res.returncode == 1 and "truncated" in res.stderr and "Traceback" not in res.stderr


def test_export_predict_inspect_nvlabs(tmp_path, nvlabs_model, camvid, capsys):
    art = tmp_path / "nv"
    assert main(["export", str(nvlabs_model), "--output", str(art), "-q"]) == 0
    assert "next: segedge predict" in capsys.readouterr().out
    images = sorted((camvid / "val").iterdir())[:2]
    assert main(["predict", str(art), *map(str, images), "--output", str(tmp_path / "masks")]) == 0
    for img in images:
        mask = cv2.imread(str(tmp_path / "masks" / f"{img.stem}.png"), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(tmp_path / "masks" / f"{img.stem}_overlay.png"))
        assert mask.shape == (360, 480) and mask.dtype == np.uint8 and mask.max() < 11
        assert overlay.shape == (360, 480, 3)
    capsys.readouterr()
    assert main(["inspect", str(art), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["source"]["layout"] == "nvlabs" and info["classes"][0] == "sky"
    assert main(["inspect", str(nvlabs_model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["variant"] == "b0" and info["num_classes"] == 11


def test_labels_mismatch_is_reported(tmp_path, hf_model):
    res = run_cli("export", str(hf_model), "--output", str(tmp_path / "o"), "--labels", "a,b,c", "-q")
    assert res.returncode == 1
    assert "11 classes" in res.stderr and "3 class names" in res.stderr
