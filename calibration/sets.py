"""Calibration sets: frames from a folder, a video, a text list or Python arrays, through the inference preprocessing.

A calibration set is a sequence of RGB uint8 frames plus the artifact's ``PreprocessSpec`` (NNCF's dataset +
transform): every toolkit adapter in ``calibration/`` feeds ``preprocess(frame, spec)`` -- the function inference
uses -- one frame at a time. Frames from files are read when indexed, not held: a set of 300 frames of 4K video
holds a few MB, not 7 GB, whatever the frame size (``Frames``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from sdk.core.errors import InputError
from sdk.core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from sdk.core.preprocess import check_image, read_rgb



class Frames(Sequence):
    """RGB uint8 frames (H, W, 3), each produced by ``read(key)`` when indexed or iterated (a path read, a video frame
    decoded, an array already in memory); slicing and ``take`` give views over the same source, reading nothing."""

    def __init__(self, read: Callable[[int], np.ndarray], keys: Sequence[int]) -> None:
        self._read, self._keys = read, tuple(keys)

    @classmethod
    def in_memory(cls, arrays: Sequence[np.ndarray]) -> "Frames":
        arrays = list(arrays)
        return cls(arrays.__getitem__, range(len(arrays)))

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Frames(self._read, self._keys[index])
        return self._read(self._keys[index])

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self._read(key) for key in self._keys)

    def take(self, indices: Iterable[int]) -> "Frames":
        """The frames at ``indices`` (positions in this sequence), in that order."""
        return Frames(self._read, [self._keys[i] for i in indices])

    def __repr__(self) -> str:
        return f"Frames({len(self)} frames from {self._read!r})"


class _PathReader:
    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __call__(self, key: int) -> np.ndarray:
        return read_rgb(self.paths[key])

    def __repr__(self) -> str:
        return f"{len(self.paths)} image files"


class _VideoReader:
    """Frame ``key`` (its index in the clip) of a video, decoded sequentially from the start -- never by seeking,
    whose accuracy depends on the codec and container -- so a frame is the one a single pass decodes. Reading on
    from the last frame read continues the open stream; an earlier frame reopens the file."""

    def __init__(self, path: Path) -> None:
        self.path, self._cap, self._next = path, None, 0

    def __call__(self, key: int) -> np.ndarray:
        import cv2

        if self._cap is None or key < self._next:
            if self._cap is not None:
                self._cap.release()
            self._cap, self._next = cv2.VideoCapture(str(self.path)), 0
        while self._next < key and self._cap.grab():
            self._next += 1
        ok, frame = self._cap.read() if self._next == key else (False, None)
        self._next += 1
        if not ok:
            self._cap.release()
            self._cap = None
            raise InputError(f"calibration video {self.path}: frame {key} decoded when the set was made but not "
                             "now; the file changed or is being written. Copy it, or extract its frames into a "
                             "folder and pass the folder.")
        return np.ascontiguousarray(frame[..., ::-1])

    def __repr__(self) -> str:
        return f"video {self.path.name}"


@dataclass(frozen=True)
class CalibrationSet:
    """Frames (RGB uint8, (H, W, 3); ``Frames``, a list is wrapped) and where they came from; ``fingerprint``
    identifies the exact selection."""

    frames: Frames
    description: str
    fingerprint: str

    def __post_init__(self) -> None:
        if not isinstance(self.frames, Frames):
            object.__setattr__(self, "frames", Frames.in_memory(self.frames))

    def __len__(self) -> int:
        return len(self.frames)


def _pick(n_total: int, num_samples: int, seed: int) -> list[int]:
    if num_samples <= 0 or num_samples >= n_total:
        return list(range(n_total))
    return sorted(np.random.default_rng(seed).choice(n_total, size=num_samples, replace=False).tolist())


def _from_paths(paths: list[Path], num_samples: int, seed: int, what: str) -> CalibrationSet:
    chosen = [paths[i] for i in _pick(len(paths), num_samples, seed)]
    for p in chosen:  # every file decodes now, as a clear error here rather than midway through a calibration
        read_rgb(p)
    frames = Frames(_PathReader(chosen), range(len(chosen)))
    digest = hashlib.sha256("\n".join(p.name for p in chosen).encode()).hexdigest()[:16]
    return CalibrationSet(frames, f"{len(frames)} of {len(paths)} images from {what} (seed {seed})", digest)


def _from_video(path: Path, num_samples: int) -> CalibrationSet:
    """Frames spread evenly over the whole clip (not the first N), decoded in one sequential pass."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"calibration video {path}: cannot be opened by OpenCV (missing, not a video, or a codec "
                         "this OpenCV build lacks). Extract frames with ffmpeg into a folder and pass the folder.")
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if count <= 0:
        raise InputError(f"calibration video {path}: reports no frames; expected a decodable video file")
    wanted = set(np.linspace(0, count - 1, num=min(num_samples or count, count)).round().astype(int).tolist())
    decoded, index = [], 0  # one pass: which wanted frames decode (kept as indices; ``_VideoReader`` reads them)
    while index <= max(wanted):
        ok = cap.read()[0] if index in wanted else cap.grab()
        if not ok:
            break
        if index in wanted:
            decoded.append(index)
        index += 1
    cap.release()
    frames = Frames(_VideoReader(path), decoded)
    if not frames:
        raise InputError(f"calibration video {path}: no frame could be decoded (expected {len(wanted)}); the file "
                         "may be truncated or use an unsupported codec")
    # a header may over-count by a frame or two; a video that ends well before it is cut (and would give only
    # frames from before the cut, not spread over the clip)
    if len(frames) < len(wanted) and index < count - max(2, count // 50):
        raise InputError(f"calibration video {path}: asked for {len(wanted)} frames spread over the {count} its "
                         f"header reports, but decoding stopped after frame {index} ({index / count:.0%} of the "
                         f"clip), giving only {len(frames)}, all before that point. The file is truncated or "
                         "damaged: copy or re-encode it, or extract its frames into a folder and pass the folder.")
    digest = hashlib.sha256(f"{path.name}:{count}:{sorted(wanted)}".encode()).hexdigest()[:16]
    return CalibrationSet(frames, f"{len(frames)} frames spread over {count} of video {path.name}", digest)


def load_calibration_set(source: str | Path | Iterable[np.ndarray], *, num_samples: int = 300,
                         seed: int = 0) -> CalibrationSet:
    """A calibration set from ``source``:

    - a folder of images (``num_samples`` chosen at random with ``seed``, all if fewer);
    - a video file (``num_samples`` frames spread evenly over the clip);
    - a ``.txt`` list of image paths, one per line, relative to the list's folder (CamVid's ``image label`` lines
      work: the first column is used);
    - an iterable of (H, W, 3) uint8 RGB arrays (the first ``num_samples``).

    ``num_samples`` must be >= 1 (an int): there is no "0 = all"; ask for at least as many as the source has.
    """
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise InputError(f"num_samples: expected an int >= 1 (how many calibration frames), got {num_samples!r}. "
                         "For every frame of the source, give a number at least as large as it has.")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"seed: expected an int >= 0, got {seed!r}")
    if not isinstance(source, (str, Path)) and not hasattr(source, "__iter__"):
        raise InputError(f"calibration source: expected a folder, video or .txt path, or an iterable of (H, W, 3) "
                         f"uint8 RGB arrays, got {type(source).__name__}")
    if not isinstance(source, (str, Path)):
        frames = []
        for i, frame in enumerate(source):
            if num_samples and i >= num_samples:
                break
            frames.append(check_image(frame, f"calibration frame {i}"))
        if not frames:
            raise InputError("calibration set: the iterable gave no frames; expected (H, W, 3) uint8 RGB arrays")
        digest = hashlib.sha256(b"".join(f[::16, ::16].tobytes() for f in frames)).hexdigest()[:16]
        return CalibrationSet(frames, f"{len(frames)} frames from a Python iterable", digest)
    path = Path(source)
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputError(f"calibration folder {path}: expected images ({', '.join(sorted(IMAGE_SUFFIXES))}), "
                             "found none. Point --calib at a folder of frames, a video or a .txt list.")
        return _from_paths(paths, num_samples, seed, f"folder {path}")
    if not path.is_file():
        raise InputError(f"calibration source {path}: no such file or folder")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _from_video(path, num_samples)
    if path.suffix.lower() == ".txt":
        try:
            lines = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"calibration list {path}: cannot be read as text ({exc}); expected one image path "
                             "per line") from None
        if not lines:
            raise InputError(f"calibration list {path}: is empty; expected one image path per line")
        return _from_paths([path.parent / ln for ln in lines], num_samples, seed, f"list {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _from_paths([path], 0, seed, f"image {path}")
    raise InputError(f"calibration source {path}: expected a folder of images, a video "
                     f"({', '.join(sorted(VIDEO_SUFFIXES))}) or a .txt list, got a {path.suffix or 'suffix-less'} file")
