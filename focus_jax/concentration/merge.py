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


def _scatter_add_rows(operand: jnp.ndarray, rows: jnp.ndarray, updates: jnp.ndarray) -> jnp.ndarray:
    """``operand[rows[i]] += updates[i]``, dropping out-of-range rows.

    Written as a windowed ``lax.scatter_add`` (updates ``(M, 1, width)``) because
    ``operand.at[rows].add(updates)`` makes XLA CPU insert a full relayout copy of the
    updates (jax-cpu-notes.md).
    """
    dims = lax.ScatterDimensionNumbers(
        update_window_dims=(1, 2), inserted_window_dims=(), scatter_dims_to_operand_dims=(0,)
    )
    return lax.scatter_add(operand, rows[:, None], updates[:, None, :], dims, mode=lax.GatherScatterMode.FILL_OR_DROP)


def _capacities(m: int) -> tuple[int, ...]:
    """Static sizes of the group-sum buffer, smallest first; the last, ``m // 2``, always fits."""
    return tuple(sorted({max(m // 32, 1), max(m // 8, 1), max(m // 2, 1)}))


def group_mean(xv: jnp.ndarray, group_index: jnp.ndarray) -> jnp.ndarray:
    """Replace every vector by the float32 mean of the vectors sharing its group index.

    ``xv``: ``(N, V, width)``; ``group_index``: ``(N, V)`` flat indices. Returns the
    same shape and dtype as ``xv`` (each mean is rounded once to that dtype, as in the
    reference). The vector at the group index itself belongs to the group only if it
    points to itself. Spec, SIC step 8.

    Only groups of two or more vectors change anything. They get compact slots in a
    float32 sum buffer whose size is picked at run time (``lax.switch``) among a few
    static capacities, so that the memory touched follows the number of such groups
    (1.7% of the vectors on video-like input) rather than the number of vectors. Under
    ``jax.vmap`` the switch turns into running every branch: merge a batch by flattening
    it into one call instead (as ``similarity_concentration`` does).
    """
    n, v, width = xv.shape
    m = n * v
    flat = xv.reshape(m, width)
    g = group_index.reshape(-1)
    members = jnp.zeros((m,), jnp.int32).at[g].add(1)
    shared = members >= 2
    slot_of_row = jnp.cumsum(shared, dtype=jnp.int32) - 1
    in_shared = shared[g]
    slot = slot_of_row[g]
    count = members[g].astype(jnp.float32)[:, None]
    capacities = _capacities(m)

    def merge_into(capacity):
        def merge(_):
            rows = jnp.where(in_shared, slot, capacity)  # out of range: dropped
            sums = _scatter_add_rows(jnp.zeros((capacity, width), jnp.float32), rows, flat.astype(jnp.float32))
            mean = sums[jnp.minimum(rows, capacity - 1)] / count
            return jnp.where(in_shared[:, None], mean.astype(xv.dtype), flat)

        return merge

    groups = slot_of_row[-1] + 1
    branch = jnp.searchsorted(jnp.asarray(capacities, jnp.int32), groups)
    out = lax.switch(branch, [merge_into(c) for c in capacities], None)
    return out.reshape(n, v, width)
