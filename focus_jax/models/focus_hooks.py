"""Focus inside a decoder: where SIC and SEC act during prefill (spec, "Where concentration
happens"), for a batch of prompts with static shapes.

A decoder layer calls ``concentrate(name, x)`` on each GEMM input (``q_proj``, ``query``,
``o_proj``, ``gate_proj``, ``down_proj``) and, at an SEC layer, ``semantic_prune`` after
its attention block (relaxed Focus: ``soft_prune``, which keeps every row and weights it;
later attention reads the weights through ``key_bias``). The state that links the calls is a ``VisualSpan``: where the
(kept) visual tokens sit in the current sequence of each prompt and which grid positions
they came from.

The plan also says how the decisions are computed (``FocusPlan.arithmetic``): "float"
(the algorithm) or "int8" (the integer arithmetic of the generated RTL,
``focus_jax.quant``: INT8 SIC decisions, fixed-point SEC importances), and may carry a
host ``capture`` callback that sees every SIC input and SEC attention map (``SICInput``,
``SECInput``): the traces the RTL is verified on.

Static shapes: the plan (``FocusPlan``) fixes the visual grid, the number of visual
tokens kept after every SEC layer (``k = int(N * alpha)``, a Python int) and an upper
bound on the query-text rows, so every array has a shape known at trace time; only the
position of the visual span inside each prompt (``VisualSpan.start``) is data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from focus_jax.concentration import (
    SICResult,
    attention_importance,
    select_tokens,
    sequence_keep_indices,
    similarity_concentration,
    soft_top_k,
    vector_layout,
)
from focus_jax.config import FocusConfig, VisualGeometry
from focus_jax.errors import InputError
from focus_jax.quant import quantized_attention_importance, quantized_similarity_concentration
from focus_jax.trace import GEMM_NAMES

__all__ = [
    "ARITHMETICS",
    "FocusPlan",
    "SECInput",
    "SICInput",
    "VisualSpan",
    "check_arithmetic",
    "GemmRecord",
    "RelaxedRecord",
    "concentrate",
    "kept_sic",
    "sec_importance",
    "semantic_prune",
    "soft_prune",
    "key_bias",
]

#: How Focus computes its decisions (``FocusPlan.arithmetic``).
ARITHMETICS = ("float", "int8")


def check_arithmetic(arithmetic) -> str:
    """``arithmetic`` if it is one of ``ARITHMETICS``.

    Raises:
        InputError: otherwise.
    """
    if arithmetic not in ARITHMETICS:
        raise InputError(f"Focus arithmetic must be one of {ARITHMETICS}, got {arithmetic!r}")
    return arithmetic


class SICInput(NamedTuple):
    """One prompt's SIC input, as ``FocusPlan.capture`` receives it (host numpy).

    Attributes:
        name: GEMM input (``focus_jax.trace.GEMM_NAMES``).
        geometry, config: the plan's grid and Focus configuration.
        x: ``(n, D)`` float32 visual tokens entering SIC.
        positions: ``(n,)`` int32 grid positions of the rows after SEC's pruning, None before.
        threshold: the threshold this SIC used.
    """

    name: str
    geometry: VisualGeometry
    config: FocusConfig
    x: np.ndarray
    positions: np.ndarray | None
    threshold: float


class SECInput(NamedTuple):
    """One prompt's SEC attention map, as ``FocusPlan.capture`` receives it (host numpy).

    Attributes:
        probs: ``(H, R, n)`` float32 attention probabilities of the ``R`` query-text rows
            over the ``n`` kept visual tokens (what the SEC unit is streamed).
        k: visual tokens SEC keeps.
    """

    probs: np.ndarray
    k: int


@dataclasses.dataclass(frozen=True)
class FocusPlan:
    """Everything static about Focus for one batch: configuration, grid, SEC schedule.

    Attributes:
        config: the Focus configuration.
        geometry: the visual grid (frames x rows x columns after pooling) of every prompt
            of the batch; ``N = geometry.num_tokens`` visual tokens per prompt.
        num_layers: decoder layers; SEC layers at or beyond it are ignored (the paper's
            LLaVA-OneVision schedule names layer 25 of a 24-layer 0.5B decoder).
        query_rows: upper bound on the query-text rows (tokens after the visual span) of
            any prompt: SEC's importance reads the attention probabilities of these rows
            only (spec, SEC step 2), so no ``S x S`` matrix is ever formed.
        arithmetic: "float", or "int8": SIC decisions by
            ``focus_jax.quant.quantized_similarity_concentration`` (every SIC, after SEC's
            pruning too) and SEC importances by ``quantized_attention_importance`` (top-k on
            the integers), the generated RTL's arithmetic. Exact (non-relaxed) path only.
        capture: None, or a host callback called with an ``SICInput`` per prompt and SIC
            call and an ``SECInput`` per prompt and SEC layer (``jax.debug.callback``;
            part of the plan, so a jitted prefill is retraced when it changes).

    Raises:
        ValueError: ``query_rows`` < 1. InputError: unknown ``arithmetic``.
    """

    config: FocusConfig
    geometry: VisualGeometry
    num_layers: int
    query_rows: int
    arithmetic: str = "float"
    capture: Callable | None = None

    def __post_init__(self):
        if self.query_rows < 1:
            raise ValueError(
                f"SEC needs at least one query-text token after the visual tokens, got query_rows={self.query_rows}"
            )
        check_arithmetic(self.arithmetic)

    @property
    def num_visual(self) -> int:
        return self.geometry.num_tokens

    @property
    def sec_steps(self) -> tuple[tuple[int, int], ...]:
        """``((layer, k), ...)``: the SEC layers below ``num_layers`` and the visual tokens
        each keeps (spec, SEC step 3: ``int(N * alpha)`` clipped to ``[1, kept before]``)."""
        steps, kept = [], self.num_visual
        for layer in self.config.sec_layers:
            if layer < self.num_layers:
                kept = self.config.kept_visual_tokens(self.num_visual, layer, kept)
                steps.append((layer, kept))
        return tuple(steps)

    def kept_tokens(self) -> np.ndarray:
        """``(num_layers, 2)`` int32: visual tokens entering each layer's attention and MLP
        blocks (the ``kept_tokens`` field of ``focus_jax.trace``)."""
        out = np.empty((self.num_layers, 2), np.int32)
        kept, sec = self.num_visual, dict(self.sec_steps)
        for layer in range(self.num_layers):
            out[layer, 0] = kept
            kept = sec.get(layer, kept)
            out[layer, 1] = kept
        return out


class VisualSpan(NamedTuple):
    """Where the kept visual tokens of each prompt are.

    Attributes:
        start: ``(B,)`` int32, sequence index of the first visual token. The prefix text
            before it is never pruned, so ``start`` does not change with SEC.
        keep: ``(B, n)`` int32 grid positions (ascending) of the ``n`` kept visual tokens,
            which occupy ``[start, start + n)`` of the current sequence; None while all
            ``N`` are kept.
        weight: relaxed SEC only: ``(B, N)`` float32 soft keep weight of every visual
            token (all rows stay in the sequence); None: hard (every row present is kept).
    """

    start: jnp.ndarray
    keep: jnp.ndarray | None = None
    weight: jnp.ndarray | None = None


class GemmRecord(NamedTuple):
    """SIC result of one GEMM input, on the original grid: ``(B, N, V)`` arrays
    (pruned tokens are zero vectors: ``mask_zero`` set, ``group_index`` pointing to
    themselves)."""

    mask_zero: jnp.ndarray
    mask_similar: jnp.ndarray
    group_index: jnp.ndarray


class RelaxedRecord(NamedTuple):
    """Relaxed SIC of one GEMM input: expected counts per prompt, ``(B,)`` float32 each
    (see ``focus_jax.trace.RelaxedFocusTrace``): visual tokens kept (not pruned, not all
    zero), zero vectors and similar vectors."""

    kept_tokens: jnp.ndarray
    zero_vectors: jnp.ndarray
    similar_vectors: jnp.ndarray


def _visual_count(plan: FocusPlan, span: VisualSpan) -> int:
    return plan.num_visual if span.keep is None else span.keep.shape[1]


def _slice_visual(x, start, n):
    return jax.vmap(lambda xb, s: lax.dynamic_slice_in_dim(xb, s, n, axis=0))(x, start)


def _write_visual(x, vis, start):
    return jax.vmap(lambda xb, vb, s: lax.dynamic_update_slice_in_dim(xb, vb, s, axis=0))(x, vis, start)


def _unmerged_record(plan: FocusPlan, span: VisualSpan, dim: int) -> GemmRecord:
    """Record of a GEMM input SIC did not touch (``sic=False``): only pruned tokens are sparse."""
    v, _ = vector_layout(dim, plan.config.vector_size)
    b, n = span.start.shape[0], plan.num_visual
    kept = (
        jnp.ones((b, n), bool)
        if span.keep is None
        else jax.vmap(lambda k: jnp.zeros((n,), bool).at[k].set(True))(span.keep)
    )
    mask_zero = jnp.broadcast_to(~kept[..., None], (b, n, v))
    group = jnp.broadcast_to(jnp.arange(n * v, dtype=jnp.int32).reshape(n, v), (b, n, v))
    return GemmRecord(mask_zero, jnp.zeros((b, n, v), bool), group)


def kept_sic(vis: jnp.ndarray, keep: jnp.ndarray, geom: VisualGeometry, cfg: FocusConfig):
    """SIC of the kept tokens of a pruned grid, computed on the kept tokens only.

    ``focus_jax.concentration.similarity_concentration`` with ``positions=keep``: equal,
    bit for bit, to scattering ``vis`` to the grid with zeros at pruned positions, running
    SIC on the grid and gathering the kept rows back (the spec's definition;
    ``tests/test_models_focus.py`` checks it). Working on ``n`` kept tokens instead of the
    ``N``-token grid makes the cost follow SEC's pruning (e.g. 4-9x less for 235-627 of
    1568 tokens at ``D = 4864``).

    Args:
        vis: ``(n, D)`` kept visual tokens, in grid order.
        keep: ``(n,)`` int32 ascending grid positions of ``vis``.
        geom, cfg: grid and SIC parameters (window, vector size, m-tile, threshold).

    Returns:
        ``(output (n, D), mask_similar (n, V), mask_zero (n, V), group (n, V))`` where
        ``group`` is the flat *grid* index ``grid_token * V + slot`` of each group root.
    """
    res = similarity_concentration(vis, geom, cfg, positions=keep)
    return res.output, res.mask_similar, res.mask_zero, res.group_index


def _grid_record(plan: FocusPlan, keep, mask, zero, group) -> GemmRecord:
    """``kept_sic`` results ``(B, n, V)`` on the ``(B, N, V)`` grid: pruned tokens are zero
    vectors pointing to themselves."""
    n_grid = plan.num_visual
    v = mask.shape[-1]

    def one(keep_b, mask_b, zero_b, group_b):
        grid_mask = jnp.zeros((n_grid, v), bool).at[keep_b].set(mask_b)
        grid_zero = jnp.ones((n_grid, v), bool).at[keep_b].set(zero_b)
        grid_group = jnp.arange(n_grid * v, dtype=jnp.int32).reshape(n_grid, v).at[keep_b].set(group_b)
        return GemmRecord(grid_zero, grid_mask, grid_group)

    return jax.vmap(one)(keep, mask, zero, group)


def _relaxed_record(res, weight, v: int) -> RelaxedRecord:
    """Expected counts of a relaxed ``SICResult`` of ``(B, N, V)`` rows with keep weights ``(B, N)``."""
    zero_v = jnp.sum(res.mask_zero, axis=-1).astype(jnp.float32)
    w = jnp.ones(zero_v.shape, jnp.float32) if weight is None else weight
    kept = jnp.sum(w * (zero_v < v), axis=-1)
    zero = jnp.sum(w * zero_v + (1.0 - w) * v, axis=-1)
    similar = jnp.zeros_like(kept) if res.soft_similar is None else jnp.sum(res.soft_similar, axis=(-2, -1))
    return RelaxedRecord(kept, zero, similar)


def _capture_sic(plan: FocusPlan, name: str, vis, keep, threshold) -> None:
    """``plan.capture(SICInput(...))`` for every prompt of ``vis`` ``(B, n, D)``."""
    thr = jnp.asarray(plan.config.similarity_threshold if threshold is None else threshold, jnp.float32)
    pos = jnp.zeros(vis.shape[:2], jnp.int32) if keep is None else keep

    def host(v, t, p):
        for vb, pb in zip(np.asarray(v, np.float32), np.asarray(p, np.int32)):
            plan.capture(SICInput(name, plan.geometry, plan.config, vb, None if keep is None else pb, float(t)))

    jax.debug.callback(host, vis, thr, pos)


def concentrate(
    plan: FocusPlan,
    span: VisualSpan,
    name: str,
    x: jnp.ndarray,
    *,
    threshold=None,
    relaxed: bool = False,
    temperature=0.05,
) -> tuple[jnp.ndarray, GemmRecord | RelaxedRecord]:
    """SIC of the visual part of one GEMM input (spec, "SIC"), batched.

    Args:
        plan: static Focus plan.
        span: where the kept visual tokens are (see ``VisualSpan``).
        name: the GEMM input's trace name (one of ``focus_jax.trace.GEMM_NAMES``).
        x: ``(B, S, D)`` the GEMM input of the current (kept) sequence; for ``query``,
            the rotated queries with heads concatenated per token, ``D = heads*head_dim``.
        threshold: this layer's and GEMM input's threshold (a float32 scalar, may be
            traced: ``FocusKnobs.similarity_threshold[layer, gemm]``), or None for
            ``plan.config.similarity_threshold``.
        relaxed: soft similarity mask and soft merge (``similarity_concentration(...,
            relaxed=True)``), with ``span.weight`` as the tokens' soft SEC keep weights.
        temperature: of the relaxed masks (> 0; may be traced).

    Returns:
        ``(x', record)``: ``x`` with its visual tokens replaced by their group means
        (text untouched), and the ``GemmRecord`` on the original grid (relaxed: a
        ``RelaxedRecord`` of expected counts). Before any pruning this is
        ``similarity_concentration`` on the grid; after SEC it runs on the kept tokens
        (``positions=span.keep``), which equals scattering them to their grid positions
        with zeros elsewhere, running SIC on the grid and gathering back (spec, SEC "When
        SIC runs in a layer after pruning").

    Raises:
        ValueError: unknown GEMM name.
    """
    if name not in GEMM_NAMES:
        raise ValueError(f"unknown GEMM input {name!r}; expected one of {GEMM_NAMES}")
    n = _visual_count(plan, span)
    if not plan.config.sic:
        if relaxed:
            v, _ = vector_layout(x.shape[-1], plan.config.vector_size)
            zero_mask = jnp.zeros((x.shape[0], n, v), bool)
            return x, _relaxed_record(SICResult(x, zero_mask, zero_mask, None, None, None), span.weight, v)
        return x, _unmerged_record(plan, span, x.shape[-1])
    vis = _slice_visual(x, span.start, n)
    if plan.capture is not None:
        _capture_sic(plan, name, vis, span.keep, threshold)
    if plan.arithmetic == "int8":
        if relaxed:
            raise ValueError("the int8 Focus arithmetic has no relaxed (differentiable) form")
        res = quantized_similarity_concentration(vis, plan.geometry, plan.config, threshold=threshold,
                                                 positions=span.keep)
    else:
        res = similarity_concentration(
            vis, plan.geometry, plan.config, threshold=threshold, relaxed=relaxed, temperature=temperature,
            positions=span.keep, token_weight=span.weight,
        )  # fmt: skip
    out = _write_visual(x, res.output, span.start)
    if relaxed:
        return out, _relaxed_record(res, span.weight, res.mask_zero.shape[-1])
    if span.keep is None:
        return out, GemmRecord(res.mask_zero, res.mask_similar, res.group_index)
    return out, _grid_record(plan, span.keep, res.mask_similar, res.mask_zero, res.group_index)


def key_bias(plan: FocusPlan, span: VisualSpan, seq_len: int) -> jnp.ndarray | None:
    """``(B, S)`` float32 attention key bias of relaxed SEC: ``log w`` at the visual tokens
    (a key of keep weight ``w`` weighs ``w`` in every softmax; ``w -> 0`` removes it, as
    hard SEC does), 0 elsewhere; None without soft weights."""
    if span.weight is None:
        return None
    log_w = jnp.log(jnp.maximum(span.weight, 1e-30))[..., None]
    return _write_visual(jnp.zeros((span.start.shape[0], seq_len, 1), jnp.float32), log_w, span.start)[..., 0]


def sec_importance(
    plan: FocusPlan, span: VisualSpan, q: jnp.ndarray, k: jnp.ndarray, key_valid: jnp.ndarray, scale: float, bias=None,
    k_keep: int | None = None,
) -> jnp.ndarray:
    """Importance of each kept visual token (spec, SEC steps 1-2), batched.

    The softmax rows of the last ``plan.query_rows`` queries are computed (rows before the
    query text of a prompt are masked out); each kept visual token scores the maximum,
    over heads and query-text rows, of its attention probability.

    Args:
        q: ``(B, S, Hq, hd)`` rotated (already concentrated) queries.
        k: ``(B, S, Hkv, hd)`` rotated keys (grouped-query: head ``h`` reads kv head
            ``h // (Hq/Hkv)``).
        key_valid: ``(B, S)`` bool, False at padding.
        scale: softmax scale (``head_dim ** -0.5``).
        bias: optional ``(B, S)`` float32 key bias added to the scores (``key_bias``:
            relaxed SEC's soft pruning of earlier SEC layers).
        k_keep: the tokens this SEC layer keeps, for ``plan.capture`` (``SECInput.k``);
            None: nothing is captured.

    Returns:
        ``(B, n)`` importance of the ``n`` kept visual tokens: float32 by
        ``focus_jax.concentration.attention_importance``, or with ``plan.arithmetic ==
        "int8"`` int32 by ``focus_jax.quant.quantized_attention_importance``.
    """
    b, s, hq, hd = q.shape
    hkv = k.shape[2]
    n = _visual_count(plan, span)
    r = min(plan.query_rows, s)
    rows = jnp.arange(s - r, s)
    qr = q[:, s - r :].reshape(b, r, hkv, hq // hkv, hd)
    scores = jnp.einsum("brkgd,bskd->bkgrs", qr, k, preferred_element_type=jnp.float32) * scale
    if bias is not None:
        scores = scores + bias[:, None, None, None, :]
    cols = jnp.arange(s)
    allowed = (cols[None, :] <= rows[:, None])[None] & key_valid[:, None, :]  # (B, r, S)
    scores = jnp.where(allowed[:, None, None], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).reshape(b, hq, r, s)  # heads kv-major, as q's
    query_row = rows[None, :] >= (span.start + n)[:, None]  # (B, r): rows of query text
    if plan.capture is not None and k_keep is not None:
        _capture_sec(plan, probs, query_row, span.start, n, k_keep)
    if plan.arithmetic == "int8":
        return quantized_attention_importance(probs, query_row, span.start, n)
    return attention_importance(probs, query_row, span.start, n)


def _capture_sec(plan: FocusPlan, probs, query_row, start, n: int, k: int) -> None:
    """``plan.capture(SECInput(...))`` for every prompt: its query-text rows over its visual columns."""
    cols = jax.vmap(lambda pb, s0: lax.dynamic_slice_in_dim(pb, s0, n, axis=-1))(probs, start)

    def host(c, q):
        for cb, qb in zip(np.asarray(c, np.float32), np.asarray(q, bool)):
            plan.capture(SECInput(cb[:, qb], k))

    jax.debug.callback(host, cols, query_row)


def semantic_prune(plan: FocusPlan, span: VisualSpan, importance: jnp.ndarray, k: int, seq_len: int):
    """Keep the ``k`` most important visual tokens of each prompt (spec, SEC steps 3-5).

    Args:
        importance: ``(B, n)`` from ``sec_importance``.
        k: visual tokens to keep (static; from ``plan.sec_steps``).
        seq_len: current sequence length ``S``.

    Returns:
        ``(rows, span')``: ``rows`` ``(B, S - n + k)`` int32, the indices of the current
        sequence to keep (prefix text, the kept visual tokens in ascending order, query
        text); gather hidden states, positions and masks with it. ``span'`` is the new
        visual span.
    """
    b, n = importance.shape
    local = select_tokens(importance, k)  # ties: lower index first, as torch.topk on CPU
    rows = jax.vmap(lambda kept, start: sequence_keep_indices(kept, start, n, seq_len))(local, span.start)
    old_keep = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (b, n)) if span.keep is None else span.keep
    return rows, VisualSpan(span.start, jnp.take_along_axis(old_keep, local, axis=1))


def soft_prune(plan: FocusPlan, span: VisualSpan, importance: jnp.ndarray, keep_ratio, temperature) -> VisualSpan:
    """Relaxed SEC (spec, SEC steps 3-5, made differentiable): keep every row, weight it.

    Each visual token's new keep weight is its old one times ``soft_top_k`` of the
    log-importances (pruned tokens ranked last through ``log w``) with ``k = keep_ratio *
    N`` (``N`` the original visual tokens; a traced float, so ``keep_ratio`` gets a
    gradient). Logarithms make the temperature relative: a ranking gap of ``e^t`` in
    attention probability is a gap of ``t``. As ``temperature -> 0`` the weights tend to
    the hard top-k membership (for integer ``keep_ratio * N``; otherwise to a rank within
    one of ``int(N * alpha)``). Shapes never change: the weights act through ``key_bias``
    on later attention and through ``token_weight`` on later SIC.

    Args:
        importance: ``(B, N)`` from ``sec_importance`` (with the current ``key_bias``).
        keep_ratio: SEC alpha of this layer (float scalar, may be traced).
        temperature: > 0, may be traced.

    Returns:
        ``span`` with the new ``weight`` ``(B, N)``.
    """
    n = plan.num_visual
    old = jnp.ones(importance.shape, jnp.float32) if span.weight is None else span.weight
    scores = jnp.log(jnp.maximum(importance, 1e-30)) + jnp.log(jnp.maximum(old, 1e-30))
    k = jnp.clip(jnp.asarray(keep_ratio, jnp.float32) * n, 1.0, n)
    new = jax.vmap(lambda s: soft_top_k(s, k, temperature))(scores)
    return span._replace(weight=old * new)
