"""Which files are images and which are videos, by suffix: one answer for the CLI, the calibration and evaluation
sets and the stream sources, so a file one command reads as a video is not an image to another.

Leaf module: standard library only.
"""
from __future__ import annotations

# read with ``sdk.core.preprocess.read_rgb`` (OpenCV's imread)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
# read with OpenCV's VideoCapture (FFmpeg); what the stream's mp4 writer can write is narrower
# (``sdk.stream.render.WRITER_SUFFIXES``)
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".h264"})
