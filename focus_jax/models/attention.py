"""Grouped-query attention for prefill and decode, without an ``S x S`` probability matrix.

Prefill splits the queries into blocks (a static Python loop, at most ``max_blocks``). A
query block only needs the keys up to its last row (causality), so block ``i`` reads
``(i + 1) * block`` keys: about half the work of the full square. Within a block, keys
are processed whole when the block's scores fit in ``max_block_bytes``, else in key
chunks with an online (flash-style) softmax, so peak memory is bounded for any sequence
length. The loops have static trip counts: the function is differentiable.

Masking: row ``i`` attends to column ``j`` when ``j <= i`` (index order: after SEC the
kept tokens stay in their original order, so this equals comparing original positions)
and key ``j`` is valid. Every row also attends to itself, so padding rows stay finite
(their outputs are never used).

Numerics: scores, softmax and the weighted sum accumulate in float32; the output is
rounded to the query dtype (as transformers' eager/SDPA attention on CPU).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["causal_attention", "cached_attention"]

_NEG = float(jnp.finfo(jnp.float32).min)


def _group(q, num_kv_heads):
    """``(B, S, Hq, hd) -> (B, S, Hkv, G, hd)``: query head ``h`` uses kv head ``h // G``."""
    b, s, hq, hd = q.shape
    return q.reshape(b, s, num_kv_heads, hq // num_kv_heads, hd)


def _dense_block(qg, k, v, allowed, scale):
    """Attention of query rows ``qg`` ``(B, r, Hkv, G, hd)`` over all of ``k``/``v``
    ``(B, t, Hkv, hd)`` with ``allowed`` ``(B, r, t)``. Returns float32 ``(B, r, Hkv, G, hd)``."""
    scores = jnp.einsum("brkgd,btkd->bkgrt", qg, k, preferred_element_type=jnp.float32) * scale
    scores = jnp.where(allowed[:, None, None], scores, _NEG)
    probs = jax.nn.softmax(scores, axis=-1)
    return jnp.einsum("bkgrt,btkd->brkgd", probs.astype(v.dtype), v, preferred_element_type=jnp.float32)


def _online_block(qg, k, v, allowed, scale, chunk):
    """As ``_dense_block`` but over key chunks of ``chunk`` with a running max and sum."""
    b, r, hkv, g, hd = qg.shape
    t = k.shape[1]
    n_chunks = -(-t // chunk)
    pad = n_chunks * chunk - t
    if pad:
        k = jnp.pad(k, ((0, 0), (0, pad), (0, 0), (0, 0)))
        v = jnp.pad(v, ((0, 0), (0, pad), (0, 0), (0, 0)))
        allowed = jnp.pad(allowed, ((0, 0), (0, 0), (0, pad)))
    ks = k.reshape(b, n_chunks, chunk, hkv, hd).swapaxes(0, 1)
    vs = v.reshape(b, n_chunks, chunk, hkv, hd).swapaxes(0, 1)
    masks = allowed.reshape(b, r, n_chunks, chunk).transpose(2, 0, 1, 3)

    def step(carry, xs):
        m, denom, acc = carry
        kc, vc, mc = xs
        s = jnp.einsum("brkgd,btkd->bkgrt", qg, kc, preferred_element_type=jnp.float32) * scale
        s = jnp.where(mc[:, None, None], s, _NEG)
        m_new = jnp.maximum(m, jnp.max(s, axis=-1))
        p = jnp.exp(s - m_new[..., None])
        correction = jnp.exp(m - m_new)
        denom = denom * correction + jnp.sum(p, axis=-1)
        pv = jnp.einsum("bkgrt,btkd->bkgrd", p.astype(vc.dtype), vc, preferred_element_type=jnp.float32)
        acc = acc * correction[..., None] + pv
        return (m_new, denom, acc), None

    init = (
        jnp.full((b, hkv, g, r), _NEG, jnp.float32),
        jnp.zeros((b, hkv, g, r), jnp.float32),
        jnp.zeros((b, hkv, g, r, hd), jnp.float32),
    )
    (_, denom, acc), _ = lax.scan(step, init, (ks, vs, masks))
    out = acc / denom[..., None]
    return out.transpose(0, 3, 1, 2, 4)


def _attend(qg, k, v, allowed, scale, max_block_bytes):
    b, r, hkv, g, _ = qg.shape
    t = k.shape[1]
    if b * hkv * g * r * t * 4 <= max_block_bytes:
        return _dense_block(qg, k, v, allowed, scale)
    chunk = max(128, max_block_bytes // (4 * b * hkv * g * r))
    return _online_block(qg, k, v, allowed, scale, chunk)


def causal_attention(
    q: jnp.ndarray,
    k: jnp.ndarray,
    v: jnp.ndarray,
    key_valid: jnp.ndarray,
    *,
    scale: float,
    block: int = 512,
    max_blocks: int = 16,
    max_block_bytes: int = 64 << 20,
) -> jnp.ndarray:
    """Causal grouped-query self-attention of a prefill.

    Args:
        q: ``(B, S, Hq, hd)`` rotated queries.
        k, v: ``(B, S, Hkv, hd)`` rotated keys and values, ``Hq % Hkv == 0``.
        key_valid: ``(B, S)`` bool, False at padding.
        scale: score scale (``hd ** -0.5``).
        block: query rows per block (raised so there are at most ``max_blocks``).
        max_block_bytes: float32 score bytes above which a block switches to key chunks.

    Returns:
        ``(B, S, Hq * hd)`` in ``q.dtype``.
    """
    b, s, hq, hd = q.shape
    hkv = k.shape[2]
    qg = _group(q, hkv)
    block = max(block, math.ceil(s / max_blocks))
    outs = []
    for lo in range(0, s, block):
        hi = min(s, lo + block)
        rows = jnp.arange(lo, hi)[:, None]
        cols = jnp.arange(hi)[None, :]
        allowed = ((cols <= rows)[None] & key_valid[:, None, :hi]) | (cols == rows)[None]
        outs.append(_attend(qg[:, lo:hi], k[:, :hi], v[:, :hi], allowed, scale, max_block_bytes))
    out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=1)
    return out.reshape(b, s, hq * hd).astype(q.dtype)


def cached_attention(
    q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, key_valid: jnp.ndarray, *, scale: float, max_block_bytes: int = 64 << 20
) -> jnp.ndarray:
    """Attention of new query rows over a KV cache (decode).

    Args:
        q: ``(B, r, Hq, hd)``; k, v: ``(B, T, Hkv, hd)`` cache (the new tokens already
            written); key_valid: ``(B, T)`` bool, the cache slots each new row may read
            (the same for the ``r`` rows).

    Returns:
        ``(B, r, Hq * hd)`` in ``q.dtype``.
    """
    b, r, hq, hd = q.shape
    qg = _group(q, k.shape[2])
    allowed = jnp.broadcast_to(key_valid[:, None, :], (b, r, k.shape[1]))
    return _attend(qg, k, v, allowed, scale, max_block_bytes).reshape(b, r, hq * hd).astype(q.dtype)
