"""Small helpers the subcommands share: label lists, image paths, (H, W) pairs, argument types, output checks.

Imports nothing heavy: ``add_parser`` functions use the argument types here.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sdk.core.errors import InputError
from sdk.core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES



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


def _file_above(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a folder (then nothing can be created under it)."""
    for parent in path.absolute().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_output_dir(path: str | Path, flag: str = "--output") -> Path:
    """A folder we may create or write into: not an existing file, not under a file. Checked before any work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path}: expected a folder, got an existing file. Choose another path.")
    blocker = _file_above(path)
    if blocker is not None:
        raise InputError(f"{flag} {path}: cannot create a folder under {blocker}, which is a file. Choose another "
                         "path.")
    return path


def check_output_file(path: str | Path, flag: str) -> Path:
    """A file we may write (its folder is created if missing): not a folder, not under a file."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{flag} {path}: expected a file name, got an existing folder. Give a file inside it, "
                         f"e.g. {path / 'result.json'}.")
    blocker = _file_above(path)
    if blocker is not None:
        raise InputError(f"{flag} {path}: cannot write under {blocker}, which is a file. Choose another path.")
    return path


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


def image_paths(inputs: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise InputError(f"images: folder {p} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths.extend(found)
        elif p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
            raise InputError(f"images: {p} is a video; segment it with segedge stream ARTIFACT --source {p} "
                             "(--output run.mp4 to keep the result)")
        elif p.is_file():
            paths.append(p)
        else:
            raise InputError(f"images: {p} is neither an image file nor a folder")
    return paths


def hw_pair(values: list[int] | None) -> tuple[int, int] | None:
    return (values[0], values[1]) if values else None
