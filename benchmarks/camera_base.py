"""What every camera server of ``benchmarks.camera_servers`` shares: the loopback host, the error, free ports and
the install hint. Standard library only; not part of the shipped package.
"""
from __future__ import annotations

import socket

HOST = "127.0.0.1"


class CameraServerError(RuntimeError):
    """A camera server or clip could not be made; the message says what is missing and how to get it."""


def install_hint(packages: tuple[str, ...] | list[str]) -> str:
    """The apt-get line that installs ``packages``."""
    return "sudo apt-get install -y --no-install-recommends " + " ".join(packages)


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it; another process could take it
    before you bind, which is rare enough for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def accepts(host: str, port: int, timeout_s: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
