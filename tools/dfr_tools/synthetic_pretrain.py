"""A dense-label synthetic task for PRETRAINING the small Swin: the paper starts from
an ImageNet-pretrained backbone; offline on CPU we start from one trained on this task.

It shares nothing with the benchmark of `synthetic.py` (which it must not inform):
- classes: background + star, ring, cross, hexagon, crescent (benchmark: disc, bar, triangle);
- textures: speckle (i.i.d. noise), flat, blotches (low-frequency noise), a linear ramp and
  streaks (1-d noise along a random direction) (benchmark: polka dots, stripes, checkerboard);
- colours: low saturation only, HSV S < 45 for objects and background (benchmark objects:
  S >= 60, two-tone); one tone per object, its value (HSV V) >= 50 away from the background's;
  the background is a grey value-noise field with grey clutter lines.
Samples are rendered on the fly from np.random.default_rng([seed, index]) (no files, no cache):
`render_pretrain_sample(rng, h, w)` -> (uint8 RGB (h, w, 3), uint8 labels (h, w)).
"""
from typing import Tuple

import cv2
import numpy as np

__all__ = ["PRETRAIN_CLASSES", "render_pretrain_sample"]

PRETRAIN_CLASSES = ["background", "star", "ring", "cross", "hexagon", "crescent"]
MAX_SATURATION = 45  # HSV saturation (0-255) of every colour drawn here


def _grey_colour(rng, value=None) -> np.ndarray:
    v = rng.integers(30, 256) if value is None else value
    hsv = np.array([[[rng.integers(0, 180), rng.integers(0, MAX_SATURATION), v]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _contrasting_value(rng, bg_value) -> int:
    """An object value (HSV V) at least 50 away from the background's."""
    choices = [v for v in range(30, 256) if abs(v - int(bg_value)) >= 50]
    return int(rng.choice(choices))


def _value_noise(rng, h, w, cells) -> np.ndarray:
    """Smooth noise in [0, 1]: a cells x cells uniform grid, bicubically upsampled."""
    grid = rng.uniform(0, 1, size=(cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


def _pretrain_background(rng, h, w, base) -> np.ndarray:
    field = _value_noise(rng, h, w, int(rng.integers(2, 6)))[..., None]
    img = base * (0.6 + 0.8 * field)
    for _ in range(int(rng.integers(3, 10))):  # grey clutter lines
        p = rng.integers(0, [w, h], size=2)
        q = p + rng.integers(-50, 51, size=2)
        cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q),
                 _grey_colour(rng).tolist(), int(rng.integers(1, 4)))  # fmt: skip
    return img


def _polygon(cx, cy, radii, ang) -> np.ndarray:
    t = ang + np.linspace(0, 2 * np.pi, len(radii), endpoint=False)
    return np.round(np.stack([cx + radii * np.cos(t), cy + radii * np.sin(t)], 1)).astype(np.int32)


def _pretrain_shape_mask(cls: int, rng, h, w, cx, cy, s) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    ang = float(rng.uniform(0, 2 * np.pi))
    if cls == 1:  # star: 5 points, inner radius 0.45
        cv2.fillPoly(m, [_polygon(cx, cy, s * np.tile([1.0, 0.45], 5), ang)], 1)
    elif cls == 2:  # ring: annulus, hole 45-60 % of the radius
        cv2.circle(m, (int(cx), int(cy)), int(s), 1, -1)
        cv2.circle(m, (int(cx), int(cy)), int(s * rng.uniform(0.45, 0.6)), 0, -1)
    elif cls == 3:  # cross: two perpendicular bars of width 0.5 s
        for a in (ang, ang + np.pi / 2):
            box = ((float(cx), float(cy)), (2 * s, 0.5 * s), float(np.degrees(a)))
            cv2.fillPoly(m, [np.round(cv2.boxPoints(box)).astype(np.int32)], 1)
    elif cls == 4:  # hexagon
        cv2.fillPoly(m, [_polygon(cx, cy, s * np.ones(6), ang)], 1)
    else:  # crescent: a disc minus a shifted disc
        cv2.circle(m, (int(cx), int(cy)), int(s), 1, -1)
        off = s * rng.uniform(0.45, 0.6)
        cv2.circle(m, (int(cx + off * np.cos(ang)), int(cy + off * np.sin(ang))), int(s), 0, -1)
    return m.astype(bool)


def _pretrain_texture(cls: int, rng, h, w) -> np.ndarray:
    """Multiplicative texture (around 1) that identifies the class."""
    if cls == 1:  # speckle: i.i.d. per pixel
        return 1 + 0.45 * rng.uniform(-1, 1, size=(h, w)).astype(np.float32)
    if cls == 2:  # flat
        return np.ones((h, w), np.float32)
    if cls == 3:  # blotches: low-frequency noise
        return 0.5 + 1.0 * _value_noise(rng, h, w, int(rng.integers(6, 12)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = rng.uniform(0, 2 * np.pi)
    u = (xx * np.cos(t) + yy * np.sin(t)) / max(h, w)  # coordinate along a random direction
    if cls == 4:  # linear ramp across the image
        return 0.5 + 1.0 * (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    # streaks: 1-d noise across the direction, constant along it
    v = (-xx * np.sin(t) + yy * np.cos(t)).astype(np.int32)
    prof = 1 + 0.45 * rng.uniform(-1, 1, size=int(v.max() - v.min()) + 1).astype(np.float32)
    return prof[v - v.min()]


def render_pretrain_sample(rng: np.random.Generator, h: int, w: int) -> Tuple[np.ndarray,
                                                                             np.ndarray]:
    """One image (h, w, 3) uint8 RGB and its dense label map (h, w) uint8 (ids of
    PRETRAIN_CLASSES)."""
    bg_value = int(rng.integers(30, 256))
    img = _pretrain_background(rng, h, w, _grey_colour(rng, bg_value))
    label = np.zeros((h, w), np.uint8)
    short = min(h, w)
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(1, len(PRETRAIN_CLASSES)))
        s = rng.uniform(0.18, 0.35) * short
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        mask = _pretrain_shape_mask(cls, rng, h, w, cx, cy, s)
        colour = _grey_colour(rng, _contrasting_value(rng, bg_value))
        colour = colour * _pretrain_texture(cls, rng, h, w)[..., None]
        img[mask] = colour[mask]
        label[mask] = cls
    img += 3 * rng.standard_normal(size=img.shape, dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), label
