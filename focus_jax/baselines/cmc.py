"""CMC's codec-style approximation of visual tokens, as the Focus reference implements it.

Source: ``algorithm/focus/baseline_CMC.py`` of github.com/dubcyfor3/Focus (commit 1842719),
class ``CMC``: ``detect_non_informative`` (``cmc_detect``) and
``approximate_non_informative`` (``cmc_approximate``), and where
``models/qwen2/modeling_qwen2_CMC.py`` calls them (``focus_jax.baselines.hooks``).

Frames (zero-padded to a multiple of ``interval``) form intervals; frame
``i_frame_position`` of each is its I-frame. Every token ``(f, p)`` of an interval finds
the I-frame token ``q`` nearest in L1 distance (ties: the lowest ``q``); it is
*non-informative* when that distance is below ``threshold * D`` and is then replaced by
I-frame token ``q`` of the current input. I-frame tokens match themselves.

All functions are pure, jit-able and shape-static; leading dimensions (heads) broadcast.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["CMCMatch", "cmc_approximate", "cmc_detect"]


class CMCMatch(NamedTuple):
    """Result of ``cmc_detect`` for tokens ``(..., F, P, D)`` (``F_pad``: ``F`` rounded up to
    a multiple of the interval).

    Attributes:
        reference: ``(..., F_pad, P)`` int32, patch of the interval's I-frame nearest to each token.
        mask: ``(..., F_pad, P)`` bool, non-informative (replaced) tokens, padded frames included.
        informative: ``()`` int32, tokens the codec keeps, counted as the reference counts
            them (I-frame tokens informative; a tail interval whose I-frame lies in the
            padding counted informative), summed over the leading dimensions.
        non_informative: ``()`` int32, ``F * P * lead - informative``.
    """

    reference: jnp.ndarray
    mask: jnp.ndarray
    informative: jnp.ndarray
    non_informative: jnp.ndarray


def _pad_frames(x: jnp.ndarray, interval: int) -> tuple[jnp.ndarray, int]:
    pad = -x.shape[-3] % interval
    if pad:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(0, pad), (0, 0), (0, 0)])
    return x, pad


def _i_frames(x: jnp.ndarray, interval: int, i_pos: int) -> jnp.ndarray:
    """``(..., intervals, P, D)``: the I-frame of each interval of padded ``x``."""
    return x[..., i_pos::interval, :, :]


def cmc_detect(
    tokens: jnp.ndarray,
    threshold: float,
    interval: int = 8,
    i_frame_position: int = 3,
    width: jnp.ndarray | None = None,
) -> CMCMatch:
    """Non-informative tokens of ``tokens`` (reference ``CMC.detect_non_informative``).

    Args:
        tokens: ``(..., F, P, D)`` visual tokens by frame and patch (float; compared in float32).
            For the reference's linear inputs the leading dims are empty; for queries and
            attention rows they are the heads.
        threshold: per-element L1 threshold: non-informative when ``min L1 < threshold * D``.
        interval: frames per interval. i_frame_position: I-frame index in its interval.
        width: the ``D`` of the bound ``threshold * D`` if not the last dimension (traced
            int allowed): attention rows padded to the batch's length use the prompt's
            own key count, which is what the reference's unpadded rows have.

    Returns:
        ``CMCMatch``.

    Raises:
        ValueError: ``i_frame_position`` not in ``[0, interval)`` or ``tokens`` of rank < 3.
    """
    if tokens.ndim < 3:
        raise ValueError(f"tokens must be (..., frames, patches, dim), got shape {tokens.shape}")
    if not 0 <= i_frame_position < interval:
        raise ValueError(f"i_frame_position must lie in [0, {interval}), got {i_frame_position}")
    *lead, frames, patches, dim = tokens.shape
    x, pad = _pad_frames(tokens.astype(jnp.float32), interval)
    n_int = x.shape[-3] // interval
    ref = jnp.repeat(_i_frames(x, interval, i_frame_position), interval, axis=-3)  # (..., F_pad, P, D)

    def one_frame(args):  # (P, D), (P, D) -> min and argmin over the I-frame patches
        p_frame, i_frame = args
        sad = jnp.sum(jnp.abs(p_frame[:, None, :] - i_frame[None, :, :]), axis=-1)
        return jnp.min(sad, axis=-1), jnp.argmin(sad, axis=-1).astype(jnp.int32)

    flat = lambda a: a.reshape((-1, patches, dim))
    min_sad, position = lax.map(one_frame, (flat(x), flat(ref)))  # one frame at a time: (P, P, D) live
    shape = (*lead, n_int * interval, patches)
    min_sad, position = min_sad.reshape(shape), position.reshape(shape)
    if width is None:
        bound = jnp.float32(threshold * dim)  # the bound in float64, then float32, as torch compares
    else:
        bound = jnp.float32(threshold) * jnp.asarray(width, jnp.float32)
    mask = min_sad < bound

    counted = mask
    tail = pad >= interval - i_frame_position  # the tail interval's I-frame is padding
    if tail:
        counted = counted.at[..., -interval:, :].set(False)
    counted = counted[..., :frames, :]
    heads = 1
    for d in lead:
        heads *= d
    informative = counted.size - jnp.sum(counted, dtype=jnp.int32)
    if tail:
        informative -= patches * heads
    informative += n_int * patches * heads
    informative = jnp.asarray(informative, jnp.int32)
    return CMCMatch(position, mask, informative, jnp.int32(frames * patches * heads) - informative)


def cmc_approximate(tokens: jnp.ndarray, match: CMCMatch, interval: int = 8, i_frame_position: int = 3) -> jnp.ndarray:
    """Replace non-informative tokens by their I-frame tokens (reference
    ``CMC.approximate_non_informative``).

    Args:
        tokens: ``(..., F, P, D)`` the current input (any dtype; values are copied, not
            computed). ``match`` may come from another tensor of the same grid (the
            reference takes the linear-input mask from the decoder's input embeddings).
        match: ``cmc_detect`` result; its leading dims broadcast against ``tokens``'.

    Returns:
        ``(..., F, P, D)``, same dtype.
    """
    frames = tokens.shape[-3]
    x, _ = _pad_frames(tokens, interval)
    ref = jnp.repeat(_i_frames(x, interval, i_frame_position), interval, axis=-3)  # (..., F_pad, P, D)
    index = jnp.broadcast_to(match.reference, x.shape[:-1])
    copied = jnp.take_along_axis(ref, index[..., None], axis=-2)
    mask = jnp.broadcast_to(match.mask, x.shape[:-1])
    return jnp.where(mask[..., None], copied, x)[..., :frames, :, :]


cmc_detect = jax.jit(cmc_detect, static_argnames=("threshold", "interval", "i_frame_position"))
cmc_approximate = jax.jit(cmc_approximate, static_argnames=("interval", "i_frame_position"))
