"""``segedge``: one subcommand per job, one module per subcommand (``sdk/cli/<name>.py``), each a thin wrapper over
a public function with the same parameter names. A module's ``add_parser(sub)`` registers its options (importing
nothing heavy, so ``--help`` needs no extras) and its ``run(args)`` does the work.

Exit codes: 0 success, 1 an SDK error (one line; traceback with -v), 2 a usage error.
"""
from __future__ import annotations

import argparse
import logging
import sys

from sdk.cli import (bench, build, demo, deploy_config, doctor, evaluate, export, export_openvino, inspect, predict,
                     quantize, report, serve, stream, verify)
from sdk.core.errors import SegEdgeError

# the order ``segedge --help`` lists them in
COMMANDS = (export, export_openvino, quantize, verify, predict, build, deploy_config, serve, stream, report, bench,
            inspect, evaluate, demo, doctor)


def _package_version() -> str:
    """The installed distribution's version (package metadata: imports nothing)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("segedge")
    except PackageNotFoundError:
        return "(not installed: run pip install -e . in the project)"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="segedge", description="Trained SegFormer -> edge artifacts and inference.")
    ap.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and info logs")
    ap.add_argument("--version", action="version", version=f"segedge {_package_version()}")
    sub = ap.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return ap


def _one_line(exc: BaseException) -> str:
    """A foreign exception as one line: OS errors with their path, OpenCV/regex/memory errors with what to do."""
    import re

    if isinstance(exc, OSError):
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        what = exc.strerror or str(exc) or type(exc).__name__
        return (f"{what}:{where}. Check the path, its permissions and the free disk space "
                f"({type(exc).__name__}{f' errno {exc.errno}' if exc.errno else ''}).")
    if isinstance(exc, re.error):
        return (f"regular expression {exc.pattern!r}: {exc.msg} at position {exc.pos}. Fix the pattern (escape "
                "literal characters such as ( [ . with a backslash).")
    if isinstance(exc, MemoryError):
        return ("out of memory. Use smaller inputs (segedge export --size H W for large frames), fewer samples or "
                "a smaller batch.")
    text = (str(exc).strip().splitlines() or [""])[-1][:300]
    return (f"unexpected {type(exc).__module__}.{type(exc).__name__}: {text}. Check the inputs; rerun with -v for "
            "the traceback and report it if they are right.")


def _warnings_in_cli_format(command: str) -> None:
    """The SDK's warnings as one line each, "segedge CMD: warning: ...", not Python's file:line form; the stretch
    warning once per run and frame size (it used to come with every frame)."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"segedge {command}: warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show
    # sdk.core.preprocess.AspectWarning, matched by its text (importing it here would load numpy for --help)
    warnings.filterwarnings("once", message=r"image \d+x\d+: its aspect differs")


def _say_auto_runtime(command: str, verbose: bool) -> None:
    """What ``--runtime auto`` picked and why, on stderr as the command's first line where it was measured (now or
    from the cache: runtimes/choose.py); the first-installed and only-candidate picks with -v only."""
    auto = logging.getLogger("segedge.auto")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"segedge {command}: %(message)s"))
    handler.addFilter(lambda record: verbose or getattr(record, "measured", False))
    auto.handlers[:] = [handler]
    auto.setLevel(logging.INFO)
    auto.propagate = False


def _end_progress_bars() -> None:
    """Close any progress bar still drawn (tqdm, if loaded), so an error printed next starts on its own line instead
    of landing on the bar's."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or []):
        try:
            bar.close()
        except Exception:  # a bar half torn down already: nothing to draw
            pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    _warnings_in_cli_format(args.command)
    _say_auto_runtime(args.command, args.verbose)
    try:
        return args.func(args)
    except BrokenPipeError:
        # the reader went away (``segedge inspect ... | head``): stop quietly, like other command-line tools
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        except OSError:
            pass
        return 1
    except KeyboardInterrupt:
        _end_progress_bars()
        print(f"segedge {args.command}: interrupted", file=sys.stderr)
        return 130
    except SegEdgeError as exc:
        if args.verbose:
            raise
        _end_progress_bars()
        print(f"segedge {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # OSError, cv2.error, re.error, MemoryError, a runtime's own types: one line too
        if args.verbose:
            raise
        _end_progress_bars()
        print(f"segedge {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
