"""A real ``tritonserver`` process on a model repository: started, waited for, stopped cleanly.

The binary comes from the model environment (``sdk.serving.env``: nvidia-pytriton's tritonserver, run with the env's
``bin`` first on PATH so its Python backend uses the env's Python), or from PATH (NVIDIA's container, where
tritonserver's own Python must have segedge and numpy<2 installed). It runs in its own process group, so a
terminal's Ctrl-C reaches only the caller, which then stops it with SIGINT (Triton finishes in-flight requests,
unloads the models and exits 0) and SIGKILL only if it has not exited in ``stop_timeout_s``.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from sdk.serving.env import default_env_dir, env_problem, pytriton_server
from sdk.serving.errors import ServingError


def find_tritonserver(env: str | Path | None = None) -> tuple[Path, Path | None, Path | None]:
    """(tritonserver binary, --backend-directory or None for its default, env to put first on PATH or None).

    ``env``: a model environment (default ``default_env_dir()``); used when complete, else tritonserver on PATH."""
    env_dir = Path(env) if env is not None else default_env_dir()
    problem = env_problem(env_dir)
    if problem is None:
        server = pytriton_server(env_dir)
        return server / "bin" / "tritonserver", server / "backends", env_dir
    on_path = shutil.which("tritonserver")
    if on_path and env is None:
        return Path(on_path), None, None
    raise ServingError(f"no tritonserver to run: {problem}, and {'none is on PATH' if not on_path else 'it was named'}"
                       f". Make the env: python -m sdk.serving.env {env_dir} (or segedge serve ... --create-env); "
                       "in NVIDIA's Triton container tritonserver is on PATH.")


def _log_tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    # a CPU-only host logs these at every start: not why it failed
    noise = ("CudaDriverHelper", "NVML", "DCGM", "pinned memory", "CUDA memory pool")
    errors = [ln for ln in text if (ln.startswith("E") or "error" in ln.lower()) and not any(n in ln for n in noise)]
    return "\n".join((errors or text)[-lines:])


class TritonServer:
    """``with TritonServer(repo, http_port=8000, grpc_port=8001) as server: ...``: tritonserver on ``host``, ready
    (every model loaded) when ``start()`` returns. ``log_path``: its log (default ``<repo>/tritonserver.log``)."""

    def __init__(self, repository: str | Path, *, env: str | Path | None = None, host: str = "127.0.0.1",
                 http_port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002,
                 log_path: str | Path | None = None, startup_timeout_s: float = 180.0,
                 stop_timeout_s: float = 30.0) -> None:
        self.repository = Path(repository).resolve()
        if not self.repository.is_dir():
            raise ServingError(f"model repository {self.repository}: expected a folder, found none. Write one with "
                               "segedge deploy-config triton ARTIFACT --output REPO")
        self.binary, self.backends, self.env = find_tritonserver(env)
        self.host, self.http_port, self.grpc_port, self.metrics_port = host, http_port, grpc_port, metrics_port
        self.log_path = Path(log_path) if log_path else self.repository / "tritonserver.log"
        self.startup_timeout_s, self.stop_timeout_s = startup_timeout_s, stop_timeout_s
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        cmd = [str(self.binary), "--model-repository", str(self.repository),
               "--http-address", self.host, "--http-port", str(self.http_port),
               "--grpc-address", self.host, "--grpc-port", str(self.grpc_port),
               "--metrics-address", self.host, "--metrics-port", str(self.metrics_port),
               "--exit-timeout-secs", str(int(self.stop_timeout_s)), "--log-verbose", "0"]
        if self.backends is not None:
            cmd += ["--backend-directory", str(self.backends)]
        return cmd

    def _environ(self) -> dict[str, str]:
        environ = dict(os.environ)
        if self.env is not None:  # the backend stub's Python resolves its prefix from python3 on PATH (the venv's)
            environ["PATH"] = f"{self.env / 'bin'}{os.pathsep}{environ.get('PATH', '')}"
            environ.pop("PYTHONHOME", None)
            environ["VIRTUAL_ENV"] = str(self.env)
        return environ

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> "TritonServer":
        if self.process is not None:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self._environ(), start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self.ready():
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise ServingError(f"tritonserver exited with {code} while starting (log {self.log_path}):\n"
                                   f"{_log_tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServingError(f"tritonserver was not ready after {self.startup_timeout_s:.0f} s (log "
                                   f"{self.log_path}):\n{_log_tail(self.log_path)}")
            time.sleep(0.25)
        return self

    def stop(self) -> int | None:
        """SIGINT, wait, then SIGKILL the process group. Returns tritonserver's exit code (0: clean)."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=self.stop_timeout_s + 5)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):  # a second Ctrl-C: do not wait any longer
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def wait(self) -> int:
        """Block until tritonserver exits on its own; returns its exit code."""
        if self.process is None:
            raise ServingError("tritonserver is not running: call start() first")
        return self.process.wait()

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
