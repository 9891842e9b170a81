"""``Qwen2_5_VL``: a loaded Qwen2.5-VL checkpoint with jit-compiled forward and generate.

The same shell as ``LlavaOnevision`` (config, parameter pytree, Focus configuration;
host-side prompt inspection; jitted pure functions), with transformers' Qwen2.5-VL
argument names. The host computes the multimodal RoPE positions (``modeling.rope_index``)
and, for Focus, the visual grid of each prompt: one image or video per prompt, its merged
grid ``(t, h/2, w/2)`` the ``VisualGeometry`` (an image is one frame), the same for every
prompt of a batch. Decode continues the positions from ``max(prompt positions) + 1``, one
step per token, on all three rows (transformers' ``rope_deltas``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.concentration.sic import compiler_options
from focus_jax.config import FocusConfig, VisualGeometry
from focus_jax.errors import InputError
from focus_jax.models import generation
from focus_jax.models.focus_hooks import FocusPlan, check_arithmetic
from focus_jax.models.generation import QUERY_BUCKET, Sampling, bucket
from focus_jax.models.llava_onevision.trace import ModelTrace
from focus_jax.models.qwen2_5_vl import modeling
from focus_jax.models.qwen2_5_vl import params as qwen_params
from focus_jax.models.qwen2_5_vl.modeling import Qwen2_5_VLConfig

__all__ = ["Qwen2_5_VL", "from_pretrained"]


_NO_TRACE = "return_trace needs a Focus model (focus=FocusConfig(...)) and a visual prompt"


def _grids(grid_thw) -> tuple[tuple[int, int, int], ...] | None:
    return None if grid_thw is None else tuple(tuple(int(v) for v in g) for g in np.asarray(grid_thw).reshape(-1, 3))


class Qwen2_5_VL:
    """A Qwen2.5-VL model (windowed ViT + merger + Qwen2.5 decoder) with optional Focus.

    Attributes:
        config: ``Qwen2_5_VLConfig``.
        params: parameter pytree (JAX arrays in ``dtype``).
        focus: ``FocusConfig`` applied in prefill, or None for dense.
        focus_arithmetic, focus_capture: ``FocusPlan.arithmetic`` and ``FocusPlan.capture``
            of Focus prefills (``with_focus``).
        dtype: parameter and activation dtype (float32 or bfloat16).
    """

    def __init__(self, config: Qwen2_5_VLConfig, params: dict, focus: FocusConfig | None = None, dtype=jnp.float32):
        if focus is not None and not isinstance(focus, FocusConfig):
            raise TypeError(f"focus must be a FocusConfig or None, got {type(focus).__name__}")
        self.config = config
        self.focus = focus
        self.focus_arithmetic = "float"
        self.focus_capture = None
        self.dtype = jnp.dtype(dtype)
        self.params = jax.tree.map(lambda a: jnp.asarray(a, self.dtype), params)

    @classmethod
    def from_pretrained(cls, path: str | Path, focus: FocusConfig | None = None, dtype=jnp.float32) -> Qwen2_5_VL:
        """Load a Hugging Face Qwen2.5-VL directory (``config.json`` + safetensors).

        Raises:
            FileNotFoundError: missing directory or ``config.json``.
            CheckpointError: pickled weights, unknown/missing/mis-shaped tensors, or an
                unsupported config (each error names the tensor or field).
        """
        cfg, params = qwen_params.load(path, dtype)
        return cls(cfg, params, focus=focus, dtype=dtype)

    def save_pretrained(self, path: str | Path) -> list[Path]:
        """Write ``config.json`` and ``model.safetensors`` (Hub layout) that transformers loads."""
        return qwen_params.save(path, self.config, self.params)

    def with_focus(self, focus: FocusConfig | None, *, arithmetic: str = "float", capture=None) -> Qwen2_5_VL:
        """The same weights with another Focus configuration (no copy); ``arithmetic`` and
        ``capture`` as ``LlavaOnevision.with_focus`` (``FocusPlan``'s fields).

        Raises:
            InputError: unknown ``arithmetic``.
        """
        check_arithmetic(arithmetic)
        other = object.__new__(Qwen2_5_VL)
        other.__dict__.update(self.__dict__, focus=focus, focus_arithmetic=arithmetic, focus_capture=capture)
        return other

    def visual_features(self, pixel_values, grid_thw, merge: bool = True) -> jnp.ndarray:
        """Merged visual tokens ``(N/4, D)`` of patch rows ``(N, C*T*p*p)`` with ``grid_thw``
        ``(n, 3)``; ``merge=False``: the vision tower's last hidden states ``(N, Dv)``
        (window-major order, as transformers returns them)."""
        return _vision_jit(
            self.params, jnp.asarray(pixel_values), cfg=self.config, grid_thw=_grids(grid_thw), merge=merge
        )

    # ------------------------------------------------------------------ prompts
    def _plan(self, ids, mask, image_grid_thw, video_grid_thw):
        """``(plan, visual_start, text_tokens)`` for Focus, or ``(None, zeros, None)`` when dense.

        Raises:
            InputError: a prompt without exactly one image or video, or prompts of one
                batch with different visual grids.
        """
        b = ids.shape[0]
        if self.focus is None:
            return None, np.zeros(b, np.int32), None
        cfg = self.config
        grids = (image_grid_thw or ()) + (video_grid_thw or ())
        visual = ((ids == cfg.image_token_id) | (ids == cfg.video_token_id)) & (mask > 0)
        if len(grids) != b:
            raise InputError(
                f"Focus needs one image or video per prompt: got {len(grids)} visual items for {b} prompts"
            )
        if len(set(grids)) != 1:  # one static geometry per compiled prefill (FocusPlan)
            raise InputError(
                f"Focus needs the same grid (t, h, w) for every prompt of a batch, got {list(grids)}: "
                "batch prompts by grid or run them one at a time"
            )
        n = cfg.token_count(grids[0])
        start = np.argmax(visual, axis=1)
        for i in range(b):
            if visual[i].sum() != n or not visual[i, start[i] : start[i] + n].all():
                raise InputError(
                    f"prompt {i} must hold {n} contiguous visual placeholders, found {int(visual[i].sum())}"
                )
        geom = VisualGeometry(*cfg.merged_grid(grids[0]))
        query = ids.shape[1] - (start + n)
        plan = FocusPlan(
            self.focus, geom, cfg.text.num_layers, bucket(int(query.max()), QUERY_BUCKET), self.focus_arithmetic,
            self.focus_capture,
        )
        return plan, start.astype(np.int32), (mask > 0).sum(axis=1) - n

    def _inputs(
        self,
        input_ids,
        attention_mask,
        pixel_values,
        image_grid_thw,
        pixel_values_videos,
        video_grid_thw,
        second_per_grid_ts,
    ):
        ids = np.asarray(input_ids)
        if ids.ndim != 2:
            raise InputError(f"input_ids must have shape (batch, sequence), got {ids.shape}")
        mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask)
        if mask.shape != ids.shape:
            raise InputError(f"attention_mask has shape {mask.shape}, input_ids {ids.shape}")
        image_grid, video_grid = _grids(image_grid_thw), _grids(video_grid_thw)
        for name, pixels, grid, token in (
            ("pixel_values", pixel_values, image_grid, self.config.image_token_id),
            ("pixel_values_videos", pixel_values_videos, video_grid, self.config.video_token_id),
        ):
            found = int(((ids == token) & (mask > 0)).sum())
            if (pixels is None) != (grid is None):
                raise InputError(f"{name} and its grid_thw must be given together")
            need = 0 if grid is None else sum(self.config.token_count(g) for g in grid)
            if found != need:
                raise InputError(f"{name}: the grids need {need} placeholder tokens in input_ids, found {found}")
        try:
            positions, next_pos = modeling.rope_index(
                self.config, ids, mask, image_grid, video_grid, second_per_grid_ts
            )
        except ValueError as exc:
            raise InputError(str(exc)) from None
        plan, start, text_tokens = self._plan(ids, mask, image_grid, video_grid)
        arrays = {
            "input_ids": jnp.asarray(ids, jnp.int32),
            "key_valid": jnp.asarray(mask > 0),
            "positions": jnp.asarray(positions),
            "visual_start": jnp.asarray(start),
            "pixel_values": None if pixel_values is None else jnp.asarray(pixel_values),
            "pixel_values_videos": None if pixel_values_videos is None else jnp.asarray(pixel_values_videos),
        }
        return arrays, {"image_grid_thw": image_grid, "video_grid_thw": video_grid, "plan": plan}, next_pos, text_tokens

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids,
        attention_mask=None,
        pixel_values=None,
        image_grid_thw=None,
        pixel_values_videos=None,
        video_grid_thw=None,
        second_per_grid_ts=None,
        return_trace: bool = False,
        logits_to_keep: int = 0,
    ):
        """Logits of a batch of prompts (one prefill, jit-compiled).

        Args:
            input_ids: ``(B, S)`` with ``<|image_pad|>`` / ``<|video_pad|>`` expanded to
                ``t*h*w/4`` tokens per item (as transformers' processor writes them).
            attention_mask: ``(B, S)``, 0 at padding (default: all ones).
            pixel_values, image_grid_thw: image patch rows ``(N, C*T*p*p)`` and grids
                ``(n_images, 3)``; pixel_values_videos, video_grid_thw: the same for videos.
            second_per_grid_ts: ``(n_videos,)`` seconds per temporal patch (M-RoPE time
                axis; default 1).
            return_trace: also return the Focus ``ModelTrace`` (needs ``focus``).
            logits_to_keep: if > 0, logits of the last rows only.

        Returns:
            ``logits`` ``(B, S_out, vocab)`` in the model dtype, or ``(logits, trace)``;
            with SEC pruning the rows of the kept tokens.

        Raises:
            InputError: inconsistent inputs, or a trace requested without Focus.
        """
        arrays, static, _, text_tokens = self._inputs(
            input_ids,
            attention_mask,
            pixel_values,
            image_grid_thw,
            pixel_values_videos,
            video_grid_thw,
            second_per_grid_ts,
        )
        if return_trace and static["plan"] is None:
            raise InputError(_NO_TRACE)
        logits, rows, records, _ = _forward_jit(
            self.params, **arrays, cfg=self.config, **static, return_records=return_trace, logits_to_keep=logits_to_keep
        )
        if not return_trace:
            return logits
        return logits, ModelTrace.from_records(records, static["plan"], self.config.text, text_tokens, rows)

    __call__ = forward

    def generate(
        self,
        input_ids,
        attention_mask=None,
        pixel_values=None,
        image_grid_thw=None,
        pixel_values_videos=None,
        video_grid_thw=None,
        second_per_grid_ts=None,
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
        ``lax.while_loop`` of decode steps, M-RoPE positions continued from the prompt's).

        Args:
            input_ids ... second_per_grid_ts: as ``forward``.
            max_new_tokens, do_sample, temperature, top_p, seed, eos_token_id,
                pad_token_id: ``generation.Sampling.from_arguments``.
            seq_bucket: prompts are left-padded to a multiple of this length (the batch is
                not padded: its items' patch rows are packed).
            return_trace: also return the Focus ``ModelTrace`` of the prompts, recorded by
                the same compiled prefill that fills the KV cache (no second prefill); as
                ``forward(..., return_trace=True)``'s, its ``rows`` index the caller's
                ``input_ids``.

        Returns:
            ``(B, max_new_tokens)`` int32 numpy array of new tokens, or ``(tokens, trace)``.

        Raises:
            InputError: bad sampling parameters or inputs, prompt + ``max_new_tokens``
                beyond ``max_position_embeddings``, or a trace requested without Focus.
        """
        cfg = self.config
        sampling = Sampling.from_arguments(
            cfg.text, max_new_tokens, do_sample, temperature, top_p, seed, eos_token_id, pad_token_id
        )
        generation.check_context(input_ids, attention_mask, cfg.video_token_id, max_new_tokens,
                                 cfg.text.max_position_embeddings)  # fmt: skip
        ids, mask = generation.left_pad(input_ids, attention_mask, sampling.pad, seq_bucket)
        arrays, static, next_pos, text_tokens = self._inputs(
            ids, mask, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw, second_per_grid_ts
        )
        if return_trace and static["plan"] is None:
            raise InputError(_NO_TRACE)
        last_logits, caches, rows, records = _prefill_jit(
            self.params, **arrays, cfg=cfg, **static, cache_extra=sampling.capacity, return_records=return_trace
        )
        tokens = generation.decode(self.params["language"], cfg.text, caches, last_logits, next_pos, sampling)
        if not return_trace:
            return tokens
        trace = ModelTrace.from_records(records, static["plan"], cfg.text, text_tokens, rows)
        return tokens, trace.without_padding(len(tokens), ids.shape[1] - np.shape(input_ids)[1])


# ---------------------------------------------------------------------- jitted bodies


@functools.partial(jax.jit, static_argnames=("cfg", "grid_thw", "merge"))
def _vision_jit(params, pixels, *, cfg, grid_thw, merge):
    return modeling.vision_encode(params, cfg, pixels, grid_thw, merge)


_STATIC = ("cfg", "image_grid_thw", "video_grid_thw", "plan", "return_records", "logits_to_keep", "cache_extra")


def _forward(
    params, input_ids, key_valid, positions, visual_start, pixel_values, pixel_values_videos, *, plan, **static
):
    return modeling.forward(
        params,
        static.pop("cfg"),
        input_ids,
        key_valid,
        positions,
        pixel_values=pixel_values,
        pixel_values_videos=pixel_values_videos,
        plan=plan,
        visual_start=visual_start,
        **static,
    )


@functools.partial(jax.jit, static_argnames=_STATIC, compiler_options=compiler_options())
def _forward_jit(params, input_ids, key_valid, positions, visual_start, pixel_values, pixel_values_videos, **static):
    """Logits, kept rows, SIC records and, when tracing, the KV caches of one prefill.

    A traced forward returns the caches (the caller drops them) so that XLA compiles the
    layers as in ``_prefill_jit``, whose caches feed decoding: the two programs then take
    bit-identical SIC decisions and ``generate``'s trace equals ``forward``'s (as
    ``LlavaOnevision``'s ``_forward_jit``).
    """
    logits, out = _forward(
        params, input_ids, key_valid, positions, visual_start, pixel_values, pixel_values_videos, **static
    )
    return logits, out.rows, out.records, out.caches if static["return_records"] else ()


@functools.partial(jax.jit, static_argnames=_STATIC, compiler_options=compiler_options())
def _prefill_jit(params, input_ids, key_valid, positions, visual_start, pixel_values, pixel_values_videos, **static):
    """Prefill for ``generate``: last-row logits, KV caches, kept rows and (``return_records``) SIC records."""
    logits, out = _forward(
        params,
        input_ids,
        key_valid,
        positions,
        visual_start,
        pixel_values,
        pixel_values_videos,
        logits_to_keep=1,
        **static,
    )
    return logits[:, 0].astype(jnp.float32), out.caches, out.rows, out.records


def from_pretrained(path: str | Path, focus: FocusConfig | None = None, dtype=jnp.float32) -> Qwen2_5_VL:
    """Load a Hugging Face Qwen2.5-VL directory (see ``Qwen2_5_VL.from_pretrained``)."""
    return Qwen2_5_VL.from_pretrained(path, focus=focus, dtype=dtype)
