"""Scene description and rendering of the synthetic clips: coloured shapes over a photo.

A ``Scene`` is a complete, compact description (background crop, objects with shape,
colour, size, straight-line motion and the frame they appear in); ``render_scene`` turns
it into frames. Ground truth is read from the description, and the tests check that the
rendered pixels agree with it.

Object ``i`` at frame ``t`` has its top-left corner at
``start + rint(displacement * t / (num_frames - 1))`` (constant velocity) and is drawn
from frame ``appear`` on, anti-aliased (4x supersampled coverage), fully inside the
frame, never overlapping another object in any frame.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from PIL import Image, ImageDraw

from focus_jax.data.backgrounds import BackgroundCrop, render_background

__all__ = ["COLORS", "SHAPES", "DIRECTIONS", "SceneObject", "Scene", "sprite", "render_scene", "object_masks"]

#: Palette: saturated colours far apart in RGB (each pair differs by >= 120 in a channel).
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 190, 40),
    "blue": (40, 80, 240),
    "yellow": (245, 220, 30),
    "purple": (160, 50, 220),
    "cyan": (30, 220, 230),
}
#: Shapes chosen to stay distinct at ~8-20 px (no diamond: a rotated square blurs into a circle).
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
#: Motion directions in image coordinates, as (dy, dx) unit steps.
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}

_SUPERSAMPLE = 4


def _polygon(shape: str) -> list[tuple[float, float]]:
    """Vertices ``(x, y)`` in the unit box ``[-1, 1]^2`` for the polygonal shapes."""
    if shape == "triangle":
        return [(0.0, -0.95), (0.98, 0.8), (-0.98, 0.8)]
    if shape == "cross":
        a, b = 0.34, 0.98
        return [
            (-a, -b),
            (a, -b),
            (a, -a),
            (b, -a),
            (b, a),
            (a, a),
            (a, b),
            (-a, b),
            (-a, a),
            (-b, a),
            (-b, -a),
            (-a, -a),
        ]
    if shape == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return [(float(r * np.cos(a)), float(r * np.sin(a) + 0.08)) for r, a in zip(radii, angles)]
    raise ValueError(f"unknown shape {shape!r}")


@functools.lru_cache(maxsize=256)
def sprite(shape: str, size: int) -> np.ndarray:
    """Coverage (alpha) of ``shape`` in a ``size x size`` box: ``(size, size)`` float32 in [0, 1].

    Drawn with PIL at 4x resolution and box-filtered down, so edges are anti-aliased.

    Raises:
        ValueError: unknown ``shape`` or ``size`` < 4.
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")
    if size < 4:
        raise ValueError(f"sprite size must be >= 4 px, got {size}")
    big = size * _SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    half = big / 2

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (half + x * half, half + y * half)

    if shape == "circle":
        draw.ellipse([0, 0, big - 1, big - 1], fill=255)
    elif shape == "square":
        draw.rectangle([*to_px(-0.85, -0.85), *to_px(0.85, 0.85)], fill=255)
    else:
        draw.polygon([to_px(x, y) for x, y in _polygon(shape)], fill=255)
    alpha = np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0
    alpha.setflags(write=False)
    return alpha


@dataclasses.dataclass(frozen=True)
class SceneObject:
    """One shape. Positions are the top-left corner of its ``size x size`` box, in pixels.

    Attributes:
        shape: one of ``SHAPES``.
        color: one of ``COLORS``.
        size: box side in pixels.
        start: ``(y, x)`` at frame 0.
        displacement: ``(dy, dx)`` travelled between the first and the last frame
            (``(0, 0)`` for a static object; otherwise along one axis).
        appear: first frame in which the object is drawn.
        align: the object moves in whole steps of this many pixels (``start`` and
            ``displacement`` are multiples of it when the scene is aligned to a patch grid;
            see ``TaskConfig.align``); 1 moves it to the nearest pixel every frame.
    """

    shape: str
    color: str
    size: int
    start: tuple[int, int]
    displacement: tuple[int, int] = (0, 0)
    appear: int = 0
    align: int = 1

    @property
    def moves(self) -> bool:
        return self.displacement != (0, 0)

    @property
    def direction(self) -> str | None:
        """``"left"``, ``"right"``, ``"up"``, ``"down"`` or None for a static object."""
        dy, dx = self.displacement
        if dy == dx == 0:
            return None
        step = (int(np.sign(dy)), 0) if abs(dy) >= abs(dx) else (0, int(np.sign(dx)))
        return next(name for name, d in DIRECTIONS.items() if d == step)

    def position(self, t: int, num_frames: int) -> tuple[int, int]:
        """Top-left ``(y, x)`` at frame ``t``: the fraction ``t / (num_frames - 1)`` of the
        displacement, rounded to whole ``align`` steps."""
        frac = t / (num_frames - 1) if num_frames > 1 else 0.0
        step = self.align
        return (
            self.start[0] + step * int(np.rint(self.displacement[0] / step * frac)),
            self.start[1] + step * int(np.rint(self.displacement[1] / step * frac)),
        )


@dataclasses.dataclass(frozen=True)
class Scene:
    """A clip: ``num_frames`` frames of ``resolution x resolution`` pixels."""

    resolution: int
    num_frames: int
    background: BackgroundCrop
    objects: tuple[SceneObject, ...]


def object_masks(scene: Scene) -> np.ndarray:
    """Coverage of every object in every frame: ``(F, num_objects, H, W)`` float32 in [0, 1].

    Zero before an object's ``appear`` frame.
    """
    res, frames = scene.resolution, scene.num_frames
    masks = np.zeros((frames, len(scene.objects), res, res), np.float32)
    for i, obj in enumerate(scene.objects):
        alpha = sprite(obj.shape, obj.size)
        for t in range(obj.appear, frames):
            y, x = obj.position(t, frames)
            masks[t, i, y : y + obj.size, x : x + obj.size] = alpha
    return masks


def render_scene(scene: Scene) -> np.ndarray:
    """The clip's frames: ``(F, H, W, 3)`` uint8 RGB.

    The background is static; each object is alpha-composited over it with its palette
    colour (objects never overlap, so the order does not matter).
    """
    background = render_background(scene.background, scene.resolution).astype(np.float32)
    frames = np.broadcast_to(background, (scene.num_frames, *background.shape)).copy()
    for obj in scene.objects:
        alpha = sprite(obj.shape, obj.size)[..., None]
        color = np.asarray(COLORS[obj.color], np.float32)
        for t in range(obj.appear, scene.num_frames):
            y, x = obj.position(t, scene.num_frames)
            region = frames[t, y : y + obj.size, x : x + obj.size]
            region[...] = region * (1.0 - alpha) + color * alpha
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)
