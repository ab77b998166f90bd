"""Shared fixtures. Data comes from ../shared (read-only): tests that need it skip with the reason if absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# runtime="auto" times the installed runtimes that run an artifact and takes the fastest (runtimes/choose.py). The
# suite keeps the deterministic first-installed choice (ONNX -> ONNX Runtime), which subprocesses inherit; the
# tests of the measured choice set "measure" themselves (tests/integration/test_auto_runtime.py).
os.environ["SEGEDGE_AUTO_RUNTIME"] = "first"

ROOT = Path(__file__).resolve().parents[1]
# The one set of ../shared paths (seen from the repository root; read-only): tests import these names
# (``from conftest import VIDEO, need``) or take the fixtures below, never spell a ../shared path of their own.
SHARED = ROOT.parent / "shared"
HF_MODEL = SHARED / "models" / "segformer-b0-camvid-hf"
NVLABS_MODEL = SHARED / "models" / "segformer-b0-camvid-nvlabs.pth"
CAMVID = SHARED / "data" / "camvid"
VIDEO = SHARED / "video" / "sidewalk.mp4"
DEMO_MODEL = ROOT / "sdk" / "assets" / "segformer-b0-camvid-demo"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (the ../shared data folder beside the project)")
    return path


@pytest.fixture(scope="session")
def hf_model() -> Path:
    return need(HF_MODEL)


@pytest.fixture(scope="session")
def nvlabs_model() -> Path:
    return need(NVLABS_MODEL)


@pytest.fixture(scope="session")
def camvid() -> Path:
    return need(CAMVID)


@pytest.fixture(scope="session")
def video() -> Path:
    """The shared street video (H.264, 720x1280 portrait, 190 frames)."""
    return need(VIDEO)


@pytest.fixture(scope="session")
def hf_artifact(tmp_path_factory, hf_model) -> Path:
    """The shared HF checkpoint exported once per session (mask head, exact upsampling)."""
    from converters.onnx_export import export_onnx

    return export_onnx(hf_model, tmp_path_factory.mktemp("art") / "b0-fp32", upsample="exact", progress=False)


@pytest.fixture(scope="session")
def labelled_set(tmp_path_factory, camvid):
    """3 CamVid val images as a generic images/ + labels/ set (void 11 -> ignore 255)."""
    import shutil

    import cv2
    import numpy as np

    from calibration.datasets import CamVid

    root = tmp_path_factory.mktemp("eval")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for img, lab in CamVid(camvid, "val").pairs()[:3]:
        shutil.copy(img, root / "images" / img.name)
        label = cv2.imread(str(lab), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(root / "labels" / lab.name), np.where(label == 11, 255, label).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """PyTorch on one thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): small
    inputs, modest CPU use on a shared machine, reproducible results; the previous count restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

