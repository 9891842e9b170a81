"""Adaptiv's sign-similarity token merging, as the Focus reference implements it.

Source: ``algorithm/focus/baseline_adaptiv.py`` of github.com/dubcyfor3/Focus (commit
1842719), ``Adaptiv.forward`` (first call of a prefill, which
``models/qwen2/modeling_qwen2_adaptiv.py`` makes before the attention of decoder layer 0).

Each visual token ``i`` compares the signs of its elements with those of its upper
(``i - W``) and left (``i - 1``) neighbours in the flat frame-major grid:
``sim = sum(sign(x_i) * sign(x_j)) / D``. The larger wins (the upper one on ties); the
token is merged into that neighbour (and dropped from the sequence) when ``sim >=
threshold`` and it is not on the first row or column, nor -- for videos -- in the first
frame. ``pointer`` follows the merges to their root (the reference's ``merged_ids``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from focus_jax.config import VisualGeometry

__all__ = ["AdaptivMerge", "adaptiv_merge"]


class AdaptivMerge(NamedTuple):
    """Result of ``adaptiv_merge`` for ``N`` visual tokens.

    Attributes:
        merge_mask: ``(N,)`` bool, tokens merged into a neighbour (dropped).
        pointer: ``(N,)`` int32, root token of each token's merge chain (itself if kept).
        sparsity: ``()`` float32, merged fraction ``sum(merge_mask) / N``.
    """

    merge_mask: jnp.ndarray
    pointer: jnp.ndarray
    sparsity: jnp.ndarray


def _shift(x: jnp.ndarray, by: int) -> jnp.ndarray:
    """``x`` moved ``by`` rows down along axis 0, zeros entering (the reference's zero-padded neighbour)."""
    return jnp.concatenate([jnp.zeros_like(x[:by]), x[:-by]], axis=0)


def adaptiv_merge(tokens: jnp.ndarray, geometry: VisualGeometry, threshold: float) -> AdaptivMerge:
    """Which visual tokens Adaptiv merges (reference ``Adaptiv.forward``, first call).

    Args:
        tokens: ``(N, D)`` visual tokens of one prompt in grid order (float; the layer-0 input).
        geometry: their grid (``N = F * H * W``).
        threshold: merge when the sign agreement ``/ D`` is ``>= threshold``.

    Returns:
        ``AdaptivMerge``.

    Raises:
        ValueError: ``tokens`` do not match ``geometry``.
    """
    n, dim = tokens.shape
    geometry.check_tokens(n, "tokens")
    w = geometry.width
    s = jnp.sign(tokens.astype(jnp.float32))
    top = jnp.sum(_shift(s, geometry.width) * s, axis=-1)
    left = jnp.sum(_shift(s, 1) * s, axis=-1)
    best = jnp.maximum(top, left)
    offset = jnp.where(left > top, 1, geometry.width)
    idx = jnp.arange(n, dtype=jnp.int32)
    within = idx % geometry.frame_stride
    margin = (within // w == 0) | (within % w == 0)
    if geometry.frames > 1:
        margin |= idx // geometry.frame_stride == 0
    merge = (best / dim >= threshold) & ~margin
    pointer = jnp.clip(idx - offset * merge, 0, n - 1)
    # pointer doubling reaches the fixpoint of ``pointer = pointer[pointer]`` in log2(N) steps
    for _ in range(max(1, (n - 1).bit_length())):
        pointer = pointer[pointer]
    return AdaptivMerge(merge, pointer.astype(jnp.int32), jnp.mean(merge.astype(jnp.float32)))


adaptiv_merge = jax.jit(adaptiv_merge, static_argnames=("geometry",))
