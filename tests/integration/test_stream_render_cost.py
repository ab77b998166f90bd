"""The stream renderer's cheaper paths give the same pictures: the colour map (cv2.applyColorMap with the palette)
equals the palette lookup for every class id, and the legend drawn once and copied in equals the legend drawn
straight onto each picture, also after the classes present or the picture size change."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import VIDEO, need
from sdk.core.result import SegmentationResult, colorize, default_palette
from sdk.stream.render import LEGEND_MAX_HEIGHT, Renderer, RenderOptions, _font, _text_box



def _frames(n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(need(VIDEO)))
    frames = [cap.read()[1] for _ in range(n)]
    cap.release()
    return frames


def _legend_drawn_in_place(r: Renderer, picture: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The legend as drawn before the cache: every box straight onto the blended picture."""
    out = picture.copy()
    counts = np.bincount(mask[::4, ::4].ravel(), minlength=len(r.class_names))
    present = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0][: r.options.legend_max]
    h, w = out.shape[:2]
    _, line_h = _font(out)
    rows = max(1, min(len(present), int((LEGEND_MAX_HEIGHT * h - 8) // line_h)))
    x = 8
    for col in [present[i:i + rows] for i in range(0, len(present), rows)]:
        if w - 8 - x < 4 * line_h:
            break
        colours = [(int(b), int(g), int(rr)) for b, g, rr in r.palette_bgr[col]]
        x = _text_box(out, [r.class_names[i] for i in col], (x, h - 8 - line_h * len(col) - 8), swatches=colours,
                      max_width=w - 8 - x)[2] + 3
    return out


@pytest.mark.parametrize("k", [11, 150, 256])
def test_colour_map_equals_the_palette_lookup(k):
    palette = default_palette(k)
    r = Renderer([f"c{i}" for i in range(k)], palette)
    mask = (np.arange(720 * 64) % k).astype(np.uint8).reshape(720, 64)
    assert np.array_equal(r.colorize(mask), colorize(mask, palette)[..., ::-1])


@pytest.mark.parametrize("options", [RenderOptions(hud=False), RenderOptions(hud=False, legend_max=3),
                                     RenderOptions(hud=False, alpha=0.3)])
def test_cached_legend_equals_the_legend_drawn_in_place(options):
    frames = _frames(3)
    names = ["sky", "building", "pole", "road", "pavement", "tree", "signsymbol", "fence", "car", "pedestrian",
             "bicyclist"]
    palette = default_palette(len(names))
    r, rng = Renderer(names, palette, options), np.random.default_rng(0)
    plain = Renderer(names, palette, RenderOptions(alpha=options.alpha, legend=False, hud=False))
    cases = []
    for image in frames:  # same size, classes present change from frame to frame (and repeat: the cache is hit)
        h, w = image.shape[:2]
        cases += [(image, (np.arange(h)[:, None] * 11 // h + np.zeros(w, int)).astype(np.uint8)),
                  (image, rng.integers(0, 4, (h, w)).astype(np.uint8))]
    for hw in [(64, 48), (120, 200), (1080, 1920)]:  # other sizes with the same classes
        cases.append((rng.integers(0, 255, (*hw, 3), dtype=np.uint8), rng.integers(0, 4, hw).astype(np.uint8)))
    for image, mask in cases + cases[:2]:
        result = SegmentationResult(mask, names, palette)
        expected = _legend_drawn_in_place(r, plain.annotate(image, result), mask)
        assert np.array_equal(r.annotate(image, result), expected)
