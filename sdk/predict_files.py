"""Image files -> mask files: ``predict_files`` segments images and folders of images with an artifact and writes
class-id PNGs (plus coloured masks and overlays with a legend), what ``segedge predict`` runs.

Output names come from the inputs (``output_names``); nothing is overwritten that is an input, and a file is written
whole or not at all.
"""
from __future__ import annotations

import os
from pathlib import Path

from sdk.core.errors import InputError, OutputError
from sdk.core.manifest import read_manifest, resolve_artifact
from sdk.core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from sdk.core.staging import check_output_dir
from sdk.segmenter import Segmenter


def image_paths(inputs: list[str]) -> list[Path]:
    """The image files named in ``inputs``, folders expanded to the images in them (sorted, not recursive)."""
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


def output_names(paths: list[Path]) -> list[str]:
    """One unique output name (no suffix, may contain folders) per input path.

    The stem when stems are unique (``street.png`` -> ``street``); when two inputs share a stem, every input keeps
    its path relative to the inputs' common folder (``a/frame.png``, ``b/frame.png`` -> ``a/frame``, ``b/frame``),
    and inputs that still collide (``frame.png`` + ``frame.jpg``) add their suffix (``frame_png``, ``frame_jpg``).
    """
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        dup = next(p for p in paths if resolved.count(p.resolve()) > 1)
        raise InputError(f"images: {dup} is given twice (directly or through its folder); expected each image once")
    names = [p.stem for p in paths]
    if len(set(names)) != len(names):
        root = Path(os.path.commonpath([str(r.parent) for r in resolved]))
        names = [str(r.relative_to(root).with_suffix("")) for r in resolved]
        counts = {n: names.count(n) for n in names}
        names = [f"{n}_{r.suffix.lstrip('.').lower()}" if counts[n] > 1 else n for n, r in zip(names, resolved)]
    return names


def _write_png(path: Path, image) -> None:
    """Encode, write to a temporary name, then rename: a failed write (unwritable folder, full disk, file size
    limit) raises OutputError and leaves no cut PNG behind."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OutputError(f"{path}: OpenCV could not encode the PNG ({image.shape} {image.dtype})")
    tmp = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(buf.tobytes())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise OutputError(f"{path}: cannot be written ({exc.strerror or exc}). Check that the folder is writable "
                          "and the disk has space.") from None


def not_images(inputs: list[str]) -> list[str]:
    """What the folders among ``inputs`` hold besides images, as notes (predict does not look inside subfolders
    and reads only image files): one line per folder that has any."""
    notes = []
    for item in inputs:
        folder = Path(item)
        if not folder.is_dir():
            continue
        entries = sorted(folder.iterdir())
        subdirs = [e.name for e in entries if e.is_dir()]
        others = [e.name for e in entries if not e.is_dir() and e.suffix.lower() not in IMAGE_SUFFIXES]
        parts = []
        if subdirs:
            parts.append(f"{len(subdirs)} subfolder{'s' if len(subdirs) > 1 else ''} ({_some(subdirs)}; predict does "
                         "not look inside: pass them too)")
        if others:
            parts.append(f"{len(others)} file{'s' if len(others) > 1 else ''} that {'are' if len(others) > 1 else 'is'}"
                         f" not an image ({_some(others)})")
        if parts:
            notes.append(f"skipped in {folder}: " + " and ".join(parts))
    return notes


def _some(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f", ... {len(names) - limit} more" if len(names) > limit else "")


def output_targets(images: list[str], paths: list[Path], out: Path, *,
                   overlay: bool) -> list[tuple[Path, Path | None, Path | None]]:
    """(mask, overlay, coloured mask) paths in ``out`` for each of ``paths`` (the images found in ``images``; no
    overlay paths without ``overlay``), refused before anything is written when ``out`` is an input folder, when two
    outputs collide, or when one would overwrite an input."""
    for item in images:
        if Path(item).is_dir() and out.exists() and Path(item).resolve() == out.resolve():
            raise InputError(f"--output {out}: is also an input folder; masks would overwrite or mix with the "
                             "images. Choose another folder, e.g. --output masks/")
    names = output_names(paths)
    targets = [(out / f"{n}.png", out / f"{n}_overlay.png" if overlay else None,
                out / f"{n}_color.png" if overlay else None) for n in names]
    planned = [t for pair in targets for t in pair if t is not None]
    if len({p.resolve() for p in planned}) != len(planned):
        raise InputError("images: their names collide in --output (an input named like another's overlay or "
                         "coloured mask, e.g. x.png and x_overlay.png or x_color.png); rename one or use --no-overlay")
    inputs = {p.resolve() for p in paths}
    clash = [t for t in planned if t.resolve() in inputs]
    if clash:
        raise InputError(f"--output {out}: writing {clash[0]} would overwrite an input image. Choose another folder.")
    return targets


def predict_files(artifact: str | Path, images: list[str], output: str | Path, *, runtime: str = "auto",
                  overlay: bool = True, batch_size: int = 1, device: str | None = None, strict: bool = True,
                  skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Segment image files; writes ``<output>/<name>.png`` (class ids), ``<name>_color.png`` (the mask in the
    palette's colours: class-id PNGs look black) and ``<name>_overlay.png`` with a legend (see
    ``output_names``); returns the masks written. Refuses an output folder that is an input folder, and any output
    file that would overwrite an input.
    strict: an image that cannot be segmented (unreadable or truncated, too small, over the artifact's input limit)
    raises, its error naming the file; False: the others are segmented and (path, reason) is appended to
    ``skipped`` for each one left out."""
    from tqdm import tqdm

    from sdk.core.preprocess import read_rgb

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    out = check_output_dir(output)
    read_manifest(resolve_artifact(artifact))  # a missing or broken artifact first, before any file is looked at
    paths = image_paths(images)
    targets = output_targets(images, paths, out, overlay=overlay)

    written: list[Path] = []
    with Segmenter.from_artifact(artifact, runtime=runtime, device=device) as seg:  # device: runtimes/devices.py
        out.mkdir(parents=True, exist_ok=True)
        pending: list[tuple[int, object]] = []

        def flush() -> None:
            imgs = [img for _, img in pending]
            for (i, img), res in zip(pending, seg.predict_batch(imgs, batch_size=batch_size)):
                mask_path, overlay_path, color_path = targets[i]
                _write_png(mask_path, res.mask if res.mask.dtype == "uint8" else res.mask.astype("uint16"))
                if overlay_path is not None:
                    _write_png(overlay_path, res.overlay(img, legend=True)[..., ::-1])
                    _write_png(color_path, res.colorize()[..., ::-1])
                written.append(mask_path)
            pending.clear()

        for i, path in enumerate(tqdm(paths, desc="predict", unit="img", disable=len(paths) < 2)):
            try:  # one bad file does not stop the others unless strict; its error names the file
                img = seg.check_input(read_rgb(path), str(path))
            except InputError as exc:
                if strict:
                    raise
                if skipped is not None:
                    skipped.append((path, str(exc)))
                continue
            pending.append((i, img))
            if len(pending) == batch_size:
                flush()
        if pending:
            flush()
    return written
