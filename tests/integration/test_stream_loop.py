"""A looped video file replays its frames in order from the first one: after the last frame comes frame 0, then 1."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sdk.stream.sources import open_source

VIDEO = Path(__file__).resolve().parents[3] / "shared" / "video" / "sidewalk.mp4"


def test_loop_restarts_at_the_first_frame_in_order():
    if not VIDEO.exists():
        pytest.skip(f"needs {VIDEO} (the ../shared data folder beside the project)")
    cap = cv2.VideoCapture(str(VIDEO))
    once = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        once.append(image)
    cap.release()
    src = open_source(str(VIDEO), loop=True)
    replay = [src.read() for _ in range(len(once) + 3)]
    src.close()
    assert all(np.array_equal(a, b) for a, b in zip(replay, once + once[:3]))
