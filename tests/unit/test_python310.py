"""The package and its tests run on the oldest Python the package claims (pyproject: requires-python >= 3.10, what
JetPack 6 ships), checked on whatever newer Python runs the suite (no machine here has 3.10):

- syntax: every file parses with ``ast.parse(..., feature_version=(3, 10))`` (``except*``, PEP 695 generics and
  ``type`` statements are refused that way), plus the one thing ``feature_version`` does not check: f-strings that
  reuse their own quote inside (PEP 701, Python 3.12);
- the standard library: no module and no name that appeared after 3.10 (``tomllib``: the CPU tier of the TensorRT
  tests imported it and did not collect on 3.10, issue 24 item 5).
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OLDEST = (3, 10)
FOLDERS = ("sdk", "converters", "runtimes", "calibration", "benchmarks", "examples", "tests")
# standard-library modules new after 3.10
NEW_MODULES = {"tomllib": "3.11", "wsgiref.types": "3.11"}
# names new after 3.10 in modules that 3.10 has
NEW_NAMES = {
    "typing": {"Self": "3.11", "LiteralString": "3.11", "Never": "3.11", "Required": "3.11", "NotRequired": "3.11",
               "TypeVarTuple": "3.11", "Unpack": "3.11", "assert_never": "3.11", "assert_type": "3.11",
               "reveal_type": "3.11", "dataclass_transform": "3.11", "override": "3.12", "TypeAliasType": "3.12",
               "ReadOnly": "3.13", "TypeIs": "3.13", "get_protocol_members": "3.13"},
    "enum": {"StrEnum": "3.11", "ReprEnum": "3.11", "verify": "3.11", "member": "3.11", "nonmember": "3.11",
             "global_enum": "3.11"},
    "datetime": {"UTC": "3.11"},
    "itertools": {"batched": "3.12"},
    "hashlib": {"file_digest": "3.11"},
    "contextlib": {"chdir": "3.11"},
    "asyncio": {"TaskGroup": "3.11", "timeout": "3.11", "Runner": "3.11"},
    "math": {"exp2": "3.11", "cbrt": "3.11"},
    "operator": {"call": "3.11"},
    "warnings": {"deprecated": "3.13"},
    "copy": {"replace": "3.13"},
    "pathlib": {"UnsupportedOperation": "3.13"},
}
QUOTE = re.compile(r"[A-Za-z]*('{3}|\"{3}|'|\")")  # a string token's opening quote, after its prefix
NEW_BUILTINS = {"ExceptionGroup": "3.11", "BaseExceptionGroup": "3.11", "aiter": None, "anext": None}


def _files() -> list[Path]:
    out = []
    for folder in FOLDERS:
        out += sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)
    return out


def _pep701_fstrings(source: str) -> list[int]:
    """Lines of f-strings that hold a string in their own quote (PEP 701: Python >= 3.12 only; older parsers refuse
    them already, and their tokenizers have no FSTRING_START)."""
    import io
    import tokenize

    start, end = getattr(tokenize, "FSTRING_START", None), getattr(tokenize, "FSTRING_END", None)
    if start is None:
        return []
    stack: list[str] = []  # the quote of each open f-string
    lines = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        opening = QUOTE.match(tok.string) if tok.type in (start, tokenize.STRING) else None
        if opening and stack and len(stack[-1]) == 1 and opening.group(1) == stack[-1]:
            lines.append(tok.start[0])
        if tok.type == start and opening:
            stack.append(opening.group(1))
        elif tok.type == end and stack:
            stack.pop()
    return lines


def problems_in(path: Path, root: Path = ROOT) -> list[str]:
    source = path.read_text(encoding="utf-8")
    rel = path.relative_to(root)
    try:
        tree = ast.parse(source, filename=str(rel), feature_version=OLDEST)
    except SyntaxError as exc:
        return [f"{rel}:{exc.lineno}: not Python {OLDEST[0]}.{OLDEST[1]} syntax ({exc.msg})"]
    out = []
    aliases: dict[str, str] = {}  # local name -> module, for module.attribute checks
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in NEW_MODULES:
                    out.append(f"{rel}:{node.lineno}: imports {a.name} (Python {NEW_MODULES[a.name]})")
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module in NEW_MODULES:
                out.append(f"{rel}:{node.lineno}: imports {node.module} (Python {NEW_MODULES[node.module]})")
            for a in node.names:
                if f"{node.module}.{a.name}" in NEW_MODULES:
                    out.append(f"{rel}:{node.lineno}: imports {node.module}.{a.name}")
                since = NEW_NAMES.get(node.module, {}).get(a.name)
                if since:
                    out.append(f"{rel}:{node.lineno}: from {node.module} import {a.name} (Python {since})")
    out += [f"{rel}:{line}: an f-string reuses its quote inside (Python 3.12)" for line in _pep701_fstrings(source)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            since = NEW_NAMES.get(aliases[node.value.id], {}).get(node.attr)
            if since:
                out.append(f"{rel}:{node.lineno}: {aliases[node.value.id]}.{node.attr} (Python {since})")
        elif isinstance(node, ast.Name) and node.id in NEW_BUILTINS and NEW_BUILTINS[node.id]:
            out.append(f"{rel}:{node.lineno}: {node.id} (Python {NEW_BUILTINS[node.id]})")
    return out


def test_requires_python_is_the_version_checked():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = ">=3\.10"$', text, re.MULTILINE), "update OLDEST with requires-python"


def test_package_and_tests_are_python_3_10_code():
    files = _files()
    assert len(files) > 50 and any(p.name == "test_tensorrt.py" for p in files)
    found = [problem for path in files for problem in problems_in(path)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("code,expect", [
    ("import tomllib\n", "imports tomllib"),
    ("from typing import Self\n", "from typing import Self"),
    ("import datetime\nx = datetime.UTC\n", "datetime.UTC"),
    ("import itertools as it\nx = it.batched([1], 1)\n", "itertools.batched"),
    ("try:\n    pass\nexcept* ValueError:\n    pass\n", "not Python 3.10 syntax"),
    ("raise ExceptionGroup('x', [])\n", "ExceptionGroup"),
])
def test_the_check_finds_what_3_10_lacks(tmp_path, code, expect):
    path = tmp_path / "probe.py"
    path.write_text(code)
    found = problems_in(path, tmp_path)
    assert found and expect in found[0], found


@pytest.mark.skipif(sys.version_info < (3, 12), reason="nested same-quote f-strings only parse on Python >= 3.12")
def test_the_check_finds_pep_701_fstrings(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text('d = {"k": 1}\nx = f"{d["k"]}"\n')
    assert any("reuses its quote" in p for p in problems_in(path, tmp_path))
