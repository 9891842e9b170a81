"""Full-size Qwen2.5-VL models without weights: configs, shape checks, sizes.

The Hub ``config.json`` files of ``Qwen/Qwen2.5-VL-3B-Instruct`` and
``Qwen/Qwen2.5-VL-7B-Instruct`` ship as package data (``configs/``). ``check_shapes``
traces the whole video forward -- every parameter, the windowed vision tower, the merger,
the M-RoPE decoder with or without Focus -- with ``jax.eval_shape``, allocating nothing;
``describe`` is what ``focus-jax model-info`` prints for these models.
"""

from __future__ import annotations

import json
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.config import FocusConfig, VisualGeometry
from focus_jax.models.focus_hooks import FocusPlan
from focus_jax.models.qwen2_5_vl import params as qwen_params
from focus_jax.models.qwen2_5_vl.modeling import Qwen2_5_VLConfig, forward, rope_index

__all__ = ["KNOWN_CONFIGS", "check_shapes", "describe", "load_config", "parameter_count", "video_grid"]

#: Shipped configs: short name -> file in ``configs/``.
KNOWN_CONFIGS = {
    "qwen2.5-vl-3b": "Qwen2.5-VL-3B-Instruct.json",
    "qwen2.5-vl-7b": "Qwen2.5-VL-7B-Instruct.json",
}


def load_config(name: str) -> Qwen2_5_VLConfig:
    """The shipped config ``name`` (``qwen2.5-vl-3b``, ``qwen2.5-vl-7b`` or a file in ``configs/``).

    Raises:
        ValueError: unknown name.
    """
    file = KNOWN_CONFIGS.get(name.lower(), name)
    path = resources.files("focus_jax.models.qwen2_5_vl.configs").joinpath(file)
    if not path.is_file():
        raise ValueError(f"unknown model config {name!r}; known: {sorted(KNOWN_CONFIGS)}")
    return qwen_params.config_from_hf(json.loads(path.read_text()))


def parameter_count(cfg: Qwen2_5_VLConfig) -> dict[str, int]:
    """Parameters of ``vision`` (tower + merger), ``language`` and ``total`` (``jax.eval_shape``)."""
    abstract = qwen_params.abstract_params(cfg)
    counts = {k: int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(v))) for k, v in abstract.items()}
    counts["total"] = sum(counts.values())
    return counts


def video_grid(cfg: Qwen2_5_VLConfig, frames: int, height: int = 448, width: int = 448) -> tuple[int, int, int]:
    """Patch grid ``(t, h, w)`` of ``frames`` frames of ``height x width`` pixels (multiples
    of 28; the frame count rounds up to the temporal patch, as the video processor pads)."""
    v = cfg.vision
    return -(-frames // v.temporal_patch_size), height // v.patch_size, width // v.patch_size


def _prompt(cfg: Qwen2_5_VLConfig, grid, text_tokens: int):
    n = cfg.token_count(grid)
    start = text_tokens // 2
    ids = np.zeros((1, n + text_tokens), np.int32)
    ids[0, start - 1], ids[0, start : start + n], ids[0, start + n] = (
        cfg.vision_start_token_id,
        cfg.video_token_id,
        cfg.vision_end_token_id,
    )
    return ids, start, n


def check_shapes(
    cfg: Qwen2_5_VLConfig,
    frames: int,
    text_tokens: int = 64,
    focus: FocusConfig | None = None,
    dtype=jnp.bfloat16,
    height: int = 448,
    width: int = 448,
):
    """Trace a whole video forward with ``jax.eval_shape`` (no weights, no compute).

    Returns:
        The abstract logits ``ShapeDtypeStruct`` ``(1, 1, vocab)`` (last row).

    Raises:
        Any shape error of the model for this config, as a normal exception.
    """
    grid = video_grid(cfg, frames, height, width)
    ids, start, n = _prompt(cfg, grid, text_tokens)
    positions, _ = rope_index(cfg, ids, np.ones_like(ids), video_grid_thw=[grid])
    plan = None
    if focus is not None:
        plan = FocusPlan(focus, VisualGeometry(*cfg.merged_grid(grid)), cfg.text.num_layers, ids.shape[1] - start - n)
    params = qwen_params.abstract_params(cfg, dtype)
    pixels = jax.ShapeDtypeStruct((int(np.prod(grid)), cfg.vision.patch_dim), dtype)

    def run(params, pixels):
        logits, _ = forward(
            params,
            cfg,
            jnp.asarray(ids),
            jnp.ones(ids.shape, bool),
            jnp.asarray(positions),
            pixel_values_videos=pixels,
            video_grid_thw=(grid,),
            plan=plan,
            visual_start=jnp.array([start], jnp.int32),
            logits_to_keep=1,
        )
        return logits

    return jax.eval_shape(run, params, pixels)


def describe(
    name: str, frames: int = 32, text_tokens: int = 64, dtype: str = "bfloat16", focus: FocusConfig | None = None
) -> dict:
    """``focus-jax model-info`` for a Qwen2.5-VL config: parameter counts, weight bytes, the
    prompt's token counts and KV-cache bytes dense and with Focus (default: the paper's
    ``qwen2_5_vl`` configuration), both forwards checked with ``check_shapes``.

    Raises:
        ValueError: unknown name or dtype.
    """
    from focus_jax.config import paper_config

    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"dtype must be bfloat16 or float32, got {dtype!r}")
    cfg, jdtype = load_config(name), jnp.dtype(dtype)
    focus = paper_config("qwen2_5_vl") if focus is None else focus
    logits = check_shapes(cfg, frames, text_tokens, None, jdtype)
    check_shapes(cfg, frames, text_tokens, focus, jdtype)
    grid = video_grid(cfg, frames)
    n = cfg.token_count(grid)
    kept = FocusPlan(focus, VisualGeometry(*cfg.merged_grid(grid)), cfg.text.num_layers, 1).kept_tokens()
    per_token = 2 * cfg.text.kv_size * jdtype.itemsize  # keys and values of one token in one layer
    counts = parameter_count(cfg)
    return {
        "model": name,
        "frames": frames,
        "frame_pixels": [448, 448],
        "visual_tokens": n,
        "tokens": n + text_tokens,
        "logits_shape": list(logits.shape),
        "parameters": counts,
        "weights_gib": counts["total"] * jdtype.itemsize / 2**30,
        "kv_cache_gib": {
            "dense": (n + text_tokens) * cfg.text.num_layers * per_token / 2**30,
            "focus": float(np.sum(kept[:, 0] + text_tokens))
            * per_token
            / 2**30,  # each layer caches what its attention saw
        },
    }
