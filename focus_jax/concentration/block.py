"""Block-level stage of SIC: the best earlier neighbour of every vector in a
spatio-temporal window (spec, SIC steps 2-6).

For each vector the candidates are the same vector slot of the tokens at linear offsets
``t*H*W + a*W + b`` back in the flattened visual sequence, ``(t, a, b)`` in
``[0, mf) x [0, mh) x [0, mw)`` with ``(0, 0, 0)`` excluded. The shift is linear: it does
not respect row or frame edges, exactly as the reference does.

Speed (see ../shared/spec/jax-cpu-notes.md): the similarity pass is memory bound. It
walks the sequence in blocks with ``lax.fori_loop`` so that a block and the neighbours it
is compared with are read once from memory and reused from cache for all candidates,
and it never materialises a ``(window, N, D)`` array.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from focus_jax.config import VisualGeometry

__all__ = ["BlockMatch", "NO_CANDIDATE", "window_offsets", "m_tile_ids", "block_match"]

#: Similarity reported for a vector with no valid candidate (zero vector, all candidates
#: zero, out of range or in another m-tile). Below every cosine, so it never passes a
#: threshold in [-1, 1].
NO_CANDIDATE = -2.0


class BlockMatch(NamedTuple):
    """Result of the block-level stage for ``N`` tokens of ``V`` vectors.

    Attributes:
        similarity: ``(N, V)`` float32, best cosine similarity over the valid candidates,
            clipped to [-1, 1]; ``NO_CANDIDATE`` where there is none.
        offset: ``(N, V)`` int32, token offset (``p - candidate``) of the best candidate,
            ties going to the earliest candidate in window order; 0 where there is none.
        mask_zero: ``(N, V)`` bool, vectors that are entirely zero.
    """

    similarity: jnp.ndarray
    offset: jnp.ndarray
    mask_zero: jnp.ndarray


def window_offsets(geom: VisualGeometry, block_size: int, frame_block_size: int) -> tuple[int, ...]:
    """Token offsets of the candidates of one position, in the reference's order.

    ``t`` slowest, then ``a``, then ``b``; ``mf = min(frame_block_size, F)``,
    ``mh = min(block_size, H)``, ``mw = min(block_size, W)``. The self offset 0 is not
    included. Spec, SIC step 3.
    """
    mf = min(frame_block_size, geom.frames)
    mh = min(block_size, geom.height)
    mw = min(block_size, geom.width)
    offsets = [t * geom.frame_stride + a * geom.width + b for t in range(mf) for a in range(mh) for b in range(mw)]
    return tuple(offsets[1:])


def m_tile_ids(zero_token: jnp.ndarray, m: int) -> jnp.ndarray:
    """GEMM m-tile of every position: ``(N,) bool -> (N,) int32``.

    Tile ``i`` holds the non-zero tokens number ``i*m+1 .. (i+1)*m`` (1-based, in order)
    and the zero tokens that follow its last one; leading zero tokens belong to tile 0.
    So a position whose inclusive count of non-zero tokens is ``c`` lies in tile
    ``max(c - 1, 0) // m``. Spec, SIC step 4 (reference: cumsum + right-sided search).
    """
    count = jnp.cumsum(~zero_token, dtype=jnp.int32)
    return jnp.maximum(count - 1, 0) // m


def _vector_norms(xv: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """L2 norms ``(N, V)`` float32 and the zero-vector mask ``(N, V)`` (sum of |x| == 0)."""
    xf = xv.astype(jnp.float32)
    norms = jnp.sqrt(jnp.sum(xf * xf, axis=-1))
    zero = jnp.sum(jnp.abs(xf), axis=-1) == 0.0
    return norms, zero


def _best_in_block(xb, nb, tb, window, nwin, twin, lead, offsets, first_pos):
    """Best candidate for the ``B`` tokens ``xb`` given the ``lead`` tokens before them.

    ``window``/``nwin``/``twin`` hold tokens, norms and m-tile ids of the ``lead + B``
    positions ending with the block. ``first_pos`` is the sequence position of the
    block's first token (candidates before position 0 are invalid).
    """
    b = xb.shape[0]
    best = jnp.full(xb.shape[:2], NO_CANDIDATE, jnp.float32)
    best_off = jnp.zeros(xb.shape[:2], jnp.int32)
    pos = first_pos + jnp.arange(b, dtype=jnp.int32)[:, None]
    xbf = xb.astype(jnp.float32)
    for off in offsets:
        cand = lax.slice_in_dim(window, lead - off, lead - off + b, axis=0).astype(jnp.float32)
        ncand = lax.slice_in_dim(nwin, lead - off, lead - off + b, axis=0)
        dot = jnp.sum(xbf * cand, axis=-1)
        den = nb * ncand
        valid = (den != 0.0) & (pos >= off)
        if tb is not None:
            valid &= (tb == lax.slice_in_dim(twin, lead - off, lead - off + b, axis=0))[:, None]
        sim = jnp.where(valid, jnp.clip(dot / jnp.where(valid, den, 1.0), -1.0, 1.0), NO_CANDIDATE)
        better = sim > best  # strict: ties keep the earlier candidate
        best = jnp.where(better, sim, best)
        best_off = jnp.where(better, off, best_off)
    return best, best_off


def block_match(
    xv: jnp.ndarray,
    geom: VisualGeometry,
    block_size: int,
    frame_block_size: int,
    gemm_m_size: int | None,
    block_tokens: int = 64,
) -> BlockMatch:
    """Block-level stage on one sequence of vectors ``xv``: ``(N, V, width)``.

    Args:
        xv: visual tokens split into vectors (``split_vectors``), any float dtype; the
            similarity is computed in float32.
        geom: patch grid, ``geom.num_tokens == N``.
        block_size, frame_block_size: window sizes (spec SIC step 3).
        gemm_m_size: m-tile size or None (spec SIC step 4).
        block_tokens: tokens per cache block of the streaming pass (speed only).

    Returns:
        ``BlockMatch`` of ``(N, V)`` arrays.
    """
    n = xv.shape[0]
    geom.check_tokens(n, "xv")
    offsets = tuple(o for o in window_offsets(geom, block_size, frame_block_size) if o < n)
    norms, zero = _vector_norms(xv)
    tiles = None
    if gemm_m_size is not None:
        tiles = m_tile_ids(jnp.all(zero, axis=-1), gemm_m_size)
    if not offsets:
        return BlockMatch(jnp.full(zero.shape, NO_CANDIDATE, jnp.float32), jnp.zeros(zero.shape, jnp.int32), zero)

    lead = max(offsets)
    b = max(1, min(block_tokens, n))
    nblocks = max(0, (n - lead) // b)
    head = n - nblocks * b  # >= lead: the first `head` tokens need no earlier context

    # The head block: candidates come from inside it, shifted with zero fill.
    hx, hn = xv[:head], norms[:head]
    ht = None if tiles is None else tiles[:head]
    pad = lambda a: jnp.concatenate([jnp.zeros((lead,) + a.shape[1:], a.dtype), a])
    head_best, head_off = _best_in_block(
        hx, hn, ht, pad(hx), pad(hn), None if ht is None else pad(ht), lead, offsets, 0
    )
    if nblocks == 0:
        return BlockMatch(head_best, head_off, zero)

    def body(i, carry):
        best, best_off = carry
        start = head + i * b
        window = lax.dynamic_slice_in_dim(xv, start - lead, lead + b, axis=0)
        nwin = lax.dynamic_slice_in_dim(norms, start - lead, lead + b, axis=0)
        twin = None if tiles is None else lax.dynamic_slice_in_dim(tiles, start - lead, lead + b, axis=0)
        blk_best, blk_off = _best_in_block(
            window[lead:], nwin[lead:], None if twin is None else twin[lead:], window, nwin, twin, lead, offsets, start
        )
        best = lax.dynamic_update_slice_in_dim(best, blk_best, start, axis=0)
        best_off = lax.dynamic_update_slice_in_dim(best_off, blk_off, start, axis=0)
        return best, best_off

    best = jnp.concatenate([head_best, jnp.zeros((n - head,) + head_best.shape[1:], jnp.float32)])
    best_off = jnp.concatenate([head_off, jnp.zeros((n - head,) + head_off.shape[1:], jnp.int32)])
    best, best_off = lax.fori_loop(0, nblocks, body, (best, best_off))
    return BlockMatch(best, best_off, zero)
