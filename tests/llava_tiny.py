"""A tiny random ``LlavaOnevisionForConditionalGeneration`` (transformers, PyTorch) saved to a
temporary directory once per test session, with prompts for it.

Sizes: SigLIP 56x56 images of 7x7 patches (an 8x8 grid, pooled to 4x4 per video frame),
hidden 32, 2 layers; Qwen2 hidden 64, 4 layers, 4 query / 2 key-value heads, MLP 128,
vocabulary 256. ``initializer_range`` 0.2 makes the logits spread enough for greedy
generation to produce varied tokens (the default 0.02 repeats one or two tokens).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

VIDEO_TOKEN, IMAGE_TOKEN = 255, 254
PAD, BOS, EOS = 0, 1, 2
FRAMES = 4
IMAGE_SIZE = 56
PINPOINTS = [[56, 56], [56, 112], [112, 56], [112, 112]]


def hf_config(**text_overrides):
    from transformers import LlavaOnevisionConfig

    vision = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, image_size=IMAGE_SIZE, patch_size=7, vision_use_head=False)  # fmt: skip
    text = dict(model_type="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=256, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
                rope_theta=10000.0, initializer_range=0.2)  # fmt: skip
    text.update(text_overrides)
    return LlavaOnevisionConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN,
                                video_token_index=VIDEO_TOKEN, image_grid_pinpoints=PINPOINTS)  # fmt: skip


@functools.lru_cache(maxsize=None)
def checkpoint() -> tuple[object, Path]:
    """``(hf_model, directory)``: the tiny model (eval mode) and where it was saved."""
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration

    torch.manual_seed(0)
    model = LlavaOnevisionForConditionalGeneration(hf_config()).eval()
    directory = Path(tempfile.mkdtemp(prefix="focus_jax_tiny_llava_")) / "model"
    model.save_pretrained(directory)
    return model, directory


@functools.lru_cache(maxsize=None)
def jax_model():
    from focus_jax.models.llava_onevision import LlavaOnevision

    return LlavaOnevision.from_pretrained(checkpoint()[1])


def video_tokens(frames: int = FRAMES) -> int:
    return frames * 16 + 1


def left_pad(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask, position_ids)`` of left-padded prompts (positions count
    valid tokens, padding at 1, as transformers' generate)."""
    length = max(map(len, rows))
    ids = np.array([[PAD] * (length - len(r)) + r for r in rows], np.int64)
    mask = np.array([[0] * (length - len(r)) + [1] * len(r) for r in rows], np.int64)
    pos = np.where(mask > 0, np.cumsum(mask, axis=1) - 1, 1)
    return ids, mask, pos


def video_prompts(batch: int, frames: int = FRAMES, seed: int = 0):
    """``(input_ids, attention_mask, position_ids, pixel_values_videos)`` with prompts of
    different prefix/query lengths (left padded)."""
    rng = np.random.default_rng(seed)
    n = video_tokens(frames)
    rows = []
    for i in range(batch):
        prefix = [BOS] + rng.integers(3, 250, size=2 + 2 * i).tolist()
        query = rng.integers(3, 250, size=4 + 3 * (i % 2)).tolist()
        rows.append(prefix + [VIDEO_TOKEN] * n + query)
    ids, mask, pos = left_pad(rows)
    videos = rng.standard_normal((batch, frames, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    return ids, mask, pos, videos


def image_processor():
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil

    return LlavaOnevisionImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_grid_pinpoints=PINPOINTS,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )


def image_prompts(sizes: list[tuple[int, int]], seed: int = 0):
    """``(input_ids, attention_mask, position_ids, pixel_values, image_sizes)`` for one random
    image of each ``(height, width)`` in ``sizes``, processed by transformers' PIL image processor."""
    from PIL import Image

    from focus_jax.models.llava_onevision.modeling import image_token_count

    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)) for h, w in sizes]
    processed = image_processor()(images, return_tensors="np")
    cfg = jax_model().config
    rows = []
    for i in range(len(sizes)):
        count = image_token_count(cfg, tuple(int(v) for v in processed["image_sizes"][i]))
        rows.append(
            [BOS]
            + rng.integers(3, 250, size=1 + i).tolist()
            + [IMAGE_TOKEN] * count
            + rng.integers(3, 250, size=5).tolist()
        )
    ids, mask, pos = left_pad(rows)
    return ids, mask, pos, np.asarray(processed["pixel_values"], np.float32), np.asarray(processed["image_sizes"])
