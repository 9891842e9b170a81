"""Explicit checkpoint-key rules: Hugging Face tensor names <-> parameter pytree leaves.

Each model family's ``params.py`` lists, for a given config, every tensor its
checkpoint must contain as a ``KeyRule``: the Hugging Face name, the pytree path, the
layer (for parameters stacked over layers) and the layout conversion. Loading and saving
are then mechanical and strict:

- a tensor the rules expect but the checkpoint lacks -> ``CheckpointError`` naming it;
- a checkpoint tensor no rule claims -> ``CheckpointError`` naming it;
- a tensor whose shape differs from what the config implies -> ``CheckpointError``
  naming it, with both shapes;
- a tensor that is not floating point (every weight is), or holds NaN/Inf (after the
  cast to the parameter dtype: a float64 value beyond float32's range counts) ->
  ``CheckpointError`` naming it;
- a parameter dtype that is not floating point (``int8``, ``bool``: every weight would be
  truncated) -> ``CheckpointError``.

Layout conversions (``kind``): ``linear`` (PyTorch ``(out, in)`` <-> ``(in, out)``),
``conv`` (``(D, C, p, p)`` <-> ``(C*p*p, D)``), ``copy`` (same layout).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from focus_jax.models.safetensors_io import CheckpointError

__all__ = ["CheckpointError", "KeyRule", "export_tensors", "hf_shape", "load_tensors", "param_dtype"]

#: Parameter dtypes a checkpoint may be loaded in.
PARAM_DTYPES = ("float32", "bfloat16", "float16", "float64")


@dataclasses.dataclass(frozen=True)
class KeyRule:
    """One checkpoint tensor.

    Attributes:
        key: Hugging Face tensor name.
        path: keys into the parameter pytree (nested dicts).
        layer: index into the leading (stacked-layers) axis of the leaf, or None.
        kind: ``linear``, ``conv`` or ``copy`` (see the module docstring).
        shape: the checkpoint shape, for kinds it cannot be derived from (``conv``).
    """

    key: str
    path: tuple[str, ...]
    layer: int | None = None
    kind: str = "copy"
    shape: tuple[int, ...] | None = None


def _leaf_shape(shape: tuple[int, ...], rule: KeyRule) -> tuple[int, ...]:
    return shape[1:] if rule.layer is not None else shape


def hf_shape(jax_shape: tuple[int, ...], rule: KeyRule) -> tuple[int, ...]:
    """Shape of the checkpoint tensor for a pytree leaf of ``jax_shape``."""
    if rule.shape is not None:
        return tuple(rule.shape)
    shape = _leaf_shape(tuple(jax_shape), rule)
    return shape[::-1] if rule.kind == "linear" else shape


def _to_jax(array: np.ndarray, rule: KeyRule) -> np.ndarray:
    if rule.kind == "linear":
        return array.T
    if rule.kind == "conv":
        return array.reshape(array.shape[0], -1).T
    return array


def _from_jax(array: np.ndarray, rule: KeyRule) -> np.ndarray:
    if rule.kind == "linear":
        return array.T
    if rule.kind == "conv":
        return array.T.reshape(rule.shape)
    return array


def _get(tree, path):
    for p in path:
        tree = tree[p]
    return tree


def _set(tree: dict, path, value):
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def param_dtype(dtype) -> np.dtype:
    """The numpy dtype for parameter dtype ``dtype`` (bfloat16 as ``ml_dtypes.bfloat16``).

    Raises:
        CheckpointError: ``dtype`` is not one of ``PARAM_DTYPES``.
    """
    try:
        name = jnp.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name not in PARAM_DTYPES:
        raise CheckpointError(f"parameter dtype must be one of {', '.join(PARAM_DTYPES)}, got {name}")
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def _is_float(dtype: np.dtype) -> bool:
    return dtype == np.dtype(ml_dtypes.bfloat16) or np.issubdtype(dtype, np.floating)


def load_tensors(tensors: dict[str, np.ndarray], rules: list[KeyRule], abstract: dict, dtype) -> dict:
    """Build the parameter pytree from checkpoint ``tensors`` with ``rules``.

    Args:
        tensors: ``{hf_name: array}`` (any float dtype; cast to ``dtype``).
        rules: the family's ``KeyRule`` list for this config.
        abstract: ``jax.eval_shape`` of the family's ``init_params``: the target shapes.
        dtype: parameter dtype.

    Returns:
        The parameter pytree of numpy arrays (stacked over layers where the rules say).

    Raises:
        CheckpointError: missing, unexpected, mis-shaped, non-float or non-finite tensors,
            each named; a non-float ``dtype``.
    """
    np_dtype = param_dtype(dtype)
    claimed = {r.key for r in rules}
    unexpected = sorted(set(tensors) - claimed)
    if unexpected:
        raise CheckpointError(
            f"checkpoint has tensors the model does not use: {unexpected[0]!r}"
            + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
        )
    missing = [r.key for r in rules if r.key not in tensors]
    if missing:
        raise CheckpointError(
            f"checkpoint is missing tensor {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    out: dict = {}
    stacks: dict[tuple, list] = {}
    for rule in rules:
        target = _get(abstract, rule.path).shape
        want = hf_shape(target, rule)
        array = tensors[rule.key]
        if tuple(array.shape) != tuple(want):
            raise CheckpointError(
                f"tensor {rule.key!r} has shape {tuple(array.shape)}, the config implies {tuple(want)}"
            )
        if not _is_float(np.dtype(array.dtype)):
            raise CheckpointError(f"tensor {rule.key!r} has dtype {array.dtype}; weights must be floating point")
        with np.errstate(over="ignore"):  # an overflowing cast is reported below as non-finite
            value = np.asarray(_to_jax(array, rule)).astype(np_dtype)
        if not np.isfinite(value).all():
            raise CheckpointError(f"tensor {rule.key!r} holds NaN or infinite values (in {np_dtype.name})")
        if rule.layer is None:
            _set(out, rule.path, value)
        else:
            stack = stacks.setdefault(rule.path, [None] * target[0])
            stack[rule.layer] = value
    for path, stack in stacks.items():
        _set(out, path, np.stack(stack))
    return out


def export_tensors(params: dict, rules: list[KeyRule]) -> dict[str, np.ndarray]:
    """Inverse of ``load_tensors``: ``{hf_name: numpy array}`` in Hugging Face layouts."""
    out = {}
    for rule in rules:
        leaf = np.asarray(jax.device_get(_get(params, rule.path)))
        if rule.layer is not None:
            leaf = leaf[rule.layer]
        out[rule.key] = np.ascontiguousarray(_from_jax(leaf, rule))
    return out
