"""Quiet toolkits during quantization: NNCF logs ~30 ``INFO:nncf:`` lines to stdout per run, and ONNX Runtime's
calibrators ``print`` their progress ("Collecting tensor data and making histogram ...", "Finding optimal threshold
...", "Number of tensors : ..."). Our own progress bar (tqdm, on stderr) already says what happens.

``quiet_toolkits()`` lowers NNCF's logger to WARNING and drops those ONNX Runtime lines from ``sys.stdout`` (every
other line passes through unchanged), unless the root logger is at INFO or below (``segedge -v``). Warnings and
errors from either toolkit still show.
"""
from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
from typing import Iterator

# the progress lines onnxruntime.quantization.calibrate prints (as of onnxruntime 1.17 .. 1.2x)
ORT_CALIBRATOR_LINES = re.compile(r"^(Collecting tensor data and making histogram|Finding optimal threshold for each "
                                  r"tensor|Number of (tensors|histogram bins|quantized bins)|Percentile :|Scenario :)")


class _DropLines(io.TextIOBase):
    """A text stream that forwards whole lines to ``target``, except those matching ``pattern``."""

    def __init__(self, target, pattern: re.Pattern) -> None:
        self.target, self.pattern, self._pending = target, pattern, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if not self.pattern.match(line):
                self.target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending and not self.pattern.match(self._pending):
            self.target.write(self._pending)
        self._pending = ""
        self.target.flush()


@contextlib.contextmanager
def quiet_toolkits(*, verbose: bool | None = None) -> Iterator[None]:
    """Silence NNCF's INFO logs and ONNX Runtime's calibrator prints inside the block (see the module docstring).
    verbose: keep them; None: keep them when the root logger is at INFO or below (``segedge -v``)."""
    if verbose is None:
        verbose = logging.getLogger().isEnabledFor(logging.INFO)
    if verbose:
        yield
        return
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(max(level, logging.WARNING))
    stream = _DropLines(sys.stdout, ORT_CALIBRATOR_LINES)
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        stream.flush()
        nncf_log.setLevel(level)
