"""docs/CODE_MAP.md stays true: the image -> mask and checkpoint -> INT8 paths, traced for real with Python's
profiler, call into the files the page lists to read, and into no project file the page does not name."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from helpers import random_hf_model, save_hf_folder

ROOT = Path(__file__).resolve().parents[2]
MAP = (ROOT / "docs" / "CODE_MAP.md").read_text()


def _section(title: str) -> str:
    start = MAP.index(f"## {title}")
    end = MAP.find("\n## ", start + 1)
    return MAP[start:] if end < 0 else MAP[start:end]


def _named_files(text: str) -> set[str]:
    """Every project file the text names: `a/b.py`, `b.py` after a named file of the same folder, or
    `a/b.py:function`."""
    named: set[str] = set()
    folder = ""
    for token in re.findall(r"`([\w/]+\.py)(?::\w+)?`", text):
        if "/" in token:
            folder = token.rsplit("/", 1)[0]
            named.add(token)
        elif folder:
            named.add(f"{folder}/{token}")
    return named


def _main_files(text: str) -> list[str]:
    """The table rows' first-named file, in order."""
    return [re.search(r"`([\w/]+\.py)`", row).group(1) for row in text.splitlines() if re.match(r"\| \d ", row)]


def _traced(call) -> set[str]:
    files: set[str] = set()

    def profile(frame, event, arg):
        if event == "call":
            path = Path(frame.f_code.co_filename)
            # tests/ is the caller; sdk/cli/ only appears through the logging handler an earlier CLI test in the same
            # process installed (the library's warnings then pass through it), never on the library's own path
            if path.is_relative_to(ROOT) and path.relative_to(ROOT).parts[0] != "tests" and \
                    path.relative_to(ROOT).parts[:2] != ("sdk", "cli"):
                files.add(str(path.relative_to(ROOT)))

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return files


def test_image_to_mask_follows_the_map(tmp_path):
    from converters.onnx_export import export_onnx
    from sdk import Segmenter

    folder = save_hf_folder(random_hf_model("custom", 4), tmp_path / "ckpt")
    artifact = export_onnx(folder, tmp_path / "art", size_hw=(64, 64), progress=False)
    section = _section("Image -> mask")
    with Segmenter.from_artifact(artifact, runtime="onnxruntime") as seg:
        image = np.zeros((48, 80, 3), np.uint8)
        seg(image)  # first call outside the trace: lazy imports and warm-up are not the path
        touched = _traced(lambda: seg(image))
    main = _main_files(section)
    assert len(main) <= 5
    assert set(main) <= touched | {"runtimes/onnxruntime.py"}, set(main) - touched
    assert touched <= _named_files(section), touched - _named_files(section)


def test_checkpoint_to_int8_follows_the_map(tmp_path):
    from calibration import quantize

    folder = save_hf_folder(random_hf_model("custom", 4), tmp_path / "ckpt")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    section = _section("Checkpoint -> INT8")
    touched = _traced(lambda: quantize(folder, tmp_path / "int8", backend="onnxruntime", calib=frames,
                                       num_samples=4, size_hw=(64, 64), min_agreement=0.01, keep_below_min=True, progress=False))
    main = _main_files(section)
    assert len(main) <= 6
    readable = {f for f in main if not f.endswith("quantize_openvino.py")}  # this run takes the ONNX Runtime door
    assert readable <= touched, readable - touched
    allowed = _named_files(section)
    unlisted = {f for f in touched if f not in allowed and not f.startswith(("runtimes/", "sdk/core/"))}
    assert not unlisted, f"the INT8 path calls into files docs/CODE_MAP.md does not name: {sorted(unlisted)}"
