"""Autoregressive generation shared by the model families (``LlavaOnevision``, ``Qwen2_5_VL``).

Both families decode with the same Qwen2 language model, so everything after the prefill
is one implementation here; only the prefill (vision tower, positions, Focus plan) is the
family's own. A family's ``generate``:

1. ``Sampling.from_arguments``: checks the sampling arguments and resolves the stop and
   padding ids (transformers' defaults); ``check_context``: the prompt fits the positions;
2. ``left_pad`` (and, for LLaVA, ``repeat_to_power_of_two``): static shape buckets, so
   prompts of similar size share one compilation;
3. its jitted prefill with ``cache_extra=sampling.capacity`` free KV-cache slots;
4. ``decode``: a jitted ``lax.while_loop`` of ``qwen2.modeling.decode_step`` that picks
   tokens (greedy or nucleus sampling), stops each prompt after an end token and stops the
   loop when every prompt has (carry: ``DecodeState``).

Shapes are static per bucket: the batch ``B``, the padded prompt length ``S`` (a multiple
of ``seq_bucket``) and the cache capacity ``C`` (``max_new_tokens`` rounded up to
``CACHE_BUCKET``); ``max_new_tokens``, the temperature, ``top_p`` and the seed are traced,
so changing them does not recompile.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from focus_jax.errors import InputError
from focus_jax.inputs.text import check_context_length
from focus_jax.models.qwen2 import modeling as qwen2
from focus_jax.models.qwen2.modeling import Qwen2Config

__all__ = [
    "CACHE_BUCKET",
    "QUERY_BUCKET",
    "DecodeState",
    "Sampling",
    "bucket",
    "check_context",
    "decode",
    "left_pad",
    "repeat_to_power_of_two",
    "top_p_filter",
]

#: KV-cache slots for new tokens (and the decode output's width) are allocated in multiples
#: of this: ``max_new_tokens`` 1..32 share one compiled prefill and decode loop.
CACHE_BUCKET = 32
#: ``FocusPlan.query_tokens`` (the query rows SEC scores) is a multiple of this, so prompts
#: whose questions differ by a few tokens share one compiled Focus prefill.
QUERY_BUCKET = 16


def bucket(n: int, multiple: int) -> int:
    """``n`` rounded up to a multiple of ``multiple`` (both positive ints)."""
    return -(-n // multiple) * multiple


def left_pad(input_ids, attention_mask, pad: int, seq_bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad prompts to a multiple of ``seq_bucket`` tokens.

    Args:
        input_ids: ``(B, S)`` int token ids.
        attention_mask: ``(B, S)`` (0 at padding) or None (all ones).
        pad: token id written into the new columns (their mask is 0).
        seq_bucket: length multiple (>= 1).

    Returns:
        numpy ``(ids, mask)`` of shape ``(B, bucket(S, seq_bucket))``; the new columns come first.
    """
    ids = np.asarray(input_ids)
    mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask)
    left = bucket(ids.shape[1], seq_bucket) - ids.shape[1]
    return np.pad(ids, ((0, 0), (left, 0)), constant_values=pad), np.pad(mask, ((0, 0), (left, 0)))


def check_context(input_ids, attention_mask, video_token_id: int, max_new_tokens: int, context: int) -> None:
    """Refuse a generation whose longest prompt plus ``max_new_tokens`` exceeds ``context``
    (``inputs.text.check_context_length``; the message counts the prompt's video tokens).

    Args:
        input_ids: ``(B, S)`` token ids; attention_mask: ``(B, S)`` (0 at padding) or None.
        video_token_id: the video placeholder id.
        max_new_tokens: tokens to generate; context: ``max_position_embeddings``.

    Raises:
        InputError: the generation does not fit, with the numbers.
    """
    ids = np.asarray(input_ids)
    valid = np.ones(ids.shape, bool) if attention_mask is None else np.asarray(attention_mask) > 0
    video = int(((ids == video_token_id) & valid).sum(axis=1).max())
    check_context_length(int(valid.sum(axis=1).max()), max_new_tokens, context, video)


def repeat_to_power_of_two(*arrays):
    """Pad the leading (batch) axis of every array to the next power of two by repeating its
    last row (None stays None): batches of 3 and 4 prompts share one compilation, and the
    repeated prompts are valid inputs whose outputs the caller drops.

    Returns:
        a tuple of numpy arrays (or None), in the order given.
    """
    b = next(len(a) for a in arrays if a is not None)
    extra = (1 << (b - 1).bit_length()) - b
    return tuple(None if a is None else np.concatenate([np.asarray(a)] + [np.asarray(a)[-1:]] * extra) for a in arrays)


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How ``decode`` picks tokens and when a prompt stops.

    Attributes:
        max_new_tokens: tokens to generate per prompt (>= 1).
        do_sample: sample from ``softmax(logits / temperature)`` restricted to the nucleus
            ``top_p`` (``top_p_filter``) instead of taking the argmax.
        temperature: > 0 when sampling. top_p: in (0, 1] when sampling.
        seed: PRNG seed of the sampler (same seed, same tokens).
        eos: token ids after which a prompt stops (empty: never stops early).
        pad: token id emitted after a prompt stopped (and returned there).
    """

    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    eos: tuple[int, ...] = ()
    pad: int = 0

    @classmethod
    def from_arguments(
        cls,
        text: Qwen2Config,
        max_new_tokens: int,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        eos_token_id=None,
        pad_token_id: int | None = None,
    ) -> Sampling:
        """``generate``'s arguments, checked, with transformers' defaults: ``eos_token_id``
        (int or list) defaults to the decoder config's; ``pad_token_id`` to its pad id, else
        the first end id, else 0.

        Raises:
            InputError: ``max_new_tokens`` < 1, or sampling with ``temperature`` <= 0 or
                ``top_p`` outside (0, 1].
        """
        if not max_new_tokens >= 1:
            raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if do_sample and not (temperature > 0 and 0 < top_p <= 1):
            raise InputError(f"sampling needs temperature > 0 and top_p in (0, 1], got {temperature}, {top_p}")
        eos = text.eos_token_id if eos_token_id is None else tuple(np.atleast_1d(eos_token_id).tolist())
        if pad_token_id is None:
            pad_token_id = text.pad_token_id if text.pad_token_id is not None else (eos[0] if eos else 0)
        return cls(int(max_new_tokens), bool(do_sample), float(temperature), float(top_p), int(seed), eos,
                   int(pad_token_id))  # fmt: skip

    @property
    def capacity(self) -> int:
        """KV-cache slots the prefill must leave free: ``max_new_tokens`` rounded up to ``CACHE_BUCKET``."""
        return bucket(self.max_new_tokens, CACHE_BUCKET)


class DecodeState(NamedTuple):
    """The carry of ``decode``'s ``lax.while_loop`` (``B`` prompts, cache capacity ``C``).

    Attributes:
        step: ``()`` int32, tokens emitted so far (the next token's column in ``tokens``).
        logits: ``(B, vocab)`` float32 logits of the next token.
        caches: the decoder's per-segment ``qwen2.modeling.KVCache`` tuple.
        positions: ``(B,)`` int32 RoPE position of the next token (Qwen2.5-VL: the same on
            all three M-RoPE rows).
        done: ``(B,)`` bool, prompts that emitted an end token.
        tokens: ``(B, C)`` int32 output, ``pad`` after a prompt stopped and beyond ``step``.
    """

    step: jnp.ndarray
    logits: jnp.ndarray
    caches: tuple
    positions: jnp.ndarray
    done: jnp.ndarray
    tokens: jnp.ndarray


def top_p_filter(logits: jnp.ndarray, top_p) -> jnp.ndarray:
    """Keep the smallest set of tokens whose probability reaches ``top_p`` (transformers'
    ``TopPLogitsWarper``: drop tokens whose ascending cumulative probability is <= 1 - top_p).

    Args:
        logits: ``(B, vocab)`` float; top_p: scalar in (0, 1] (may be traced).

    Returns:
        ``logits`` with the dropped tokens at ``-inf`` (the most likely token always stays).
    """
    order = jnp.argsort(logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    cum = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
    remove_sorted = cum <= 1.0 - top_p
    remove_sorted = remove_sorted.at[..., -1].set(False)
    remove = jnp.zeros_like(remove_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(remove_sorted)
    return jnp.where(remove, -jnp.inf, logits)


def decode(language: dict, text: Qwen2Config, caches: tuple, first_logits, positions, sampling: Sampling) -> np.ndarray:
    """Generate ``sampling.max_new_tokens`` tokens per prompt from a prefill's KV cache.

    Args:
        language: the Qwen2 decoder's parameters (``params["language"]`` of either family).
        text: its config.
        caches: the prefill's per-segment ``KVCache`` tuple with ``sampling.capacity`` free slots.
        first_logits: ``(B, vocab)`` float32 logits of the prompts' last rows.
        positions: ``(B,)`` int RoPE position of the first new token.
        sampling: token choice and stop ids.

    Returns:
        ``(B, max_new_tokens)`` int32 numpy array; a prompt's tokens after its end token are
        ``sampling.pad``.
    """
    tokens = _decode_jit(
        language,
        caches,
        first_logits,
        jnp.asarray(positions, jnp.int32),
        jax.random.key(sampling.seed),
        jnp.float32(sampling.temperature),
        jnp.float32(sampling.top_p),
        jnp.int32(sampling.max_new_tokens),
        cfg=text,
        capacity=sampling.capacity,
        do_sample=sampling.do_sample,
        eos=sampling.eos,
        pad=sampling.pad,
    )
    return np.asarray(tokens)[:, : sampling.max_new_tokens]


@functools.partial(jax.jit, static_argnames=("cfg", "capacity", "do_sample", "eos", "pad"))
def _decode_jit(
    language, caches, first_logits, positions, key, temperature, top_p, steps, *, cfg, capacity, do_sample, eos, pad
):
    b = first_logits.shape[0]
    eos_ids = jnp.asarray(eos if eos else (-1,), jnp.int32)

    def choose(logits, step):
        if not do_sample:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        scaled = top_p_filter(logits / temperature, top_p)
        return jax.random.categorical(jax.random.fold_in(key, step), scaled, axis=-1).astype(jnp.int32)

    def cond(s: DecodeState):
        return (s.step < steps) & ~jnp.all(s.done)

    def body(s: DecodeState) -> DecodeState:
        token = jnp.where(s.done, pad, choose(s.logits, s.step))
        hidden, caches = qwen2.decode_step(
            language, cfg, s.caches, qwen2.embed_tokens(language, token[:, None])[:, 0], s.positions
        )
        return DecodeState(
            step=s.step + 1,
            logits=qwen2.logits_from_hidden(language, cfg, hidden).astype(jnp.float32),
            caches=caches,
            positions=s.positions + 1,
            done=s.done | jnp.isin(token, eos_ids),
            tokens=s.tokens.at[:, s.step].set(token),
        )

    start = DecodeState(
        jnp.int32(0), first_logits, caches, positions, jnp.zeros((b,), bool), jnp.full((b, capacity), pad, jnp.int32)
    )
    return lax.while_loop(cond, body, start).tokens
