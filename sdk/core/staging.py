"""Outputs written whole: every command that writes a folder (an artifact, a report, the demo's masks) writes it
into a temporary folder beside the target and moves it in at the end.

A failure, a full disk or Ctrl-C part-way leaves the old folder intact and loadable (or nothing, if there was none);
a half-written folder is never where the output goes. A target that holds something other than an earlier output
of the same kind (``markers``: e.g. ``model.json`` for an artifact) is refused unless ``overwrite``, so a typo in
``--output`` never replaces a folder of the user's files; an earlier output is replaced whole (no stale model file
or mask of the last run is left beside the new ones).

Also the checks of an output path given on the command line (a folder or a file we may create), before any work.

Leaf module: the standard library and sdk.core.errors only.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from sdk.core.errors import InputError, OutputError

ARTIFACT_MARKERS = ("model.json",)


def check_output_folder(target: str | Path, *, overwrite: bool = False, markers: tuple[str, ...] = ARTIFACT_MARKERS,
                        what: str = "artifact", flag: str = "--overwrite", sources: tuple = ()) -> Path:
    """Refuse ``target`` if it is a file, or a folder holding something other than an earlier ``what`` (a file named
    in ``markers``), unless ``overwrite``; and always if one of ``sources`` (the inputs) is it or lies inside it, since
    replacing it would delete them. Returns it as a Path. Call it before any work."""
    target = Path(target)
    for source in sources:
        src = Path(source).resolve()
        if src == target.resolve() or src.is_relative_to(target.resolve()):
            raise OutputError(f"output {target}: expected a folder apart from the input {source}, which it holds; "
                              "writing there would replace the input. Pick another --output")
    if target.exists() and not target.is_dir():
        raise OutputError(f"output {target}: expected a folder to write the {what} into, got an existing file. "
                          "Pick another --output")
    if overwrite or not target.is_dir():
        return target
    try:
        entries = sorted(p.name for p in target.iterdir())
    except OSError as exc:
        raise OutputError(f"output {target}: cannot be listed ({exc.strerror or exc}); pick another --output") from None
    if entries and not any(m in entries for m in markers):
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise OutputError(f"output {target}: expected a new or empty folder, or an earlier {what} to replace, got a "
                          f"folder holding other files ({shown}). Pick another --output, or give {flag} to replace "
                          "that folder whole")
    return target


def file_above(path: Path) -> Path | None:
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
    blocker = file_above(path)
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
    blocker = file_above(path)
    if blocker is not None:
        raise InputError(f"{flag} {path}: cannot write under {blocker}, which is a file. Choose another path.")
    return path


def _install(stage: Path, target: Path) -> None:
    """Move ``stage`` to ``target``; an existing target is moved aside first and removed after, and put back if the
    move fails, so the target is always the old folder or the new one."""
    if not target.exists():
        os.replace(stage, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rmdir(old)  # a free name beside the target
    os.replace(target, old)
    try:
        os.replace(stage, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(target: str | Path, *, overwrite: bool = False, markers: tuple[str, ...] = ARTIFACT_MARKERS,
                  what: str = "artifact", flag: str = "--overwrite", sources: tuple = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target`` (same file system: the move is a rename); when the block
    ends normally it replaces ``target`` whole, and on any exception (KeyboardInterrupt included) it is removed and
    ``target`` is left as it was. ``check_output_folder`` runs first."""
    target = check_output_folder(target, overwrite=overwrite, markers=markers, what=what, flag=flag, sources=sources)
    parent = target.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=parent))
    except OSError as exc:
        raise OutputError(f"output {target}: cannot write beside it in {parent} ({exc.strerror or exc}); check the "
                          "folder exists and is writable, or pick another --output") from None
    try:
        yield stage
        try:
            _install(stage, target.resolve())
        except OSError as exc:
            raise OutputError(f"output {target}: the finished {what} could not be moved into place "
                              f"({exc.strerror or exc}); the earlier contents are unchanged") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def repoint_tree(stage: Path, target: Path, suffixes: tuple[str, ...] = (".json", ".md", ".html")) -> None:
    """``repoint`` for every file with one of ``suffixes`` under ``stage`` (a report: its JSON, Markdown and HTML,
    and the manifests of the artifacts inside)."""
    for path in stage.rglob("*"):
        if path.suffix in suffixes and path.is_file():
            repoint(path.parent, stage, target, path.name)


def _repointed(value, stage: Path, target: Path):
    """``value`` (str, Path, dict, list, tuple: what a writer returns) with paths under ``stage`` moved to ``target``."""
    olds = sorted({str(stage), str(stage.resolve())}, key=len, reverse=True)
    if isinstance(value, Path):
        return Path(_repointed(str(value), stage, target))
    if isinstance(value, str):
        for old in olds:
            value = value.replace(old, str(target))
        return value
    if isinstance(value, dict):
        return {k: _repointed(v, stage, target) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_repointed(v, stage, target) for v in value)
    return value


def writes_whole(*, markers: tuple[str, ...] = ARTIFACT_MARKERS, what: str = "artifact"):
    """Decorate ``fn(source, output, ...)`` so that it writes into a staging folder (``staged_folder``) moved to
    ``output`` at the end; the wrapper takes ``overwrite=`` (keyword) besides ``fn``'s own parameters, and paths
    under the staging folder in the files it wrote (``repoint_tree``) and in its return value name ``output``."""
    import functools

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(source, output, *args, overwrite: bool = False, **kwargs):
            target = Path(output)
            with staged_folder(target, overwrite=overwrite, markers=markers, what=what, sources=(source,)) as stage:
                result = fn(source, stage, *args, **kwargs)
                repoint_tree(stage, target.resolve())
            return _repointed(result, stage, target)

        return wrapper

    return decorate


def repoint(folder: Path, stage: Path, target: Path, name: str = "model.json") -> None:
    """Rewrite paths recorded in ``folder/name`` that point into ``stage`` to point into ``target`` (the manifest of
    an artifact made in a staging folder names its own FP32 source under it)."""
    path = folder / name
    if path.is_file():
        text = path.read_text()
        for old in sorted({str(stage), str(stage.resolve())}, key=len, reverse=True):
            text = text.replace(old, str(target))
        path.write_text(text)


__all__ = ["staged_folder", "check_output_folder", "repoint", "repoint_tree", "writes_whole", "ARTIFACT_MARKERS"]
