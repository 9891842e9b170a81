"""Qwen2 decoder (the language model of LLaVA-OneVision) with Focus in prefill.

Same computation as transformers' ``Qwen2Model`` + ``lm_head``: token embeddings,
pre-RMSNorm layers with rotary grouped-query attention (biased q/k/v projections) and a
SwiGLU MLP, a final RMSNorm. Attention never forms the ``S x S`` probability matrix
(``focus_jax.models.attention``).

Focus (spec, "Where concentration happens"), prefill only: every GEMM input of every
layer goes through ``focus_hooks.concentrate`` (``q_proj``, ``query``, ``o_proj``,
``gate_proj``, ``down_proj``); after the attention block of each SEC layer,
``focus_hooks.semantic_prune`` keeps the top-k visual tokens and every later block runs
on the kept tokens only -- their hidden states, original RoPE positions, padding mask
and, for decode, their keys and values.

Layers between SEC layers have equal shapes, so each such segment is one ``lax.scan``
over its layer indices into the stacked layer parameters; an SEC layer is run on its own
(its MLP sees fewer tokens than its attention). Decode (``decode_step``) is untouched by Focus: it
reads the per-segment KV caches that prefill left.

Parameter pytree (``init_params`` / ``params.py``), linear weights ``(in, out)``::

    embed:   (vocab, D)
    layers:  attn_norm (D,), q {w (D, Hq*hd), b}, k {w (D, Hkv*hd), b}, v {w, b},
             o {w (Hq*hd, D)}, mlp_norm (D,), gate {w (D, I)}, up {w (D, I)},
             down {w (I, D)}; each stacked (L, ...)
    norm:    (D,)
    lm_head: (D, vocab)   # absent when tie_word_embeddings
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from focus_jax.baselines.hooks import MethodPlan
from focus_jax.concentration import gather_tokens
from focus_jax.models import focus_hooks
from focus_jax.models.attention import cached_attention, causal_attention
from focus_jax.models.focus_hooks import FocusPlan, GemmRecord, VisualSpan
from focus_jax.models.layers import activation, dense, rms_norm
from focus_jax.trace import GEMM_NAMES

__all__ = [
    "Qwen2Config",
    "KVCache",
    "PrefillResult",
    "init_params",
    "embed_tokens",
    "prefill",
    "decode_step",
    "logits_from_hidden",
]


@dataclasses.dataclass(frozen=True)
class Qwen2Config:
    """Dimensions of a Qwen2 decoder (transformers' ``Qwen2Config``, default RoPE, no
    sliding window), and its special token ids (``eos_token_id``: a tuple, possibly empty).

    ``mrope_section``: empty for 1-D RoPE; for Qwen2.5-VL's multimodal RoPE the number of
    frequencies ``(temporal, height, width)`` that read each of the three position rows
    (sums to ``head_dim / 2``; ``prefill`` then takes ``(B, S, 3)`` positions).

    Raises:
        ValueError: a non-positive dimension, heads that do not divide, or an
            ``mrope_section`` that does not sum to ``head_dim / 2``.
    """

    vocab_size: int = 151936
    hidden_size: int = 896
    intermediate_size: int = 4864
    num_layers: int = 24
    num_heads: int = 14
    num_kv_heads: int = 2
    head_dim: int = 64
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 32768
    tie_word_embeddings: bool = False
    hidden_act: str = "silu"
    bos_token_id: int | None = None
    eos_token_id: tuple[int, ...] = ()
    pad_token_id: int | None = None
    mrope_section: tuple[int, ...] = ()

    def __post_init__(self):
        eos = self.eos_token_id
        object.__setattr__(
            self, "eos_token_id", tuple(eos) if isinstance(eos, (list, tuple)) else (() if eos is None else (eos,))
        )
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "head_dim",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Qwen2Config.{name} must be a positive integer, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_key_value_heads {self.num_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for rotary embeddings, got {self.head_dim}")
        activation(self.hidden_act)
        object.__setattr__(self, "mrope_section", tuple(int(v) for v in self.mrope_section))
        if self.mrope_section and sum(self.mrope_section) != self.head_dim // 2:
            raise ValueError(f"mrope_section {self.mrope_section} must sum to head_dim / 2 = {self.head_dim // 2}")

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def scale(self) -> float:
        return self.head_dim**-0.5

    def inv_freq(self) -> np.ndarray:
        """RoPE inverse frequencies ``theta ** (-2i / hd)``, float32, as transformers computes them."""
        exponents = np.arange(0, self.head_dim, 2, dtype=np.float32) / np.float32(self.head_dim)
        return (1.0 / (np.float32(self.rope_theta) ** exponents)).astype(np.float32)


class KVCache(NamedTuple):
    """Keys and values of one segment of layers (layers with the same kept tokens).

    Attributes:
        k, v: ``(L_seg, B, T, Hkv, hd)``; slots ``>= length`` are free.
        valid: ``(B, T)`` bool, slots holding a real (non-padding) token.
        length: ``()`` int32, slots written so far (the same for every prompt).
    """

    k: jnp.ndarray
    v: jnp.ndarray
    valid: jnp.ndarray
    length: jnp.ndarray


class PrefillResult(NamedTuple):
    """Output of ``prefill``.

    Attributes:
        hidden: ``(B, S_out, D)`` final-normed hidden states of the kept tokens.
        rows: ``(B, S_out)`` int32, index in the input sequence of each output row
            (``arange(S)`` without SEC).
        caches: one ``KVCache`` per segment, in layer order.
        records: ``{(layer, gemm): GemmRecord}`` when traced, else ``{}``.
    """

    hidden: jnp.ndarray
    rows: jnp.ndarray
    caches: tuple
    records: dict


def _init_dense(key, n_in, n_out, dtype, bias=False, std=0.02):
    p = {"w": (jax.random.normal(key, (n_in, n_out), jnp.float32) * std).astype(dtype)}
    if bias:
        p["b"] = jnp.zeros((n_out,), dtype)
    return p


def init_params(cfg: Qwen2Config, key: jax.Array, dtype=jnp.float32, std: float = 0.02) -> dict:
    """Random parameters (normal with ``std``, as transformers' ``initializer_range``)."""
    d, f = cfg.hidden_size, cfg.intermediate_size
    k_embed, k_layers, k_head = jax.random.split(key, 3)

    def layer(k):
        ks = jax.random.split(k, 7)
        return {
            "attn_norm": jnp.ones((d,), dtype),
            "q": _init_dense(ks[0], d, cfg.q_size, dtype, bias=True, std=std),
            "k": _init_dense(ks[1], d, cfg.kv_size, dtype, bias=True, std=std),
            "v": _init_dense(ks[2], d, cfg.kv_size, dtype, bias=True, std=std),
            "o": _init_dense(ks[3], cfg.q_size, d, dtype, std=std),
            "mlp_norm": jnp.ones((d,), dtype),
            "gate": _init_dense(ks[4], d, f, dtype, std=std),
            "up": _init_dense(ks[5], d, f, dtype, std=std),
            "down": _init_dense(ks[6], f, d, dtype, std=std),
        }

    params = {
        "embed": (jax.random.normal(k_embed, (cfg.vocab_size, d), jnp.float32) * std).astype(dtype),
        "layers": jax.vmap(layer)(jax.random.split(k_layers, cfg.num_layers)),
        "norm": jnp.ones((d,), dtype),
    }
    if not cfg.tie_word_embeddings:
        params["lm_head"] = _init_dense(k_head, d, cfg.vocab_size, dtype, std=std)["w"]
    return params


def embed_tokens(params: dict, ids: jnp.ndarray) -> jnp.ndarray:
    """``(B, S)`` int token ids -> ``(B, S, D)`` embeddings."""
    return jnp.take(params["embed"], ids, axis=0)


def logits_from_hidden(params: dict, cfg: Qwen2Config, hidden: jnp.ndarray) -> jnp.ndarray:
    """LM head: ``(..., D) -> (..., vocab)`` in the hidden dtype (tied to ``embed`` if configured)."""
    w = params["embed"].T if cfg.tie_word_embeddings else params["lm_head"]
    return jnp.matmul(hidden, w.astype(hidden.dtype))


def _rope(cfg: Qwen2Config, positions: jnp.ndarray, dtype):
    """cos/sin ``(B, S, hd)`` for integer ``positions`` ``(B, S)`` (rotate-half layout), or
    ``(B, S, 3)`` multimodal positions: frequency ``i`` of section ``j`` of
    ``cfg.mrope_section`` reads row ``j % 3`` (transformers' Qwen2.5-VL rotary embedding)."""
    if positions.ndim == 3:
        rows = np.repeat(np.arange(len(cfg.mrope_section)) % 3, cfg.mrope_section)
        positions = positions[..., rows]  # (B, S, hd/2): each frequency's own position
    else:
        positions = positions[..., None]
    freqs = positions.astype(jnp.float32) * jnp.asarray(cfg.inv_freq())
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb).astype(dtype), jnp.sin(emb).astype(dtype)


def _apply_rope(x, cos, sin):
    """``x`` ``(B, S, H, hd)`` rotated by position: ``x*cos + rotate_half(x)*sin``."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, :, None] + rotated * sin[:, :, None]


_Identity = lambda name, x: (x, None)  # noqa: E731  (dense: GEMM inputs pass through)


def _attention_block(
    x, layer, cfg: Qwen2Config, rope, key_valid, concentrate, segment_ids=None, key_bias=None, attention_hook=None
):
    """Pre-norm attention with residual. Returns ``(x, q, k, v, records)``.

    ``key_bias`` ``(B, S)``: added to the attention logits of each key (relaxed SEC's log keep weights).
    ``attention_hook(q, k, v, out) -> out``, if given, edits the attention output (heads
    concatenated, before ``o_proj``'s input hook): CMC's attention-score approximation."""
    b, s, _ = x.shape
    records = {}
    h, records["q_proj"] = concentrate("q_proj", rms_norm(x, layer["attn_norm"], cfg.rms_norm_eps))
    q = dense(h, layer["q"]).reshape(b, s, cfg.num_heads, cfg.head_dim)
    k = dense(h, layer["k"]).reshape(b, s, cfg.num_kv_heads, cfg.head_dim)
    v = dense(h, layer["v"]).reshape(b, s, cfg.num_kv_heads, cfg.head_dim)
    cos, sin = rope
    q, k = _apply_rope(q, cos, sin), _apply_rope(k, cos, sin)
    q_flat, records["query"] = concentrate("query", q.reshape(b, s, cfg.q_size))
    q = q_flat.reshape(q.shape)
    attn = causal_attention(q, k, v, key_valid, scale=cfg.scale, segment_ids=segment_ids, key_bias=key_bias)
    if attention_hook is not None:
        attn = attention_hook(q, k, v, attn)
    attn, records["o_proj"] = concentrate("o_proj", attn)
    return x + dense(attn, layer["o"]), q, k, v, records


def _mlp_block(x, layer, cfg: Qwen2Config, concentrate):
    records = {}
    h, records["gate_proj"] = concentrate("gate_proj", rms_norm(x, layer["mlp_norm"], cfg.rms_norm_eps))
    a = activation(cfg.hidden_act)(dense(h, layer["gate"])) * dense(h, layer["up"])
    a, records["down_proj"] = concentrate("down_proj", a)
    return x + dense(a, layer["down"]), records


def _layer(layers: dict, i) -> dict:
    """Layer ``i`` (int or traced) of the stacked parameters.

    Segments index the full stack instead of scanning over a slice ``layers[lo:hi]``: XLA
    materialises such a slice as a copy of those layers' weights (for Qwen2-0.5B about
    1.4 GB per prefill, and more time in page faults than in copying).
    """
    return jax.tree.map(lambda a: lax.dynamic_index_in_dim(a, i, keepdims=False), layers)


def _segments(num_layers: int, plan: FocusPlan | None):
    """``[(lo, hi, k)]``: plain layers ``lo..hi-1`` then, if ``k`` is not None, SEC layer
    ``hi`` keeping ``k`` visual tokens. Together they cover every layer once."""
    out, lo = [], 0
    for layer, k in plan.sec_steps if plan is not None else ():
        out.append((lo, layer, k))
        lo = layer + 1
    if lo < num_layers:
        out.append((lo, num_layers, None))
    return out


def _pad_cache(k, v, valid, extra):
    if extra:
        k = jnp.pad(k, ((0, 0), (0, 0), (0, extra), (0, 0), (0, 0)))
        v = jnp.pad(v, ((0, 0), (0, 0), (0, extra), (0, 0), (0, 0)))
        valid = jnp.pad(valid, ((0, 0), (0, extra)))
    return KVCache(k, v, valid, jnp.int32(k.shape[2] - extra))


class _Focus(NamedTuple):
    """Focus settings of one prefill (static plan and mode, traced knobs)."""

    plan: FocusPlan | None
    knobs: object = None  # focus_jax.FocusKnobs or None (thresholds from the plan's config)
    relaxed: bool = False
    temperature: object = 0.05

    def hooks(self, span: VisualSpan, layer):
        """``concentrate(name, x)`` for decoder layer ``layer`` (int or traced)."""
        if self.plan is None:
            return _Identity
        thresholds = None if self.knobs is None else self.knobs.similarity_threshold[layer]

        def concentrate(name, x):
            threshold = None if thresholds is None else thresholds[GEMM_NAMES.index(name)]
            return focus_hooks.concentrate(
                self.plan, span, name, x, threshold=threshold, relaxed=self.relaxed, temperature=self.temperature
            )

        return concentrate

    def key_bias(self, span: VisualSpan, seq_len: int):
        return None if self.plan is None else focus_hooks.key_bias(self.plan, span, seq_len)


class _State(NamedTuple):
    """The current (kept) sequence: hidden states and what travels with each row."""

    x: jnp.ndarray
    positions: jnp.ndarray
    key_valid: jnp.ndarray
    rows: jnp.ndarray
    span: VisualSpan | None


def _scan_layers(
    params, cfg: Qwen2Config, focus: _Focus, state: _State, lo: int, hi: int, rope, segment_ids, return_records
):
    """Layers ``lo..hi-1`` (equal shapes) as one ``lax.scan``. Returns ``(x, k, v, records)``."""
    bias = focus.key_bias(state.span, state.x.shape[1])

    def body(h, i):
        layer = _layer(params["layers"], i)
        concentrate = focus.hooks(state.span, i)
        h, _, k, v, rec_a = _attention_block(h, layer, cfg, rope, state.key_valid, concentrate, segment_ids, bias)
        h, rec_m = _mlp_block(h, layer, cfg, concentrate)
        recs = {**rec_a, **rec_m} if return_records and focus.plan is not None else None
        return h, (k, v, recs)

    x, (k, v, recs) = lax.scan(body, state.x, jnp.arange(lo, hi))
    records = {}
    if recs is not None:
        record = focus_hooks.RelaxedRecord if focus.relaxed else GemmRecord
        for i in range(hi - lo):
            records.update({(lo + i, name): record(*(a[i] for a in r)) for name, r in recs.items()})
    return x, k, v, records


def _sec_layer(params, cfg: Qwen2Config, focus: _Focus, state: _State, layer_index: int, k_keep: int, rope):
    """SEC layer: attention on the current tokens, SEC, then the MLP on the kept ones
    (relaxed: on every row, with new soft keep weights). Returns ``(state', k, v, records)``."""
    plan, span = focus.plan, state.span
    layer = _layer(params["layers"], layer_index)
    bias = focus.key_bias(span, state.x.shape[1])
    x, q, k, v, rec_a = _attention_block(
        state.x, layer, cfg, rope, state.key_valid, focus.hooks(span, layer_index), key_bias=bias
    )
    importance = focus_hooks.sec_importance(
        plan, span, q, k, state.key_valid, cfg.scale, bias, k_keep=None if focus.relaxed else k_keep
    )
    if focus.relaxed:
        alpha = focus.knobs.sec_keep[plan.config.sec_layers.index(layer_index)]
        state = state._replace(x=x, span=focus_hooks.soft_prune(plan, span, importance, alpha, focus.temperature))
    else:
        keep_rows, span = focus_hooks.semantic_prune(plan, span, importance, k_keep, x.shape[1])
        take = jax.vmap(lambda a, r: gather_tokens(a, r, axis=0))
        state = _State(
            take(x, keep_rows),
            take(state.positions, keep_rows),
            take(state.key_valid, keep_rows),
            take(state.rows, keep_rows),
            span,
        )
    x, rec_m = _mlp_block(state.x, layer, cfg, focus.hooks(state.span, layer_index))
    return state._replace(x=x), k[None], v[None], {(layer_index, name): r for name, r in {**rec_a, **rec_m}.items()}


def prefill(
    params: dict,
    cfg: Qwen2Config,
    embeds: jnp.ndarray,
    key_valid: jnp.ndarray,
    positions: jnp.ndarray,
    *,
    plan: FocusPlan | None = None,
    visual_start: jnp.ndarray | None = None,
    cache_extra: int = 0,
    return_records: bool = False,
    segment_ids: jnp.ndarray | None = None,
    knobs=None,
    relaxed: bool = False,
    temperature=0.05,
) -> PrefillResult:
    """Run the decoder over a whole prompt (batch), with Focus if ``plan`` is given.

    Args:
        params: Qwen2 parameter pytree.
        cfg: decoder configuration.
        embeds: ``(B, S, D)`` input embeddings (text embeddings with visual features in place).
        key_valid: ``(B, S)`` bool, False at padding.
        positions: ``(B, S)`` int RoPE positions, or ``(B, S, 3)`` with ``cfg.mrope_section``.
        plan: static Focus plan, a baseline's ``focus_jax.baselines.hooks.MethodPlan``
            (CMC, Adaptiv, FrameFusion, FastV), or None for dense.
        visual_start: ``(B,)`` int32, sequence index of each prompt's first visual token
            (required with ``plan``); the ``plan.num_visual`` tokens from there are the grid.
        cache_extra: free KV-cache slots to allocate after the prompt (decode steps).
        return_records: also return the SIC records of every layer and GEMM.
        segment_ids: ``(B, S)`` int (dense only; see ``attention.causal_attention``):
            several continuations of a shared prefix packed in one row, each attending
            to the prefix and itself. Used by training; the KV cache is then not meant
            for decoding.
        knobs: ``focus_jax.FocusKnobs`` (may be traced) or None. Exact path: its
            per-layer/GEMM thresholds replace the config's (the SEC schedule stays the
            plan's); relaxed path: thresholds and SEC keep ratios (required).
        relaxed: differentiable Focus: soft SIC masks and merge, soft SEC keep weights
            (every row stays; ``S_out = S``); records are ``RelaxedRecord`` expected counts.
        temperature: of the relaxed masks (> 0, may be traced).

    Returns:
        ``PrefillResult``.

    Raises:
        ValueError: ``plan`` without ``visual_start``, ``segment_ids`` with ``plan``,
            ``relaxed`` without ``plan`` and ``knobs``, or a shape mismatch.
    """
    b, s, d = embeds.shape
    if d != cfg.hidden_size:
        raise ValueError(f"embeddings have width {d}, the decoder expects {cfg.hidden_size}")
    if isinstance(plan, MethodPlan):
        if visual_start is None or segment_ids is not None:
            raise ValueError("a baseline method needs visual_start and no segment_ids")
        return _method_prefill(
            params, cfg, embeds, key_valid, positions, plan, visual_start, cache_extra, return_records
        )
    if plan is not None and visual_start is None:
        raise ValueError("Focus needs visual_start, the index of each prompt's first visual token")
    if plan is not None and segment_ids is not None:
        raise ValueError("segment_ids (packed continuations) are supported by the dense prefill only")
    if relaxed and (plan is None or knobs is None):
        raise ValueError("relaxed Focus needs a plan and FocusKnobs")
    focus = _Focus(plan, knobs, relaxed, temperature)
    span = VisualSpan(jnp.asarray(visual_start, jnp.int32)) if plan is not None else None
    state = _State(embeds, positions, key_valid, jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32), (b, s)), span)
    caches, records = [], {}
    for lo, hi, k_keep in _segments(cfg.num_layers, plan):
        rope = _rope(cfg, state.positions, state.x.dtype)
        ks, vs, valid_here = [], [], state.key_valid
        if hi > lo:
            x, k, v, recs = _scan_layers(params, cfg, focus, state, lo, hi, rope, segment_ids, return_records)
            state = state._replace(x=x)
            ks.append(k), vs.append(v), records.update(recs)
        if k_keep is not None:
            state, k, v, recs = _sec_layer(params, cfg, focus, state, hi, k_keep, rope)
            ks.append(k), vs.append(v)
            if return_records:
                records.update(recs)
        k = ks[0] if len(ks) == 1 else jnp.concatenate(ks, axis=0)
        v = vs[0] if len(vs) == 1 else jnp.concatenate(vs, axis=0)
        caches.append(_pad_cache(k, v, valid_here, cache_extra))
    hidden = rms_norm(state.x, params["norm"], cfg.rms_norm_eps)
    return PrefillResult(hidden, state.rows, tuple(caches), records)


def _method_prefill(
    params, cfg: Qwen2Config, x, key_valid, positions, plan: MethodPlan, visual_start, cache_extra, return_records
):
    """``prefill`` with a baseline (``focus_jax.baselines.hooks``): layer by layer, each
    layer its own KV-cache segment holding the keys that layer attended to. Records (when
    asked): ``kept`` ``(B, L, 2)`` visual tokens entering each layer's attention and MLP,
    plus the method's own (``MethodState.records``)."""
    state = plan.init(x, key_valid, visual_start)
    rope = _rope(cfg, positions, x.dtype)
    box = {}  # the state threaded through the GEMM and attention hooks of one block

    def gemm(name, h):
        h, box["state"] = plan.gemm(box["state"], name, h)
        return h, None

    def attend(q, k, v, out):
        out, box["state"] = plan.attention(box["state"], q, k, v, out)
        return out

    caches, kept = [], []
    for i in range(cfg.num_layers):
        layer = _layer(params["layers"], i)
        x, state = plan.before_layer(i, state, x)
        valid, kept_attn = state.key_valid, plan.kept(state)
        box["state"] = state
        x, q, k, v, _ = _attention_block(x, layer, cfg, rope, valid, gemm, attention_hook=attend)
        x, box["state"] = plan.after_attention(i, box["state"], x, q, k, cfg.scale)
        kept.append(jnp.stack([kept_attn, plan.kept(box["state"])], axis=-1))
        x, _ = _mlp_block(x, layer, cfg, gemm)
        state = box["state"]
        caches.append(_pad_cache(k[None], v[None], valid, cache_extra))
    hidden = rms_norm(x, params["norm"], cfg.rms_norm_eps)
    rows = jnp.broadcast_to(jnp.arange(x.shape[1], dtype=jnp.int32), x.shape[:2])
    records = {"kept": jnp.stack(kept, axis=1), **state.records} if return_records else {}
    return PrefillResult(hidden, rows, tuple(caches), records)


def decode_step(params: dict, cfg: Qwen2Config, caches: tuple, token_embeds: jnp.ndarray, positions: jnp.ndarray):
    """One decode step for every prompt: append the new tokens' keys/values and attend.

    Args:
        caches: per-segment ``KVCache`` from ``prefill`` (or the previous step).
        token_embeds: ``(B, D)`` embeddings of the newest tokens.
        positions: ``(B,)`` int RoPE positions of the newest tokens.

    Returns:
        ``(hidden (B, D) final-normed, caches')``.
    """
    x = token_embeds[:, None, :]
    rope = _rope(cfg, positions[:, None], x.dtype)
    new_caches = []
    layers_done = 0
    for cache in caches:
        n_layers = cache.k.shape[0]
        slot = cache.length
        valid = lax.dynamic_update_slice_in_dim(cache.valid, jnp.ones((x.shape[0], 1), bool), slot, axis=1)

        def body(h, xs):
            i, k_cache, v_cache = xs
            layer = _layer(params["layers"], i)
            b = h.shape[0]
            hn = rms_norm(h, layer["attn_norm"], cfg.rms_norm_eps)
            q = dense(hn, layer["q"]).reshape(b, 1, cfg.num_heads, cfg.head_dim)
            k = dense(hn, layer["k"]).reshape(b, 1, cfg.num_kv_heads, cfg.head_dim)
            v = dense(hn, layer["v"]).reshape(b, 1, cfg.num_kv_heads, cfg.head_dim)
            q, k = _apply_rope(q, *rope), _apply_rope(k, *rope)
            k_cache = lax.dynamic_update_slice_in_dim(k_cache, k.astype(k_cache.dtype), slot, axis=1)
            v_cache = lax.dynamic_update_slice_in_dim(v_cache, v.astype(v_cache.dtype), slot, axis=1)
            attn = cached_attention(q, k_cache, v_cache, valid, scale=cfg.scale)
            h = h + dense(attn, layer["o"])
            h, _ = _mlp_block(h, layer, cfg, _Identity)
            return h, (k_cache, v_cache)

        x, (k_new, v_new) = lax.scan(body, x, (jnp.arange(layers_done, layers_done + n_layers), cache.k, cache.v))
        new_caches.append(KVCache(k_new, v_new, valid, slot + 1))
        layers_done += n_layers
    return rms_norm(x[:, 0], params["norm"], cfg.rms_norm_eps), tuple(new_caches)
