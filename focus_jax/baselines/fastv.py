"""FastV's attention-ranked visual-token pruning.

Source: ``LlamaModel.fastv_forward`` in
``src/FastV/llava-hf/transformers/src/transformers/models/llama/modeling_llama.py`` of
github.com/pkunlp-icler/FastV (commit d165972), the ``layer_idx == FASTV_k`` branch: the
attention probabilities of layer ``K - 1`` (output with ``output_attentions``) are averaged
over heads; the last prompt token's row, restricted to the image tokens, ranks them; the
``round(N * (1 - R))`` highest are kept (``topk``), the sequence is gathered in its original
order and layers ``K..`` run on it with the kept tokens' original positions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["fastv_keep", "fastv_kept_count"]


def fastv_kept_count(num_visual: int, r: float) -> int:
    """``round(N * (1 - R))``, Python's rounding (half to even) as the reference uses it."""
    return max(1, round(num_visual * (1 - r)))


def fastv_keep(attention: jnp.ndarray, keep: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The visual tokens FastV keeps.

    Args:
        attention: ``(..., N)`` float, the last prompt token's attention probability of each
            visual token, averaged over heads.
        keep: tokens to keep (static; ``fastv_kept_count``).

    Returns:
        ``(mask, index)``: ``(..., N)`` bool kept tokens and ``(..., keep)`` int32 their
        indices in ascending order (the reference's sorted ``keep_indexs`` minus the offset).
    """
    _, top = lax.top_k(attention.astype(jnp.float32), keep)  # ties: lower index first
    index = jnp.sort(top.astype(jnp.int32), axis=-1)
    n = attention.shape[-1]
    mask = jnp.any(index[..., :, None] == jnp.arange(n, dtype=jnp.int32), axis=-2)
    return mask, index


fastv_keep = jax.jit(fastv_keep, static_argnames=("keep",))
