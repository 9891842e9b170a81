"""Block-level stage of SIC: the best earlier neighbour of every vector in a
spatio-temporal window (spec, SIC steps 2-6).

For each vector the candidates are the same vector slot of the tokens at linear offsets
``t*H*W + a*W + b`` back in the flattened visual sequence, ``(t, a, b)`` in
``[0, mf) x [0, mh) x [0, mw)`` with ``(0, 0, 0)`` excluded. The shift is linear: it does
not respect row or frame edges, exactly as the reference does.

Speed: every per-vector reduction (norm, zero test, one dot product per candidate) is
one variadic ``lax.reduce``, so the input is read once and no ``(window, N, D)`` array is
ever materialised; the candidate selection works on ``(N, V)`` arrays only.
"""

from __future__ import annotations

from typing import NamedTuple

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
        offset: ``(N, V)`` int32, row offset (``p - candidate``) of the best candidate,
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


def _shifted(a: jnp.ndarray, off: int) -> jnp.ndarray:
    """``a`` moved ``off`` tokens later along axis 0, zero-filled: row ``p`` holds ``a[p - off]``."""
    return jnp.pad(a[: a.shape[0] - off], [(off, 0)] + [(0, 0)] * (a.ndim - 1))


def _channel_sums(xv: jnp.ndarray, offsets: tuple[int, ...]):
    """Per-vector sums over the channel axis, all in one pass over ``xv``.

    Returns ``sum(x*x)``, ``sum(|x|)`` and, for each offset, ``sum(x[p] * x[p - off])``
    (0 where ``p < off``), each ``(N, V)`` float32. One variadic ``lax.reduce`` lets XLA
    read every vector once for all of them; separate reductions would stream the input
    from memory ``2 + len(offsets)`` times (measured ~1.6x slower at LLaVA sizes).
    """
    xf = xv.astype(jnp.float32)
    terms = (xf * xf, jnp.abs(xf)) + tuple(xf * _shifted(xf, off) for off in offsets)
    zeros = tuple(jnp.float32(0.0) for _ in terms)
    return lax.reduce(terms, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)), (xv.ndim - 1,))


class _Candidate(NamedTuple):
    """One window offset's candidate of every row: ``dot`` ``(n, V)`` with it, ``take(a)``
    the candidate's row of a per-row array ``a``, ``exists`` ``(n, 1)`` bool, and ``offset``
    (``(n, 1)`` or scalar int32) the row distance ``row - candidate row``."""

    dot: jnp.ndarray
    take: object
    exists: jnp.ndarray
    offset: object


def _grid_candidates(xv: jnp.ndarray, offsets: tuple[int, ...]):
    """Norms, zero masks and candidates of a whole grid: the candidate at offset ``off`` is
    row ``p - off`` (a shift), every dot product from one pass over ``xv``."""
    sq, abs_sum, *dots = _channel_sums(xv, offsets)
    pos = jnp.arange(xv.shape[0], dtype=jnp.int32)[:, None]
    cands = [_Candidate(dot, lambda a, off=off: _shifted(a, off), pos >= off, off) for off, dot in zip(offsets, dots)]
    return jnp.sqrt(sq), abs_sum == 0.0, cands


def _lookup_candidates(xv: jnp.ndarray, positions: jnp.ndarray, num_tokens: int, offsets: tuple[int, ...]):
    """Norms, zero masks and candidates of ``n`` kept rows at grid ``positions``: the
    candidate at offset ``off`` is the kept row at grid position ``positions - off``, found
    through the inverse lookup ``grid position -> kept row``; a pruned position has no row
    (a zero vector on the grid: never a valid candidate)."""
    n = xv.shape[0]
    xf = xv.astype(jnp.float32)
    norms = jnp.sqrt(jnp.sum(xf * xf, axis=-1))
    zero = jnp.sum(jnp.abs(xf), axis=-1) == 0.0
    rows = jnp.arange(n, dtype=jnp.int32)
    inverse = jnp.full((num_tokens,), -1, jnp.int32).at[positions].set(rows)
    cands = []
    for off in offsets:
        cand = jnp.where(positions >= off, inverse[jnp.maximum(positions - off, 0)], -1)
        safe = jnp.maximum(cand, 0)
        dot = jnp.sum(xf * xf[safe], axis=-1)
        cands.append(_Candidate(dot, lambda a, safe=safe: a[safe], (cand >= 0)[:, None], (rows - safe)[:, None]))
    return norms, zero, cands


def block_match(
    xv: jnp.ndarray,
    geom: VisualGeometry,
    block_size: int,
    frame_block_size: int,
    gemm_m_size: int | None,
    positions: jnp.ndarray | None = None,
    weight: jnp.ndarray | None = None,
) -> BlockMatch:
    """Block-level stage on one sequence of vectors ``xv``: ``(n, V, width)``.

    Args:
        xv: visual tokens split into vectors (``split_vectors``), any float dtype; the
            similarity is computed in float32.
        geom: patch grid.
        block_size, frame_block_size: window sizes (spec SIC step 3).
        gemm_m_size: m-tile size or None (spec SIC step 4).
        positions: None: ``xv`` is the whole grid (``n = geom.num_tokens``). Else ``(n,)``
            int32 ascending grid positions of the rows of ``xv``: the tokens SEC kept (spec,
            SEC "When SIC runs in a layer after pruning"). The result equals, bit for bit,
            scattering ``xv`` to the grid with zeros at the other positions, matching and
            gathering the kept rows back, since a zero vector is never a valid candidate;
            the cost follows ``n``, not ``N``.
        weight: ``(n,)`` float keep weights of relaxed SEC, or None (hard). A pair of
            rows with weights ``w_p``, ``w_c`` scores ``w_p w_c cos + (1 - w_p w_c)
            NO_CANDIDATE``: a (softly) pruned token tends to a zero vector, which never
            matches. Weights of 1 give the hard result.

    Returns:
        ``BlockMatch`` of ``(n, V)`` arrays; ``offset`` counts rows of ``xv``.
    """
    n = xv.shape[0]
    window = window_offsets(geom, block_size, frame_block_size)
    if positions is None:
        geom.check_tokens(n, "xv")
        norms, zero, candidates = _grid_candidates(xv, tuple(o for o in window if o < n))
    else:
        norms, zero, candidates = _lookup_candidates(xv, positions, geom.num_tokens, tuple(o for o in window if o < geom.num_tokens))
    tiles = None if gemm_m_size is None else m_tile_ids(jnp.all(zero, axis=-1), gemm_m_size)
    best = jnp.full(norms.shape, NO_CANDIDATE, jnp.float32)
    best_off = jnp.zeros(norms.shape, jnp.int32)
    for cand in candidates:  # window order: ties keep the earlier candidate
        den = norms * cand.take(norms)
        valid = (den != 0.0) & cand.exists
        if tiles is not None:
            valid &= (tiles == cand.take(tiles))[:, None]
        sim = jnp.clip(cand.dot / jnp.where(valid, den, 1.0), -1.0, 1.0)
        if weight is not None:
            pair = (weight * cand.take(weight))[:, None]
            sim = pair * sim + (1.0 - pair) * NO_CANDIDATE
        sim = jnp.where(valid, sim, NO_CANDIDATE)
        better = sim > best  # strict: ties keep the earlier candidate
        best = jnp.where(better, sim, best)
        best_off = jnp.where(better, cand.offset, best_off)
    return BlockMatch(best, best_off, zero)
