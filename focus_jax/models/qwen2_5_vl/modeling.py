"""Qwen2.5-VL: windowed ViT with 2-D RoPE, 2x2 patch merger, Qwen2.5 decoder with M-RoPE.

Same computation as transformers' ``Qwen2_5_VLForConditionalGeneration``:

- pixels arrive as the image processor writes them: ``(sum_i t_i*h_i*w_i, C*T*p*p)``
  rows with ``grid_thw`` ``(t, h, w)`` per image/video (``h``, ``w`` in patches, rows in
  2x2 merge-block order). The 3-D patch embedding (``Conv3d`` with stride = kernel) is
  one GEMM over these rows.
- vision blocks (pre-RMSNorm, 2-D rotary attention, SwiGLU MLP with biases) attend
  inside windows of ``window_size / patch_size / 2`` merged tokens per side, except the
  ``fullatt_block_indexes`` blocks, which attend inside each temporal frame. Tokens are
  permuted window-major for the blocks (as transformers does, so the merger sees the same
  4-patch groups) and back after the merger.
- the merger (RMSNorm, 2x2 patches concatenated, Linear-GELU-Linear) gives one token of
  the decoder width per 2x2 patches: ``t * (h/2) * (w/2)`` tokens per item, frame-major,
  row-major: the visual grid Focus sees.
- features replace the ``image_token_id`` / ``video_token_id`` placeholders in order; the
  decoder (``qwen2.modeling`` with ``mrope_section``) reads ``(B, S, 3)`` positions from
  ``rope_index`` (temporal, height, width; text tokens have three equal rows).

Parameter pytree (linear weights ``(in, out)``)::

    vision:   patch_embed {w (C*T*p*p, Dv)},
              blocks: norm1, norm2 (Dv,), qkv {w (Dv, 3Dv), b}, proj {w, b},
                      gate {w (Dv, Iv), b}, up {w, b}, down {w (Iv, Dv), b}; stacked (depth, ...)
              merger: norm (Dv,), fc1 {w (4Dv, 4Dv), b}, fc2 {w (4Dv, D), b}
    language: Qwen2 pytree (focus_jax.models.qwen2.modeling)
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.models.focus_hooks import FocusPlan
from focus_jax.models.layers import activation, dense, rms_norm
from focus_jax.models.llava_onevision.modeling import merge_embeddings
from focus_jax.models.qwen2 import modeling as qwen2
from focus_jax.models.qwen2.modeling import Qwen2Config

__all__ = [
    "Qwen2_5_VLConfig",
    "VisionConfig",
    "embed",
    "forward",
    "init_params",
    "rope_index",
    "vision_encode",
    "vision_layout",
]

_VISION_EPS = 1e-6  # transformers hard-codes the vision RMSNorm epsilon


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """Qwen2.5-VL vision tower (transformers' ``Qwen2_5_VLVisionConfig``).

    Raises:
        ValueError: a non-positive dimension, heads that do not divide the width, or a
            window that is not a whole number of merged patches.
    """

    depth: int = 32
    hidden_size: int = 1280
    intermediate_size: int = 3420
    num_heads: int = 16
    in_channels: int = 3
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    window_size: int = 112
    out_hidden_size: int = 2048
    fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
    tokens_per_second: float = 2
    hidden_act: str = "silu"
    rope_theta: float = 10000.0

    def __post_init__(self):
        object.__setattr__(self, "fullatt_block_indexes", tuple(int(i) for i in self.fullatt_block_indexes))
        for name in (
            "depth",
            "hidden_size",
            "intermediate_size",
            "num_heads",
            "in_channels",
            "patch_size",
            "temporal_patch_size",
            "spatial_merge_size",
            "window_size",
            "out_hidden_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VisionConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 4:
            raise ValueError(
                f"vision hidden_size {self.hidden_size} / num_heads {self.num_heads} must be a multiple of 4 (2-D RoPE)"
            )
        if self.window_size % (self.patch_size * self.spatial_merge_size):
            raise ValueError(f"window_size {self.window_size} is not a multiple of patch_size x spatial_merge_size")
        activation(self.hidden_act)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        """Pixels per patch row: ``C * T * p * p``."""
        return self.in_channels * self.temporal_patch_size * self.patch_size**2

    @property
    def merge_unit(self) -> int:
        return self.spatial_merge_size**2

    @property
    def window_merged(self) -> int:
        """Merged tokens per window side."""
        return self.window_size // self.spatial_merge_size // self.patch_size


@dataclasses.dataclass(frozen=True)
class Qwen2_5_VLConfig:
    """A Qwen2.5-VL model (transformers' ``Qwen2_5_VLConfig``; defaults: Qwen2.5-VL-3B);
    ``text.mrope_section`` is set.

    Raises:
        ValueError: no ``mrope_section``, or a vision output width that is not the decoder's.
    """

    vision: VisionConfig = VisionConfig()
    text: Qwen2Config = Qwen2Config(  # noqa: RUF009 (frozen: sharing the default is safe)
        hidden_size=2048,
        intermediate_size=11008,
        num_layers=36,
        num_heads=16,
        num_kv_heads=2,
        head_dim=128,
        tie_word_embeddings=True,
        mrope_section=(16, 24, 24),
    )
    image_token_id: int = 151655
    video_token_id: int = 151656
    vision_start_token_id: int = 151652
    vision_end_token_id: int = 151653

    def __post_init__(self):
        if not self.text.mrope_section:
            raise ValueError("Qwen2.5-VL's decoder needs text.mrope_section (multimodal RoPE)")
        if self.vision.out_hidden_size != self.text.hidden_size:
            raise ValueError(
                f"vision out_hidden_size {self.vision.out_hidden_size} != text hidden_size {self.text.hidden_size}"
            )

    def merged_grid(self, grid_thw) -> tuple[int, int, int]:
        """``(frames, rows, columns)`` of an item's decoder tokens: ``(t, h/2, w/2)``."""
        t, h, w = (int(v) for v in grid_thw)
        m = self.vision.spatial_merge_size
        return t, h // m, w // m

    def token_count(self, grid_thw) -> int:
        """Placeholder tokens of one image/video with patch grid ``grid_thw``."""
        t, h, w = self.merged_grid(grid_thw)
        return t * h * w


def _dense_init(key, n_in, n_out, dtype, bias=True, std=0.02):
    p = {"w": (jax.random.normal(key, (n_in, n_out), jnp.float32) * std).astype(dtype)}
    if bias:
        p["b"] = jnp.zeros((n_out,), dtype)
    return p


def init_params(cfg: Qwen2_5_VLConfig, key: jax.Array, dtype=jnp.float32, std: float = 0.02) -> dict:
    """Random parameters (see the module docstring for the layout)."""
    v = cfg.vision
    d, f = v.hidden_size, v.intermediate_size
    k_patch, k_blocks, k_m1, k_m2, k_text = jax.random.split(key, 5)

    def block(k):
        ks = jax.random.split(k, 5)
        return {
            "norm1": jnp.ones((d,), dtype),
            "norm2": jnp.ones((d,), dtype),
            "qkv": _dense_init(ks[0], d, 3 * d, dtype, std=std),
            "proj": _dense_init(ks[1], d, d, dtype, std=std),
            "gate": _dense_init(ks[2], d, f, dtype, std=std),
            "up": _dense_init(ks[3], d, f, dtype, std=std),
            "down": _dense_init(ks[4], f, d, dtype, std=std),
        }

    merged = d * v.merge_unit
    vision = {
        "patch_embed": _dense_init(k_patch, v.patch_dim, d, dtype, bias=False, std=std),
        "blocks": jax.vmap(block)(jax.random.split(k_blocks, v.depth)),
        "merger": {
            "norm": jnp.ones((d,), dtype),
            "fc1": _dense_init(k_m1, merged, merged, dtype, std=std),
            "fc2": _dense_init(k_m2, merged, v.out_hidden_size, dtype, std=std),
        },
    }
    return {"vision": vision, "language": qwen2.init_params(cfg.text, k_text, dtype, std)}


# ---------------------------------------------------------------------------- vision layout


@dataclasses.dataclass(frozen=True)
class _Segments:
    """Static gather indices of attention inside contiguous segments of the (permuted) sequence.

    ``gather`` ``(n_seg, L)``: sequence index of each padded slot (0 where padding);
    ``valid`` ``(n_seg, L)``; ``scatter`` ``(N,)``: flat padded slot of each sequence index.
    """

    gather: np.ndarray
    valid: np.ndarray
    scatter: np.ndarray


def _segments(bounds: list[int]) -> _Segments:
    lengths = np.diff(np.asarray(bounds))
    lengths = lengths[lengths > 0]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    width = int(lengths.max())
    slot = np.arange(width)
    valid = slot[None, :] < lengths[:, None]
    gather = np.where(valid, starts[:, None] + slot[None, :], 0)
    scatter = np.nonzero(valid.reshape(-1))[0]
    return _Segments(gather.astype(np.int32), valid, scatter.astype(np.int32))


@dataclasses.dataclass(frozen=True)
class VisionLayout:
    """Everything static about one vision-tower call (from ``grid_thw`` alone).

    Attributes:
        order: ``(N,)`` patch index of each position of the window-major sequence.
        unit_inverse: ``(N/4,)`` window-major merged-token index of each output token.
        positions: ``(N, 2)`` (row, column) of each window-major patch (2-D RoPE).
        windows, frames: attention segments of the windowed and the full-attention blocks.
    """

    order: np.ndarray
    unit_inverse: np.ndarray
    positions: np.ndarray
    windows: _Segments
    frames: _Segments


@functools.lru_cache(maxsize=64)
def vision_layout(cfg: VisionConfig, grid_thw: tuple[tuple[int, int, int], ...]) -> VisionLayout:
    """Window permutation, 2-D positions and attention segments for items ``grid_thw``
    (transformers' ``get_vision_position_ids``, ``get_vision_window_index`` and the
    per-frame ``cu_seqlens``).

    Raises:
        ValueError: an item's height or width is not a multiple of the merge size.
    """
    m, ws, unit = cfg.spatial_merge_size, cfg.window_merged, cfg.merge_unit
    positions, window_units, window_bounds, frame_bounds = [], [], [0], [0]
    offset = 0
    for t, h, w in grid_thw:
        if h % m or w % m or min(t, h, w) < 1:
            raise ValueError(f"grid_thw ({t}, {h}, {w}): height and width must be positive multiples of {m}")
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        rc = np.stack([rows, cols], -1).reshape(h // m, m, w // m, m, 2).transpose(0, 2, 1, 3, 4).reshape(-1, 2)
        positions.append(np.tile(rc, (t, 1)))  # merge-block order, every frame
        gh, gw = h // m, w // m
        index = np.arange(t * gh * gw).reshape(t, gh, gw)
        ph, pw = -gh % ws, -gw % ws
        padded = np.pad(index, ((0, 0), (0, ph), (0, pw)), constant_values=-1)
        nh, nw = (gh + ph) // ws, (gw + pw) // ws
        padded = padded.reshape(t, nh, ws, nw, ws).transpose(0, 1, 3, 2, 4).reshape(t, nh * nw, ws * ws)
        for win in padded.reshape(-1, ws * ws):
            kept = win[win >= 0]
            window_units.append(kept + offset)
            window_bounds.append(window_bounds[-1] + kept.size * unit)
        frame_bounds += [frame_bounds[-1] + (i + 1) * h * w for i in range(t)]
        offset += t * gh * gw
    units = np.concatenate(window_units)
    order = (units[:, None] * unit + np.arange(unit)[None, :]).reshape(-1)
    return VisionLayout(
        order=order.astype(np.int32),
        unit_inverse=np.argsort(units).astype(np.int32),
        positions=np.concatenate(positions)[order].astype(np.int32),
        windows=_segments(window_bounds),
        frames=_segments(frame_bounds),
    )


def _vision_rope(cfg: VisionConfig, positions: np.ndarray):
    """cos/sin ``(N, hd)`` float32: rows then columns over ``hd/4`` frequencies each, twice."""
    quarter = np.arange(0, cfg.head_dim // 2, 2, dtype=np.float32) / np.float32(cfg.head_dim // 2)
    inv = (1.0 / (np.float32(cfg.rope_theta) ** quarter)).astype(np.float32)
    freqs = jnp.asarray(positions, jnp.float32)[..., None] * jnp.asarray(inv)  # (N, 2, hd/4)
    emb = freqs.reshape(freqs.shape[0], -1)
    emb = jnp.concatenate([emb, emb], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


def _segment_attention(q, k, v, seg: _Segments, scale: float):
    """Bidirectional attention inside each segment. ``q, k, v``: ``(N, H, hd)`` -> ``(N, H*hd)``."""
    _n, h, hd = q.shape
    gather = jnp.asarray(seg.gather)
    qs, ks, vs = (a[gather] for a in (q, k, v))  # (n_seg, L, H, hd)
    scores = jnp.einsum("sqhd,skhd->shqk", qs, ks, preferred_element_type=jnp.float32) * scale
    scores = jnp.where(jnp.asarray(seg.valid)[:, None, None, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("shqk,skhd->sqhd", probs, vs, preferred_element_type=jnp.float32).astype(q.dtype)
    return out.reshape(-1, h * hd)[jnp.asarray(seg.scatter)]


def _rotate(x, cos, sin):
    """2-D RoPE in float32 (transformers' ``apply_rotary_pos_emb_vision``), back to ``x.dtype``."""
    xf = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-xf[..., half:], xf[..., :half]], axis=-1)
    return (xf * cos[:, None] + rotated * sin[:, None]).astype(x.dtype)


def vision_encode(
    params: dict, cfg: Qwen2_5_VLConfig, pixels: jnp.ndarray, grid_thw, merge: bool = True
) -> jnp.ndarray:
    """Vision tower + merger: ``(N, C*T*p*p)`` patch rows -> ``(N/4, D)`` decoder tokens.

    Args:
        pixels: the image processor's ``pixel_values`` / ``pixel_values_videos`` for every
            item, concatenated.
        grid_thw: ``((t, h, w), ...)`` per item (Python ints: they fix the layout).
        merge: False returns the last block's output instead, ``(N, Dv)`` in the
            window-major order (transformers' ``last_hidden_state``).

    Returns:
        ``(sum_i t_i*h_i*w_i/4, text.hidden_size)`` in the parameter dtype, items in order,
        each frame-major, row-major over the merged grid.

    Raises:
        ValueError: ``pixels`` has the wrong number of rows or columns for ``grid_thw``.
    """
    v, p = cfg.vision, params["vision"]
    grid_thw = tuple(tuple(int(a) for a in g) for g in grid_thw)
    n = sum(t * h * w for t, h, w in grid_thw)
    if pixels.shape != (n, v.patch_dim):
        raise ValueError(f"pixel rows have shape {tuple(pixels.shape)}; grid_thw {grid_thw} needs ({n}, {v.patch_dim})")
    layout = vision_layout(v, grid_thw)
    dtype = p["patch_embed"]["w"].dtype
    x = dense(pixels.astype(dtype)[jnp.asarray(layout.order)], p["patch_embed"])
    cos, sin = _vision_rope(v, layout.positions)
    act = activation(v.hidden_act)
    for i in range(v.depth):
        blk = jax.tree.map(lambda a, i=i: a[i], p["blocks"])
        h = rms_norm(x, blk["norm1"], _VISION_EPS)
        q, k, val = jnp.split(dense(h, blk["qkv"]).reshape(n, 3, v.num_heads, v.head_dim), 3, axis=1)
        q, k, val = _rotate(q[:, 0], cos, sin), _rotate(k[:, 0], cos, sin), val[:, 0]
        seg = layout.frames if i in v.fullatt_block_indexes else layout.windows
        x = x + dense(_segment_attention(q, k, val, seg, v.head_dim**-0.5), blk["proj"])
        h = rms_norm(x, blk["norm2"], _VISION_EPS)
        x = x + dense(act(dense(h, blk["gate"])) * dense(h, blk["up"]), blk["down"])
    if not merge:
        return x
    mp = p["merger"]
    merged = rms_norm(x, mp["norm"], _VISION_EPS).reshape(n // v.merge_unit, -1)
    merged = dense(jax.nn.gelu(dense(merged, mp["fc1"]), approximate=False), mp["fc2"])
    return merged[jnp.asarray(layout.unit_inverse)]


# ---------------------------------------------------------------------------- positions


def rope_index(
    cfg: Qwen2_5_VLConfig,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    image_grid_thw=None,
    video_grid_thw=None,
    second_per_grid_ts=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multimodal RoPE positions of a batch (transformers' ``get_rope_index``), on the host.

    Text tokens count up by one on all three rows. A run of image/video placeholders of
    merged grid ``(T, H, W)`` starting after text position ``p`` gets rows
    ``(p + int(t * interval), p + i, p + j)`` (``interval`` = ``tokens_per_second *
    second_per_grid_ts`` for videos, 1 for images) and the next text token
    ``p + max(H, W)``.

    Args:
        input_ids, attention_mask: ``(B, S)``; padding (mask 0) gets position 0.
        image_grid_thw, video_grid_thw: ``(n, 3)`` patch grids of the items in order.
        second_per_grid_ts: ``(n_videos,)`` seconds per temporal patch (default 1).

    Returns:
        ``(positions (B, S, 3) int32, next_position (B,) int32)``: ``next_position`` is the
        position of the first generated token (max over the prompt + 1).

    Raises:
        ValueError: more placeholder runs than grids, or a run whose length differs from its grid.
    """
    grids = {
        cfg.image_token_id: iter(
            np.asarray(image_grid_thw).reshape(-1, 3).tolist() if image_grid_thw is not None else []
        ),
        cfg.video_token_id: iter(
            np.asarray(video_grid_thw).reshape(-1, 3).tolist() if video_grid_thw is not None else []
        ),
    }
    seconds = iter(
        np.asarray(second_per_grid_ts, np.float32).reshape(-1).tolist() if second_per_grid_ts is not None else []
    )
    b, s = input_ids.shape
    out = np.zeros((b, s, 3), np.int64)
    nxt = np.zeros((b,), np.int64)
    for row in range(b):
        idx = np.nonzero(attention_mask[row] > 0)[0]
        ids = input_ids[row, idx]
        pos, current, i = [], 0, 0
        while i < len(ids):
            tok = int(ids[i])
            j = i
            while j < len(ids) and int(ids[j]) == tok:
                j += 1
            if tok in grids:
                grid = next(grids[tok], None)
                if grid is None:
                    raise ValueError(
                        f"prompt {row} has more {'video' if tok == cfg.video_token_id else 'image'} "
                        "placeholder runs than grids"
                    )
                t, h, w = cfg.merged_grid(grid)
                if j - i != t * h * w:
                    raise ValueError(
                        f"prompt {row}: a run of {j - i} placeholders, its grid {tuple(grid)} needs {t * h * w}"
                    )
                interval = (
                    np.float32(cfg.vision.tokens_per_second) * np.float32(next(seconds, 1.0))
                    if tok == cfg.video_token_id
                    else 1
                )
                tt = (np.arange(t, dtype=np.float32) * np.float32(interval)).astype(np.int64)
                g = np.stack(np.meshgrid(tt, np.arange(h), np.arange(w), indexing="ij"), -1).reshape(-1, 3)
                pos.append(g + current)
                current += max(h, w)
            else:
                pos.append(np.repeat(np.arange(current, current + j - i)[:, None], 3, axis=1))
                current += j - i
            i = j
        if pos:
            p = np.concatenate(pos)
            out[row, idx] = p
            nxt[row] = p.max() + 1
    return out.astype(np.int32), nxt.astype(np.int32)


# ---------------------------------------------------------------------------- whole model


def embed(
    params: dict,
    cfg: Qwen2_5_VLConfig,
    input_ids,
    pixel_values=None,
    image_grid_thw=None,
    pixel_values_videos=None,
    video_grid_thw=None,
):
    """Decoder input embeddings ``(B, S, D)``: token embeddings with the image and video
    placeholders replaced by ``vision_encode`` features, in order (``masked_scatter``)."""
    x = qwen2.embed_tokens(params["language"], input_ids)
    if pixel_values is not None:
        x = merge_embeddings(x, input_ids, cfg.image_token_id, vision_encode(params, cfg, pixel_values, image_grid_thw))
    if pixel_values_videos is not None:
        x = merge_embeddings(
            x, input_ids, cfg.video_token_id, vision_encode(params, cfg, pixel_values_videos, video_grid_thw)
        )
    return x


def forward(
    params: dict,
    cfg: Qwen2_5_VLConfig,
    input_ids: jnp.ndarray,
    key_valid: jnp.ndarray,
    positions: jnp.ndarray,
    *,
    pixel_values=None,
    image_grid_thw=None,
    pixel_values_videos=None,
    video_grid_thw=None,
    plan: FocusPlan | None = None,
    visual_start=None,
    return_records: bool = False,
    logits_to_keep: int = 0,
    cache_extra: int = 0,
):
    """The whole model as one pure function (jit it with the grids static).

    Args:
        input_ids: ``(B, S)`` with expanded placeholders; key_valid: ``(B, S)`` bool;
            positions: ``(B, S, 3)`` from ``rope_index``.
        pixel_values, pixel_values_videos: patch rows; image_grid_thw, video_grid_thw:
            tuples of ``(t, h, w)``.
        plan, visual_start, return_records, cache_extra: see ``qwen2.modeling.prefill``.
        logits_to_keep: if > 0, logits of the last rows only.

    Returns:
        ``(logits (B, S_out, vocab), qwen2.modeling.PrefillResult)``.
    """
    x = embed(params, cfg, input_ids, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw)
    out = qwen2.prefill(
        params["language"],
        cfg.text,
        x,
        key_valid,
        positions,
        plan=plan,
        visual_start=visual_start,
        cache_extra=cache_extra,
        return_records=return_records,
    )
    hidden = out.hidden[:, -logits_to_keep:] if logits_to_keep else out.hidden
    return qwen2.logits_from_hidden(params["language"], cfg.text, hidden), out
