"""A tiled view of many sources (as DeepStream's nvmultistreamtiler): one picture of ``rows x columns`` tiles, each
source's latest rendered picture scaled into its tile with the source's name, black until its first frame."""
from __future__ import annotations

import math

import numpy as np

from sdk.core.errors import InputError, require_cv2


def grid(n: int) -> tuple[int, int]:
    """(rows, columns) for n tiles: the smallest near-square grid, wider than tall (4 -> 2x2, 3 -> 2x2, 8 -> 3x3)."""
    if n < 1:
        raise InputError(f"mosaic: expected >= 1 source, got {n}")
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


class Mosaic:
    """``update(i, picture)`` puts source i's (H, W, 3) uint8 BGR picture into its tile (scaled to the tile, the
    aspect kept, centred); ``picture`` is the whole (size_wh[1], size_wh[0], 3) canvas, updated in place."""

    def __init__(self, names: list[str], size_wh: tuple[int, int] = (1280, 720)) -> None:
        w, h = size_wh
        self.rows, self.cols = grid(len(names))
        if w < 32 * self.cols or h < 32 * self.rows:
            raise InputError(f"mosaic size: expected at least 32 px per tile ({32 * self.cols}x{32 * self.rows} for "
                             f"{len(names)} sources), got {w}x{h}")
        self.names = list(names)
        self.tile_wh = (w // self.cols, h // self.rows)
        self.picture = np.zeros((h, w, 3), np.uint8)

    def tile_origin(self, i: int) -> tuple[int, int]:
        """Top-left (x, y) of source i's tile."""
        return (i % self.cols) * self.tile_wh[0], (i // self.cols) * self.tile_wh[1]

    def fit(self, hw: tuple[int, int]) -> tuple[int, int]:
        """The (width, height) a picture of (h, w) takes inside a tile, its aspect kept."""
        tw, th = self.tile_wh
        scale = min(tw / hw[1], th / hw[0])
        return max(1, round(hw[1] * scale)), max(1, round(hw[0] * scale))

    def update(self, i: int, picture: np.ndarray) -> None:
        cv2 = require_cv2()

        tw, th = self.tile_wh
        fw, fh = self.fit(picture.shape[:2])
        small = picture if (fw, fh) == (picture.shape[1], picture.shape[0]) else \
            cv2.resize(picture, (fw, fh), interpolation=cv2.INTER_AREA)
        x0, y0 = self.tile_origin(i)
        tile = self.picture[y0:y0 + th, x0:x0 + tw]
        tile[:] = 0
        ox, oy = (tw - fw) // 2, (th - fh) // 2
        tile[oy:oy + fh, ox:ox + fw] = small
        # the source's name at the tile's top right (the HUD is top left, the legend bottom left)
        font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, min(0.7, th / 500.0))
        name = self.names[i]
        (tw_text, th_text), base = cv2.getTextSize(name, font, scale, 1)
        while tw_text > tw - 12 and len(name) > 8:  # too long for the tile: keep its end
            name = "..." + name[len(name) // 4 + 3:]
            (tw_text, th_text), base = cv2.getTextSize(name, font, scale, 1)
        x = max(0, tw - tw_text - 10)
        cv2.rectangle(tile, (x - 4, 2), (min(tw - 1, x + tw_text + 4), th_text + base + 8), (32, 32, 32), -1)
        cv2.putText(tile, name, (x, th_text + 5), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
