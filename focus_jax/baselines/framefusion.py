"""FrameFusion's merge-then-prune token reduction, as its authors implement it, with static shapes.

Source: ``framefusion/main.py`` of github.com/thu-nics/FrameFusion (commit fbec1d2), class
``FrameFusion`` (``forward``, ``compute_similarity_and_token_index_by_patch``,
``merge_tokens_and_get_mask``, ``_compute_pruning_ratio``), called by
``framefusion/models/qwen2/modeling_qwen2.py`` before the attention of layer 0 and after the
attention of every layer of a prefill (``focus_jax.baselines.hooks``).

The reference removes tokens from the sequence; here the ``N`` visual slots stay and an
``alive`` mask says which remain (the model masks the others out of attention), so every
shape is static and the data-dependent schedule (how many layers merge, when pruning
happens) is carried in a ``FrameFusionState``.

Merging (one call): the remaining tokens are ordered by patch, then frame. Each token
whose cosine similarity with the previous one of the same patch (the previous remaining
frame) is ``>= similarity_lower_bound`` is merged: a run of such tokens and the token
before the run become their mean, in that token's slot. If the merged fraction reaches
the budget's sparsity bound (``pruning_ratio``), only the ``int(bound * n)`` most similar
merge and both merging and pruning end; if it is below ``ratio_lower_bound`` merging ends.
Pruning (once, the layer after merging ends): keep the ``round(n * (1 - ratio))`` tokens
the last prompt token attends to most (mean over heads).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.config import VisualGeometry

__all__ = ["FrameFusionState", "framefusion_merge", "framefusion_prune", "initial_state", "pruning_ratio", "rank_mask"]

_IGNORE = -2.0  # similarity of a token with no previous token of its patch (reference IGNORE_TOKEN)


class FrameFusionState(NamedTuple):
    """Per-prompt FrameFusion state (all ``()`` arrays but ``alive``).

    Attributes:
        alive: ``(N,)`` bool, visual tokens still in the sequence (grid order).
        finish_merging, finish_pruning: bool, the reference's flags.
        steps: int32, length of the reference's ``sparsity_list``.
        product: float32, ``prod(1 - s_i)`` over that list.
        total: float32, the sum of its running products (the token-layers spent).
    """

    alive: jnp.ndarray
    finish_merging: jnp.ndarray
    finish_pruning: jnp.ndarray
    steps: jnp.ndarray
    product: jnp.ndarray
    total: jnp.ndarray


def initial_state(num_tokens: int) -> FrameFusionState:
    """All ``num_tokens`` alive, nothing merged or pruned (reference ``prepare``)."""
    f = jnp.asarray(False)
    return FrameFusionState(jnp.ones((num_tokens,), bool), f, f, jnp.int32(0), jnp.float32(1.0), jnp.float32(0.0))


def pruning_ratio(state: FrameFusionState, cost: float, num_layers: int) -> jnp.ndarray:
    """Sparsity the remaining layers need to meet ``cost`` (reference ``_compute_pruning_ratio``).

    ``remain = L * cost - total``; ratio ``1 - remain / ((L - steps) * product)``, 0 when
    that exceeds 1. The reference raises when ``remain < 0``, which its schedule never
    reaches; here the ratio is then 1. Returns ``()`` float32.
    """
    remain = jnp.float32(num_layers * cost) - state.total
    share = remain / ((num_layers - state.steps).astype(jnp.float32) * state.product)
    return jnp.where(share > 1.0, 0.0, 1.0 - share).astype(jnp.float32)


def rank_mask(score: jnp.ndarray, candidates: jnp.ndarray, k: jnp.ndarray) -> jnp.ndarray:
    """``(n,)`` bool: the ``k`` (traced) highest-``score`` ``candidates`` (ties: lower index),
    as ``torch.topk`` picks them."""
    keyed = jnp.where(candidates, -score.astype(jnp.float32), jnp.inf)
    order = jnp.argsort(keyed, stable=True)
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
    return candidates & (rank < k)


def _by_patch(geometry: VisualGeometry) -> np.ndarray:
    """Grid index of each position of the by-patch order (patch-major, frame-minor)."""
    f, p = geometry.frames, geometry.frame_stride
    j = np.arange(f * p)
    return ((j % f) * p + j // f).astype(np.int32)


def framefusion_merge(
    tokens: jnp.ndarray,
    state: FrameFusionState,
    geometry: VisualGeometry,
    similarity_lower_bound: float,
    ratio_lower_bound: float,
    cost: float,
    num_layers: int,
) -> tuple[jnp.ndarray, FrameFusionState]:
    """One merging call of ``FrameFusion.forward`` (a no-op once merging has finished).

    Args:
        tokens: ``(N, D)`` hidden states of the visual slots (grid order; dead slots ignored).
        state: the prompt's ``FrameFusionState``.
        geometry: the grid (the patch of slot ``g`` is ``g % (H*W)``, its frame ``g // (H*W)``).
        similarity_lower_bound, ratio_lower_bound, cost: ``FrameFusionConfig`` fields.
        num_layers: the cost budget's layer count.

    Returns:
        ``(tokens', state')``: merged slots hold their group's mean (float32 arithmetic,
        cast back to the input dtype); merged-away slots are no longer ``alive``.
    """
    n = tokens.shape[0]
    geometry.check_tokens(n, "tokens")
    order = _by_patch(geometry)
    patch = jnp.asarray(order % geometry.frame_stride)
    x = tokens.astype(jnp.float32)[order]
    alive = state.alive[order]
    pos = jnp.arange(n, dtype=jnp.int32)
    last_alive = jax.lax.cummax(jnp.where(alive, pos, -1))
    prev = jnp.concatenate([jnp.full((1,), -1, jnp.int32), last_alive[:-1]])
    safe = jnp.maximum(prev, 0)
    norms = jnp.sqrt(jnp.sum(x * x, axis=-1))
    cos = jnp.sum(x * x[safe], axis=-1) / (norms * norms[safe])
    sim = jnp.where((prev >= 0) & (patch[safe] == patch), cos, _IGNORE)

    n_alive = jnp.sum(alive, dtype=jnp.int32)
    bound = pruning_ratio(state, cost, num_layers)
    above = alive & (sim >= similarity_lower_bound)
    ratio = jnp.sum(above, dtype=jnp.int32).astype(jnp.float32) / n_alive.astype(jnp.float32)
    by_threshold = ratio < bound
    k = jnp.floor(bound * n_alive.astype(jnp.float32)).astype(jnp.int32)
    merged = jnp.where(by_threshold, above, rank_mask(sim, alive, k))
    merged &= ~state.finish_merging

    anchor = jax.lax.cummax(jnp.where(alive & ~merged, pos, -1))  # the token before each run
    target = jnp.where(merged, jnp.maximum(anchor, 0), n)  # slot n: discard
    sums = jnp.zeros((n + 1, x.shape[1]), jnp.float32).at[target].add(x)[:n]
    counts = jnp.zeros((n + 1,), jnp.float32).at[target].add(1.0)[:n]
    merged_x = jnp.where((counts > 0)[:, None], (x + sums) / (counts[:, None] + 1.0), x)
    inverse = np.argsort(order)
    out = jnp.where((counts > 0)[inverse][:, None], merged_x[inverse].astype(tokens.dtype), tokens)

    run = ~state.finish_merging
    step_taken = run & by_threshold
    product = jnp.where(step_taken, state.product * (1.0 - ratio), state.product)
    new = FrameFusionState(
        alive=state.alive & ~merged[inverse],
        finish_merging=state.finish_merging | (run & (~by_threshold | (ratio < ratio_lower_bound))),
        finish_pruning=state.finish_pruning | (run & ~by_threshold),
        steps=state.steps + step_taken.astype(jnp.int32),
        product=product,
        total=jnp.where(step_taken, state.total + product, state.total),
    )
    return out, new


def framefusion_prune(
    attention: jnp.ndarray, state: FrameFusionState, cost: float, num_layers: int
) -> FrameFusionState:
    """The pruning call of ``FrameFusion.forward`` (acts only when merging has finished and
    pruning has not).

    Args:
        attention: ``(N,)`` float, the attention probability the last prompt token pays
            each visual slot, averaged over heads (dead slots ignored).
        state: the prompt's state.

    Returns:
        ``state'`` with the ``round(n_alive * (1 - pruning_ratio))`` most attended tokens
        alive and ``finish_pruning`` set.
    """
    act = state.finish_merging & ~state.finish_pruning
    n_alive = jnp.sum(state.alive, dtype=jnp.int32).astype(jnp.float32)
    keep = jnp.round(n_alive * (1.0 - pruning_ratio(state, cost, num_layers))).astype(jnp.int32)
    kept = rank_mask(attention, state.alive, keep)
    return state._replace(alive=jnp.where(act, kept, state.alive), finish_pruning=state.finish_pruning | act)


framefusion_merge = jax.jit(
    framefusion_merge, static_argnames=("geometry", "similarity_lower_bound", "ratio_lower_bound", "cost", "num_layers")
)
framefusion_prune = jax.jit(framefusion_prune, static_argnames=("cost", "num_layers"))
