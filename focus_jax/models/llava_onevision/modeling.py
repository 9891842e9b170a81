"""LLaVA-OneVision / LLaVA-Video: SigLIP tower, 2-layer GELU projector, Qwen2 decoder.

Same token layout and numerics as transformers' ``LlavaOnevisionForConditionalGeneration``:

- video ``(B, F, 3, 384, 384)``: every frame through SigLIP, hidden states of
  ``vision_feature_layer``, the projector, then per-frame bilinear pooling of the
  ``P x P`` patch grid to ``ceil(P/2) x ceil(P/2)`` (27 -> 14), frames concatenated
  frame-major, row-major, and one ``image_newline`` token after the whole video. The
  prompt holds ``F * ceil(P/2)**2 + 1`` video placeholder tokens.
- image (anyres, ``(n, patches, 3, 384, 384)`` + original sizes): the base (resized)
  image's ``P x P`` features, then the high-resolution tiles stitched into one grid,
  unpadded to the image's aspect ratio, bilinearly shrunk when larger than
  ``anyres_max_9`` allows, with an ``image_newline`` after every row.
- placeholders are replaced in order (``masked_scatter`` semantics), then the decoder runs.

For Focus, the visual grid of a video prompt is ``F x ceil(P/2) x ceil(P/2)``: the video
placeholders minus the final newline, which counts as query text (as in the reference,
where the newline follows the visual span). An image prompt is one frame: the anyres grid
with its newline column, after the dense base view (``image_focus_grid``).

Parameter pytree::

    vision:        SigLIP pytree (focus_jax.models.siglip.modeling)
    projector:     {linear_1: {w (Dv*layers, D), b}, linear_2: {w (D, D), b}}
    image_newline: (D,)
    language:      Qwen2 pytree (focus_jax.models.qwen2.modeling)
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.models.focus_hooks import FocusPlan
from focus_jax.models.layers import activation, dense
from focus_jax.models.qwen2 import modeling as qwen2
from focus_jax.models.qwen2.modeling import Qwen2Config
from focus_jax.models.siglip import modeling as siglip
from focus_jax.models.siglip.modeling import SiglipVisionConfig

__all__ = [
    "LlavaOnevisionConfig",
    "init_params",
    "project",
    "bilinear_matrix",
    "video_features",
    "image_features",
    "merge_embeddings",
    "select_best_resolution",
    "anyres_grid_shape",
    "image_token_count",
    "image_focus_grid",
    "embed",
    "forward",
    "loss_fn",
    "positions_from_mask",
    "IGNORE_INDEX",
]

#: Label value excluded from the loss (transformers' convention).
IGNORE_INDEX = -100


@dataclasses.dataclass(frozen=True)
class LlavaOnevisionConfig:
    """A LLaVA-OneVision model: vision tower, decoder and how visual features enter it.

    Attributes mirror transformers' ``LlavaOnevisionConfig``; ``vision_feature_layer`` is
    a tuple (one or more ``hidden_states`` indices, concatenated), ``image_grid_pinpoints``
    a tuple of ``(height, width)`` resolutions.

    Raises:
        ValueError: an unsupported projector activation, feature-selection strategy or
            aspect-ratio mode.
    """

    vision: SiglipVisionConfig = SiglipVisionConfig()
    text: Qwen2Config = Qwen2Config()
    image_token_id: int = 151646
    video_token_id: int = 151647
    projector_hidden_act: str = "gelu"
    vision_feature_layer: tuple[int, ...] = (-1,)
    vision_feature_select_strategy: str = "full"
    multimodal_projector_bias: bool = True
    image_grid_pinpoints: tuple[tuple[int, int], ...] = tuple(
        (384 * h, 384 * w) for h in range(1, 7) for w in range(1, 7)
    )
    vision_aspect_ratio: str = "anyres_max_9"

    def __post_init__(self):
        activation(self.projector_hidden_act)
        if self.vision_feature_select_strategy not in ("full", "default"):
            raise ValueError(
                "vision_feature_select_strategy must be 'full' or 'default', got "
                f"{self.vision_feature_select_strategy!r}"
            )
        if not self.vision_aspect_ratio.startswith("anyres_max_"):
            raise ValueError(
                f"only 'anyres_max_<n>' vision_aspect_ratio is supported, got {self.vision_aspect_ratio!r}"
            )
        object.__setattr__(self, "vision_feature_layer", tuple(self.vision_feature_layer))
        object.__setattr__(
            self, "image_grid_pinpoints", tuple(tuple(int(v) for v in p) for p in self.image_grid_pinpoints)
        )

    @property
    def pooled_side(self) -> int:
        """Rows (= columns) of a video frame's token grid after pooling: ``ceil(P / 2)``."""
        return math.ceil(self.vision.patches_per_side / 2)

    @property
    def tokens_per_frame(self) -> int:
        return self.pooled_side**2

    def video_token_count(self, frames: int) -> int:
        """Placeholder tokens of a ``frames``-frame video: grid tokens plus one newline."""
        return frames * self.tokens_per_frame + 1

    @property
    def max_num_patches(self) -> int:
        return int(self.vision_aspect_ratio[len("anyres_max_") :])

    @property
    def vision_feature_dim(self) -> int:
        return self.vision.hidden_size * len(self.vision_feature_layer)


def init_params(cfg: LlavaOnevisionConfig, key: jax.Array, dtype=jnp.float32) -> dict:
    """Random parameters for the whole model (see the module docstring for the layout)."""
    kv, kp1, kp2, kn, kt = jax.random.split(key, 5)
    d = cfg.text.hidden_size

    def lin(k, n_in, n_out):
        p = {"w": (jax.random.normal(k, (n_in, n_out), jnp.float32) * n_in**-0.5).astype(dtype)}
        if cfg.multimodal_projector_bias:
            p["b"] = jnp.zeros((n_out,), dtype)
        return p

    return {
        "vision": siglip.init_params(cfg.vision, kv, dtype),
        "projector": {"linear_1": lin(kp1, cfg.vision_feature_dim, d), "linear_2": lin(kp2, d, d)},
        "image_newline": (jax.random.normal(kn, (d,), jnp.float32) * d**-0.5).astype(dtype),
        "language": qwen2.init_params(cfg.text, kt, dtype),
    }


def project(params: dict, cfg: LlavaOnevisionConfig, features: jnp.ndarray) -> jnp.ndarray:
    """The multimodal projector: ``linear_2(act(linear_1(x)))``, ``(..., Dv) -> (..., D)``."""
    p = params["projector"]
    return dense(activation(cfg.projector_hidden_act)(dense(features, p["linear_1"])), p["linear_2"])


def _vision_features(params, cfg: LlavaOnevisionConfig, pixels):
    feats = siglip.encode(params["vision"], cfg.vision, pixels, cfg.vision_feature_layer)
    if cfg.vision_feature_select_strategy == "default":
        feats = feats[:, 1:]
    return feats


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` float32 weights of 1-D bilinear resampling as ``torch`` computes it
    (``interpolate(mode='bilinear', align_corners=False)`` with an explicit size, no
    antialiasing): source ``max(0, (i + 0.5) * n_in / n_out - 0.5)``, two taps."""
    scale = n_in / n_out
    out = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        src = max(0.0, (i + 0.5) * scale - 0.5)
        i0 = min(int(src), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        w1 = src - i0
        out[i, i0] += 1.0 - w1
        out[i, i1] += w1
    return out.astype(np.float32)


def _resize_grid(grid: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
    """Bilinear resize of ``(..., h, w, D)`` to ``(..., height, width, D)`` in float32."""
    h, w = grid.shape[-3], grid.shape[-2]
    ah, aw = jnp.asarray(bilinear_matrix(h, height)), jnp.asarray(bilinear_matrix(w, width))
    out = jnp.einsum("oh,...hwd,pw->...opd", ah, grid.astype(jnp.float32), aw, precision=jax.lax.Precision.HIGHEST)
    return out.astype(grid.dtype)


def video_features(params: dict, cfg: LlavaOnevisionConfig, pixel_values_videos: jnp.ndarray) -> jnp.ndarray:
    """Video placeholder embeddings: ``(B, F, C, H, W) -> (B, F * s * s + 1, D)``, ``s = ceil(P/2)``.

    Per frame: SigLIP features, projector, bilinear pooling ``P x P -> s x s``; then the
    frames frame-major and one ``image_newline`` (transformers' ``get_video_features``).

    Raises:
        ValueError: ``pixel_values_videos`` is not 5-D, or the feature strategy leaves a
            token count that is not a square grid.
    """
    if pixel_values_videos.ndim != 5:
        raise ValueError(
            "pixel_values_videos must have shape (batch, frames, channels, height, width), got "
            f"{pixel_values_videos.shape}"
        )
    b, f = pixel_values_videos.shape[:2]
    feats = project(
        params,
        cfg,
        _vision_features(params, cfg, pixel_values_videos.reshape((b * f,) + pixel_values_videos.shape[2:])),
    )
    p = cfg.vision.patches_per_side
    if feats.shape[1] != p * p:
        raise ValueError(f"video pooling needs a {p}x{p} feature grid, got {feats.shape[1]} tokens per frame")
    pooled = _resize_grid(feats.reshape(b * f, p, p, -1), cfg.pooled_side, cfg.pooled_side)
    pooled = pooled.reshape(b, f * cfg.tokens_per_frame, -1)
    newline = jnp.broadcast_to(params["image_newline"].astype(pooled.dtype), (b, 1, pooled.shape[-1]))
    return jnp.concatenate([pooled, newline], axis=1)


def select_best_resolution(original_size: tuple[int, int], possible_resolutions) -> tuple[int, int]:
    """The anyres target ``(height, width)`` for an image of ``original_size`` ``(height,
    width)``: most effective pixels, then least waste (transformers' rule)."""
    oh, ow = original_size
    best, best_eff, best_waste = None, 0, float("inf")
    for h, w in possible_resolutions:
        scale = min(w / ow, h / oh)
        eff = min(int(ow * scale) * int(oh * scale), ow * oh)
        waste = w * h - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (h, w), eff, waste
    return best


def anyres_grid_shape(cfg: LlavaOnevisionConfig, image_size: tuple[int, int]) -> tuple[int, int]:
    """High-resolution tiles ``(rows, columns)`` of an image of ``image_size`` ``(height, width)``."""
    h, w = select_best_resolution(image_size, cfg.image_grid_pinpoints)
    return h // cfg.vision.image_size, w // cfg.vision.image_size


def _unpad_shape(grid_h: int, grid_w: int, image_size) -> tuple[slice, slice]:
    """Rows/columns of the stitched feature grid that hold the image (transformers' ``unpad_image``)."""
    oh, ow = image_size
    if ow / oh > grid_w / grid_h:
        new_h = int(round(oh * (grid_w / ow), 7))
        pad = (grid_h - new_h) // 2
        return slice(pad, grid_h - pad), slice(0, grid_w)
    new_w = int(round(ow * (grid_h / oh), 7))
    pad = (grid_w - new_w) // 2
    return slice(0, grid_h), slice(pad, grid_w - pad)


def _anyres_layout(
    cfg: LlavaOnevisionConfig, image_size
) -> tuple[int, int, int, int, tuple[slice, slice], tuple[int, int] | None]:
    """(tiles_h, tiles_w, unpadded_h, unpadded_w, crop, resize_to) of one image."""
    p = cfg.vision.patches_per_side
    th, tw = anyres_grid_shape(cfg, image_size)
    rows, cols = _unpad_shape(th * p, tw * p, image_size)
    h, w = rows.stop - rows.start, cols.stop - cols.start
    ratio = math.sqrt(h * w / (cfg.max_num_patches * p**2))
    resize = (int(h // ratio), int(w // ratio)) if ratio > 1.1 else None
    return th, tw, h, w, (rows, cols), resize


def image_token_count(cfg: LlavaOnevisionConfig, image_size: tuple[int, int], tiles: bool = True) -> int:
    """Placeholder tokens of one image of ``image_size`` ``(height, width)`` (anyres layout;
    ``tiles=False``: base image only, plus its newline)."""
    p = cfg.vision.patches_per_side
    if not tiles:
        return p * p + 1
    *_, h, w, _, resize = _anyres_layout(cfg, image_size)
    if resize is not None:
        h, w = resize
    return p * p + h * (w + 1)


def image_focus_grid(cfg: LlavaOnevisionConfig, image_size: tuple[int, int]) -> tuple[int, int, int]:
    """Where Focus concentrates an anyres image: ``(offset, rows, cols)``.

    The image's placeholders are the base view (``P x P``) then the stitched, unpadded
    high-resolution grid of ``rows`` rows, each followed by an ``image_newline``. Focus
    (as the reference's image study) treats the image as one frame: SIC and SEC act on the
    high-resolution grid, ``VisualGeometry(1, rows, cols)`` with ``cols`` = grid columns
    + 1 (the newline column, so the span is contiguous; its tokens are one identical
    vector, which SIC merges down the column). The base view, ``offset = P*P`` tokens
    before the grid, stays dense: it is the whole image again at another scale, with no
    token-to-token correspondence to the grid that a spatial window could use, and it
    holds a small share of the tokens (729 of up to ~8000 at 384 px, anyres_max_9).
    """
    p = cfg.vision.patches_per_side
    *_, h, w, _, resize = _anyres_layout(cfg, image_size)
    if resize is not None:
        h, w = resize
    return p * p, h, w + 1


def image_features(params: dict, cfg: LlavaOnevisionConfig, pixel_values: jnp.ndarray, image_sizes) -> jnp.ndarray:
    """Image placeholder embeddings of a batch of images, concatenated: ``(sum L_i, D)``.

    Args:
        pixel_values: ``(n, max_patches, C, H, W)``: per image the base view then the
            anyres tiles (zero padding after them, ignored), as the image processor makes.
        image_sizes: ``n`` original ``(height, width)`` pairs (Python ints: they decide
            the token layout, so they are static).

    Returns:
        ``(sum L_i, D)`` with ``L_i = image_token_count(cfg, image_sizes[i])``.

    Raises:
        ValueError: shapes disagree with the number of tiles the sizes imply.
    """
    if pixel_values.ndim != 5:
        raise ValueError(
            f"pixel_values must have shape (images, patches, channels, height, width), got {pixel_values.shape}"
        )
    image_sizes = [tuple(int(v) for v in s) for s in image_sizes]
    if len(image_sizes) != pixel_values.shape[0]:
        raise ValueError(f"{pixel_values.shape[0]} images but {len(image_sizes)} image_sizes")
    p, d = cfg.vision.patches_per_side, cfg.text.hidden_size
    layouts = [_anyres_layout(cfg, s) for s in image_sizes]
    counts = [th * tw + 1 for th, tw, *_ in layouts]
    if max(counts) > pixel_values.shape[1]:
        raise ValueError(
            f"image sizes need up to {max(counts)} patches per image, pixel_values has {pixel_values.shape[1]}"
        )
    pixels = jnp.concatenate([pixel_values[i, :c] for i, c in enumerate(counts)], axis=0)
    feats = project(params, cfg, _vision_features(params, cfg, pixels))
    if feats.shape[1] != p * p:
        raise ValueError(f"anyres packing needs a {p}x{p} feature grid, got {feats.shape[1]} tokens per patch")
    newline = params["image_newline"].astype(feats.dtype)
    out, first = [], 0
    for (th, tw, _, _, (rows, cols), resize), count in zip(layouts, counts):
        base, tiles = feats[first], feats[first + 1 : first + count]
        first += count
        grid = tiles.reshape(th, tw, p, p, d).transpose(0, 2, 1, 3, 4).reshape(th * p, tw * p, d)[rows, cols]
        if resize is not None:
            grid = _resize_grid(grid, *resize)
        grid = jnp.concatenate([grid, jnp.broadcast_to(newline, (grid.shape[0], 1, d))], axis=1)
        out += [base, grid.reshape(-1, d)]
    return jnp.concatenate(out, axis=0)


def merge_embeddings(embeds: jnp.ndarray, input_ids: jnp.ndarray, token_id: int, features: jnp.ndarray) -> jnp.ndarray:
    """Put ``features`` ``(M, D)`` in place of the ``token_id`` placeholders of ``input_ids``
    ``(B, S)``, in row-major order (``torch.masked_scatter``). ``M`` must equal the number
    of placeholders (checked by the caller, which knows it statically)."""
    mask = input_ids == token_id
    order = jnp.cumsum(mask.reshape(-1)).reshape(mask.shape) - 1
    gathered = jnp.take(features.astype(embeds.dtype), jnp.clip(order, 0, features.shape[0] - 1), axis=0)
    return jnp.where(mask[..., None], gathered, embeds)


def embed(
    params: dict, cfg: LlavaOnevisionConfig, input_ids, pixel_values=None, pixel_values_videos=None, image_sizes=None
):
    """Decoder input embeddings ``(B, S, D)``: token embeddings with the image/video
    placeholders replaced by their features (``image_features``, ``video_features``)."""
    lang = params["language"]
    x = qwen2.embed_tokens(lang, input_ids)
    if pixel_values is not None:
        x = merge_embeddings(x, input_ids, cfg.image_token_id, image_features(params, cfg, pixel_values, image_sizes))
    if pixel_values_videos is not None:
        feats = video_features(params, cfg, pixel_values_videos)
        x = merge_embeddings(x, input_ids, cfg.video_token_id, feats.reshape(-1, feats.shape[-1]))
    return x


def forward(
    params: dict,
    cfg: LlavaOnevisionConfig,
    input_ids: jnp.ndarray,
    key_valid: jnp.ndarray,
    positions: jnp.ndarray,
    *,
    pixel_values=None,
    pixel_values_videos=None,
    image_sizes=None,
    plan: FocusPlan | None = None,
    visual_start=None,
    return_records: bool = False,
    logits_to_keep: int = 0,
    cache_extra: int = 0,
    knobs=None,
    relaxed: bool = False,
    temperature=0.05,
):
    """The whole model as one pure function (jit it; differentiable when ``plan`` is None).

    Args:
        params: parameter pytree; cfg: model config.
        input_ids: ``(B, S)`` int with expanded placeholders; key_valid: ``(B, S)`` bool
            (False at padding); positions: ``(B, S)`` int RoPE positions.
        pixel_values, image_sizes, pixel_values_videos: as ``LlavaOnevision.forward``.
        plan, visual_start: Focus (see ``qwen2.modeling.prefill``), or None for dense.
        return_records, cache_extra, knobs, relaxed, temperature: see ``qwen2.modeling.prefill``.
        logits_to_keep: if > 0, logits of the last rows only.

    Returns:
        ``(logits (B, S_out, vocab), qwen2.modeling.PrefillResult)``.
    """
    x = embed(params, cfg, input_ids, pixel_values, pixel_values_videos, image_sizes)
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
        knobs=knobs,
        relaxed=relaxed,
        temperature=temperature,
    )
    hidden = out.hidden[:, -logits_to_keep:] if logits_to_keep else out.hidden
    return qwen2.logits_from_hidden(params["language"], cfg.text, hidden), out


def positions_from_mask(attention_mask, xp=jnp):
    """RoPE positions of a left-padded batch as transformers' ``generate`` counts them: the
    running count of valid tokens, 1 at padding. ``(B, S)`` mask (bool or 0/1) -> ``(B, S)``
    int; ``xp`` is ``jax.numpy`` (traceable) or ``numpy`` (host)."""
    mask = xp.asarray(attention_mask) > 0
    return xp.where(mask, xp.cumsum(mask, axis=1) - 1, 1)


def loss_fn(logits: jnp.ndarray, labels: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Next-token cross-entropy, mean over labelled tokens (transformers' causal-LM loss).

    Args:
        logits: ``(B, S, vocab)``.
        labels: ``(B, S)`` int; position ``t`` predicts ``labels[:, t + 1]``;
            ``IGNORE_INDEX`` (-100) marks tokens without a loss (prompt, visual, padding).

    Returns:
        ``(loss, number of labelled tokens)``, float32 scalars.
    """
    targets = labels[:, 1:]
    valid = targets != IGNORE_INDEX
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(logp, jnp.where(valid, targets, 0)[..., None], axis=-1)[..., 0]
    count = jnp.sum(valid).astype(jnp.float32)
    return -jnp.sum(jnp.where(valid, picked, 0.0)) / jnp.maximum(count, 1.0), count
