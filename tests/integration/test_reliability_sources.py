"""Truncated or empty videos and bad sample counts say what was asked and what came (issue 12, items 7, 8)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.sets import load_calibration_set
from conftest import VIDEO
from sdk.core.errors import InputError, SourceError
from sdk.stream.sources import open_source

ROOT = Path(__file__).resolve().parents[2]
needs_video = pytest.mark.skipif(not VIDEO.exists(), reason=f"{VIDEO} is not here")


def _cut(tmp_path: Path, fraction: float) -> Path:
    data = VIDEO.read_bytes()
    path = tmp_path / f"cut{int(fraction * 100)}.mp4"
    path.write_bytes(data[:int(len(data) * fraction)])
    return path


@needs_video
def test_calibration_from_a_truncated_video(tmp_path):
    cut = _cut(tmp_path, 0.4)
    cap = cv2.VideoCapture(str(cut))
    if not cap.isOpened():
        pytest.skip("this OpenCV does not open the cut file at all (covered by the unreadable-video test)")
    cap.release()
    with pytest.raises(InputError, match=r"asked for 8 frames spread over the 190 .* stopped after frame \d+"):
        load_calibration_set(cut, num_samples=8)


@needs_video
def test_calibration_from_the_whole_video_still_works():
    cs = load_calibration_set(VIDEO, num_samples=4)
    assert len(cs) == 4 and "spread over 190" in cs.description


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_num_samples_must_be_positive(tmp_path, bad):
    folder = tmp_path / "f"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(InputError, match="num_samples: expected an int >= 1"):
        load_calibration_set(folder, num_samples=bad)
    with pytest.raises(InputError, match="num_samples"):
        load_calibration_set([np.zeros((40, 40, 3), np.uint8)], num_samples=bad)


def test_report_num_samples_is_a_usage_error():
    res = subprocess.run([sys.executable, "-m", "sdk.cli", "report", "ck", "--calib", "c", "--eval", "e",
                          "--output", "o", "--num-samples", "0"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--num-samples: expected an integer >= 1" in res.stderr, res.stderr


def _header_only_mp4(tmp_path: Path) -> Path:
    path = tmp_path / "empty.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    writer.release()  # no frame written: a container with only its header
    if not path.exists() or path.stat().st_size == 0:
        path.write_bytes(VIDEO.read_bytes()[:64] if VIDEO.exists() else b"\x00\x00\x00\x18ftypmp42")
    return path


def test_stream_source_with_no_frames(tmp_path):
    path = _header_only_mp4(tmp_path)
    with pytest.raises(SourceError, match="source .*empty.mp4"):
        open_source(str(path))


def test_stream_cli_on_header_only_video(tmp_path):
    from tiny_artifacts import write_onnx_artifact

    art = write_onnx_artifact(tmp_path / "tiny")
    res = subprocess.run([sys.executable, "-m", "sdk.cli", "stream", str(art), "--source",
                          str(_header_only_mp4(tmp_path)), "--no-display", "--stats", str(tmp_path / "s.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "empty.mp4" in res.stderr.strip().splitlines()[-1]


@needs_video
def test_stream_file_source_reads_every_frame_once():
    src = open_source(str(VIDEO))
    n = 0
    first = src.read()
    while src.read() is not None:
        n += 1
    src.close()
    ref = cv2.VideoCapture(str(VIDEO))
    ok, ref_first = ref.read()
    ref.release()
    assert ok and np.array_equal(first, ref_first) and n + 1 == 190


def test_calibration_arguments_found_by_the_sweep(tmp_path):
    binary = tmp_path / "list.txt"
    binary.write_bytes(b"\x80\x81\xff\xfe frames")
    with pytest.raises(InputError, match="cannot be read as text"):
        load_calibration_set(binary, num_samples=2)
    with pytest.raises(InputError, match="got int"):
        load_calibration_set(5, num_samples=2)
    for seed in (-1, "x", 1.5):
        with pytest.raises(InputError, match="seed: expected an int >= 0"):
            load_calibration_set([np.zeros((40, 40, 3), np.uint8)], num_samples=1, seed=seed)


def test_folder_source_skips_folders_named_like_images(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(SourceError, match="got none"):
        open_source(str(tmp_path))
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((40, 40, 3), np.uint8))
    src = open_source(str(tmp_path))
    assert src.read().shape == (40, 40, 3) and src.read() is None
