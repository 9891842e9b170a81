"""Building blocks shared by the model families: dense layers, norms, activations.

Parameters are plain dicts of arrays. Linear weights are stored ``(in, out)`` (the
transpose of PyTorch's ``nn.Linear.weight``) so that a layer is ``x @ w + b``. Norms
compute in float32 and round once to the input dtype, as transformers does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["ACTIVATIONS", "activation", "dense", "layer_norm", "rms_norm"]

#: transformers' activation names -> JAX functions with the same numerics.
ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # erf form (torch GELU default)
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "silu": jax.nn.silu,
}


def activation(name: str):
    """The activation function transformers calls ``name``.

    Raises:
        ValueError: ``name`` is not supported.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; supported: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def dense(x: jnp.ndarray, p: dict) -> jnp.ndarray:
    """``x @ p['w'] (+ p['b'])``: ``(..., in) -> (..., out)`` in ``x.dtype``."""
    y = jnp.matmul(x, p["w"].astype(x.dtype))
    if "b" in p:
        y = y + p["b"].astype(x.dtype)
    return y


def layer_norm(x: jnp.ndarray, p: dict, eps: float) -> jnp.ndarray:
    """LayerNorm over the last axis with ``p['scale']`` and ``p['bias']`` (float32 inside)."""
    xf = x.astype(jnp.float32)
    mean = jnp.mean(xf, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
    y = (xf - mean) * jax.lax.rsqrt(var + eps)
    return (y * p["scale"].astype(jnp.float32) + p["bias"].astype(jnp.float32)).astype(x.dtype)


def rms_norm(x: jnp.ndarray, scale: jnp.ndarray, eps: float) -> jnp.ndarray:
    """RMSNorm as Qwen2RMSNorm: normalise in float32, round to ``x.dtype``, then scale."""
    xf = x.astype(jnp.float32)
    y = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + eps)
    return scale.astype(x.dtype) * y.astype(x.dtype)
