"""Splitting GEMM inputs into vectors and back (spec, SIC step 1)."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["vector_layout", "split_vectors", "join_vectors"]


def vector_layout(dim: int, vector_size: int) -> tuple[int, int]:
    """``(V, width)``: number of vectors per token and channels per vector.

    ``D > vector_size``: ``V = ceil(D / vector_size)`` vectors of ``vector_size`` channels
    (the channel axis is zero-padded to ``V * vector_size``). ``D <= vector_size``: one
    vector of ``D`` channels. Spec, SIC step 1.
    """
    if dim > vector_size:
        return -(-dim // vector_size), vector_size
    return 1, dim


def split_vectors(x: jnp.ndarray, vector_size: int) -> jnp.ndarray:
    """``(..., N, D) -> (..., N, V, width)``, zero-padding channels as ``vector_layout`` says."""
    dim = x.shape[-1]
    v, width = vector_layout(dim, vector_size)
    pad = v * width - dim
    if pad:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    return x.reshape(*x.shape[:-1], v, width)


def join_vectors(xv: jnp.ndarray, dim: int) -> jnp.ndarray:
    """Inverse of ``split_vectors``: ``(..., N, V, width) -> (..., N, dim)``, padding dropped."""
    x = xv.reshape(*xv.shape[:-2], xv.shape[-2] * xv.shape[-1])
    return x[..., :dim]
