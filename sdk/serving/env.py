"""The Python environment Triton's Python backend runs the segedge model with, and the ``tritonserver`` in it.

Measured with ``nvidia-pytriton`` 0.7.0 (tritonserver 2.51, Python backend only): the backend stub embeds the
*system* libpython it was linked against (``libpython3.X.so.1.0`` as the dynamic loader finds it: Debian's
/usr/lib here, not a pyenv build), ignores PYTHONPATH, and computes its ``sys.prefix`` the way an embedded
interpreter does: from ``python3`` on PATH. So tritonserver started with ``<env>/bin`` first on PATH, where
``<env>`` is a venv made from that same system Python, runs model.py with the venv's site-packages (the venv's
pyvenv.cfg) and nothing else. The env holds numpy 1.26 (the stub is built against numpy 1.x; with numpy 2 every
output tensor comes back empty), the CPU runtimes, nvidia-pytriton (tritonserver itself, its stub copied into its
``backends/python``) and segedge (editable from a source tree, else the installed version).

``python -m sdk.serving.env [DIR]`` makes or checks it; it is quick when it is already there (a stamp file records
what was installed). Default DIR: ``$SEGEDGE_TRITON_ENV``, else ``~/.cache/segedge/triton-env``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from sdk.serving.errors import ServingError

# pinned: pip resolves numpy<2 with these (opencv-python-headless 4.12+ requires numpy 2)
ENV_PACKAGES = ("numpy==1.26.4", "onnxruntime==1.32.0", "openvino==2026.4.1", "opencv-python-headless==4.11.0.86",
                "tqdm>=4.60", "nvidia-pytriton==0.7.0")
STAMP = "segedge-triton-env.json"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_env_dir() -> Path:
    return Path(os.environ.get("SEGEDGE_TRITON_ENV") or Path.home() / ".cache" / "segedge" / "triton-env")


def _segedge_source() -> str:
    """What to install segedge from: this source tree (editable) or the installed version."""
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "sdk").is_dir():
        return f"-e {PROJECT_ROOT}"
    from importlib.metadata import version

    return f"segedge=={version('segedge')}"


def _site_packages(env: Path) -> Path | None:
    found = sorted(env.glob("lib/python3.*/site-packages"))
    return found[0] if found else None


def pytriton_server(env: Path) -> Path | None:
    """``<env>``'s tritonserver folder (bin/, backends/) from nvidia-pytriton, or None."""
    site = _site_packages(env)
    folder = site / "pytriton" / "tritonserver" if site else None
    return folder if folder and (folder / "bin" / "tritonserver").is_file() else None


def stub_python(minor: int | None = None) -> str:
    """The system Python whose libpython the dynamic loader gives the backend stub (ldconfig's libpython3.X), the
    one the env must be made from; this interpreter when none is found."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    want = minor if minor is not None else sys.version_info.minor
    libs = re.findall(r"libpython3\.(\d+)\.so\.1\.0 \(.*?\) => (\S+)", listing)
    for found_minor, lib in sorted(libs, key=lambda m: m[0] != str(want)):
        libdir = Path(lib).resolve().parent
        for exe in (libdir.parent / "bin", libdir.parent.parent / "bin", Path("/usr/bin"), Path("/usr/local/bin")):
            python = exe / f"python3.{found_minor}"
            if python.is_file():
                probe = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_config_var("
                                        "'LIBDIR'))"], capture_output=True, text=True, timeout=30)
                if probe.returncode == 0 and Path(probe.stdout.strip()).resolve() == libdir:
                    return str(python)
    return sys.executable


def env_problem(env: Path) -> str | None:
    """Why ``env`` cannot serve yet (one line), or None when it is ready."""
    stamp = env / STAMP
    if not stamp.is_file():
        return f"{env} is not a segedge Triton environment (no {STAMP})"
    recorded = json.loads(stamp.read_text())
    if recorded.get("packages") != list(ENV_PACKAGES):
        return f"{env} was made with {recorded.get('packages')}, expected {list(ENV_PACKAGES)}"
    if recorded.get("segedge") != _segedge_source():
        return f"{env} has segedge from {recorded.get('segedge')}, expected {_segedge_source()}"
    if pytriton_server(env) is None:
        return f"{env} has no tritonserver (nvidia-pytriton)"
    return None


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise ServingError(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{tail}")


def create_env(env: str | Path | None = None, *, python: str | None = None, force: bool = False) -> Path:
    """Make (or complete) the Triton model environment at ``env`` (default ``default_env_dir()``): a venv of the
    stub's system Python with ``ENV_PACKAGES`` and segedge, the stub copied into tritonserver's backends/python.
    Returns the env folder; does nothing when it is already complete (unless ``force``)."""
    env = Path(env) if env is not None else default_env_dir()
    if not force and env_problem(env) is None:
        return env
    python = python or stub_python()
    if not (env / "bin" / "python").is_file():
        _run([python, "-m", "venv", str(env)], f"making the venv {env}")
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, *ENV_PACKAGES], f"installing {' '.join(ENV_PACKAGES)} into {env}")
    _run([*pip, "--no-deps", *_segedge_source().split()], f"installing segedge into {env}")
    server = pytriton_server(env)
    if server is None:
        raise ServingError(f"{env}: nvidia-pytriton installed, but its tritonserver is missing")
    minor = _site_packages(env).parent.name  # "python3.11"
    stub = server / "python_backend_stubs" / minor.removeprefix("python") / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServingError(f"{env}: nvidia-pytriton has no Python backend stub for {minor} ({stub}). Make the env "
                           "with a Python it ships a stub for (3.8-3.13): create_env(..., python=...)")
    shutil.copy2(stub, server / "backends" / "python" / stub.name)  # its RPATH finds the wheel's libs from there
    check = _stub_libpython_problem(server / "backends" / "python" / stub.name, env)
    if check:
        raise ServingError(check)
    (env / STAMP).write_text(json.dumps({"packages": list(ENV_PACKAGES), "python": python,
                                         "segedge": _segedge_source()}, indent=1) + "\n")
    return env


def _stub_libpython_problem(stub: Path, env: Path) -> str | None:
    """The stub must load the libpython of the env's base Python, or model.py runs with another stdlib."""
    try:
        ldd = subprocess.run(["ldd", str(stub)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None  # no ldd: cannot check here
    found = re.search(r"libpython3\.\d+\.so\S* => (\S+)", ldd)
    if not found:
        return None
    probe = subprocess.run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_config_var("
                            "'LIBDIR'))"], capture_output=True, text=True, timeout=30)
    if Path(found.group(1)).resolve().parent != Path(probe.stdout.strip()).resolve():
        return (f"{env}: Triton's Python backend stub loads {found.group(1)}, but the env's Python has its "
                f"library in {probe.stdout.strip()}. Remove {env} and make it with the Python that owns "
                f"{found.group(1)}: python -m sdk.serving.env {env} --python /usr/bin/python3.X")
    return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m sdk.serving.env", description=__doc__.split("\n\n")[0])
    ap.add_argument("env", nargs="?", help=f"env folder (default {default_env_dir()})")
    ap.add_argument("--python", help="the system Python to make it from (default: the one the stub links)")
    ap.add_argument("--force", action="store_true", help="reinstall even when complete")
    args = ap.parse_args(argv)
    try:
        env = create_env(args.env, python=args.python, force=args.force)
    except ServingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Triton model environment ready: {env}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
