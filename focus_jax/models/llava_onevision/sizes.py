"""Full-size LLaVA-OneVision models without weights: configs, shape checks, sizes.

The ``config.json`` files of ``llava-hf/llava-onevision-qwen2-0.5b-ov-hf`` and
``llava-hf/llava-onevision-qwen2-7b-ov-hf`` ship as package data (``configs/``).
``check_shapes`` traces the whole video forward with ``jax.eval_shape`` -- every
parameter, the vision tower, pooling, the decoder with or without Focus -- allocating
nothing; ``parameter_count`` and ``activation_memory`` size the model for a number of
frames.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.config import FocusConfig, VisualGeometry
from focus_jax.errors import InputError
from focus_jax.inputs.limits import check_limit
from focus_jax.models.focus_hooks import FocusPlan
from focus_jax.models.llava_onevision import params as llava_params
from focus_jax.models.llava_onevision.modeling import LlavaOnevisionConfig

__all__ = [
    "KNOWN_CONFIGS",
    "ActivationMemory",
    "activation_memory",
    "check_prompt_size",
    "check_shapes",
    "load_config",
    "parameter_count",
]

#: Shipped configs: short name -> file in ``configs/``.
KNOWN_CONFIGS = {
    "0.5b": "llava-onevision-qwen2-0.5b-ov-hf.json",
    "7b": "llava-onevision-qwen2-7b-ov-hf.json",
}


def load_config(name: str) -> LlavaOnevisionConfig:
    """The shipped config ``name`` (``0.5b``, ``7b`` or a file name in ``configs/``).

    Raises:
        ValueError: unknown name.
    """
    file = KNOWN_CONFIGS.get(name, name)
    path = resources.files("focus_jax.models.llava_onevision.configs").joinpath(file)
    if not path.is_file():
        raise ValueError(f"unknown model config {name!r}; known: {sorted(KNOWN_CONFIGS)}")
    return llava_params.config_from_hf(json.loads(path.read_text()))


def parameter_count(cfg: LlavaOnevisionConfig) -> dict[str, int]:
    """Parameters per component (``vision``, ``projector``, ``image_newline``, ``language``)
    and ``total``, from ``jax.eval_shape`` of the parameter pytree (no memory). The unused
    SigLIP ``post_ln`` (and ``head``) are counted: checkpoints hold them."""
    abstract = llava_params.abstract_params(cfg)
    counts = {k: int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(v))) for k, v in abstract.items()}
    counts["total"] = sum(counts.values())
    return counts


@dataclasses.dataclass(frozen=True)
class ActivationMemory:
    """Estimated bytes of one video prefill (batch 1), excluding the weights.

    Attributes:
        vision: peak of the vision tower (one chunk of ``images_per_step`` frames:
            residual, q/k/v, MLP hidden, the per-image ``heads x P^2 x P^2`` scores).
        decoder: peak inside one decoder layer (the larger of the attention phase --
            residual, normed input, q/k/v, output, flash score tiles -- and the MLP
            phase -- residual, normed input, gate, up, product).
        kv_cache: keys and values of every layer (kept tokens only after SEC).
        embeddings: the prompt's input embeddings.
        tokens: prompt length ``S``.
    """

    vision: int
    decoder: int
    kv_cache: int
    embeddings: int
    tokens: int

    @property
    def total(self) -> int:
        """Peak estimate: the larger of the two stages, plus what lives across them."""
        return max(self.vision, self.decoder) + self.kv_cache + self.embeddings


def check_prompt_size(cfg: LlavaOnevisionConfig, frames: int, text_tokens: int) -> None:
    """Refuse a prompt size that no model could take: ``frames`` in ``[1, limit("FRAMES")]``,
    ``text_tokens`` >= 0 and the whole prompt within ``limit("POSITIONS")`` tokens.

    Raises:
        InputError: naming the value and the limit.
    """
    for name, value, lo in (("frames", frames, 1), ("text tokens", text_tokens, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise InputError(f"{name} must be an integer >= {lo}, got {value!r}")
    check_limit("frames", int(frames), "FRAMES")
    check_limit("the prompt length in tokens", cfg.video_token_count(int(frames)) + int(text_tokens), "POSITIONS")


def activation_memory(
    cfg: LlavaOnevisionConfig,
    frames: int,
    text_tokens: int = 64,
    dtype=jnp.bfloat16,
    focus: FocusConfig | None = None,
    images_per_step: int = 8,
    block_q: int = 256,
    block_k: int = 256,
) -> ActivationMemory:
    """Analytic activation-memory estimate of one video prompt (see ``ActivationMemory``).

    With ``focus``, layers after each SEC layer hold the kept tokens only (their KV cache
    shrinks accordingly); SIC's own float32 temporaries (about three copies of the largest
    GEMM input's visual part) are added to the decoder peak.

    Raises:
        InputError: ``frames`` or ``text_tokens`` out of range (``check_prompt_size``).
    """
    check_prompt_size(cfg, frames, text_tokens)
    b = jnp.dtype(dtype).itemsize
    v, t = cfg.vision, cfg.text
    p2 = v.num_patches
    n = min(images_per_step, frames)
    vision = n * p2 * (2 * v.hidden_size + 3 * v.hidden_size + v.intermediate_size) * b + n * v.num_heads * p2 * p2 * 4
    n_visual = frames * cfg.tokens_per_frame
    s = n_visual + 1 + text_tokens
    kept = np.full((t.num_layers, 2), n_visual)
    if focus is not None:
        side = cfg.pooled_side
        kept = FocusPlan(focus, VisualGeometry(frames, side, side), t.num_layers, 1).kept_tokens()
    tokens = s - n_visual + kept  # (layers, 2): attention / MLP token counts
    attn = tokens[:, 0] * (2 * t.hidden_size + 2 * t.q_size + 2 * t.kv_size) * b
    mlp = tokens[:, 1] * (2 * t.hidden_size + 3 * t.intermediate_size) * b
    tiles = t.num_heads * block_q * block_k * 4 * 3
    decoder = int(max(attn.max() + tiles, mlp.max()))
    if focus is not None and focus.sic:
        decoder += 3 * n_visual * t.intermediate_size * 4
    kv = int(np.sum(tokens[:, 0]) * 2 * t.kv_size * b)
    return ActivationMemory(int(vision), decoder, kv, s * t.hidden_size * b, int(s))


def check_shapes(
    cfg: LlavaOnevisionConfig, frames: int, text_tokens: int = 64, focus: FocusConfig | None = None, dtype=jnp.bfloat16
):
    """Trace a whole video forward with ``jax.eval_shape`` (no weights, no compute).

    Returns:
        The abstract logits ``ShapeDtypeStruct`` ``(1, S_out, vocab)``.

    Raises:
        InputError: ``frames`` or ``text_tokens`` out of range (``check_prompt_size``).
        Any shape error of the model for this config, as a normal exception.
    """
    from focus_jax.models.llava_onevision.modeling import forward

    check_prompt_size(cfg, frames, text_tokens)
    n_video = cfg.video_token_count(frames)
    s = n_video + text_tokens
    start = text_tokens // 2
    ids = np.full((1, s), 0, np.int32)
    ids[0, start : start + n_video] = cfg.video_token_id
    plan = None
    if focus is not None:
        side = cfg.pooled_side
        plan = FocusPlan(
            focus, VisualGeometry(frames, side, side), cfg.text.num_layers, s - start - frames * cfg.tokens_per_frame
        )
    params = llava_params.abstract_params(cfg, dtype)
    pixels = jax.ShapeDtypeStruct((1, frames, 3, cfg.vision.image_size, cfg.vision.image_size), dtype)

    def run(params, pixels):
        logits, _ = forward(
            params, cfg, jnp.asarray(ids), jnp.ones((1, s), bool), jnp.arange(s, dtype=jnp.int32)[None],
            pixel_values_videos=pixels, plan=plan, visual_start=jnp.array([start], jnp.int32), logits_to_keep=1,
        )  # fmt: skip
        return logits

    return jax.eval_shape(run, params, pixels)
