"""Integer Focus: the arithmetic of the generated RTL (``rtlgen``), bit for bit, in JAX.

This is the golden model the RTL is verified against (``tests/test_rtl_*.py``) and the
INT8 variant of Focus whose decisions are compared with the float algorithm
(``benchmarks/int8_focus.py``; the paper's INT8 study, ``int8_focus.csv``).

- Activations: symmetric per-tensor INT-``bits`` (``quantize_symmetric``; one scale per
  ``(N, D)`` GEMM input), values in ``[-(2^(bits-1)-1), 2^(bits-1)-1]``.
- SIC (``quantized_block_match``), per vector: ``|a|^2`` and, for every window
  candidate ``b`` (``window_offsets`` order), ``dot = a.b`` and ``|b|^2``, all exact
  integers. The best candidate is the one of largest cosine among those with ``dot > 0``,
  compared without square root or division (``dot_j^2 |b_best|^2 > dot_best^2 |b_j|^2``,
  strict, so the first candidate in window order wins ties, as the reference's
  ``argmax``). The vector is similar when ``dot > 0`` and
  ``dot^2 2^(2F) > T^2 |a|^2 |b|^2`` with ``T = round(tau 2^F)`` (``tau_fixed``), i.e.
  ``cos > T / 2^F``. A vector whose integers are all zero is a zero vector.
  With ``tau > 0`` only a positive-dot candidate can pass, so restricting the best to
  those candidates changes no decision.
- Group pointers (``root_pointers``): a similar vector points to its best candidate's
  group root, else to itself; roots are resolved completely (the streaming pointer table
  of the RTL). The reference chases pointers ``F`` (frames) rounds only; the two differ
  only for chains longer than ``2^F`` vectors.
- SEC (``quantized_attention_importance``, ``quantized_keep_indices``): every attention
  probability in ``[0, 1]`` of a query-text row as unsigned ``bits``-bit fixed point
  (round to nearest), the importance of a visual token the max of those integers over
  heads and rows, top-k on the integers (``select_tokens``: ties to the lower index).
  Rounding is monotone, so this is the float SEC on rounded importances: only tokens
  whose importances round to the same integer can swap.

Exactness: every product is an int64 (computed under ``jax.enable_x64``); the bounds are
checked (``_check_bounds``) so no intermediate can overflow.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.concentration import (
    NO_CANDIDATE,
    BlockMatch,
    SICResult,
    attention_importance,
    select_tokens,
    vector_concentration,
    vector_layout,
    window_offsets,
)
from focus_jax.config import FocusConfig, VisualGeometry
from focus_jax.errors import InputError

__all__ = [
    "ACTIVATION_BITS",
    "IMPORTANCE_BITS",
    "TAU_FRAC_BITS",
    "QuantizedMatch",
    "decisions_match",
    "quantize_importance",
    "quantize_symmetric",
    "quantized_attention_importance",
    "quantized_block_match",
    "quantized_focus_gemm",
    "quantized_keep_indices",
    "quantized_sic_decisions",
    "quantized_similarity_concentration",
    "root_pointers",
    "split_int_vectors",
    "tau_fixed",
]

#: Activation width of the integer datapath (INT8 x INT8 -> INT32 in the systolic array).
ACTIVATION_BITS = 8
#: Fractional bits of the fixed-point SIC threshold ``T = round(tau * 2^F)``.
TAU_FRAC_BITS = 12
#: Width of a quantised attention probability in the SEC unit (unsigned fixed point).
IMPORTANCE_BITS = 16


class QuantizedMatch(NamedTuple):
    """Integer SIC decisions for ``N`` tokens of ``V`` vectors (all ``(..., N, V)``).

    Attributes:
        mask_similar: bool, best candidate's cosine above the fixed-point threshold.
        mask_zero: bool, vectors whose integers are all zero.
        candidate: int32, 1-based window index (``window_offsets`` order) of the best
            positive-dot candidate, 0 where there is none.
        offset: int32, token offset of that candidate (``p - candidate token``), 0 if none.
        group_index: int32, flat index ``root_token * V + slot`` of the fully resolved group root.
        norm_sq: int64, ``|a|^2`` of each vector.
        best_dot, best_norm_sq: int64, ``a.b`` and ``|b|^2`` of the best candidate (0 if none).
    """

    mask_similar: jnp.ndarray
    mask_zero: jnp.ndarray
    candidate: jnp.ndarray
    offset: jnp.ndarray
    group_index: jnp.ndarray
    norm_sq: jnp.ndarray
    best_dot: jnp.ndarray
    best_norm_sq: jnp.ndarray


def _qmax(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
        raise InputError(f"bits must be an integer in [2, 16], got {bits!r}")
    return (1 << (bits - 1)) - 1


def quantize_symmetric(x, bits: int = ACTIVATION_BITS, axes=(-2, -1)):
    """Symmetric per-tensor quantisation: ``x ~= q * scale``.

    Args:
        x: float array, e.g. ``(..., N, D)``.
        bits: integer width; ``q`` lies in ``[-(2^(bits-1)-1), 2^(bits-1)-1]``.
        axes: the axes one scale covers (default: each ``(N, D)`` matrix is one tensor).

    Returns:
        ``(q, scale)``: ``q`` int32 of ``x``'s shape (round half to even), ``scale``
        float32 with ``axes`` kept as size 1; an all-zero tensor gets scale 1.

    Raises:
        InputError: ``bits`` outside [2, 16].
    """
    qmax = _qmax(bits)
    xf = jnp.asarray(x, jnp.float32)
    amax = jnp.max(jnp.abs(xf), axis=axes, keepdims=True)
    scale = jnp.where(amax > 0, amax / qmax, 1.0).astype(jnp.float32)
    q = jnp.clip(jnp.round(xf / scale), -qmax, qmax).astype(jnp.int32)
    return q, scale


def tau_fixed(threshold: float, frac_bits: int = TAU_FRAC_BITS) -> int:
    """The SIC threshold as the integer ``T = round(tau * 2^frac_bits)``.

    Raises:
        InputError: ``threshold`` outside (0, 1] (the RTL's test ``dot > 0`` relies on a
            positive threshold) or rounding to 0.
    """
    if not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
        raise InputError(f"the integer SIC needs a similarity threshold in (0, 1], got {threshold!r}")
    t = round(threshold * (1 << frac_bits))
    if t < 1:
        raise InputError(f"similarity threshold {threshold} rounds to 0 with {frac_bits} fractional bits")
    return t


def split_int_vectors(q, vector_size: int):
    """``(..., N, D)`` integers -> ``(..., N, V, width)`` vectors (channels zero-padded as
    ``vector_layout`` says; spec SIC step 1)."""
    dim = q.shape[-1]
    v, width = vector_layout(dim, vector_size)
    pad = v * width - dim
    if pad:
        q = jnp.pad(q, [(0, 0)] * (q.ndim - 1) + [(0, pad)])
    return q.reshape(*q.shape[:-1], v, width)


def _check_bounds(width: int, bits: int, frac_bits: int) -> None:
    """No int64 intermediate may overflow: ``max(dot^2, |a|^2 |b|^2) * 2^(2F) < 2^63``."""
    norm_max = width * _qmax(bits) ** 2
    if norm_max**2 * (1 << (2 * frac_bits)) >= 1 << 63:
        raise InputError(
            f"vectors of {width} INT{bits} channels with {frac_bits} threshold bits overflow the 64-bit golden model"
        )


def _shift(a, off: int):
    """``a`` moved ``off`` tokens later along axis -3 (tokens of ``(..., N, V, w)``), zero-filled."""
    n = a.shape[-3]
    pad = [(0, 0)] * a.ndim
    pad[-3] = (off, 0)
    return jnp.pad(a[..., : n - off, :, :], pad)


def root_pointers(mask_similar, offset):
    """Fully resolved group roots: ``(..., N, V) bool, int32 -> (..., N, V) int32``.

    A similar vector's parent is the same slot ``offset`` tokens back, any other vector is
    its own root; pointer doubling runs until every chain is resolved (``ceil(log2 N)``
    rounds). Returns the flat index ``root_token * V + slot``.
    """
    n, v = mask_similar.shape[-2:]
    tok = jnp.arange(n, dtype=jnp.int32)[:, None]
    parent = jnp.where(mask_similar, tok - offset, tok)
    flat = (parent * v + jnp.arange(v, dtype=jnp.int32)).reshape(mask_similar.shape[:-2] + (n * v,))
    for _ in range(max(1, (n - 1).bit_length())):
        flat = jnp.take_along_axis(flat, flat, axis=-1)
    return flat.reshape(mask_similar.shape)


def quantized_block_match(q, geom: VisualGeometry, cfg: FocusConfig, tau_q: int, bits: int = ACTIVATION_BITS,
                          frac_bits: int = TAU_FRAC_BITS) -> QuantizedMatch:
    """Integer SIC decisions of the generated SIC unit, for every vector.

    Args:
        q: ``(..., N, D)`` integers in ``[-(2^(bits-1)-1), 2^(bits-1)-1]`` (from
            ``quantize_symmetric``), ``N = geom.num_tokens``.
        geom: patch grid; cfg: ``vector_size``, ``block_size``, ``frame_block_size``.
        tau_q: fixed-point threshold ``T`` (``tau_fixed``).
        bits, frac_bits: the datapath widths (bound check only).

    Returns:
        ``QuantizedMatch`` of ``(..., N, V)`` arrays.

    Raises:
        InputError: ``cfg.gemm_m_size`` is set (the RTL's layouter supplies m-tile-crossing
            candidates as zero vectors; the golden model does not model m-tiles), values out
            of range, or widths that could overflow.

    Source: spec SIC steps 1-7, integer form described in this module's docstring.
    """
    if cfg.gemm_m_size is not None:
        raise InputError("the integer SIC model supports gemm_m_size=None only")
    geom.check_tokens(q.shape[-2], "q")
    qmax = _qmax(bits)
    if np.asarray(jnp.max(jnp.abs(jnp.asarray(q)))) > qmax:
        raise InputError(f"q holds values outside [-{qmax}, {qmax}]")
    offsets = window_offsets(geom, cfg.block_size, cfg.frame_block_size)
    with jax.enable_x64(True):
        xv = split_int_vectors(jnp.asarray(q, jnp.int64), cfg.vector_size)
        _check_bounds(xv.shape[-1], bits, frac_bits)
        n = xv.shape[-3]
        na = jnp.sum(xv * xv, axis=-1)
        zero = na == 0
        best = jnp.zeros(na.shape, jnp.int32)
        best_off = jnp.zeros(na.shape, jnp.int32)
        best_dot = jnp.zeros_like(na)
        best_nb = jnp.zeros_like(na)
        for j, off in enumerate(offsets, start=1):
            if off >= n:  # never a valid candidate: the layouter feeds a zero vector
                continue
            cand = _shift(xv, off)
            dot = jnp.sum(xv * cand, axis=-1)
            nb = jnp.sum(cand * cand, axis=-1)
            # cosine_j > cosine_best  <=>  dot_j^2 |b_best|^2 > dot_best^2 |b_j|^2  (both dots > 0)
            better = (dot > 0) & ((best == 0) | (dot * dot * best_nb > best_dot * best_dot * nb))
            best = jnp.where(better, j, best)
            best_off = jnp.where(better, off, best_off)
            best_dot = jnp.where(better, dot, best_dot)
            best_nb = jnp.where(better, nb, best_nb)
        lhs = best_dot * best_dot * (1 << (2 * frac_bits))
        rhs = (tau_q * tau_q) * na * best_nb
        similar = (best > 0) & (lhs > rhs)
        offset = jnp.where(best > 0, best_off, 0).astype(jnp.int32)
        group = root_pointers(similar, jnp.where(similar, offset, 0))
        return QuantizedMatch(similar, zero, best, offset, group.astype(jnp.int32), na, best_dot, best_nb)


def quantized_focus_gemm(q, w, geom: VisualGeometry, cfg: FocusConfig, tau_q: int, bits: int = ACTIVATION_BITS,
                         frac_bits: int = TAU_FRAC_BITS):
    """The integer Focus GEMM of the generated tile datapath (``rtlgen.ctrl``): every vector
    is replaced by its group root's vector (the unique vector the array multiplies; the
    scatter accumulators add its partial sum to every member's output row), then ``@ w``.

    The float algorithm merges a group into its mean (spec SIC step 8); the integer
    datapath multiplies the root's own row, which needs no divider and lets the array
    start on a group before its last member is seen. Zero vectors give zero partial sums.

    Args:
        q: ``(N, D)`` integers as ``quantized_block_match``; w: ``(D, C)`` integers.
        geom, cfg, tau_q, bits, frac_bits: as ``quantized_block_match``.

    Returns:
        ``(out, match)``: ``out`` ``(N, C)`` int64 (exact; the RTL's INT32 accumulator wraps
        beyond 2^31), ``match`` the ``QuantizedMatch``.

    Raises:
        InputError: as ``quantized_block_match``.
    """
    qm = quantized_block_match(q, geom, cfg, tau_q, bits, frac_bits)
    with jax.enable_x64(True):
        qi = jnp.asarray(q, jnp.int64)
        xv = split_int_vectors(qi, cfg.vector_size)
        n, v, width = xv.shape
        roots = xv.reshape(n * v, width)[qm.group_index.reshape(-1)].reshape(n, v * width)[:, : q.shape[-1]]
        return roots @ jnp.asarray(w, jnp.int64), qm


def quantized_sic_decisions(x, geom: VisualGeometry, cfg: FocusConfig, threshold=None, positions=None,
                            bits: int = ACTIVATION_BITS, frac_bits: int = TAU_FRAC_BITS) -> QuantizedMatch:
    """Integer SIC decisions of one GEMM input, before or after SEC's pruning (eager, numpy in).

    ``x`` is quantised per tensor (``quantize_symmetric``) and matched by
    ``quantized_block_match``. With ``positions`` (the tokens SEC kept) the rows are first
    scattered to their grid positions with zero vectors elsewhere, as the spec defines SIC
    after pruning: a zero vector has ``dot = 0`` and is never a candidate, and the zeros do
    not change the tensor's scale.

    Args:
        x: ``(n, D)`` float visual tokens (``n = geom.num_tokens`` without ``positions``).
        geom, cfg: as ``quantized_block_match``.
        threshold: the float threshold (default ``cfg.similarity_threshold``), as ``tau_fixed``.
        positions: None, or ``(n,)`` ascending grid positions of the rows of ``x``.

    Returns:
        ``QuantizedMatch`` of ``(n, V)`` arrays for the rows of ``x``; ``offset`` counts rows
        of ``x`` (the convention of ``block_similarity(..., positions=...)``), ``group_index``
        is a flat grid index.

    Raises:
        InputError: as ``tau_fixed`` and ``quantized_block_match``.
    """
    tau_q = tau_fixed(cfg.similarity_threshold if threshold is None else float(threshold), frac_bits)
    q, _ = quantize_symmetric(x, bits)
    if positions is None:
        return quantized_block_match(q, geom, cfg, tau_q, bits, frac_bits)
    pos = np.asarray(positions, np.int64)
    grid = jnp.zeros((geom.num_tokens, q.shape[-1]), q.dtype).at[pos].set(q)
    qm = quantized_block_match(grid, geom, cfg, tau_q, bits, frac_bits)
    rows = QuantizedMatch(*(np.asarray(a)[pos] for a in qm))
    inverse = np.full(geom.num_tokens, -1, np.int64)
    inverse[pos] = np.arange(pos.size)
    cand_row = inverse[np.maximum(pos[:, None] - rows.offset, 0)]  # a candidate is never a pruned token
    offset = np.where(rows.candidate > 0, np.arange(pos.size)[:, None] - cand_row, 0).astype(np.int32)
    return rows._replace(offset=offset)


def quantized_similarity_concentration(x, geom: VisualGeometry, cfg: FocusConfig, *, threshold=None,
                                       positions=None) -> SICResult:
    """SIC with the integer decisions of the SIC unit: decide in INT8, merge in float.

    The similar/zero masks and best candidates are ``quantized_sic_decisions`` (computed on
    the host through ``jax.pure_callback``, so this runs under ``jit`` and inside the
    model's prefill: ``FocusPlan.arithmetic == "int8"``); grouping (the reference's
    ``F``-round pointer chase) and the group mean are ``vector_concentration``'s on the
    float ``x``.

    Args:
        x: ``(..., n, D)`` float visual tokens of one GEMM input.
        geom, cfg: as ``similarity_concentration``; the threshold in (0, 1].
        threshold: None (``cfg.similarity_threshold``) or a float scalar (may be traced).
        positions: None, or ``(..., n)`` grid positions of the kept rows (after SEC).

    Returns:
        ``SICResult``; ``similarity`` is 1 where the integer test passed and
        ``NO_CANDIDATE`` elsewhere (the integer unit computes no cosine).

    Raises:
        InputError: a static threshold outside (0, 1] (as ``tau_fixed``); the host
            callback raises the same for a traced one, and as ``quantized_block_match``.
    """
    if threshold is None:
        tau_fixed(cfg.similarity_threshold)  # fail before tracing
    v, _ = vector_layout(x.shape[-1], cfg.vector_size)
    lead = x.shape[:-1]
    thr = jnp.asarray(cfg.similarity_threshold if threshold is None else threshold, jnp.float32)
    pos = jnp.zeros(lead, jnp.int32) if positions is None else jnp.asarray(positions, jnp.int32)
    shapes = (jax.ShapeDtypeStruct(lead + (v,), jnp.bool_), jax.ShapeDtypeStruct(lead + (v,), jnp.int32),
              jax.ShapeDtypeStruct(lead + (v,), jnp.bool_))

    def host(xs, t, ps):
        xs, ps = np.asarray(xs, np.float32), np.asarray(ps)
        out = [np.empty(s.shape, s.dtype) for s in shapes]
        for i in np.ndindex(lead[:-1]):
            qm = quantized_sic_decisions(xs[i], geom, cfg, float(t), None if positions is None else ps[i])
            for o, a in zip(out, (qm.mask_similar, qm.offset, qm.mask_zero)):
                o[i] = np.asarray(a)
        return tuple(out)

    similar, offset, zero = jax.pure_callback(host, shapes, x, thr, pos, vmap_method="sequential")
    return vector_concentration(x, decisions_match(similar, offset, zero), geom, cfg, positions=positions)


def decisions_match(mask_similar, offset, mask_zero) -> BlockMatch:
    """Integer decisions as the ``BlockMatch`` ``vector_concentration`` merges with: similarity
    1 where similar (above any threshold < 1), ``NO_CANDIDATE`` elsewhere."""
    return BlockMatch(jnp.where(mask_similar, 1.0, NO_CANDIDATE).astype(jnp.float32), offset, mask_zero)


def quantize_importance(probs, bits: int = IMPORTANCE_BITS):
    """Attention probabilities in [0, 1] as unsigned ``bits``-bit fixed point (int32).

    ``round(p * (2^bits - 1))`` (half to even), clipped to ``[0, 2^bits - 1]``. Monotone,
    so the max over heads and rows commutes with it (the SEC unit maximises integers).
    """
    top = (1 << bits) - 1
    return jnp.clip(jnp.round(jnp.asarray(probs, jnp.float32) * top), 0, top).astype(jnp.int32)


def quantized_attention_importance(probs, query_rows, visual_start, num_visual: int, bits: int = IMPORTANCE_BITS):
    """The SEC unit's importance: ``(B, H, R, S) -> (B, num_visual)`` int32.

    Every attention probability of a query-text row is quantised (``quantize_importance``)
    and the unit keeps, per visual token, the maximum over heads and rows of those
    integers (``imp[index] = max(imp[index], value)``; rows not marked in ``query_rows``
    are not streamed, an untouched entry reads 0). Arguments as
    ``focus_jax.concentration.attention_importance``.
    """
    q = quantize_importance(probs, bits)
    return attention_importance(q, query_rows, visual_start, num_visual).astype(jnp.int32)


def quantized_keep_indices(importance_q, k: int):
    """SEC's kept visual tokens from integer importances: ``(..., n) -> (..., k)`` int32,
    ascending; ties to the lower index (``select_tokens``, ``lax.top_k`` on the integers)."""
    return select_tokens(jnp.asarray(importance_q, jnp.int32), k)
