"""A tiny random ``Qwen2_5_VLForConditionalGeneration`` (transformers, PyTorch) saved to a
temporary directory once per test session, with image and video prompts for it.

Sizes: vision tower 3 blocks (block 1 full attention, the others in windows of 2 x 2
merged tokens), hidden 32, 7-px patches, temporal patch 2, 2 x 2 merge; Qwen2.5 decoder
hidden 64, 4 layers, 4 query / 2 key-value heads, head_dim 16 with ``mrope_section``
(2, 3, 3), vocabulary 256. ``initializer_range`` 0.2 spreads the logits so that greedy
generation produces varied tokens.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PAD, BOS, EOS = 0, 1, 2
VISION_START, VISION_END, IMAGE_TOKEN, VIDEO_TOKEN = 252, 253, 254, 255
PATCH, MERGE, TEMPORAL = 7, 2, 2
TOKENS_PER_SECOND = 2


def hf_config():
    from transformers import Qwen2_5_VLConfig

    vision = {
        "depth": 3,
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_heads": 4,
        "patch_size": PATCH,
        "spatial_merge_size": MERGE,
        "temporal_patch_size": TEMPORAL,
        "window_size": 28,
        "out_hidden_size": 64,
        "fullatt_block_indexes": [1],
        "tokens_per_second": TOKENS_PER_SECOND,
        "initializer_range": 0.2,
    }
    text = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 256,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "pad_token_id": PAD,
        "initializer_range": 0.2,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
    }
    return Qwen2_5_VLConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=IMAGE_TOKEN,
        video_token_id=VIDEO_TOKEN,
        vision_start_token_id=VISION_START,
        vision_end_token_id=VISION_END,
    )


@functools.cache
def checkpoint() -> tuple[object, Path]:
    """``(hf_model, directory)``: the tiny model (eval mode, eager attention) and where it was saved."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(hf_config()).eval()
    directory = Path(tempfile.mkdtemp(prefix="focus_jax_tiny_qwen2_5_vl_")) / "model"
    model.save_pretrained(directory)
    return model, directory


@functools.cache
def jax_model():
    from focus_jax.models.qwen2_5_vl.model import Qwen2_5_VL

    return Qwen2_5_VL.from_pretrained(checkpoint()[1])


def left_pad(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` of left-padded prompts."""
    length = max(map(len, rows))
    ids = np.array([[PAD] * (length - len(r)) + r for r in rows], np.int64)
    mask = np.array([[0] * (length - len(r)) + [1] * len(r) for r in rows], np.int64)
    return ids, mask


def token_types(ids: np.ndarray) -> np.ndarray:
    """transformers' ``mm_token_type_ids``: 1 at image, 2 at video placeholders, else 0."""
    return np.where(ids == IMAGE_TOKEN, 1, np.where(ids == VIDEO_TOKEN, 2, 0)).astype(np.int64)


def prompts(grids: list[tuple[int, int, int]], token: int, seed: int = 0):
    """``(input_ids, attention_mask, pixel_rows, grid_thw)``: one item per prompt with patch
    grid ``(t, h, w)``, random pixel rows, prefix/query text of different lengths."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, (t, h, w) in enumerate(grids):
        n = t * h * w // MERGE**2
        prefix = [BOS] + rng.integers(3, 250, size=2 + 2 * i).tolist()
        query = rng.integers(3, 250, size=4 + 3 * (i % 2)).tolist()
        rows.append(prefix + [VISION_START] + [token] * n + [VISION_END] + query)
    ids, mask = left_pad(rows)
    patches = sum(t * h * w for t, h, w in grids)
    pixels = rng.standard_normal((patches, 3 * TEMPORAL * PATCH * PATCH)).astype(np.float32)
    return ids, mask, pixels, np.array(grids, np.int64)
