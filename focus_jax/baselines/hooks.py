"""The baselines inside the Qwen2 decoder of LLaVA-OneVision, at the points their authors apply them.

``qwen2.modeling.prefill`` runs a ``MethodPlan`` through five calls (its extension points;
``method_prefill`` there is the loop):

- ``init(x, key_valid, visual_start)`` before the decoder: the method's state;
- ``before_layer(i, state, x)`` before the attention block of layer ``i``;
- ``gemm(state, name, x)`` on each GEMM input (names of ``focus_jax.trace.GEMM_NAMES``);
- ``attention(state, q, k, v, out)`` on the attention output, before ``o_proj``'s input hook;
- ``after_attention(i, state, x, q, k)`` after the attention block (residual added).

Where each original acts:

- CMC (``models/qwen2/modeling_qwen2_CMC.py`` of the Focus reference): the linear-input mask
  is detected once on the decoder's input embeddings and applied to the inputs of q/k/v,
  o, gate/up and down of every layer; queries (after RoPE) and softmax attention rows
  are detected and approximated per head in every layer. An approximated attention row
  is a copy of an I-frame row, so its output row is that I-frame token's output row
  (``(P V)[r] = P[r] V``): the output rows are copied instead of forming ``P V`` again.
- Adaptiv (``modeling_qwen2_adaptiv.py``): merging before the attention of layer 0; the
  merged tokens are gone for the whole prefill.
- FrameFusion (``framefusion/models/qwen2/modeling_qwen2.py``): merging before the attention
  of layer 0 and after the attention of every layer until it stops; pruning, once, after
  the attention of the layer after that, on the last token's head-mean attention row.
- FastV (``fastv_forward``): pruning before layer ``K`` on layer ``K - 1``'s last-token
  head-mean attention row.

Removed tokens are not gathered out: their slots stay and are masked out of every later
attention (``key_valid``), which is the same computation for the remaining tokens (up to
summation order) with static shapes. RoPE positions are the original ones, as in the
originals. Each layer keeps its own KV-cache validity, so decode reads exactly the keys
each layer saw.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from focus_jax.baselines.adaptiv import adaptiv_merge
from focus_jax.baselines.cmc import cmc_approximate, cmc_detect
from focus_jax.baselines.config import AdaptivConfig, BaselineConfig, CMCConfig, FastVConfig, FrameFusionConfig
from focus_jax.baselines.fastv import fastv_keep, fastv_kept_count
from focus_jax.baselines.framefusion import FrameFusionState, framefusion_merge, framefusion_prune, initial_state
from focus_jax.config import VisualGeometry

__all__ = ["MethodPlan", "MethodState"]


class MethodState(NamedTuple):
    """What links the hook calls of one batched prefill.

    Attributes:
        start: ``(B,)`` int32 index of each prompt's first visual token.
        key_valid: ``(B, S)`` bool, tokens still in the sequence (padding and removed tokens False).
        extra: the method's own state (CMC's linear match and key counts, FrameFusion's
            state, FastV's last attention row), or None.
        records: ``{name: (B,) or (B, ...) array}`` of what the trace needs so far.
    """

    start: jnp.ndarray
    key_valid: jnp.ndarray
    extra: Any
    records: dict


def _visual(x, start, n):
    return jax.vmap(lambda xb, s: lax.dynamic_slice_in_dim(xb, s, n, axis=0))(x, start)


def _write(x, vis, start):
    return jax.vmap(lambda xb, vb, s: lax.dynamic_update_slice_in_dim(xb, vb.astype(xb.dtype), s, axis=0))(
        x, vis, start
    )


def _last_row_attention(q, k, key_valid, scale):
    """``(B, S)`` head-mean softmax attention of the last row (the last prompt token)."""
    b, _, hq, hd = q.shape
    hkv = k.shape[2]
    ql = q[:, -1].reshape(b, hkv, hq // hkv, hd)
    scores = jnp.einsum("bkgd,bskd->bkgs", ql, k, preferred_element_type=jnp.float32) * scale
    scores = jnp.where(key_valid[:, None, None], scores, jnp.finfo(jnp.float32).min)
    return jnp.mean(jax.nn.softmax(scores, axis=-1), axis=(1, 2))


@dataclasses.dataclass(frozen=True)
class MethodPlan:
    """Everything static about one baseline in one batched prefill.

    Attributes:
        config: the method's config (``focus_jax.baselines.config``).
        geometry: the visual grid (``N = geometry.num_tokens`` tokens from ``visual_start``;
            the video's trailing newline token is text, as in Focus).
        num_layers, num_heads, head_dim: decoder dimensions.
    """

    config: BaselineConfig
    geometry: VisualGeometry
    num_layers: int
    num_heads: int
    head_dim: int

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def num_visual(self) -> int:
        return self.geometry.num_tokens

    # -------------------------------------------------------------- helpers
    def _grid(self, vis):
        """``(B, N, ...) -> (B, F, P, ...)``."""
        g = self.geometry
        return vis.reshape(vis.shape[0], g.frames, g.frame_stride, *vis.shape[2:])

    def _set_alive(self, state: MethodState, alive):
        valid = _write(state.key_valid[..., None], alive[..., None], state.start)[..., 0]
        return state._replace(key_valid=valid)

    def alive(self, state: MethodState):
        """``(B, N)`` bool, visual tokens still in the sequence."""
        return _visual(state.key_valid[..., None], state.start, self.num_visual)[..., 0]

    def _count(self, state: MethodState):
        return jnp.sum(self.alive(state), axis=-1, dtype=jnp.int32)

    # -------------------------------------------------------------- the five calls
    def init(self, x, key_valid, visual_start) -> MethodState:
        cfg, n = self.config, self.num_visual
        state = MethodState(jnp.asarray(visual_start, jnp.int32), key_valid, None, {})
        vis = _visual(x, state.start, n)
        if isinstance(cfg, CMCConfig):
            match = jax.vmap(lambda t: cmc_detect(t, cfg.threshold, cfg.interval, cfg.i_frame_position))(
                self._grid(vis)
            )
            width = jnp.sum(key_valid, axis=-1, dtype=jnp.int32)  # keys of each prompt (the reference's seq_len)
            return state._replace(extra=(match, width), records={"cmc_linear": match.informative})
        if isinstance(cfg, AdaptivConfig):
            merged = jax.vmap(lambda t: adaptiv_merge(t, self.geometry, cfg.threshold))(vis)
            return self._set_alive(state, ~merged.merge_mask)
        if isinstance(cfg, FrameFusionConfig):
            return state._replace(extra=jax.vmap(lambda _: initial_state(n))(visual_start))
        if isinstance(cfg, FastVConfig):
            return state._replace(extra=jnp.zeros((x.shape[0], n), jnp.float32))
        raise TypeError(f"unknown baseline config {type(cfg).__name__}")

    def before_layer(self, i: int, state: MethodState, x):
        cfg = self.config
        if isinstance(cfg, FrameFusionConfig) and i == 0:
            return self._framefusion_merge(state, x)
        if isinstance(cfg, FastVConfig) and i == cfg.k and cfg.k < self.num_layers:
            keep, _ = fastv_keep(state.extra, fastv_kept_count(self.num_visual, cfg.r))
            return x, self._set_alive(state, keep)
        return x, state

    def gemm(self, state: MethodState, name: str, x):
        if not isinstance(self.config, CMCConfig):
            return x, state
        cfg, n = self.config, self.num_visual
        vis = self._grid(_visual(x, state.start, n))  # (B, F, P, D)
        if name == "query":
            b, f, p, _ = vis.shape
            heads = jnp.moveaxis(vis.reshape(b, f, p, self.num_heads, self.head_dim), 3, 1)  # (B, H, F, P, hd)
            match = jax.vmap(lambda t: cmc_detect(t, cfg.query_threshold, cfg.interval, cfg.i_frame_position))(heads)
            out = jax.vmap(lambda t, m: cmc_approximate(t, m, cfg.interval, cfg.i_frame_position))(heads, match)
            out = jnp.moveaxis(out, 1, 3).reshape(b, n, -1)
            return _write(x, out, state.start), self._record(state, "cmc_query", match.informative)
        match = state.extra[0]
        out = jax.vmap(lambda t, m: cmc_approximate(t, m, cfg.interval, cfg.i_frame_position))(vis, match)
        return _write(x, out.reshape(out.shape[0], n, -1), state.start), state

    def attention(self, state: MethodState, q, k, v, out):
        """CMC's attention-score approximation (other methods: ``out`` unchanged)."""
        if not isinstance(self.config, CMCConfig):
            return out, state
        cfg, n = self.config, self.num_visual
        b, s, hq, hd = q.shape
        hkv = k.shape[2]
        rows = _visual(q, state.start, n).reshape(b, n, hkv, hq // hkv, hd)
        scores = jnp.einsum("bnkgd,bskd->bkgns", rows, k, preferred_element_type=jnp.float32) * hd**-0.5
        row_pos = state.start[:, None] + jnp.arange(n)
        allowed = (jnp.arange(s)[None, None, :] <= row_pos[:, :, None]) & state.key_valid[:, None, :]  # (B, N, S)
        probs = jax.nn.softmax(jnp.where(allowed[:, None, None], scores, jnp.finfo(jnp.float32).min), axis=-1)
        probs = self._grid(jnp.moveaxis(probs.reshape(b, hq, n, s), 1, 2))  # (B, F, P, H, S)
        probs = jnp.moveaxis(probs, 3, 1)  # (B, H, F, P, S)
        width = state.extra[1]
        match = jax.vmap(lambda t, w: cmc_detect(t, cfg.score_threshold, cfg.interval, cfg.i_frame_position, width=w))(
            probs, width
        )
        vis = jnp.moveaxis(self._grid(_visual(out, state.start, n).reshape(b, n, hq, hd)), 3, 1)  # (B, H, F, P, hd)
        new = jax.vmap(lambda t, m: cmc_approximate(t, m, cfg.interval, cfg.i_frame_position))(vis, match)
        new = jnp.moveaxis(new, 1, 3).reshape(b, n, hq * hd)
        return _write(out, new, state.start), self._record(state, "cmc_score", match.informative)

    def after_attention(self, i: int, state: MethodState, x, q, k, scale: float):
        cfg = self.config
        if isinstance(cfg, FastVConfig) and i == cfg.k - 1:
            att = _visual(_last_row_attention(q, k, state.key_valid, scale)[..., None], state.start, self.num_visual)[
                ..., 0
            ]
            return x, state._replace(extra=att)
        if isinstance(cfg, FrameFusionConfig):
            att = _visual(_last_row_attention(q, k, state.key_valid, scale)[..., None], state.start, self.num_visual)[
                ..., 0
            ]
            ff = jax.vmap(lambda a, st: framefusion_prune(a, st, cfg.cost, self._ff_layers()))(att, state.extra)
            state = self._set_alive(state._replace(extra=ff), ff.alive)
            return self._framefusion_merge(state, x)
        return x, state

    def kept(self, state: MethodState):
        """``(B,)`` int32 visual tokens in the sequence now."""
        return self._count(state)

    # -------------------------------------------------------------- method parts
    def _ff_layers(self) -> int:
        return self.config.num_layers or self.num_layers

    def _framefusion_merge(self, state: MethodState, x):
        cfg, n = self.config, self.num_visual
        vis = _visual(x, state.start, n)

        def one(t, st: FrameFusionState):
            return framefusion_merge(
                t, st, self.geometry, cfg.similarity_lower_bound, cfg.ratio_lower_bound, cfg.cost, self._ff_layers()
            )

        vis, ff = jax.vmap(one)(vis, state.extra)
        state = self._set_alive(state._replace(extra=ff), ff.alive)
        return _write(x, vis, state.start), state

    @staticmethod
    def _record(state: MethodState, name: str, value):
        records = dict(state.records)
        records[name] = records.get(name, ()) + (value,)
        return state._replace(records=records)

    # -------------------------------------------------------------- trace
    def layer_sparsity(self, records: dict) -> np.ndarray | None:
        """CMC only: ``(B, L, 3)`` float, the non-informative fraction of the linear, query
        and attention-score inputs of each layer (the reference's ``sparsity_dict``),
        clipped to [0, 1]."""
        if not isinstance(self.config, CMCConfig):
            return None
        n, heads = self.num_visual, self.num_heads
        lin = 1.0 - np.asarray(records["cmc_linear"], float) / n  # (B,)
        q = 1.0 - np.stack([np.asarray(a, float) for a in records["cmc_query"]], axis=1) / (n * heads)
        s = 1.0 - np.stack([np.asarray(a, float) for a in records["cmc_score"]], axis=1) / (n * heads)
        # the reference counts I-frame tokens as replaced-then-informative, which goes below 0
        # when almost nothing is replaced (e.g. a threshold of 0); no GEMM skips fewer than 0 rows
        return np.clip(np.stack([np.broadcast_to(lin[:, None], q.shape), q, s], axis=-1), 0.0, 1.0)
