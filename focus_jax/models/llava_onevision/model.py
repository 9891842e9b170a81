"""``LlavaOnevision``: a loaded checkpoint with jit-compiled forward and generate.

The class is a thin shell: it keeps the config, the parameter pytree and the Focus
configuration, inspects the prompt on the host (where the visual tokens are, how many
query-text tokens follow) to build the static ``FocusPlan``, and calls jitted pure
functions (``modeling``, ``qwen2.modeling``). Shapes are static: ``generate`` pads the
batch to a power of two and the prompt length to a multiple of ``seq_bucket`` (left
padding), so prompts of similar size share one compilation.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.baselines.hooks import MethodPlan
from focus_jax.concentration.sic import compiler_options, jit_with_cpu_options
from focus_jax.config import FocusConfig, VisualGeometry
from focus_jax.inputs.focus_file import check_focus_fits
from focus_jax.knobs import FocusKnobs
from focus_jax.models import generation
from focus_jax.models.focus_hooks import FocusPlan, check_arithmetic
from focus_jax.models.generation import QUERY_BUCKET, Sampling, bucket
from focus_jax.models.llava_onevision import modeling
from focus_jax.models.llava_onevision import params as llava_params
from focus_jax.models.llava_onevision.modeling import LlavaOnevisionConfig
from focus_jax.models.llava_onevision.trace import ModelTrace, RelaxedModelTrace

__all__ = ["LlavaOnevision", "PromptLayout", "from_pretrained"]


@dataclasses.dataclass(frozen=True)
class PromptLayout:
    """What the host learns from ``input_ids`` before compiling.

    Attributes:
        visual_start: ``(B,)`` index of each prompt's first video placeholder (-1: none).
        query_tokens: ``(B,)`` tokens after the visual grid (query text, incl. the
            video's trailing newline token).
        text_tokens: ``(B,)`` valid tokens that are not grid tokens.
        frames: frames of the videos (0 without video).
    """

    visual_start: np.ndarray
    query_tokens: np.ndarray
    text_tokens: np.ndarray
    frames: int


class LlavaOnevision:
    """A LLaVA-OneVision model (SigLIP + projector + Qwen2) with optional Focus.

    Attributes:
        config: ``LlavaOnevisionConfig``.
        params: parameter pytree (JAX arrays in ``dtype``).
        focus: ``FocusConfig`` applied in prefill, or None for dense.
        focus_arithmetic, focus_capture: ``FocusPlan.arithmetic`` ("float" or "int8") and
            ``FocusPlan.capture`` of Focus prefills (``with_focus``).
        method: a baseline config (``focus_jax.baselines``: CMC, Adaptiv, FrameFusion,
            FastV) applied in prefill instead of Focus, or None (``with_method``).
        dtype: parameter and activation dtype (float32 or bfloat16).
    """

    def __init__(
        self, config: LlavaOnevisionConfig, params: dict, focus: FocusConfig | None = None, dtype=jnp.float32, mesh=None
    ):
        if focus is not None and not isinstance(focus, FocusConfig):
            raise TypeError(f"focus must be a FocusConfig or None, got {type(focus).__name__}")
        self.config = config
        self.focus = focus
        self.focus_arithmetic = "float"
        self.focus_capture = None
        self.method = None
        self.dtype = jnp.dtype(dtype)
        self.mesh = mesh
        if mesh is not None:
            from focus_jax.models.llava_onevision.sharding import shard_params

            self.params = shard_params(params, mesh, self.dtype)
        else:
            self.params = jax.tree.map(lambda a: jnp.asarray(a, self.dtype), params)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls, path: str | Path, focus: FocusConfig | None = None, dtype=jnp.float32, mesh=None
    ) -> "LlavaOnevision":
        """Load a Hugging Face LLaVA-OneVision directory (``config.json`` + safetensors).

        Raises:
            InputError: missing directory or ``config.json``, custom code in the directory,
                an SEC layer of ``focus`` beyond the decoder.
            CheckpointError: pickled weights, unknown/missing/mis-shaped/non-float/non-finite
                tensors, a non-float ``dtype``, or an unsupported config (each error names
                the tensor or field).
        """
        cfg, params = llava_params.load(path, dtype)
        check_focus_fits(focus if isinstance(focus, FocusConfig) else None, cfg.text.num_layers)
        return cls(cfg, params, focus=focus, dtype=dtype, mesh=mesh)

    def save_pretrained(self, path: str | Path) -> list[Path]:
        """Write ``config.json`` and ``model.safetensors`` (Hub layout) that transformers loads."""
        return llava_params.save(path, self.config, self.params)

    def with_focus(self, focus: FocusConfig | None, *, arithmetic: str = "float", capture=None) -> "LlavaOnevision":
        """The same weights with another Focus configuration (no copy).

        Args:
            focus: the configuration, or None for dense.
            arithmetic, capture: ``FocusPlan.arithmetic`` ("float", or "int8": the RTL's
                integer SIC and SEC) and ``FocusPlan.capture`` (host callback of every SIC
                input and SEC attention map) of the prefills.

        Raises:
            InputError: unknown ``arithmetic``.
        """
        check_arithmetic(arithmetic)
        other = object.__new__(LlavaOnevision)
        other.__dict__.update(
            self.__dict__, focus=focus, method=None, focus_arithmetic=arithmetic, focus_capture=capture
        )
        return other

    def with_method(self, method) -> "LlavaOnevision":
        """The same weights running baseline ``method`` (a ``focus_jax.baselines`` config;
        None: dense) in prefill instead of Focus (no copy)."""
        other = self.with_focus(None)
        other.method = method
        return other

    # ------------------------------------------------------------------ vision side
    def vision_features(self, pixels) -> jnp.ndarray:
        """SigLIP features of ``(n, C, H, W)`` images at ``vision_feature_layer`` (before the projector)."""
        return _vision_jit(self.params, jnp.asarray(pixels), cfg=self.config)

    def video_features(self, pixel_values_videos) -> jnp.ndarray:
        """Projected, pooled video embeddings ``(B, F*s*s + 1, D)`` (incl. the newline)."""
        return _video_jit(self.params, jnp.asarray(pixel_values_videos), cfg=self.config)

    def image_features(self, pixel_values, image_sizes) -> jnp.ndarray:
        """Projected anyres image embeddings, concatenated ``(sum L_i, D)``."""
        sizes = tuple(tuple(int(v) for v in s) for s in np.asarray(image_sizes).reshape(-1, 2))
        return _image_jit(self.params, jnp.asarray(pixel_values), cfg=self.config, image_sizes=sizes)

    # ------------------------------------------------------------------ prompts
    def layout(self, input_ids: np.ndarray, attention_mask: np.ndarray, frames: int) -> PromptLayout:
        """Find the visual grid of every prompt (see ``PromptLayout``).

        Raises:
            ValueError: a prompt's video placeholders are not ``F*s*s + 1`` contiguous
                tokens, or prompts of one batch disagree on having a video.
        """
        cfg = self.config
        is_video = (input_ids == cfg.video_token_id) & (attention_mask > 0)
        counts = is_video.sum(axis=1)
        b = input_ids.shape[0]
        n_grid = frames * cfg.tokens_per_frame
        valid = (attention_mask > 0).sum(axis=1)
        if frames == 0:
            if counts.any():
                raise ValueError(
                    f"input_ids hold {int(counts.max())} video tokens but no pixel_values_videos were given"
                )
            return PromptLayout(np.full(b, -1), np.zeros(b, int), valid, 0)
        expected = cfg.video_token_count(frames)
        start = np.argmax(is_video, axis=1)
        for i in range(b):
            if counts[i] != expected or not is_video[i, start[i] : start[i] + expected].all():
                raise ValueError(
                    f"prompt {i} must hold one video of {frames} frames: {expected} contiguous video tokens "
                    f"({frames} x {cfg.tokens_per_frame} grid + 1 newline), found {int(counts[i])}"
                )
        query = input_ids.shape[1] - (start + n_grid)
        return PromptLayout(start, query, valid - n_grid, frames)

    def _plan(self, layout: PromptLayout) -> FocusPlan | MethodPlan | None:
        if (self.focus is None and self.method is None) or layout.frames == 0:
            return None
        s = self.config.pooled_side
        geom = VisualGeometry(layout.frames, s, s)
        if self.method is not None:
            text = self.config.text
            return MethodPlan(self.method, geom, text.num_layers, text.num_heads, text.head_dim)
        query = bucket(int(layout.query_tokens.max()), QUERY_BUCKET)
        return FocusPlan(
            self.focus, geom, self.config.text.num_layers, query, self.focus_arithmetic, self.focus_capture
        )

    def _image_layout(self, ids: np.ndarray, mask: np.ndarray, sizes) -> tuple[PromptLayout, FocusPlan]:
        """Focus on image prompts (one image per prompt, the same anyres grid in all): the
        visual span is the stitched high-resolution grid, ``VisualGeometry(1, rows, cols + 1)``
        (``modeling.image_focus_grid``); the base view before it is left as prefix.

        Raises:
            ValueError: not one image per prompt, different grids, or image tokens that
                are not contiguous.
        """
        cfg = self.config
        grids = {modeling.image_focus_grid(cfg, s) for s in sizes}
        if len(sizes) != ids.shape[0] or len(grids) != 1:
            raise ValueError(
                f"Focus needs one image per prompt, all with the same anyres grid; got image sizes {sizes}"
            )
        offset, rows, cols = grids.pop()
        is_image = (ids == cfg.image_token_id) & (mask > 0)
        first = np.argmax(is_image, axis=1)
        count = modeling.image_token_count(cfg, sizes[0])
        for i in range(ids.shape[0]):
            if not is_image[i, first[i] : first[i] + count].all():
                raise ValueError(f"prompt {i} must hold its {count} image tokens contiguously")
        start, n = first + offset, rows * cols
        query = ids.shape[1] - (start + n)
        layout = PromptLayout(start, query, (mask > 0).sum(axis=1) - n, 0)
        return layout, FocusPlan(
            self.focus, VisualGeometry(1, rows, cols), cfg.text.num_layers, bucket(int(query.max()), QUERY_BUCKET),
            self.focus_arithmetic, self.focus_capture,
        )

    def _inputs(self, input_ids, attention_mask, position_ids, pixel_values, pixel_values_videos, image_sizes):
        ids = np.asarray(input_ids)
        if ids.ndim != 2:
            raise ValueError(f"input_ids must have shape (batch, sequence), got {ids.shape}")
        mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask)
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask has shape {mask.shape}, input_ids {ids.shape}")
        if position_ids is None:  # as transformers' generate: count valid tokens, padding at 1
            position_ids = modeling.positions_from_mask(mask, np)
        videos = None if pixel_values_videos is None else np.asarray(pixel_values_videos)
        if videos is not None and (videos.ndim != 5 or videos.shape[0] != ids.shape[0]):
            raise ValueError(f"pixel_values_videos must be (batch={ids.shape[0]}, frames, C, H, W), got {videos.shape}")
        frames = 0 if videos is None else videos.shape[1]
        layout = self.layout(ids, mask, frames)
        plan = self._plan(layout)
        if self.method is not None and pixel_values is not None:
            raise ValueError("the baselines concentrate video prompts; pass images to a dense or Focus model")
        if pixel_values is not None and videos is not None and self.focus is not None:
            raise ValueError("Focus needs one visual item per prompt: pass images or a video, not both")
        sizes = None
        if pixel_values is not None:
            if image_sizes is None:
                raise ValueError("pixel_values need image_sizes (original height, width of every image)")
            sizes = tuple(tuple(int(v) for v in s) for s in np.asarray(image_sizes).reshape(-1, 2))
            n_tokens = sum(modeling.image_token_count(self.config, s) for s in sizes)
            found = int(((ids == self.config.image_token_id) & (mask > 0)).sum())
            if found != n_tokens:
                raise ValueError(f"image features need {n_tokens} image tokens in input_ids, found {found}")
            if self.focus is not None:
                layout, plan = self._image_layout(ids, mask, sizes)
        elif ((ids == self.config.image_token_id) & (mask > 0)).any():
            raise ValueError("input_ids hold image tokens but no pixel_values were given")
        arrays = dict(
            input_ids=jnp.asarray(ids, jnp.int32),
            key_valid=jnp.asarray(mask > 0),
            positions=jnp.asarray(position_ids, jnp.int32),
            visual_start=jnp.asarray(np.maximum(layout.visual_start, 0), jnp.int32),
            pixel_values=None if pixel_values is None else jnp.asarray(pixel_values),
            pixel_values_videos=None if videos is None else jnp.asarray(videos),
        )
        if self.mesh is not None:
            from focus_jax.models.llava_onevision.sharding import shard_batch

            arrays = shard_batch(arrays, self.mesh)
        return arrays, layout, plan, sizes

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids,
        pixel_values=None,
        pixel_values_videos=None,
        image_sizes=None,
        attention_mask=None,
        position_ids=None,
        return_trace: bool = False,
        logits_to_keep: int = 0,
        knobs: FocusKnobs | None = None,
        relaxed: bool = False,
        temperature=0.05,
    ):
        """Logits of a batch of prompts (one prefill, jit-compiled).

        Args:
            input_ids: ``(B, S)`` token ids with image/video placeholders expanded
                (as transformers' processor writes them).
            pixel_values: ``(n_images, patches, C, H, W)`` anyres images, with
                ``image_sizes`` ``(n_images, 2)`` original (height, width).
            pixel_values_videos: ``(B, F, C, H, W)``, one video per prompt.
            attention_mask: ``(B, S)``, 0 at padding (default: all ones).
            position_ids: ``(B, S)`` RoPE positions (default: running count of valid
                tokens, as transformers' generate).
            return_trace: also return the Focus ``ModelTrace`` (needs ``focus``; relaxed: a
                ``RelaxedModelTrace`` of expected counts, JAX arrays), or with a baseline
                ``method`` a list of ``focus_jax.baselines.trace.MethodTrace``, one per prompt.
            logits_to_keep: if > 0, logits of the last ``logits_to_keep`` rows only.
            knobs: ``focus_jax.FocusKnobs`` (needs ``focus``): per-layer/GEMM thresholds
                (may be traced: no recompilation when they change) and SEC keep ratios
                (exact path: concrete, they fix the static kept-token counts; the
                config's ``sec_alphas`` are replaced). Default: ``FocusKnobs.from_config``.
            relaxed: differentiable Focus (``jax.grad`` through ``knobs``): soft SIC
                masks and merge (``similarity_concentration(relaxed=True)``), soft SEC
                keep weights (``focus_hooks.soft_prune``: every row stays, so ``S_out = S``).
                Tends to the exact path as ``temperature -> 0``.
            temperature: of the relaxed masks, > 0 (may be traced).

        Returns:
            ``logits`` ``(B, S_out, vocab)`` in the model dtype, or ``(logits, trace)``.
            Without SEC pruning (or relaxed) ``S_out = S``; with it, the rows of the kept
            tokens (prefix, kept visual tokens, query text), as the reference returns them.

        Raises:
            ValueError: inconsistent inputs (placeholder counts, shapes), or a trace,
                knobs or relaxed Focus requested from a dense model; ``InputError``:
                knobs of the wrong shape, traced ``sec_keep`` on the exact path.
        """
        if (knobs is not None or relaxed) and self.focus is None:
            raise ValueError("knobs and relaxed Focus need a Focus model (focus=FocusConfig(...))")
        if relaxed and self.focus_arithmetic != "float":
            raise ValueError("relaxed Focus needs the float arithmetic (with_focus(..., arithmetic='float'))")
        model = self
        if knobs is not None:
            knobs.check(self.focus, self.config.text.num_layers)
            if not relaxed:  # the SEC schedule is static on the exact path
                model = self.with_focus(
                    self.focus.replace(sec_alphas=knobs.sec_alphas()),
                    arithmetic=self.focus_arithmetic,
                    capture=self.focus_capture,
                )
        elif relaxed:
            knobs = FocusKnobs.from_config(self.focus, self.config.text.num_layers)
        arrays, layout, plan, sizes = model._inputs(
            input_ids, attention_mask, position_ids, pixel_values, pixel_values_videos, image_sizes
        )
        if (return_trace or relaxed) and plan is None:
            raise ValueError(
                "return_trace and relaxed Focus need a Focus model (focus=FocusConfig(...)) "
                "and an image or video prompt"
            )
        logits, rows, records, _ = _forward_jit(
            self.params,
            **arrays,
            knobs=knobs,
            temperature=temperature,
            cfg=self.config,
            image_sizes=sizes,
            plan=plan,
            return_records=return_trace,
            logits_to_keep=logits_to_keep,
            relaxed=relaxed,
        )
        if not return_trace:
            return logits
        if relaxed:
            return logits, RelaxedModelTrace.from_records(records, plan, self.config.text, layout.text_tokens)
        if isinstance(plan, MethodPlan):
            return logits, method_traces(records, plan, self.config.text, layout.text_tokens)
        return logits, ModelTrace.from_records(records, plan, self.config.text, layout.text_tokens, rows)

    __call__ = forward

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        input_ids,
        pixel_values=None,
        pixel_values_videos=None,
        image_sizes=None,
        attention_mask=None,
        max_new_tokens: int = 32,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        eos_token_id=None,
        pad_token_id: int | None = None,
        seq_bucket: int = 64,
        return_trace: bool = False,
    ):
        """Autoregressive generation with a KV cache: one jitted prefill (with Focus if
        configured), then ``focus_jax.models.generation.decode`` (a jitted
        ``lax.while_loop`` of decode steps). The batch is padded to a power of two.

        Args:
            input_ids, pixel_values, pixel_values_videos, image_sizes, attention_mask:
                as ``forward``.
            max_new_tokens, do_sample, temperature, top_p, seed, eos_token_id,
                pad_token_id: ``generation.Sampling.from_arguments`` (sampling: nucleus
                ``top_p``; a prompt stops after emitting an ``eos_token_id``, default the
                config's; ``pad_token_id`` follows it).
            seq_bucket: prompts are left-padded to a multiple of this length.
            return_trace: also return the Focus ``ModelTrace`` of the prompt (with a
                baseline ``method``: the list of ``MethodTrace``), recorded by
                the same compiled prefill that fills the KV cache (no second prefill).
                It equals ``forward(..., return_trace=True)``'s trace of the unpadded
                batch: ``rows`` index the caller's ``input_ids``.

        Returns:
            ``(B, max_new_tokens)`` int32 numpy array of new tokens, or ``(tokens, trace)``.

        Raises:
            ValueError: bad inputs (see ``forward``), or a trace requested from a dense model.
            InputError: bad sampling parameters, or prompt + ``max_new_tokens`` exceed
                ``max_position_embeddings``.
        """
        sampling = Sampling.from_arguments(
            self.config.text, max_new_tokens, do_sample, temperature, top_p, seed, eos_token_id, pad_token_id
        )
        b, s = np.shape(input_ids)
        generation.check_context(input_ids, attention_mask, self.config.video_token_id, max_new_tokens,
                                 self.config.text.max_position_embeddings)  # fmt: skip
        ids, mask = generation.left_pad(input_ids, attention_mask, sampling.pad, seq_bucket)
        ids, mask, videos = generation.repeat_to_power_of_two(ids, mask, pixel_values_videos)
        if pixel_values is not None and ids.shape[0] != b:
            raise ValueError("batched image generation needs a power-of-two batch; pad the batch yourself")
        s_pad = ids.shape[1]
        arrays, layout, plan, sizes = self._inputs(ids, mask, None, pixel_values, videos, image_sizes)
        if return_trace and plan is None:
            raise ValueError("return_trace needs a Focus model (focus=FocusConfig(...)) and a video prompt")
        last_logits, caches, rows, records = _prefill_jit(
            self.params,
            **arrays,
            cfg=self.config,
            image_sizes=sizes,
            plan=plan,
            cache_extra=sampling.capacity,
            return_records=return_trace,
        )
        positions = mask.sum(axis=1)  # of the first new token: valid tokens counted from 0
        tokens = generation.decode(self.params["language"], self.config.text, caches, last_logits, positions, sampling)
        tokens = tokens[:b]
        if not return_trace:
            return tokens
        return tokens, self._unpadded_trace(records, plan, layout, rows, b, s_pad - s)

    def _unpadded_trace(self, records, plan, layout, rows, batch: int, left_pad: int) -> ModelTrace:
        """The trace of ``generate``'s padded prefill restricted to the caller's ``batch``
        prompts (``ModelTrace.without_padding``)."""
        if isinstance(plan, MethodPlan):
            records = jax.tree.map(lambda a: a[:batch], records)
            return method_traces(records, plan, self.config.text, layout.text_tokens[:batch])
        trace = ModelTrace.from_records(records, plan, self.config.text, layout.text_tokens, rows)
        return trace.without_padding(batch, left_pad)


# ---------------------------------------------------------------------- jitted bodies


@functools.partial(jax.jit, static_argnames=("cfg",))
def _vision_jit(params, pixels, *, cfg):
    return modeling._vision_features(params, cfg, pixels.astype(params["vision"]["pos_embed"].dtype))


@functools.partial(jax.jit, static_argnames=("cfg",))
def _video_jit(params, videos, *, cfg):
    return modeling.video_features(params, cfg, videos)


@functools.partial(jax.jit, static_argnames=("cfg", "image_sizes"))
def _image_jit(params, pixel_values, *, cfg, image_sizes):
    return modeling.image_features(params, cfg, pixel_values, image_sizes)


def _forward(
    params,
    input_ids,
    key_valid,
    positions,
    visual_start,
    pixel_values,
    pixel_values_videos,
    knobs=None,
    temperature=0.05,
    *,
    cfg,
    image_sizes,
    plan,
    return_records,
    logits_to_keep,
    cache_extra=0,
    relaxed=False,
):
    return modeling.forward(
        params,
        cfg,
        input_ids,
        key_valid,
        positions,
        pixel_values=pixel_values,
        pixel_values_videos=pixel_values_videos,
        image_sizes=image_sizes,
        plan=plan,
        visual_start=visual_start,
        return_records=return_records,
        logits_to_keep=logits_to_keep,
        cache_extra=cache_extra,
        knobs=knobs,
        relaxed=relaxed,
        temperature=temperature,
    )


_STATIC = ("cfg", "image_sizes", "plan", "return_records", "logits_to_keep", "relaxed")


@functools.partial(jit_with_cpu_options, static_argnames=_STATIC)  # also under jax.grad (relaxed knobs)
def _forward_jit(
    params,
    input_ids,
    key_valid,
    positions,
    visual_start,
    pixel_values,
    pixel_values_videos,
    knobs=None,
    temperature=0.05,
    **static,
):
    """Logits, kept rows and SIC records of one prefill.

    A traced forward also returns the KV caches (the caller drops them): XLA then compiles
    the layers exactly as in ``_prefill_jit``, whose caches feed decoding, so the two
    programs take bit-identical SIC decisions and ``generate``'s trace equals ``forward``'s
    (without the caches XLA fuses the layer bodies differently and near-tie candidates can
    flip).
    """
    logits, out = _forward(
        params,
        input_ids,
        key_valid,
        positions,
        visual_start,
        pixel_values,
        pixel_values_videos,
        knobs,
        temperature,
        **static,
    )
    return logits, out.rows, out.records, out.caches if static["return_records"] and not static.get("relaxed") else ()


@functools.partial(
    jax.jit,
    static_argnames=("cfg", "image_sizes", "plan", "cache_extra", "return_records"),
    compiler_options=compiler_options(),
)
def _prefill_jit(
    params,
    input_ids,
    key_valid,
    positions,
    visual_start,
    pixel_values,
    pixel_values_videos,
    *,
    cfg,
    image_sizes,
    plan,
    cache_extra,
    return_records=False,
):
    """Prefill for ``generate``: last-row logits, KV caches and (``return_records``) the trace."""
    logits, out = _forward(
        params,
        input_ids,
        key_valid,
        positions,
        visual_start,
        pixel_values,
        pixel_values_videos,
        cfg=cfg,
        image_sizes=image_sizes,
        plan=plan,
        return_records=return_records,
        logits_to_keep=1,
        cache_extra=cache_extra,
    )
    return logits[:, 0].astype(jnp.float32), out.caches, out.rows, out.records


def method_traces(records: dict, plan: MethodPlan, text, text_tokens) -> list:
    """One ``MethodTrace`` per prompt from a baseline prefill's records."""
    from focus_jax.baselines.trace import MethodTrace

    host = jax.device_get(records)
    kept = np.asarray(host["kept"])
    sparsity = plan.layer_sparsity(host)
    model = {
        "num_layers": text.num_layers, "hidden_size": text.hidden_size, "intermediate_size": text.intermediate_size,
        "num_heads": text.num_heads, "num_kv_heads": text.num_kv_heads, "head_dim": text.head_dim,
    }  # fmt: skip
    return [
        MethodTrace(
            plan.method,
            plan.config.to_dict(),
            plan.geometry,
            model,
            int(text_tokens[i]),
            kept[i],
            None if sparsity is None else sparsity[i],
        )
        for i in range(kept.shape[0])
    ]


def from_pretrained(path: str | Path, focus: FocusConfig | None = None, dtype=jnp.float32, mesh=None) -> LlavaOnevision:
    """Load a Hugging Face LLaVA-OneVision / LLaVA-Video directory (see ``LlavaOnevision.from_pretrained``)."""
    return LlavaOnevision.from_pretrained(path, focus=focus, dtype=dtype, mesh=mesh)
