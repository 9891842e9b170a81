"""Vector-level stage of SIC: threshold, pointer chasing and group merge
(spec, SIC steps 6-9).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

__all__ = ["similar_mask", "chase_pointers", "group_mean"]


def similar_mask(similarity: jnp.ndarray, threshold) -> jnp.ndarray:
    """``similarity > threshold`` (strictly greater), spec SIC step 6.

    Vectors without a valid candidate carry ``NO_CANDIDATE`` (< -1) and never pass a
    threshold in [-1, 1]; zero vectors therefore never match.
    """
    return similarity > jnp.asarray(threshold, jnp.float32)


def chase_pointers(mask_similar: jnp.ndarray, offset: jnp.ndarray, max_rounds: int) -> jnp.ndarray:
    """Group index of every vector: ``(N, V) -> (N, V)`` int32, flat ``token * V + slot``.

    Each vector points to its best candidate (same slot, ``offset`` tokens back) when
    similar, else to itself; then ``ptr = ptr[ptr]`` runs until nothing changes or
    ``max_rounds`` (the number of frames) rounds have run, as in the reference. The loop
    is a ``lax.while_loop``: no host synchronisation.
    """
    n, v = mask_similar.shape
    flat = jnp.arange(n * v, dtype=jnp.int32).reshape(n, v)
    ptr = jnp.where(mask_similar, flat - offset * v, flat).reshape(-1)

    def cond(state):
        rounds, _, changed = state
        return (rounds < max_rounds) & changed

    def body(state):
        rounds, p, _ = state
        q = p[p]
        return rounds + 1, q, jnp.any(q != p)

    _, ptr, _ = lax.while_loop(cond, body, (jnp.int32(0), ptr, jnp.bool_(True)))
    return ptr.reshape(n, v)


def group_mean(xv: jnp.ndarray, group_index: jnp.ndarray) -> jnp.ndarray:
    """Replace every vector by the float32 mean of the vectors sharing its group index.

    ``xv``: ``(N, V, width)``; ``group_index``: ``(N, V)`` flat indices. Returns the
    same shape and dtype as ``xv`` (the mean is rounded once to that dtype, as in the
    reference). The vector at the group index itself belongs to the group only if it
    points to itself. Spec, SIC step 8.
    """
    n, v, width = xv.shape
    flat = xv.reshape(n * v, width).astype(jnp.float32)
    g = group_index.reshape(-1)
    sums = jnp.zeros_like(flat).at[g].add(flat)
    counts = jnp.zeros((n * v,), jnp.float32).at[g].add(1.0)
    mean = (sums / jnp.maximum(counts, 1.0)[:, None]).astype(xv.dtype)
    return mean[g].reshape(n, v, width)
