"""Placing a LLaVA-OneVision model on a device mesh with ``NamedSharding``.

Mesh axes: ``data`` (the batch) and ``model`` (tensor parallelism, Megatron style):
column-parallel GEMMs (q/k/v, gate/up, the vision MLP's ``fc1``, the projector's first
layer, the LM head) split their output features over ``model``, row-parallel ones (o,
down, ``fc2``) their input features; norms, biases of row-parallel layers, position
embeddings and the newline vector are replicated. A leaf whose split axis does not divide
by the mesh size is replicated. Everything else is left to XLA's sharding propagation
inside the jitted forward, so the same code runs on one device or many and gives the
same logits (tests/test_models_sharding.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["make_mesh", "param_spec", "shard_params", "shard_batch"]

# (pytree path suffix, split axis counted from the end): -1 output features, -2 input features
_COLUMN, _ROW = -1, -2
_RULES = {
    ("q", "w"): _COLUMN, ("q", "b"): _COLUMN, ("k", "w"): _COLUMN, ("k", "b"): _COLUMN,
    ("v", "w"): _COLUMN, ("v", "b"): _COLUMN, ("o", "w"): _ROW,
    ("gate", "w"): _COLUMN, ("up", "w"): _COLUMN, ("down", "w"): _ROW,
    ("fc1", "w"): _COLUMN, ("fc1", "b"): _COLUMN, ("fc2", "w"): _ROW,
    ("linear_1", "w"): _COLUMN, ("linear_1", "b"): _COLUMN, ("linear_2", "w"): _ROW,
    ("lm_head",): _COLUMN, ("embed",): _ROW,
}  # fmt: skip


def make_mesh(data: int, model: int, devices=None) -> jax.sharding.Mesh:
    """A ``(data, model)`` mesh over ``data * model`` devices (automatic sharding axes).

    Raises:
        ValueError: fewer devices than ``data * model``.
    """
    devices = jax.devices() if devices is None else devices
    if data * model > len(devices):
        raise ValueError(f"a {data} x {model} mesh needs {data * model} devices, {len(devices)} available")
    return jax.make_mesh(
        (data, model), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto), devices=devices[: data * model]
    )


def param_spec(path: tuple[str, ...], shape: tuple[int, ...], mesh) -> P:
    """The ``PartitionSpec`` of the parameter at ``path`` (see the module docstring)."""
    size = mesh.shape["model"]
    for suffix, axis in _RULES.items():
        if path[-len(suffix) :] == suffix and "head" not in path[:-len(suffix)]:
            if len(shape) >= -axis and shape[axis] % size == 0:
                spec = [None] * len(shape)
                spec[axis] = "model"
                return P(*spec)
            break
    return P()


def shard_params(params: dict, mesh, dtype=None) -> dict:
    """``params`` as arrays placed on ``mesh`` (cast to ``dtype`` first if given)."""

    def place(path, leaf):
        keys = tuple(getattr(k, "key", str(k)) for k in path)
        array = jnp.asarray(leaf, dtype) if dtype is not None else jnp.asarray(leaf)
        return jax.device_put(array, NamedSharding(mesh, param_spec(keys, array.shape, mesh)))

    return jax.tree_util.tree_map_with_path(place, params)


def shard_batch(arrays: dict, mesh) -> dict:
    """Split the leading (batch) axis of every array over ``data`` (replicate if it does not divide)."""
    size = mesh.shape["data"]

    def place(a):
        if a is None:
            return None
        spec = P("data") if a.ndim and a.shape[0] % size == 0 else P()
        return jax.device_put(a, NamedSharding(mesh, spec))

    return {k: place(v) for k, v in arrays.items()}
