"""A pixel-only solver of the synthetic video QA task, used by the tests as an independent check
that every answer is determined by the frames alone.

It never looks at the scene description: objects are found by palette colour (muted
backgrounds cannot come within ``tolerance`` of a palette colour), shapes by the best
intersection-over-union with the ideal outline stretched to the blob's bounding box,
motion by centroids, order of appearance by the first frame a colour shows up in.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from focus_jax.data.scene import COLORS, DIRECTIONS, SHAPES, sprite
from focus_jax.data.task import COUNT_WORDS

_MIN_PIXELS = 12  # a blob smaller than this is colour noise at an edge, not an object
_TEMPLATE = 48  # side of the ideal shape outlines the blobs are compared with


def _templates() -> dict[str, np.ndarray]:
    out = {}
    for shape in SHAPES:
        mask = sprite(shape, _TEMPLATE) > 0.5
        rows, cols = np.nonzero(mask)
        out[shape] = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return out


_SHAPE_TEMPLATES = _templates()


def color_masks(frames: np.ndarray, tolerance: int) -> dict[str, np.ndarray]:
    """Per palette colour, the ``(F, H, W)`` pixels within ``tolerance`` of it in every channel."""
    frames = frames.astype(np.int16)
    return {
        name: np.all(np.abs(frames - np.asarray(rgb, np.int16)) <= tolerance, axis=-1) for name, rgb in COLORS.items()
    }


def classify_shape(mask: np.ndarray) -> str:
    """The shape whose outline, stretched to ``mask``'s bounding box, overlaps it best."""
    rows, cols = np.nonzero(mask)
    blob = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scores = {}
    for shape, template in _SHAPE_TEMPLATES.items():
        fitted = np.asarray(Image.fromarray(template).resize((blob.shape[1], blob.shape[0]), Image.Resampling.NEAREST))
        scores[shape] = (blob & fitted).sum() / (blob | fitted).sum()
    return max(scores, key=scores.get)


def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)


def solve(frames: np.ndarray, question: str, family: str, tolerance: int = 40) -> str:
    """Answer ``question`` of ``family`` from ``frames`` ``(F, H, W, 3)`` uint8 alone."""
    masks = color_masks(frames, tolerance)
    present = {c: m.reshape(len(m), -1).sum(axis=1) >= _MIN_PIXELS for c, m in masks.items()}
    colors = [c for c in COLORS if present[c].any()]
    words = question.rstrip("?").split()
    named_color = next((w for w in words if w in COLORS), None)
    named_shape = next((w for w in words if w in SHAPES), None)

    def shape_of(color: str) -> str:
        last = np.nonzero(present[color])[0][-1]
        return classify_shape(masks[color][last])

    def displacement(color: str) -> np.ndarray:
        seen = np.nonzero(present[color])[0]
        return _centroid(masks[color][seen[-1]]) - _centroid(masks[color][seen[0]])

    if family == "count":
        return COUNT_WORDS[len(colors) - 1]
    if family == "color":
        return next((c for c in colors if shape_of(c) == named_shape), "?")
    if family == "shape":
        return shape_of(named_color)
    if family == "direction":
        dy, dx = displacement(named_color)
        step = (int(np.sign(dy)), 0) if abs(dy) >= abs(dx) else (0, int(np.sign(dx)))
        return next(name for name, d in DIRECTIONS.items() if d == step)
    if family == "moving":
        movers = [c for c in colors if np.abs(displacement(c)).max() > 3]
        assert len(movers) == 1, f"expected one moving object, found {movers}"
        return movers[0]
    if family == "first":
        first = [c for c in colors if present[c][0]]
        assert len(first) == 1, f"expected one object in frame 0, found {first}"
        return shape_of(first[0])
    raise ValueError(f"unknown family {family!r}")
