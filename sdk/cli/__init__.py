"""``segedge``: one subcommand per job, one module per subcommand (``sdk/cli/<name>.py``), each a thin wrapper over
a public function with the same parameter names. A module's ``add_parser(sub)`` registers its options (importing
nothing heavy, so ``--help`` needs no extras) and its ``run(args)`` does the work.

Exit codes: 0 success, 1 an SDK error (one line; traceback with -v), 2 a usage error.
"""
from __future__ import annotations

import argparse
import logging
import sys

from sdk.cli import (bench, build, demo, deploy_config, evaluate, export, inspect, predict, quantize, report,
                     stream, verify)
from sdk.core.errors import SegEdgeError

# the order ``segedge --help`` lists them in
COMMANDS = (export, quantize, verify, predict, build, deploy_config, stream, report, bench, inspect, evaluate, demo)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="segedge", description="Trained SegFormer -> edge artifacts and inference.")
    ap.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and info logs")
    sub = ap.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except SegEdgeError as exc:
        if args.verbose:
            raise
        print(f"segedge {args.command}: error: {exc}", file=sys.stderr)
        return 1

