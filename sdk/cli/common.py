"""Small helpers the subcommands share: label lists, image paths, (H, W) pairs."""
from __future__ import annotations

from pathlib import Path

from sdk.core.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def parse_labels(value: str | None) -> list[str] | None:
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    return [v.strip() for v in value.split(",")]


def image_paths(inputs: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"images: folder {p} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise InputError(f"images: {p} is neither an image file nor a folder")
    return paths


def hw_pair(values: list[int] | None) -> tuple[int, int] | None:
    return (values[0], values[1]) if values else None
