"""Video files: a looped file replays its frames in order from the first one (after the last frame comes frame 0,
then 1); small files decode on one FFmpeg thread and give the same frames as with more."""
from __future__ import annotations

import cv2
import numpy as np

from conftest import VIDEO, need
from sdk.stream.sources import open_source


def test_loop_restarts_at_the_first_frame_in_order():
    need(VIDEO)
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


def test_small_video_files_decode_on_one_thread_with_the_same_frames():
    need(VIDEO)
    src = open_source(str(VIDEO))
    assert src._cap.get(cv2.CAP_PROP_N_THREADS) == 1  # 720x1280: under SINGLE_THREAD_DECODE_PIXELS
    ours = [src.read() for _ in range(40)]
    src.close()
    cap = cv2.VideoCapture(str(VIDEO), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 2])
    theirs = [cap.read()[1] for _ in range(40)]
    cap.release()
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
