"""Street scenes drawn from code, for ``segedge demo`` where no CamVid is at hand: sky, buildings with windows,
trees, poles, pavement, a road with lane markings, cars and people, with a little texture and noise. Each scene
comes with the layout it was drawn from, as CamVid class ids (255 where nothing CamVid names was drawn), so the
demo can say how much of the drawing the model recognises. Deterministic per seed; no file is shipped, so no
licence question arises.
"""
from __future__ import annotations

import numpy as np

# CamVid's 11 classes in the bundled model's order
SKY, BUILDING, POLE, ROAD, PAVEMENT, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST = range(11)
VOID = 255


def street_scene(hw: tuple[int, int] = (360, 480), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (H, W, 3) uint8 RGB street picture and its (H, W) uint8 layout (CamVid class ids, 255: unnamed)."""
    import cv2

    h, w = hw
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    lab = np.full((h, w), VOID, np.uint8)
    horizon = int(h * rng.uniform(0.42, 0.52))
    # back to front, each drawn into the picture and the layout; one generator, so each seed gives one scene
    _sky_and_buildings(img, lab, rng, horizon)
    _road(img, lab, rng, horizon)
    _trees_and_poles(img, lab, rng, horizon)
    _cars(img, lab, rng, horizon)
    _person(img, lab, rng, horizon)
    # texture and sensor noise, then a slight blur as a camera gives
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    img = cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.uint8), (3, 3), 0)
    return img, lab


def _sky_and_buildings(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator, horizon: int) -> None:
    """An overcast sky gradient, as in most driving footage, and blocks of buildings of varying height along the
    horizon, with rows of windows."""
    w = img.shape[1]
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    img[:horizon] = (1 - t) * np.array([205, 212, 222], np.float32) + t * np.array([236, 238, 240], np.float32)
    lab[:horizon] = SKY
    x = 0
    while x < w:
        bw = int(rng.uniform(0.12, 0.3) * w)
        top = int(horizon * rng.uniform(0.05, 0.55))
        colour = rng.uniform(70, 160) * np.array([1.0, 0.93, 0.84]) + rng.uniform(-10, 10, 3)
        img[top:horizon, x:x + bw] = colour
        lab[top:horizon, x:x + bw] = BUILDING
        for wy in range(top + 10, horizon - 12, 22):
            for wx in range(x + 8, x + bw - 12, 18):
                img[wy:wy + 10, wx:wx + 8] = colour * 0.45
        x += bw


def _road(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator, horizon: int) -> None:
    """The road below the horizon, pavement strips at both sides converging to a vanishing point, and a dashed
    centre line in perspective."""
    import cv2

    h, w = lab.shape
    img[horizon:] = (88, 86, 92)
    lab[horizon:] = ROAD
    vx = int(w * rng.uniform(0.4, 0.6))
    for side in (0, w - 1):
        poly = np.array([[vx, horizon], [side, horizon], [side, h - 1], [int(vx + (side - vx) * 0.55), h - 1]],
                        np.int32)
        cv2.fillPoly(img, [poly], (150, 146, 140))
        cv2.fillPoly(lab, [poly], PAVEMENT)
    for k in range(6):
        y0 = horizon + int((h - horizon) * (k / 6) ** 1.6)
        y1 = horizon + int((h - horizon) * ((k + 0.5) / 6) ** 1.6)
        half = 1 + (y1 - horizon) // 30
        cv2.rectangle(img, (vx - half, y0), (vx + half, y1), (235, 235, 225), -1)


def _trees_and_poles(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator, horizon: int) -> None:
    """Trees (trunks and round crowns) in front of the buildings, then poles on the pavement."""
    import cv2

    h, w = lab.shape
    for _ in range(int(rng.integers(1, 4))):
        cx = int(rng.uniform(0.05, 0.95) * w)
        r = int(h * rng.uniform(0.07, 0.13))
        cy = horizon - r - int(h * 0.04)
        cv2.rectangle(img, (cx - 3, cy), (cx + 3, horizon + 6), (80, 60, 40), -1)
        cv2.rectangle(lab, (cx - 3, cy), (cx + 3, horizon + 6), TREE, -1)
        cv2.circle(img, (cx, cy), r, tuple(float(v) for v in rng.uniform([40, 90, 30], [80, 140, 60])), -1)
        cv2.circle(lab, (cx, cy), r, TREE, -1)
    for _ in range(int(rng.integers(1, 3))):
        px = int(rng.choice([rng.uniform(0.02, 0.25), rng.uniform(0.75, 0.98)]) * w)
        top = int(horizon * rng.uniform(0.2, 0.5))
        cv2.rectangle(img, (px - 2, top), (px + 2, int(h * 0.85)), (60, 60, 64), -1)
        cv2.rectangle(lab, (px - 2, top), (px + 2, int(h * 0.85)), POLE, -1)


def _cars(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator, horizon: int) -> None:
    """Cars on the road, larger nearer the camera: body, darker windows, wheels."""
    import cv2

    h, w = lab.shape
    for _ in range(int(rng.integers(1, 4))):
        cy = int(rng.uniform(horizon + 0.15 * (h - horizon), h - 0.15 * (h - horizon)))
        scale = (cy - horizon) / (h - horizon)
        cw, ch = int(w * 0.28 * scale) + 20, int(h * 0.16 * scale) + 10
        cx = int(rng.uniform(0.2, 0.8) * w) - cw // 2
        body = tuple(float(v) for v in rng.uniform(30, 200, 3))
        cv2.rectangle(img, (cx, cy - ch), (cx + cw, cy), body, -1)
        cv2.rectangle(img, (cx + cw // 5, cy - ch - ch // 2), (cx + 4 * cw // 5, cy - ch), body, -1)
        cv2.rectangle(img, (cx + cw // 4, cy - ch - ch // 3), (cx + 3 * cw // 4, cy - ch), (40, 50, 60), -1)
        cv2.rectangle(lab, (cx, cy - ch), (cx + cw, cy), CAR, -1)
        cv2.rectangle(lab, (cx + cw // 5, cy - ch - ch // 2), (cx + 4 * cw // 5, cy - ch), CAR, -1)
        for wx in (cx + cw // 5, cx + 4 * cw // 5):
            cv2.circle(img, (wx, cy), max(3, ch // 4), (20, 20, 20), -1)
            cv2.circle(lab, (wx, cy), max(3, ch // 4), CAR, -1)


def _person(img: np.ndarray, lab: np.ndarray, rng: np.random.Generator, horizon: int) -> None:
    """A person on the pavement: body and head."""
    import cv2

    h, w = lab.shape
    px = int(rng.choice([rng.uniform(0.05, 0.2), rng.uniform(0.8, 0.95)]) * w)
    feet = int(rng.uniform(horizon + 0.3 * (h - horizon), h - 10))
    ph = int((feet - horizon) * 1.1) + 12
    cv2.ellipse(img, (px, feet - ph // 2), (max(3, ph // 9), ph // 2 - ph // 8), 0, 0, 360,
                tuple(float(v) for v in rng.uniform(20, 120, 3)), -1)
    cv2.ellipse(lab, (px, feet - ph // 2), (max(3, ph // 9), ph // 2 - ph // 8), 0, 0, 360, PEDESTRIAN, -1)
    cv2.circle(img, (px, feet - ph + ph // 10), max(2, ph // 10), (200, 160, 130), -1)
    cv2.circle(lab, (px, feet - ph + ph // 10), max(2, ph // 10), PEDESTRIAN, -1)


def street_scenes(count: int, hw: tuple[int, int] = (360, 480), seed: int = 0):
    """``count`` (image, layout) pairs, as ``street_scene`` draws them with seeds seed, seed+1, ..."""
    return [street_scene(hw, seed + i) for i in range(count)]
