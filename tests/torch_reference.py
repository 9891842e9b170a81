"""A PyTorch implementation of SIC written from the spec, structured like the reference.

It follows ../shared/spec/focus-algorithm.md step by step and, like the reference
implementation, materialises the whole candidate window ``(window, N, V, width)`` and
merges groups with ``index_add``. Two uses:

- an independent implementation for property tests on random geometries (the golden
  vectors cover only a dozen cases);
- the PyTorch baseline that ``benchmarks/concentration.py`` times focus_jax against.

Differences from the reference are limited to thresholds below 0, where the spec's rule
"zero vectors never match" is followed (a zero vector or zero candidate is not a
candidate at all).
"""

from __future__ import annotations

import numpy as np
import torch


def _shift(x: torch.Tensor, offset: int) -> torch.Tensor:
    """Shift along the token axis (dim 0) by ``offset`` towards higher indices, zero fill."""
    if offset == 0:
        return x
    out = torch.zeros_like(x)
    if offset < x.shape[0]:
        out[offset:] = x[:-offset]
    return out


def torch_sic(
    x: np.ndarray | torch.Tensor,
    frames: int,
    height: int,
    width: int,
    threshold: float = 0.9,
    vector_size: int = 32,
    block_size: int = 2,
    frame_block_size: int = 2,
    gemm_m_size: int | None = None,
):
    """SIC of ``x`` ``(N, D)``; returns ``(output, mask_similar, mask_zero, group_index, sparsity)``."""
    x = torch.as_tensor(x)
    n, dim = x.shape
    if dim > vector_size:
        v, w = -(-dim // vector_size), vector_size
        x = torch.nn.functional.pad(x, (0, v * w - dim))
    else:
        v, w = 1, dim
    xv = x.reshape(n, v, w)
    zero = xv.abs().sum(-1) == 0
    tile = None
    if gemm_m_size is not None:
        count = torch.cumsum((~zero.all(-1)).to(torch.int64), 0)
        tile = torch.clamp(count - 1, min=0) // gemm_m_size
    mf, mh, mw = min(frame_block_size, frames), min(block_size, height), min(block_size, width)
    offsets = [t * height * width + a * width + b for t in range(mf) for a in range(mh) for b in range(mw)]
    cands = torch.zeros((len(offsets), n, v, w), dtype=torch.float32)
    valid = torch.zeros((len(offsets), n, v), dtype=torch.bool)
    pos = torch.arange(n)
    for i, off in enumerate(offsets):
        if off == 0:
            continue
        cands[i] = _shift(xv.float(), off)
        ok = (pos >= off)[:, None] & ~_shift(zero, off) & ~zero
        if tile is not None:
            ok &= (tile == _shift(tile, off))[:, None]
        valid[i] = ok
    # like the reference: cosine on the token expanded over the whole window
    xf = xv.float()[None].expand_as(cands)
    dot = (xf * cands).sum(-1)
    den = torch.norm(xf, dim=-1) * torch.norm(cands, dim=-1)
    sim = torch.where(valid & (den != 0), (dot / torch.where(den == 0, 1.0, den)).clamp(-1, 1), -2.0)
    best, arg = sim.max(0)  # first maximum on ties
    mask = best > threshold
    off_t = torch.tensor(offsets)[arg]
    flat = torch.arange(n * v).reshape(n, v)
    ptr = torch.where(mask, flat - off_t * v, flat).reshape(-1)
    for _ in range(frames):
        nxt = ptr[ptr]
        if torch.equal(nxt, ptr):
            break
        ptr = nxt
    sums = torch.zeros((n * v, w), dtype=torch.float32).index_add_(0, ptr, xv.reshape(n * v, w).float())
    counts = torch.zeros(n * v).index_add_(0, ptr, torch.ones(n * v)).clamp(min=1)
    mean = (sums / counts[:, None]).to(x.dtype)
    out = mean[ptr].reshape(n, v * w)[:, :dim]
    sparsity = (mask.sum() + zero.sum()).item() / (n * v)
    return out, mask, zero, ptr.reshape(n, v).to(torch.int32), sparsity
