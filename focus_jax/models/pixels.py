"""Pixel steps shared by both families' image processors (numpy/PIL, as transformers' PIL backend).

``as_uint8_rgb`` (input check), ``resize`` (PIL, on uint8) and ``normalise`` (rescale then
``(x - mean) / std``, channels first) are the steps ``LlavaOnevisionImageProcessorPil`` and
``Qwen2VLImageProcessorPil`` share; each family's ``preprocessing`` decides the sizes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["as_uint8_rgb", "normalise", "resize"]


def as_uint8_rgb(image) -> np.ndarray:
    """A PIL image (converted to RGB) or an array as a uint8 ``(H, W, 3)`` array.

    Raises:
        ValueError: an array that is not uint8 ``(H, W, 3)``.
    """
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 RGB arrays of shape (height, width, 3) or PIL images, got {array.dtype} "
            f"{array.shape}"
        )
    return array


def resize(array: np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> uint8 ``(height, width, 3)`` with PIL filter ``resample``."""
    return np.asarray(Image.fromarray(array).resize((width, height), resample=resample))


def normalise(array: np.ndarray, cfg) -> np.ndarray:
    """uint8 ``(H, W, 3)`` -> float32 ``(3, H, W)``: times ``cfg.rescale_factor`` (in float64,
    stored as float32, as transformers), then ``(x - cfg.image_mean) / cfg.image_std`` in
    float32 (``cfg``: either family's ``ProcessorConfig``)."""
    x = (array.astype(np.float64) * cfg.rescale_factor).astype(np.float32)
    x = (x - np.asarray(cfg.image_mean, np.float32)) / np.asarray(cfg.image_std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
