"""Procedural test images with known content (so their captions can be honest): each generator draws one
clearly different kind of scene, returned as an RGB uint8 array."""

from __future__ import annotations

from typing import Any

import numpy as np

COLORS = {
    "red": (210, 40, 40), "blue": (40, 70, 200), "yellow": (235, 205, 40), "green": (40, 160, 70),
    "white": (245, 245, 245), "black": (15, 15, 15), "orange": (240, 130, 30), "purple": (120, 50, 160),
    "teal": (30, 150, 150), "pink": (230, 120, 170), "gray": (128, 128, 128),
}


def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return xx, yy


def _two(mask: np.ndarray, c1: str, c2: str) -> np.ndarray:
    a, b = np.array(COLORS[c1], np.uint8), np.array(COLORS[c2], np.uint8)
    return np.where(mask[..., None], a, b).astype(np.uint8)


def rings(w: int, h: int, c1: str, c2: str, period: float = 40.0) -> np.ndarray:
    """Concentric rings of two colours around the centre."""
    xx, yy = _grid(w, h)
    r = np.hypot(xx - w / 2, yy - h / 2)
    return _two((r // (period / 2)) % 2 == 0, c1, c2)


def stripes(w: int, h: int, c1: str, c2: str, angle_deg: float = 45.0, width: float = 30.0) -> np.ndarray:
    """Straight stripes of two colours at an angle."""
    xx, yy = _grid(w, h)
    t = np.deg2rad(angle_deg)
    return _two(((xx * np.cos(t) + yy * np.sin(t)) // width) % 2 == 0, c1, c2)


def checker(w: int, h: int, c1: str, c2: str, cell: int = 60) -> np.ndarray:
    """A checkerboard of two colours."""
    xx, yy = _grid(w, h)
    return _two(((xx // cell) + (yy // cell)) % 2 == 0, c1, c2)


def disc(w: int, h: int, fg: str, bg: str, radius_frac: float = 0.3) -> np.ndarray:
    """One filled circle in the centre of a plain background."""
    xx, yy = _grid(w, h)
    return _two(np.hypot(xx - w / 2, yy - h / 2) < radius_frac * min(w, h), fg, bg)


def sunset(w: int, h: int) -> np.ndarray:
    """An orange-to-purple sky, a yellow sun and a black ground band."""
    xx, yy = _grid(w, h)
    t = (yy / h)[..., None]
    sky = (1 - t) * np.array(COLORS["purple"]) + t * np.array(COLORS["orange"])
    sun = np.hypot(xx - 0.65 * w, yy - 0.55 * h) < 0.12 * min(w, h)
    img = np.where(sun[..., None], np.array(COLORS["yellow"]), sky)
    img[int(0.75 * h):] = COLORS["black"]
    return img.astype(np.uint8)


def mandelbrot(w: int, h: int, iters: int = 60) -> np.ndarray:
    """The Mandelbrot set in dark blue with gold edges."""
    xx, yy = _grid(w, h)
    c = (xx / w * 3.0 - 2.2) + 1j * (yy / h * 2.4 - 1.2)
    z = np.zeros_like(c)
    count = np.zeros(c.shape, np.float32)
    for _ in range(iters):
        inside = np.abs(z) <= 2
        z[inside] = z[inside] ** 2 + c[inside]
        count += inside
    t = (count / iters)[..., None]
    img = (1 - t) * np.array((10, 20, 80)) + t * np.array((250, 200, 60))
    return img.astype(np.uint8)


def rectangles(w: int, h: int, seed: int) -> np.ndarray:
    """Blocks of red, yellow, blue and white separated by thick black lines."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), COLORS["white"], np.uint8)
    xs = np.sort(rng.choice(np.arange(40, w - 40), 3, replace=False))
    ys = np.sort(rng.choice(np.arange(40, h - 40), 2, replace=False))
    cells = [(x0, y0, x1, y1) for x0, x1 in zip([0, *xs], [*xs, w], strict=True)
             for y0, y1 in zip([0, *ys], [*ys, h], strict=True)]
    for i, (x0, y0, x1, y1) in enumerate(cells):
        img[y0:y1, x0:x1] = COLORS[("red", "yellow", "blue", "white", "white")[(i + seed) % 5]]
    for x in xs:
        img[:, x - 4:x + 4] = COLORS["black"]
    for y in ys:
        img[y - 4:y + 4] = COLORS["black"]
    return img


def blobs(w: int, h: int, seed: int) -> np.ndarray:
    """Smooth, colourful swirling blobs (sums of sinusoids)."""
    rng = np.random.default_rng(seed)
    xx, yy = _grid(w, h)
    chans = []
    for _ in range(3):
        fx, fy, ph = rng.uniform(0.005, 0.03, 2).tolist() + [rng.uniform(0, 6.28)]
        chans.append(np.sin(xx * fx + ph) + np.cos(yy * fy + ph * 0.5) + np.sin((xx + yy) * fx * 0.7))
    arr = np.stack(chans, -1)
    return ((arr - arr.min()) / (np.ptp(arr) + 1e-9) * 255).astype(np.uint8)


def triangles(w: int, h: int, seed: int, count: int = 12) -> np.ndarray:
    """Overlapping coloured triangles on a pale gray background."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (w, h), (225, 225, 225))
    draw = ImageDraw.Draw(img)
    names = ["red", "blue", "green", "orange", "purple", "teal"]
    for i in range(count):
        pts = [tuple(rng.integers(0, [w, h]).tolist()) for _ in range(3)]
        draw.polygon(pts, fill=COLORS[names[i % len(names)]])
    return np.asarray(img)


GENERATORS: dict[str, Any] = {
    "rings": rings, "stripes": stripes, "checker": checker, "disc": disc, "sunset": sunset,
    "mandelbrot": mandelbrot, "rectangles": rectangles, "blobs": blobs, "triangles": triangles,
}


def draw(spec: dict[str, Any]) -> np.ndarray:
    """Render a spec like {"gen": "rings", "w": 480, "h": 360, "c1": "red", "c2": "blue"}."""
    params = {k: v for k, v in spec.items() if k != "gen"}
    return GENERATORS[spec["gen"]](**params)
