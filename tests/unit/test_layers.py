"""The layer rule: which package may import which. Every import statement of every module is read with ``ast``
(function-level lazy imports included), so a lazy import cannot hide a dependency that points up the stack.

    sdk.core                  nothing from the project outside sdk.core (errors, manifest, preprocess, ...)
    runtimes                  sdk.core
    sdk.segmenter, sdk.timing sdk.core, runtimes (and each other)
    converters                the above
    calibration               the above + converters
    sdk.stream                sdk.core, sdk.segmenter, runtimes
    sdk.serving               sdk.core (Triton: the model's env, a tritonserver process, a thin client)
    sdk.cli                   everything except benchmarks
    sdk (the package)         a lazy facade over sdk.core and sdk.segmenter
    benchmarks, examples      the packages above; nothing imports benchmarks or sdk.cli but benchmarks and tests,
                              and nothing imports tests (helpers live there)
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("sdk", "runtimes", "converters", "calibration", "benchmarks", "tests")  # tests: helpers stay there
SOURCES = ("sdk", "runtimes", "converters", "calibration", "benchmarks", "examples")

_BASE = {"sdk.core", "runtimes", "sdk.segmenter", "sdk.timing"}
ALLOWED: dict[str, set[str]] = {
    "sdk.core": {"sdk.core"},
    "runtimes": {"sdk.core", "runtimes"},
    "sdk.segmenter": _BASE,
    "sdk.timing": _BASE,
    "converters": _BASE | {"converters"},
    "calibration": _BASE | {"converters", "calibration"},
    "sdk.stream": {"sdk.core", "sdk.segmenter", "runtimes", "sdk.stream"},
    "sdk.serving": {"sdk.core", "sdk.serving"},
    "sdk.cli": _BASE | {"converters", "calibration", "sdk.stream", "sdk.serving", "sdk.cli", "sdk"},
    "sdk": {"sdk", "sdk.core", "sdk.segmenter"},
    "benchmarks": _BASE | {"converters", "calibration", "sdk.stream", "sdk.serving", "sdk", "benchmarks"},
    "examples": _BASE | {"converters", "calibration", "sdk.stream", "sdk.serving", "sdk"},
}
SDK_PARTS = ("core", "stream", "serving", "cli", "segmenter", "timing")


def layer(module: str) -> str:
    """The layer a dotted module name belongs to: ``sdk.core.manifest`` -> ``sdk.core``, ``runtimes.base`` ->
    ``runtimes``; ``sdk`` alone (and ``sdk.assets``) is the ``sdk`` facade."""
    parts = module.split(".")
    if parts[0] == "sdk" and len(parts) > 1 and parts[1] in SDK_PARTS:
        return f"sdk.{parts[1]}"
    return parts[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _facade(name: str) -> str:
    """``from sdk import X``: a sub-package, or a facade name (``Segmenter`` from sdk.segmenter, the rest from
    sdk.core)."""
    if name in SDK_PARTS:
        return f"sdk.{name}"
    return "sdk.segmenter" if name == "Segmenter" else "sdk.core"


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported project module, line) for every import in the file, at any depth; ``from sdk import X`` counts as
    importing the module that defines X."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [_facade(a.name) for a in node.names] if node.module == "sdk" else [node.module]
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}:{node.lineno}: relative import; the project imports absolutely")
        found += [(n, node.lineno) for n in names if n.split(".")[0] in PROJECT]
    return found


def _files():
    for top in SOURCES:
        yield from sorted((ROOT / top).rglob("*.py"))


def violations() -> list[str]:
    out = []
    for path in _files():
        src = layer(module_name(path))
        for name, line in imports(path):
            dst = layer(name)
            if dst not in ALLOWED[src]:
                out.append(f"{path.relative_to(ROOT)}:{line}: {src} imports {name} ({dst}); "
                           f"{src} may import only {sorted(ALLOWED[src])}")
    return out


def test_every_import_follows_the_layer_rule():
    assert not violations(), "\n".join(violations())


@pytest.mark.parametrize("src,code,bad", [
    ("sdk.core", "from calibration.metrics import ConfusionMatrix", True),
    ("runtimes", "def f():\n    from converters.onnx_export import export_onnx\n", True),  # lazy counts too
    ("sdk.stream", "import sdk.timing", True),
    ("calibration", "from sdk.cli import main", True),
    ("converters", "from tests.helpers import tiny_model", True),
    ("sdk.cli", "import benchmarks.bench_int8", True),
    ("converters", "from sdk import Segmenter", False),
    ("runtimes", "from sdk import Segmenter", True),
    ("sdk.core", "import sdk", True),
    ("sdk.cli", "from calibration.report import make_report", False),
])
def test_the_checker_sees_lazy_and_facade_imports(tmp_path, src, code, bad):
    path = tmp_path / "m.py"
    path.write_text(code)
    hits = [layer(n) not in ALLOWED[src] for n, _ in imports(path)]
    assert hits and any(hits) == bad
