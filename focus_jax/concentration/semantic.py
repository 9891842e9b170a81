"""Semantic concentration (SEC): prompt-aware pruning of visual tokens (spec, "SEC").

Static shapes: the number of kept tokens ``k`` of an SEC layer is a Python int (it depends
only on the original number of visual tokens and the layer's alpha), so every array
below has a shape known at trace time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "attention_importance",
    "token_importance",
    "select_tokens",
    "sequence_keep_indices",
    "gather_tokens",
    "scatter_tokens",
    "soft_top_k",
]


def attention_importance(probs: jnp.ndarray, query_rows: jnp.ndarray, visual_start, num_visual: int) -> jnp.ndarray:
    """Importance of each visual token from the attention rows that were computed.

    The maximum, over heads and over the rows marked as query text, of the attention
    probability in the token's column; rows not marked count as 0. This is SEC step 2 for
    a decoder that streams attention and only forms the last rows' probabilities (no
    ``S x S`` matrix), for a batch whose visual spans start at different indices.

    Args:
        probs: ``(B, H, R, S)`` softmax probabilities of ``R`` query rows over ``S`` keys.
        query_rows: ``(B, R)`` bool, rows that are query text (after the visual tokens).
        visual_start: ``(B,)`` int, sequence index of each prompt's first visual token
            (may be traced).
        num_visual: number of (kept) visual tokens (static).

    Returns:
        ``(B, num_visual)`` float32.

    Source: spec SEC step 2 (reference ``Focus.set_token_importance``).
    """
    rows = jnp.where(query_rows[:, None, :, None], probs.astype(jnp.float32), 0.0)
    col_max = jnp.max(rows, axis=(1, 2))  # (B, S)
    start = jnp.asarray(visual_start, jnp.int32)
    return jax.vmap(lambda c, s0: lax.dynamic_slice_in_dim(c, s0, num_visual))(col_max, start)


def token_importance(attn_probs: jnp.ndarray, visual_start: int, num_visual: int, num_query: int) -> jnp.ndarray:
    """Importance of each visual token: ``(..., heads, S, S) -> (..., num_visual)`` float32.

    The maximum over heads and over the query-text rows (the last ``num_query`` rows) of
    the attention probability in the token's column. Spec, SEC step 2 (reference:
    ``Focus.set_token_importance``).

    Args:
        attn_probs: softmax attention probabilities of the current (kept) sequence.
        visual_start: sequence index of the first visual token.
        num_visual: number of (currently kept) visual tokens, starting at ``visual_start``.
        num_query: number of query-text tokens at the end of the sequence.

    Raises:
        ValueError: the visual span or the query rows do not fit in the sequence, or the
            probabilities are not ``(..., heads, S, S)``.
    """
    if attn_probs.ndim < 3 or attn_probs.shape[-1] != attn_probs.shape[-2]:
        raise ValueError(f"attn_probs must have shape (..., heads, S, S), got {attn_probs.shape}")
    s = attn_probs.shape[-1]
    if not (0 <= visual_start and num_visual >= 1 and visual_start + num_visual <= s):
        raise ValueError(f"visual span [{visual_start}, {visual_start + num_visual}) does not fit a sequence of {s}")
    if not 1 <= num_query <= s - visual_start - num_visual:
        raise ValueError(
            f"num_query={num_query} must be >= 1 and fit after the visual tokens "
            f"({s - visual_start - num_visual} text tokens follow them)"
        )
    lead = attn_probs.shape[:-3]
    rows = attn_probs[..., s - num_query :, :].reshape((-1,) + attn_probs.shape[-3:-2] + (num_query, s))
    query = jnp.ones(rows.shape[:1] + (num_query,), bool)
    out = attention_importance(rows, query, jnp.full(rows.shape[:1], visual_start, jnp.int32), num_visual)
    return out.reshape(lead + (num_visual,))


def select_tokens(importance: jnp.ndarray, k: int) -> jnp.ndarray:
    """Indices of the ``k`` most important tokens, ascending: ``(..., n) -> (..., k)`` int32.

    Spec, SEC step 3 (reference: ``torch.topk`` then ``sort``). Ties go to the lower
    index (``lax.top_k``).

    Raises:
        ValueError: ``k`` is not in ``[1, n]``.
    """
    n = importance.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, {n}], got {k!r}")
    _, idx = lax.top_k(importance, k)
    return jnp.sort(idx.astype(jnp.int32), axis=-1)


def sequence_keep_indices(keep_visual: jnp.ndarray, visual_start, num_visual: int, seq_len: int) -> jnp.ndarray:
    """Sequence indices kept by SEC: prefix text, the kept visual tokens, query text.

    ``keep_visual``: ``(k,)`` int indices into the ``num_visual`` visual tokens (as from
    ``select_tokens``); ``visual_start`` an int or a traced int32 scalar (``jax.vmap`` it
    over a batch whose visual spans start at different indices). Returns
    ``(seq_len - num_visual + k,)`` int32, ascending. Gathering hidden states *and* their
    position ids with these indices keeps every token's original RoPE position (spec,
    SEC step 4).
    """
    k = keep_visual.shape[-1]
    idx = jnp.arange(seq_len - num_visual + k, dtype=jnp.int32)
    start = jnp.asarray(visual_start, jnp.int32)
    visual = start + jnp.take(keep_visual.astype(jnp.int32), jnp.clip(idx - start, 0, k - 1))
    return jnp.where(idx < start, idx, jnp.where(idx < start + k, visual, idx - k + num_visual))


def gather_tokens(x: jnp.ndarray, indices: jnp.ndarray, axis: int = -2) -> jnp.ndarray:
    """``x`` restricted to ``indices`` along the token ``axis`` (hidden states, positions, ...)."""
    return jnp.take(x, indices, axis=axis)


def scatter_tokens(kept: jnp.ndarray, indices: jnp.ndarray, length: int) -> jnp.ndarray:
    """Inverse of ``gather_tokens`` on axis -2: ``(..., k, D) -> (..., length, D)``.

    Tokens land at their original ``indices``; pruned positions are zero vectors, which
    SIC counts as sparse and never matches (spec, SEC "When SIC runs in a layer after
    pruning").
    """
    out = jnp.zeros(kept.shape[:-2] + (length, kept.shape[-1]), kept.dtype)
    return out.at[..., indices, :].set(kept)


def soft_top_k(importance: jnp.ndarray, k, temperature: float) -> jnp.ndarray:
    """Differentiable stand-in for the top-k membership: ``(n,) -> (n,)`` in [0, 1].

    ``sigmoid((importance - tau(k)) / temperature)`` where ``tau(k)`` interpolates
    linearly, in ``k``, between the midpoints of consecutive sorted importances, so that
    for an integer ``k`` the hard top-k set lies above ``tau`` and the rest below. ``k``
    may be a traced float (e.g. ``alpha * N``); the kept fraction ``mean(soft_top_k)``
    grows with ``k``. As ``temperature -> 0`` the result tends to the hard membership.

    Raises:
        ValueError: non-positive temperature (a Python number; a traced one is not checked).
    """
    if isinstance(temperature, (int, float)) and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    imp = importance.astype(jnp.float32)
    desc = -jnp.sort(-imp)
    # midpoint j (j = 0..n) separates the j largest values from the rest
    mids = jnp.concatenate([desc[:1] + 1.0, 0.5 * (desc[:-1] + desc[1:]), desc[-1:] - 1.0])
    kf = jnp.clip(jnp.asarray(k, jnp.float32), 0.0, imp.shape[-1])
    lo = jnp.clip(jnp.floor(kf), 0, imp.shape[-1] - 1).astype(jnp.int32)
    frac = kf - lo
    tau = mids[lo] * (1.0 - frac) + mids[lo + 1] * frac
    return jax.nn.sigmoid((imp - tau) / temperature)
