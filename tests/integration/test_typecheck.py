"""The TensorRT and pycuda code type-checks against tensorrt-stubs (TensorRT itself cannot be installed here).

tensorrt-stubs 10.13.0.35.1 installs ``tensorrt/__init__.pyi`` without a py.typed marker, so mypy ignores it, and
five of its lines are not valid Python (parameters named ``in``; a parameter without a default after defaulted
ones). The test copies the stubs into a temporary folder, repairs exactly those constructs, points MYPYPATH at the
copy, and ignores errors inside the stubs themselves. A probe file with a deliberate misuse of the TensorRT API
proves the stubs are in effect (otherwise every TensorRT name would silently be Any).

pycuda has no stubs: the code imports it through ``sdk.core.errors.require``, so it is Any and needs no mypy config.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ["runtimes/tensorrt.py", "runtimes/tensorrt_device.py", "runtimes/tensorrt_support.py", "runtimes/cuda_ops.py",
           "converters/tensorrt_build.py",
           "converters/tensorrt_plan.py", "converters/tensorrt_graph.py", "converters/tensorrt_inspect.py",
           "converters/deploy_configs.py", "converters/float16_graph.py", "sdk/cli/doctor.py"]
PROBE = '''import tensorrt as trt


def probe() -> None:
    network = trt.Builder(trt.Logger(trt.Logger.WARNING)).create_network(0)
    network.no_such_method()
'''
MYPY_INI = """[mypy]
follow_imports = silent
check_untyped_defs = True
warn_unused_ignores = True
warn_redundant_casts = True
[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]
ignore_errors = True
[mypy-tensorrt_libs]
ignore_missing_imports = True
[mypy-onnxruntime,onnxruntime.*,openvino,openvino.*]
ignore_missing_imports = True
"""


def _split_params(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return out + [cur]


def repair_stub(text: str) -> tuple[str, int]:
    """Make the stub parse: rename parameters called ``in``; give ``= ...`` to parameters without a default that
    follow defaulted ones. Returns (text, number of lines changed)."""
    lines, changed = text.split("\n"), 0
    for i, line in enumerate(lines):
        new = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", line)
        m = re.match(r"^(\s*def \w+\()(.*)(\)\s*->.*:\s*)$", new)
        if m:
            seen_default, params = False, []
            for p in _split_params(m.group(2)):
                s = p.strip()
                if "=" in s:
                    seen_default = True
                elif seen_default and s and not s.startswith("*"):
                    p += " = ..."
                params.append(p)
            new = m.group(1) + ",".join(params) + m.group(3)
        if new != line:
            lines[i], changed = new, changed + 1
    return "\n".join(lines), changed


@pytest.fixture(scope="module")
def stub_path(tmp_path_factory) -> Path:
    if find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install mypy; tests/run.sh installs it with the test extra)")
    spec = find_spec("tensorrt_stubs")
    if spec is None or spec.origin is None:
        pytest.skip("tensorrt-stubs is not installed: pip install --no-deps tensorrt-stubs==10.13.0.35.1")
    site = Path(spec.origin).parents[1]
    out = tmp_path_factory.mktemp("stubs")
    for package in ("tensorrt", "tensorrt_bindings"):
        for pyi in (site / package).glob("*.pyi"):
            target = out / package / pyi.name
            target.parent.mkdir(parents=True, exist_ok=True)
            text, _ = repair_stub(pyi.read_text())
            ast.parse(text, str(pyi))  # a stub this repair cannot fix is a new stubs release: look at it
            target.write_text(text)
    assert (out / "tensorrt" / "__init__.pyi").is_file(), f"no tensorrt/__init__.pyi under {site}"
    return out


def test_stub_repair_is_narrow():
    text = ("    def f(self, in: list[int], out: list[int]) -> int:\n"
            "    def g(self, a: int = None, b: int) -> None:\n    def h(self, x: int) -> None:\n")
    fixed, changed = repair_stub(text)
    assert changed == 2
    assert "in_: list[int], out: list[int]" in fixed and "b: int = ..." in fixed
    assert "def h(self, x: int) -> None:" in fixed
    ast.parse("class C:\n" + fixed.replace(":\n", ": ...\n"))


def test_tensorrt_code_typechecks(stub_path, tmp_path):
    probe = tmp_path / "probe_trt_api.py"
    probe.write_text(PROBE)
    ini = tmp_path / "mypy.ini"
    ini.write_text(MYPY_INI)
    env = {"MYPYPATH": str(stub_path), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ini), "--cache-dir", str(tmp_path / "cache"),
           "--no-color-output", *CHECKED, str(probe)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    errors = [ln for ln in res.stdout.splitlines() if ": error:" in ln]
    ours = [ln for ln in errors if "probe_trt_api.py" not in ln]
    assert not ours, "mypy errors in the TensorRT code:\n" + "\n".join(ours)
    probe_errors = [ln for ln in errors if "probe_trt_api.py" in ln]
    assert len(probe_errors) == 1 and "no_such_method" in probe_errors[0], (
        "the tensorrt stubs are not in effect (the deliberate misuse was not caught):\n" + res.stdout + res.stderr)
