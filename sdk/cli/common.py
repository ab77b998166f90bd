"""Small helpers the subcommands share: label lists, (H, W) pairs, argument types (the output checks are
``sdk.core.staging``'s).

Imports nothing heavy: ``add_parser`` functions use the argument types here.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sdk.core.errors import InputError



def _number(text: str, cast, *, minimum: float, what: str):
    """argparse type body: ``cast(text)``, finite and >= ``minimum``; anything else is a usage error (exit 2)."""
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not minimum <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an int >= 1 (batch sizes, counts)."""
    return _number(text, int, minimum=1, what="an integer >= 1")


def nonnegative_int(text: str) -> int:
    """argparse type: an int >= 0 (0 meaning the library's default, e.g. threads)."""
    return _number(text, int, minimum=0, what="an integer >= 0 (0: the default)")


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (seconds, pauses)."""
    return _number(text, float, minimum=0, what="a finite number >= 0")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (frame rates)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def parse_labels(value: str | None) -> list[str] | None:
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--labels {path}: cannot be read as text ({exc}); expected one class name per "
                             "line") from None
        names = [ln.strip() for ln in lines if ln.strip()]
    else:
        names = [v.strip() for v in value.split(",")]
    if not names or not all(names):
        raise InputError(f"--labels {value!r}: expected non-empty class names (a text file with one per line, or "
                         "a comma-separated list), got an empty name")
    return names


def hw_pair(values: list[int] | None) -> tuple[int, int] | None:
    return (values[0], values[1]) if values else None
