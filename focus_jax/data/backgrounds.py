"""Backgrounds for the synthetic clips: crops of the real photographs bundled with scikit-image.

Only images shipped inside the scikit-image wheel are used (no ``pooch`` download). The
photographs are muted (desaturated, contrast reduced) so that the saturated palette colours
of the shapes stay unambiguous on any crop: a muted pixel is at most ``MAX_BACKGROUND_CHROMA``
away from grey, every palette colour at least 160 (see ``scene.COLORS``).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from PIL import Image

__all__ = ["BACKGROUNDS", "BackgroundCrop", "photo", "sample_crop", "render_background", "MAX_BACKGROUND_CHROMA"]

#: Real photographs bundled offline with scikit-image: name -> loader in ``skimage.data``.
BACKGROUNDS: tuple[str, ...] = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "motorcycle", "camera", "moon", "coins", "grass", "gravel", "brick",
)

# Photos are stored downscaled: crops never need more detail than a few hundred pixels.
_MAX_SIDE = 384
# Muting: keep this much of the colour around the grey value, and of the contrast around 128.
_SATURATION = 0.35
_CONTRAST = 0.6
#: Largest max-minus-min channel spread of a muted background pixel (0.35 * 0.6 * 255).
MAX_BACKGROUND_CHROMA = int(np.ceil(_SATURATION * _CONTRAST * 255))


@functools.lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """The bundled photograph ``name`` as ``(H, W, 3)`` uint8 RGB, longest side <= 384 px.

    Raises:
        ValueError: ``name`` is not one of ``BACKGROUNDS``.
    """
    if name not in BACKGROUNDS:
        raise ValueError(f"unknown background {name!r}; choose from {', '.join(BACKGROUNDS)}")
    import skimage.data

    image = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    pil = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    scale = _MAX_SIDE / max(pil.size)
    if scale < 1:
        pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.Resampling.LANCZOS)
    result = np.asarray(pil)
    result.setflags(write=False)
    return result


@dataclasses.dataclass(frozen=True)
class BackgroundCrop:
    """A square crop ``[top:top+size, left:left+size]`` of ``photo(name)``, optionally mirrored."""

    name: str
    top: int
    left: int
    size: int
    flip: bool


def sample_crop(rng: np.random.Generator, names: tuple[str, ...]) -> BackgroundCrop:
    """A random square crop (35-90% of the photo's short side) of a photo drawn from ``names``."""
    name = names[int(rng.integers(len(names)))]
    height, width = photo(name).shape[:2]
    size = int(rng.integers(int(0.35 * min(height, width)), int(0.9 * min(height, width)) + 1))
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return BackgroundCrop(name, top, left, size, bool(rng.integers(2)))


def render_background(crop: BackgroundCrop, resolution: int) -> np.ndarray:
    """The muted crop resized (bicubic) to ``(resolution, resolution, 3)`` uint8."""
    region = photo(crop.name)[crop.top : crop.top + crop.size, crop.left : crop.left + crop.size]
    if crop.flip:
        region = region[:, ::-1]
    resized = np.asarray(
        Image.fromarray(np.ascontiguousarray(region)).resize((resolution, resolution), Image.Resampling.BICUBIC),
        dtype=np.float32,
    )
    grey = resized.mean(axis=-1, keepdims=True)
    muted = grey + _SATURATION * (resized - grey)
    muted = 128.0 + _CONTRAST * (muted - 128.0)
    return np.clip(np.rint(muted), 0, 255).astype(np.uint8)
