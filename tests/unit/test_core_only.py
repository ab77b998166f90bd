"""The unit tier's own checks: with only the core dependencies (numpy, tqdm) installed, the CLI's help, the contracts
and the missing-extra messages work. The other unit tests run here too; .ci/run runs this folder in a bare venv."""
from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from sdk.core.errors import ArtifactError, InputError, MissingDependencyError
from sdk.core.result import SegmentationResult, colorize, pixel_agreement

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdk.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def test_help_of_every_subcommand_needs_no_extra():
    from sdk.cli import COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert len(sub.choices) == len(COMMANDS) >= 12
    for name in sub.choices:
        res = _cli(name, "--help")
        assert res.returncode == 0 and "usage: segedge" in res.stdout, (name, res.stderr)


def test_version_prints_the_package_version():
    res = _cli("--version")
    assert res.returncode == 0 and res.stdout.strip().startswith("segedge ")


@pytest.mark.skipif(find_spec("cv2") is not None, reason="OpenCV is installed: its missing-module message can't show")
def test_missing_opencv_names_both_routes(tmp_path):
    from sdk.core.preprocess import read_rgb

    with pytest.raises(MissingDependencyError, match=r"python3-opencv.*segedge\[cpu\]"):
        read_rgb(tmp_path / "frame.png")


@pytest.mark.skipif(find_spec("onnxruntime") is not None, reason="ONNX Runtime is installed")
def test_opening_an_onnx_artifact_without_a_runtime_names_the_extra(tmp_path):
    from sdk import Segmenter

    manifest = {"format": "onnx", "model_file": "model.onnx", "precision": "fp32", "class_names": ["a", "b"],
                "palette": [[0, 0, 0], [255, 255, 255]],
                "preprocess": {"size_hw": None, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
                "inputs": [{"name": "pixel_values", "dtype": "float32", "shape": ["N", 3, "H", "W"]}],
                "outputs": [{"name": "logits", "dtype": "float32", "shape": ["N", 2, "h", "w"]}],
                "head": "logits", "upsample": None, "architecture": {"num_classes": 2}, "source": {},
                "format_version": 1}
    (tmp_path / "model.json").write_text(json.dumps(manifest))
    (tmp_path / "model.onnx").write_bytes(b"\0")
    with pytest.raises((MissingDependencyError, ArtifactError), match=r"pip install|segedge\[cpu\]"):
        Segmenter.from_artifact(tmp_path)


def test_result_contract_and_colours():
    mask = np.array([[0, 1], [1, 1]], np.uint8)
    res = SegmentationResult(mask=mask, class_names=["road", "car"], palette=[[0, 0, 0], [255, 0, 0]])
    assert res.class_areas() == {"road": 0.25, "car": 0.75}
    assert colorize(mask, res.palette)[1, 1].tolist() == [255, 0, 0]
    assert pixel_agreement(mask, mask) == 1.0 and np.isnan(pixel_agreement(mask[:0], mask[:0]))
    with pytest.raises(InputError, match="2D integer"):
        SegmentationResult(mask=mask.astype(np.float32), class_names=["road", "car"], palette=res.palette)


def test_cpu_classes_from_flags():
    from sdk.core.cpu import cpu_class, saturates

    assert cpu_class({"avx2", "avx512f", "avx512_vnni"}, "x86_64") == "vnni"
    assert cpu_class({"avx2", "avx_vnni"}, "x86_64") == "vnni"
    assert cpu_class({"avx2", "avx512f", "avx512bw"}, "x86_64") == "avx512"
    assert cpu_class({"avx2"}, "x86_64") == "avx2"
    assert cpu_class(set(), "aarch64") == "arm64"
    assert saturates("avx2") and saturates("avx512") and not saturates("vnni")


def test_every_error_class_is_in_the_facade():
    """``from sdk import XError`` for the whole hierarchy: what a caller catches is importable where Segmenter is."""
    import sdk
    import sdk.core.errors as errors

    classes = {n for n, c in vars(errors).items() if isinstance(c, type) and issubclass(c, errors.SegEdgeError)}
    assert classes <= set(sdk.__all__), sorted(classes - set(sdk.__all__))
    assert all(getattr(sdk, n) is getattr(errors, n) for n in classes)
