"""Frame and image preprocessing for LLaVA-OneVision in numpy/PIL.

Matches transformers' ``LlavaOnevisionImageProcessorPil`` pixel for pixel: PIL resize
(bicubic by default) of the uint8 image, rescale by ``1/255`` (in float64, stored as
float32), normalise ``(x - mean) / std`` in float32, channels first. transformers' video
processor needs torchvision (unavailable here), so video frames go through the same
resize/rescale/normalise, each frame resized straight to ``size`` as that video processor
does (no padding to a square).

Images use the anyres layout: the whole image resized to ``size`` (the base view), then
the image resized to fit the best ``image_grid_pinpoints`` resolution (aspect kept,
zero-padded, centred) and cut into ``size`` tiles.

``ProcessorConfig.from_pretrained(dir)`` reads ``preprocessor_config.json`` when a
checkpoint ships one; the defaults are those of the llava-hf checkpoints (384 x 384,
bicubic, SigLIP's mean = std = 0.5).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
from PIL import Image

from focus_jax.errors import InputError
from focus_jax.inputs.jsonfile import MISSING, field, read_json_object
from focus_jax.models.llava_onevision.modeling import select_best_resolution
from focus_jax.models.pixels import as_uint8_rgb, normalise, resize

__all__ = ["ProcessorConfig", "preprocess_frames", "preprocess_image", "preprocess_images", "expand_placeholders"]


@dataclasses.dataclass(frozen=True)
class ProcessorConfig:
    """Image-processor settings (transformers' ``preprocessor_config.json`` fields).

    Attributes:
        size: ``(height, width)`` of every view/frame fed to the vision tower.
        image_mean, image_std: per-channel normalisation.
        rescale_factor: multiplies uint8 pixels (``1/255``).
        resample: PIL resampling filter (3 = bicubic).
        image_grid_pinpoints: anyres resolutions ``(height, width)``.
    """

    size: tuple[int, int] = (384, 384)
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255
    resample: int = Image.Resampling.BICUBIC
    image_grid_pinpoints: tuple[tuple[int, int], ...] = tuple(
        (384 * h, 384 * w) for h in range(1, 7) for w in range(1, 7)
    )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "ProcessorConfig":
        """Settings from ``directory/preprocessor_config.json``, defaults if there is none.

        Every field is checked: ``size`` a ``{"height", "width"}`` object of sides in
        ``[1, limit("IMAGE_SIDE")]``; ``image_mean`` three finite numbers; ``image_std``
        three finite positive numbers; ``rescale_factor`` finite and positive;
        ``resample`` a PIL filter (0-5); ``image_grid_pinpoints`` ``[height, width]`` pairs.

        Raises:
            InputError: the file is not UTF-8 JSON of an object, or a field is malformed
                or out of range (named).
        """
        path = Path(directory) / "preprocessor_config.json"
        if not path.is_file():
            return cls()
        d = read_json_object(path)
        what = str(path)
        default = cls()
        size = field(d, "size", {"height": 384, "width": 384}, what, "dict")
        side = lambda key: field(size, key, MISSING, f"{what}: size", "int", lo=1, hi_name="IMAGE_SIDE")
        return cls(
            size=(side("height"), side("width")),
            image_mean=_triple(d, "image_mean", default.image_mean, what, positive=False),
            image_std=_triple(d, "image_std", default.image_std, what, positive=True),
            rescale_factor=field(d, "rescale_factor", default.rescale_factor, what, "float", lo=1e-12),
            resample=field(d, "resample", int(default.resample), what, "int", lo=0, hi=5),
            image_grid_pinpoints=_pairs(d, "image_grid_pinpoints", default.image_grid_pinpoints, what),
        )


def _triple(d: dict, key: str, default, what: str, positive: bool) -> tuple[float, float, float]:
    value = field(d, key, list(default), what, "list")
    if len(value) != 3:
        raise InputError(f"{what}: {key} must hold 3 numbers (R, G, B), got {len(value)}")
    numbers = tuple(field({key: v}, key, None, what, "float") for v in value)
    if positive and min(numbers) <= 0:
        raise InputError(f"{what}: {key} must be positive (it divides the pixels), got {list(numbers)}")
    return numbers


def _pairs(d: dict, key: str, default, what: str) -> tuple[tuple[int, int], ...]:
    value = field(d, key, [list(p) for p in default], what, "list")
    if not value or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise InputError(f"{what}: {key} must be a non-empty list of [height, width] pairs")
    return tuple(tuple(field({key: v}, key, None, what, "int", lo=1, hi=1 << 16) for v in p) for p in value)


def preprocess_frames(frames, cfg: ProcessorConfig = ProcessorConfig()) -> np.ndarray:
    """Video frames for the vision tower: ``(F, H, W, 3)`` uint8 -> ``(F, 3, h, w)`` float32.

    Raises:
        ValueError: frames are not uint8 RGB.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must have shape (frames, height, width, 3), got {frames.shape}")
    return np.stack([normalise(resize(as_uint8_rgb(f), *cfg.size, cfg.resample), cfg) for f in frames])


def _fit_size(height: int, width: int, target: tuple[int, int]) -> tuple[int, int]:
    """Size of the image scaled to fit ``target`` with its aspect ratio (transformers'
    ``get_patch_output_size``)."""
    th, tw = target
    sw, sh = tw / width, th / height
    if sw < sh:
        return min(math.ceil(height * sw), th), tw
    return th, min(math.ceil(width * sh), tw)


def preprocess_image(image, cfg: ProcessorConfig = ProcessorConfig()) -> tuple[np.ndarray, tuple[int, int]]:
    """One image in the anyres layout.

    Returns:
        ``(pixel_values (1 + tiles, 3, h, w) float32, (height, width))``: the base view,
        then the tiles row-major, and the original size (the model needs it to unpad).

    Raises:
        ValueError: not a uint8 RGB image.
    """
    array = as_uint8_rgb(image)
    height, width = array.shape[:2]
    best = select_best_resolution((height, width), cfg.image_grid_pinpoints)
    fit_h, fit_w = _fit_size(height, width, best)
    fitted = resize(array, fit_h, fit_w, cfg.resample)
    pad_y, pad_x = (best[0] - fit_h) // 2, (best[1] - fit_w) // 2
    canvas = np.zeros((best[0], best[1], 3), np.uint8)
    canvas[pad_y : pad_y + fit_h, pad_x : pad_x + fit_w] = fitted
    th, tw = cfg.size
    tiles = [canvas[i : i + th, j : j + tw] for i in range(0, best[0], th) for j in range(0, best[1], tw)]
    views = [resize(array, th, tw, cfg.resample)] + tiles
    return np.stack([normalise(resize(v, th, tw, cfg.resample), cfg) for v in views]), (height, width)


def preprocess_images(images, cfg: ProcessorConfig = ProcessorConfig()) -> tuple[np.ndarray, np.ndarray]:
    """A batch of images (one per prompt), tiles zero-padded to the largest count.

    Returns:
        ``(pixel_values (n, max_views, 3, h, w), image_sizes (n, 2))``, the inputs of
        ``LlavaOnevision.forward(pixel_values=..., image_sizes=...)``.
    """
    done = [preprocess_image(im, cfg) for im in images]
    views = max(p.shape[0] for p, _ in done)
    pixel_values = np.stack([np.pad(p, ((0, views - p.shape[0]), (0, 0), (0, 0), (0, 0))) for p, _ in done])
    return pixel_values, np.array([s for _, s in done], np.int64)


def expand_placeholders(input_ids, token_id: int, count: int) -> list[int]:
    """Repeat each ``token_id`` of a token list ``count`` times (what transformers' processor
    does to the single ``<video>``/``<image>`` token of a chat prompt)."""
    out: list[int] = []
    for t in np.asarray(input_ids).tolist():
        out += [t] * count if t == token_id else [t]
    return out
