"""Grouped-query attention for prefill and decode, flash-style: no ``S x S`` matrix.

Queries are taken in blocks of ``block_q`` rows (a static Python loop); for each block a
``lax.scan`` walks the keys in chunks of ``block_k`` with an online softmax (running
maximum and sum), and stops at the block's last row (causality), so about half of the
square is computed and the working set (``heads x block_q x block_k`` scores) stays in
cache. On this 2-core CPU that made the attention of a 1606-token prefill ~7x faster than
one big softmax, whose fresh 150 MB score buffer costs more in page faults than in
arithmetic (see ../shared/spec/jax-cpu-notes.md). All trip counts are static, so the
functions are differentiable.

Layout: the ``G = Hq / Hkv`` query heads that share a key-value head are stacked with the
rows, so every product is one batched GEMM ``(B*Hkv, rows*G, hd) x (B*Hkv, hd, keys)``.

Masking: row ``i`` reads column ``j`` when ``j <= i`` (index order: after SEC the kept
tokens keep their original order, so this equals comparing original positions) and key
``j`` is valid; every row also reads itself, so padding rows stay finite (their outputs
are never used). Optional segment ids pack several continuations of one shared prefix in
a row (training: several questions about one video): segment 0 is the prefix, read by
every row; a row of segment ``s > 0`` also reads the earlier tokens of segment ``s`` only.

Numerics: scores, softmax and the weighted sum accumulate in float32; the output is
rounded to the query dtype.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

__all__ = ["causal_attention", "cached_attention"]

_NEG = float(jnp.finfo(jnp.float32).min)


def _heads_major(x):
    """``(B, T, H, hd) -> (B*H, T, hd)``."""
    b, t, h, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b * h, t, d)


def _flash(qb, row_pos, k, v, key_valid, block_k, row_seg=None, key_seg=None, key_bias=None):
    """Online-softmax attention of one row block.

    Args:
        qb: ``(B*Hkv, R, hd)`` scaled queries (``R`` = rows x G, row-major in rows).
        row_pos: ``(R,)`` sequence index of each row (causal mask), or None (decode: no
            causal limit inside the cache).
        k, v: ``(B*Hkv, T, hd)`` keys and values visible to the block.
        key_valid: ``(B*Hkv, T)`` bool.
        row_seg, key_seg: ``(B*Hkv, R)`` and ``(B*Hkv, T)`` int32 segment ids, or None.
        key_bias: ``(B*Hkv, T)`` float32 added to every score of a key, or None.

    Returns:
        ``(B*Hkv, R, hd)`` float32.
    """
    bk, r, hd = qb.shape
    t = k.shape[1]
    n = -(-t // block_k)
    pad = n * block_k - t
    if pad:
        k = jnp.pad(k, ((0, 0), (0, pad), (0, 0)))
        v = jnp.pad(v, ((0, 0), (0, pad), (0, 0)))
        key_valid = jnp.pad(key_valid, ((0, 0), (0, pad)))
        if key_seg is not None:
            key_seg = jnp.pad(key_seg, ((0, 0), (0, pad)))
        if key_bias is not None:
            key_bias = jnp.pad(key_bias, ((0, 0), (0, pad)))
    chunks = lambda a: a.reshape((bk, n, block_k) + a.shape[2:]).swapaxes(0, 1)

    def step(carry, xs):
        m, denom, acc = carry
        kc, vc, valid, segs, bias, first = xs
        s = jnp.matmul(qb, kc.swapaxes(1, 2), preferred_element_type=jnp.float32)  # (BK, R, block_k)
        if bias is not None:
            s = s + bias[:, None, :]
        allowed = valid[:, None, :]
        if segs is not None:  # the prefix (segment 0) and the row's own segment
            allowed = allowed & ((segs[:, None, :] == 0) | (segs[:, None, :] == row_seg[:, :, None]))
        if row_pos is not None:
            cols = first + jnp.arange(block_k)
            allowed = (allowed & (cols[None, :] <= row_pos[:, None])[None]) | (cols[None, :] == row_pos[:, None])[None]
        s = jnp.where(allowed, s, _NEG)
        m_new = jnp.maximum(m, jnp.max(s, axis=-1))
        p = jnp.exp(s - m_new[..., None])
        correction = jnp.exp(m - m_new)
        denom = denom * correction + jnp.sum(p, axis=-1)
        acc = acc * correction[..., None] + jnp.matmul(p.astype(vc.dtype), vc, preferred_element_type=jnp.float32)
        return (m_new, denom, acc), None

    init = (jnp.full((bk, r), _NEG, jnp.float32), jnp.zeros((bk, r), jnp.float32), jnp.zeros((bk, r, hd), jnp.float32))
    firsts = jnp.arange(n, dtype=jnp.int32) * block_k
    segs = None if key_seg is None else chunks(key_seg)
    biases = None if key_bias is None else chunks(key_bias)
    (_, denom, acc), _ = lax.scan(step, init, (chunks(k), chunks(v), chunks(key_valid), segs, biases, firsts))
    return acc / denom[..., None]


def causal_attention(
    q: jnp.ndarray,
    k: jnp.ndarray,
    v: jnp.ndarray,
    key_valid: jnp.ndarray,
    *,
    scale: float,
    segment_ids: jnp.ndarray | None = None,
    key_bias: jnp.ndarray | None = None,
    block_q: int = 256,
    block_k: int = 256,
) -> jnp.ndarray:
    """Causal grouped-query self-attention of a prefill.

    Args:
        q: ``(B, S, Hq, hd)`` rotated queries.
        k, v: ``(B, S, Hkv, hd)`` rotated keys and values, ``Hq % Hkv == 0``.
        key_valid: ``(B, S)`` bool, False at padding.
        scale: score scale (``hd ** -0.5``).
        segment_ids: ``(B, S)`` int, or None (one sequence per row): 0 marks the shared
            prefix, ``s > 0`` a continuation that reads the prefix and its own earlier tokens.
        key_bias: ``(B, S)`` float, added to every score of a key (``log w``: key ``j``
            weighs ``w_j`` in the softmax; relaxed SEC's soft pruning), or None.
        block_q, block_k: query rows per block and keys per chunk (speed/memory only).

    Returns:
        ``(B, S, Hq * hd)`` in ``q.dtype``.
    """
    b, s, hq, hd = q.shape
    hkv = k.shape[2]
    g = hq // hkv
    qh = (q * jnp.asarray(scale, q.dtype)).reshape(b, s, hkv, g, hd).transpose(0, 2, 1, 3, 4)  # (B, Hkv, S, G, hd)
    kh, vh = _heads_major(k), _heads_major(v)
    valid = jnp.repeat(key_valid, hkv, axis=0)  # (B*Hkv, S), matching _heads_major's order
    seg = None if segment_ids is None else jnp.repeat(jnp.asarray(segment_ids, jnp.int32), hkv, axis=0)
    bias = None if key_bias is None else jnp.repeat(jnp.asarray(key_bias, jnp.float32), hkv, axis=0)
    outs = []
    for lo in range(0, s, block_q):
        hi = min(s, lo + block_q)
        qb = qh[:, :, lo:hi].reshape(b * hkv, (hi - lo) * g, hd)
        row_pos = jnp.repeat(jnp.arange(lo, hi, dtype=jnp.int32), g)
        row_seg = None if seg is None else jnp.repeat(seg[:, lo:hi], g, axis=1)
        key_seg = None if seg is None else seg[:, :hi]
        key_b = None if bias is None else bias[:, :hi]
        out = _flash(qb, row_pos, kh[:, :hi], vh[:, :hi], valid[:, :hi], min(block_k, hi), row_seg, key_seg, key_b)
        outs.append(out.reshape(b, hkv, hi - lo, g, hd))
    out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=2)
    return out.transpose(0, 2, 1, 3, 4).reshape(b, s, hq * hd).astype(q.dtype)


def cached_attention(
    q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, key_valid: jnp.ndarray, *, scale: float, block_k: int = 512
) -> jnp.ndarray:
    """Attention of new query rows over a KV cache (decode).

    Args:
        q: ``(B, r, Hq, hd)``; k, v: ``(B, T, Hkv, hd)`` cache (the new tokens already
            written); key_valid: ``(B, T)`` bool, the cache slots the new rows may read.

    Returns:
        ``(B, r, Hq * hd)`` in ``q.dtype``.
    """
    b, r, hq, hd = q.shape
    hkv = k.shape[2]
    g = hq // hkv
    qh = (q * jnp.asarray(scale, q.dtype)).reshape(b, r, hkv, g, hd).transpose(0, 2, 1, 3, 4).reshape(b * hkv, r * g, hd)
    valid = jnp.repeat(key_valid, hkv, axis=0)
    out = _flash(qh, None, _heads_major(k), _heads_major(v), valid, min(block_k, k.shape[1]))
    return out.reshape(b, hkv, r, g, hd).transpose(0, 2, 1, 3, 4).reshape(b, r, hq * hd).astype(q.dtype)
