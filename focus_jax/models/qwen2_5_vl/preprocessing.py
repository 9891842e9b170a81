"""Image and video preprocessing for Qwen2.5-VL in numpy/PIL, and the prompt layout.

Images match transformers' ``Qwen2VLImageProcessorPil`` exactly: ``smart_resize`` to
multiples of ``patch_size * merge_size`` (28) with the pixel count within
``[min_pixels, max_pixels]``, a PIL resize of the uint8 image (bicubic), rescale and
normalise (``focus_jax.models.pixels``, the same PIL backend), then the patch
rows: ``(h/14 * w/14, C * T * 14 * 14)`` in 2x2 merge-block order, each frame repeated
``temporal_patch_size`` times; ``grid_thw = (1, h/14, w/14)``.

Videos follow transformers' ``Qwen2VLVideoProcessor`` (which needs torchvision, not
installable here): every frame resized to the ``smart_resize`` size of the first with
the video pixel limits (``128*28*28`` to ``768*28*28``), the frame count padded to a
multiple of ``temporal_patch_size`` by repeating the last frame, and ``temporal_patch_size``
consecutive frames per patch row (``grid_t = frames / 2``). Its resize runs through
torchvision; here it is PIL's, the image processor's. The M-RoPE time step of a video,
``second_per_grid_ts``, follows ``Qwen2_5_VLProcessor`` (``second_per_grid_ts``).

The chat template puts each item as ``<|vision_start|><|image_pad|><|vision_end|>`` (or
``<|video_pad|>``); the processor then repeats the pad token ``t*h*w/4`` times
(``expand_placeholders``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from focus_jax.errors import InputError
from focus_jax.models.pixels import as_uint8_rgb, normalise, resize
from focus_jax.video import DEFAULT_FPS

__all__ = [
    "ProcessorConfig",
    "chat_prompt",
    "expand_placeholders",
    "preprocess_images",
    "preprocess_video",
    "second_per_grid_ts",
    "smart_resize",
]

#: OpenAI CLIP normalisation (the Qwen2-VL processors' defaults).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass(frozen=True)
class ProcessorConfig:
    """Qwen2-VL image/video processor settings (``preprocessor_config.json`` fields).

    Attributes:
        min_pixels, max_pixels: image pixel-count limits (``size.shortest_edge`` /
            ``size.longest_edge`` in transformers 5).
        video_min_pixels, video_max_pixels: the video processor's limits.
        patch_size, temporal_patch_size, merge_size: the vision tower's.
        image_mean, image_std, rescale_factor, resample: normalisation and PIL filter.
    """

    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280
    video_min_pixels: int = 128 * 28 * 28
    video_max_pixels: int = 28 * 28 * 768
    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    rescale_factor: float = 1 / 255
    resample: int = Image.Resampling.BICUBIC

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ProcessorConfig:
        """Settings from ``directory/preprocessor_config.json`` and the video limits from
        ``video_preprocessor_config.json`` (transformers' video processor file), defaults
        for a file or field that is absent.

        Raises:
            InputError: a file is not valid JSON.
        """
        d = _json_object(Path(directory) / "preprocessor_config.json")
        video = _json_object(Path(directory) / "video_preprocessor_config.json")
        default = cls()
        return cls(
            min_pixels=_pixel_limit(d, "min_pixels", "shortest_edge", default.min_pixels),
            max_pixels=_pixel_limit(d, "max_pixels", "longest_edge", default.max_pixels),
            video_min_pixels=_pixel_limit(video, "min_pixels", "shortest_edge", default.video_min_pixels),
            video_max_pixels=_pixel_limit(video, "max_pixels", "longest_edge", default.video_max_pixels),
            patch_size=int(d.get("patch_size", default.patch_size)),
            temporal_patch_size=int(d.get("temporal_patch_size", default.temporal_patch_size)),
            merge_size=int(d.get("merge_size", default.merge_size)),
            image_mean=tuple(d.get("image_mean", default.image_mean)),
            image_std=tuple(d.get("image_std", default.image_std)),
            rescale_factor=float(d.get("rescale_factor", default.rescale_factor)),
            resample=int(d.get("resample", default.resample)),
        )


def _json_object(path: Path) -> dict:
    """The JSON object in ``path``, ``{}`` if there is no such file.

    Raises:
        InputError: not valid JSON.
    """
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON ({exc})") from None


def _pixel_limit(d: dict, key: str, edge: str, default: int) -> int:
    """A pixel-count limit: ``d[key]`` (transformers 4), else ``d["size"][edge]`` (5), else ``default``."""
    return int(d.get(key, (d.get("size") or {}).get(edge, default)))


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """``(height, width)`` rounded to multiples of ``factor`` with the pixel count in
    ``[min_pixels, max_pixels]`` and the aspect ratio nearly kept (transformers' rule).

    Raises:
        InputError: an aspect ratio above 200.
    """
    if max(height, width) / min(height, width) > 200:
        raise InputError(f"image aspect ratio must be below 200, got {height} x {width}")
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _patch_rows(frames: np.ndarray, cfg: ProcessorConfig) -> tuple[np.ndarray, tuple[int, int, int]]:
    """``(F, C, H, W)`` float32 normalised frames (``F`` a multiple of T) -> patch rows and grid."""
    f, c, h, w = frames.shape
    p, m, t = cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size
    gt, gh, gw = f // t, h // p, w // p
    x = frames.reshape(gt, t, c, gh // m, m, p, gw // m, m, p)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)  # (gt, bh, bw, mh, mw, C, T, ph, pw)
    return np.ascontiguousarray(x.reshape(gt * gh * gw, c * t * p * p)), (gt, gh, gw)


def preprocess_images(images, cfg: ProcessorConfig = ProcessorConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 ``(H, W, 3)`` arrays or PIL images) -> ``(pixel_values (N, C*T*p*p)
    float32, image_grid_thw (n, 3) int64)``, the inputs of ``Qwen2_5_VL.forward``.

    Raises:
        InputError: not a uint8 RGB image, or an aspect ratio above 200.
    """
    rows, grids = [], []
    for image in images:
        try:
            array = as_uint8_rgb(image)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        h, w = smart_resize(*array.shape[:2], cfg.factor, cfg.min_pixels, cfg.max_pixels)
        frame = normalise(resize(array, h, w, cfg.resample), cfg)
        patches, grid = _patch_rows(np.repeat(frame[None], cfg.temporal_patch_size, axis=0), cfg)
        rows.append(patches)
        grids.append(grid)
    return np.concatenate(rows), np.array(grids, np.int64)


def preprocess_video(frames, cfg: ProcessorConfig = ProcessorConfig()) -> tuple[np.ndarray, np.ndarray]:
    """One video ``(F, H, W, 3)`` uint8 -> ``(pixel_values_videos (N, C*T*p*p) float32,
    video_grid_thw (1, 3) int64)``.

    Raises:
        InputError: frames are not uint8 RGB ``(F, H, W, 3)``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise InputError(
            f"video frames must be uint8 of shape (frames, height, width, 3), got {frames.dtype} {frames.shape}"
        )
    h, w = smart_resize(*frames.shape[1:3], cfg.factor, cfg.video_min_pixels, cfg.video_max_pixels)
    out = np.stack([normalise(resize(f, h, w, cfg.resample), cfg) for f in frames])
    if pad := -len(out) % cfg.temporal_patch_size:
        out = np.concatenate([out, np.repeat(out[-1:], pad, axis=0)])
    patches, grid = _patch_rows(out, cfg)
    return patches, np.array([grid], np.int64)


def second_per_grid_ts(fps: float | None, cfg: ProcessorConfig = ProcessorConfig()) -> np.ndarray:
    """Seconds per temporal patch of one video whose (sampled) frames play at ``fps`` frames
    per second: ``(1,)`` float32 ``temporal_patch_size / fps``, ``Qwen2_5_VLForConditionalGeneration``'s
    ``second_per_grid_ts``. ``fps`` None (timing unknown) is ``DEFAULT_FPS`` (24).

    Source: transformers' ``Qwen2_5_VLProcessor._process_videos``
    (``temporal_patch_size / metadata.sampled_fps``; ``sampled_fps`` is 24 without metadata).

    Raises:
        InputError: ``fps`` is not a positive finite number.
    """
    fps = DEFAULT_FPS if fps is None else fps
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not 0 < fps < math.inf:
        raise InputError(f"fps must be a positive finite number of frames per second, got {fps!r}")
    return np.array([cfg.temporal_patch_size / float(fps)], np.float32)


def expand_placeholders(input_ids, token_id: int, counts) -> list[int]:
    """Repeat the ``i``-th ``token_id`` of a token list ``counts[i]`` times (what
    transformers' processor does to each ``<|image_pad|>`` / ``<|video_pad|>``).

    Raises:
        InputError: the number of ``token_id`` tokens differs from ``len(counts)``.
    """
    ids = np.asarray(input_ids).tolist()
    counts = list(counts)
    if ids.count(token_id) != len(counts):
        raise InputError(
            f"the prompt holds {ids.count(token_id)} placeholder tokens {token_id}, expected {len(counts)}"
        )
    out, it = [], iter(counts)
    for t in ids:
        out += [t] * int(next(it)) if t == token_id else [t]
    return out


def chat_prompt(question: str, kind: str = "image") -> str:
    """Qwen2.5-VL's chat template for one image or video and a question, ready for the
    tokenizer (one pad token per item; expand it with ``expand_placeholders``).

    Raises:
        InputError: ``kind`` is not ``image`` or ``video``.
    """
    if kind not in ("image", "video"):
        raise InputError(f"kind must be 'image' or 'video', got {kind!r}")
    return (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        f"<|vision_start|><|{kind}_pad|><|vision_end|>{question}<|im_end|>\n<|im_start|>assistant\n"
    )
