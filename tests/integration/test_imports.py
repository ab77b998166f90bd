"""Every module imports; importing the runtime side loads no heavy toolkit (they load when a runtime opens)."""
from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

PACKAGES = ["sdk", "sdk.core", "sdk.stream", "sdk.serving", "sdk.cli", "converters", "runtimes", "calibration",
            "calibration.report", "benchmarks"]


def _modules():
    for pkg in PACKAGES:
        module = importlib.import_module(pkg)
        yield pkg
        for info in pkgutil.iter_modules(module.__path__, prefix=f"{pkg}."):
            if not info.name.endswith("__main__"):
                yield info.name


@pytest.mark.parametrize("name", list(_modules()))
def test_module_imports(name):
    importlib.import_module(name)


def test_runtime_side_imports_no_toolkit():
    code = ("import sys, sdk, runtimes, sdk.segmenter, sdk.core.manifest, sdk.core.preprocess, runtimes.tensorrt; "
            "heavy = sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'nncf', 'pycuda', 'transformers') "
            "if m in sys.modules); print(heavy); sys.exit(1 if heavy else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
