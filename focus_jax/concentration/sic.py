"""Similarity concentration (SIC): public, batched, jit-compiled entry points.

``block_similarity`` (block level) and ``vector_concentration`` (vector level) are the two
stages; ``similarity_concentration`` composes them. All accept leading batch axes
(``x`` of shape ``(..., N, D)``) and validate their inputs before tracing, so a wrong
shape or parameter raises a ``ValueError`` that names it.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.concentration.block import BlockMatch, block_match
from focus_jax.concentration.layout import join_vectors, split_vectors, vector_layout
from focus_jax.concentration.merge import chase_pointers, group_mean, similar_mask
from focus_jax.config import FocusConfig, VisualGeometry

__all__ = [
    "SICResult",
    "block_similarity",
    "vector_concentration",
    "similarity_concentration",
    "CPU_COMPILER_OPTIONS",
    "compiler_options",
    "jit_with_cpu_options",
]

#: XLA CPU options for jitted SIC. YNNPACK's reduce fusion materialises every shifted
#: candidate slice and makes the similarity pass 2.5-4x slower (jax-cpu-notes.md).
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def compiler_options() -> dict | None:
    """``jax.jit``'s ``compiler_options`` for a top-level jit of Focus code on the default
    backend: ``CPU_COMPILER_OPTIONS`` on CPU, None elsewhere (the option is CPU-only)."""
    return CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None


class SICResult(NamedTuple):
    """Result of similarity concentration of ``N`` visual tokens of width ``D``.

    Attributes:
        output: ``(..., N, D)``, same dtype as the input: every vector replaced by the
            mean of its group (relaxed mode: the soft merge).
        mask_similar: ``(..., N, V)`` bool, vectors merged into an earlier group.
        mask_zero: ``(..., N, V)`` bool, all-zero vectors.
        group_index: ``(..., N, V)`` int32, flat index ``token * V + slot`` of the group
            root, ``token`` its grid position (with ``positions``: ``positions[row]``).
        sparsity: ``(...)`` float32, ``(similar + zero vectors) / (N * V)`` of the rows
            given; relaxed mode: its expectation under the soft mask (with a keep weight
            ``w``, a row is a zero vector with probability ``1 - w``).
        similarity: ``(..., N, V)`` float32, best cosine similarity (``NO_CANDIDATE``
            where there is no valid candidate).
        soft_similar: ``(..., N, V)`` float32 soft mask in relaxed mode, else None.
    """

    output: jnp.ndarray
    mask_similar: jnp.ndarray
    mask_zero: jnp.ndarray
    group_index: jnp.ndarray
    sparsity: jnp.ndarray
    similarity: jnp.ndarray
    soft_similar: jnp.ndarray | None = None


def _check_input(x, geom: VisualGeometry, positions=None, token_weight=None) -> None:
    if not isinstance(geom, VisualGeometry):
        raise TypeError(f"geom must be a VisualGeometry, got {type(geom).__name__}")
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) < 2:
        raise ValueError(f"x must have shape (..., N, D), got {shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be a floating-point array, got dtype {x.dtype}")
    if positions is None:
        geom.check_tokens(shape[-2], "x")
    else:
        if tuple(jnp.shape(positions)) != tuple(shape[:-1]) or not jnp.issubdtype(
            jnp.result_type(positions), jnp.integer
        ):
            raise ValueError(
                f"positions must be integers of shape {tuple(shape[:-1])} (x's rows), got {jnp.shape(positions)}"
            )
        if shape[-2] > geom.num_tokens:
            raise ValueError(f"x has {shape[-2]} kept tokens, more than the {geom.num_tokens} of the grid")
    if token_weight is not None and tuple(jnp.shape(token_weight)) != tuple(shape[:-1]):
        raise ValueError(f"token_weight must have shape {tuple(shape[:-1])} (x's rows), got {jnp.shape(token_weight)}")
    if shape[-1] < 1:
        raise ValueError("x has no channels (D = 0)")


def _scalars(cfg: FocusConfig, threshold, temperature) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The threshold (``cfg``'s unless overridden) and temperature as float32 scalars.

    Python numbers are checked here; traced values (relaxed mode, tuning) are not.
    """
    threshold = cfg.similarity_threshold if threshold is None else threshold
    if isinstance(threshold, (int, float)) and not threshold >= -1.0:
        raise ValueError(f"similarity threshold must be >= -1, got {threshold!r}")
    if isinstance(temperature, (int, float)) and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return jnp.asarray(threshold, jnp.float32), jnp.asarray(temperature, jnp.float32)


def _over_batch(fn, x, *mapped):
    """Apply ``fn`` (one ``(N, ...)`` sequence) over every leading axis of ``x`` and ``mapped``."""
    lead = x.shape[:-2]
    if not lead:
        return fn(x, *mapped)
    flat = lambda a: a.reshape((-1,) + a.shape[len(lead) :])
    out = jax.vmap(fn)(flat(x), *(jax.tree.map(flat, m) for m in mapped))
    return jax.tree.map(lambda a: a.reshape(lead + a.shape[1:]), out)


def jit_with_cpu_options(fn, static_argnames):
    """``jax.jit`` of ``fn`` with ``CPU_COMPILER_OPTIONS`` when called at top level.

    JAX accepts compiler options only on a top-level jit, so when called while tracing
    (inside a user's jit, ``jax.grad``, ``vmap``) a plain jit is used and the enclosing
    computation's options apply. ``.lower`` lowers the top-level version.
    """
    top_level = jax.jit(fn, static_argnames=static_argnames, compiler_options=compiler_options())
    nested = jax.jit(fn, static_argnames=static_argnames)

    @functools.wraps(fn)
    def dispatch(*args, **kwargs):
        traced = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves((args, kwargs)))
        return (nested if traced else top_level)(*args, **kwargs)

    dispatch.lower = top_level.lower
    dispatch._cache_size = top_level._cache_size
    return dispatch


def _jit(fn):
    """``jit_with_cpu_options`` with ``geom``, ``shape_cfg`` and ``relaxed`` static."""
    return jit_with_cpu_options(fn, ("geom", "shape_cfg", "relaxed"))


def _shape_cfg(cfg: FocusConfig) -> FocusConfig:
    """``cfg`` without the fields that do not change compiled code (threshold, SEC schedule)."""
    return cfg.replace(similarity_threshold=0.0, sec_layers=(), sec_alphas=())


def _block_single(x, geom: VisualGeometry, shape_cfg: FocusConfig, positions=None, weight=None) -> BlockMatch:
    # A constant x (closed over in a user's jit) would make XLA constant-fold the whole
    # similarity pass at compile time (14 s for 1568 x 768); the barrier prevents it.
    x = jax.lax.optimization_barrier(x)
    xv = split_vectors(x, shape_cfg.vector_size)
    return block_match(
        xv, geom, shape_cfg.block_size, shape_cfg.frame_block_size, shape_cfg.gemm_m_size, positions, weight
    )


def _block_stage(x, geom: VisualGeometry, shape_cfg: FocusConfig, positions=None, weight=None) -> BlockMatch:
    """``_block_single`` over every leading axis of ``x``."""
    return _over_batch(lambda xx, p, w: _block_single(xx, geom, shape_cfg, p, w), x, positions, weight)


def _soft_group_mean(xv, group, weight):
    """Weighted group mean, blended into each member with its own weight.

    ``out_i = x_i + w_i * (M_g - x_i)``, ``M_g = sum_j w_j x_j / sum_j w_j`` over the
    group ``g`` of ``i``. With hard weights (1 for members) this is ``group_mean``.
    """
    n, v, width = xv.shape
    flat = xv.reshape(n * v, width).astype(jnp.float32)
    g = group.reshape(-1)
    w = weight.reshape(-1).astype(jnp.float32)
    sums = jnp.zeros_like(flat).at[g].add(flat * w[:, None])
    wsum = jnp.zeros((n * v,), jnp.float32).at[g].add(w)
    mean = sums / jnp.where(wsum > 0, wsum, 1.0)[:, None]
    out = flat + w[:, None] * (mean[g] - flat)
    return out.astype(xv.dtype).reshape(n, v, width)


def _flatten_batch(xv: jnp.ndarray, group: jnp.ndarray):
    """``(..., N, V, w)`` vectors and per-sequence group indices -> one ``(B*N, V, w)``
    sequence with global indices, so a batch is merged in one call (``group_mean``)."""
    n, v, width = xv.shape[-3:]
    batch = int(np.prod(xv.shape[:-3], dtype=np.int64))
    offsets = (jnp.arange(batch, dtype=jnp.int32) * (n * v)).reshape(xv.shape[:-3] + (1, 1))
    return xv.reshape(batch * n, v, width), (group + offsets).reshape(batch * n, v)


def _vector_stage(
    x,
    match: BlockMatch,
    threshold,
    temperature,
    geom: VisualGeometry,
    shape_cfg: FocusConfig,
    relaxed: bool,
    positions=None,
    weight=None,
):
    """Vector level on ``x`` ``(..., n, D)`` and its ``match`` ``(..., n, V)``."""
    xv = split_vectors(x, shape_cfg.vector_size)
    mask = similar_mask(match.similarity, threshold)
    group = _over_batch(lambda m, o: chase_pointers(m, o, geom.frames), mask, match.offset)
    zeros = jnp.sum(match.mask_zero, axis=(-2, -1))
    if weight is not None:  # a row of keep weight w is a zero vector with probability 1 - w
        v = mask.shape[-1]
        zeros = jnp.sum(weight * jnp.sum(match.mask_zero, axis=-1) + (1.0 - weight) * v, axis=-1)
    # multiply by the reciprocal explicitly: XLA rewrites division by a constant that way
    # under jit, and eager and jitted results must be identical
    per_vector = jnp.float32(1.0 / (mask.shape[-2] * mask.shape[-1]))
    flat_xv, flat_group = _flatten_batch(xv, group)
    if relaxed:
        soft = jnp.where(match.mask_zero, 0.0, jax.nn.sigmoid((match.similarity - threshold) / temperature))
        # similar vectors join their group with weight `soft`; roots and loners with 1
        merge_weight = jnp.where(mask, soft, 1.0).reshape(flat_group.shape)
        merged = _soft_group_mean(flat_xv, flat_group, merge_weight)
        if weight is not None:
            soft = soft * weight[..., None]
        sparsity = (jnp.sum(soft, axis=(-2, -1)) + zeros) * per_vector
    else:
        soft = None
        merged = group_mean(flat_xv, flat_group)
        sparsity = (jnp.sum(mask, axis=(-2, -1)) + zeros).astype(jnp.float32) * per_vector
    output = join_vectors(merged.reshape(xv.shape), x.shape[-1])
    if positions is not None:  # row-local group roots -> grid indices
        v = mask.shape[-1]
        group = (
            jnp.take_along_axis(positions, (group // v).reshape(positions.shape[:-1] + (-1,)), axis=-1).reshape(
                group.shape
            )
            * v
            + group % v
        )
    return SICResult(output, mask, match.mask_zero, group, sparsity.astype(jnp.float32), match.similarity, soft)


@_jit
def _block_jit(x, positions=None, *, geom, shape_cfg, relaxed=False):
    return _block_stage(x, geom, shape_cfg, positions)


@_jit
def _vector_jit(x, match, threshold, temperature, positions=None, *, geom, shape_cfg, relaxed):
    return _vector_stage(x, match, threshold, temperature, geom, shape_cfg, relaxed, positions)


@_jit
def _sic_jit(x, threshold, temperature, positions=None, weight=None, *, geom, shape_cfg, relaxed):
    match = _block_stage(x, geom, shape_cfg, positions, weight)
    return _vector_stage(x, match, threshold, temperature, geom, shape_cfg, relaxed, positions, weight)


def block_similarity(
    x: jnp.ndarray, geom: VisualGeometry, cfg: FocusConfig = FocusConfig(), *, positions=None
) -> BlockMatch:
    """Block level: best candidate of every vector in its spatio-temporal window.

    Args:
        x: ``(..., N, D)`` visual tokens of one GEMM input (``N = geom.num_tokens``; for
            attention queries ``D = heads * head_dim``), any float dtype.
        geom: patch grid of the visual tokens.
        cfg: ``vector_size``, ``block_size``, ``frame_block_size``, ``gemm_m_size`` are used.
        positions: None, or ``(..., n)`` int32 ascending grid positions of the ``n`` rows
            of ``x`` (the tokens SEC kept): SIC of the kept tokens, equal to SIC of the
            grid with zero vectors at the pruned positions (``block.block_match``).

    Returns:
        ``BlockMatch`` with ``(..., N, V)`` arrays, ``V = ceil(D / vector_size)``.

    Raises:
        ValueError: ``x`` is not floating point or its token count does not match ``geom``.

    Source: spec SIC steps 1-6 (reference ``Focus.focus_similarity_concentration``).
    """
    _check_input(x, geom, positions)
    return _block_jit(x, positions, geom=geom, shape_cfg=_shape_cfg(cfg))


def vector_concentration(
    x: jnp.ndarray,
    match: BlockMatch,
    geom: VisualGeometry,
    cfg: FocusConfig = FocusConfig(),
    *,
    threshold=None,
    relaxed: bool = False,
    temperature: float = 0.02,
    positions=None,
) -> SICResult:
    """Vector level: threshold, pointer chasing and group merge.

    Args:
        x: ``(..., N, D)`` the tokens ``match`` was computed from.
        match: ``block_similarity(x, geom, cfg)``.
        geom: patch grid (``geom.frames`` bounds the pointer-chasing rounds).
        cfg: ``vector_size`` and ``similarity_threshold`` are used.
        threshold: overrides ``cfg.similarity_threshold``; may be a traced scalar (for
            ``jax.grad``). Any value >= -1; values >= 1 merge nothing.
        relaxed: soft similarity mask ``sigmoid((best - threshold) / temperature)`` and
            soft merge (see ``SICResult``); masks and groups stay hard.
        temperature: > 0, only used when ``relaxed``.
        positions: the grid positions ``match`` was computed with (see ``block_similarity``).

    Returns:
        ``SICResult``.

    Raises:
        ValueError: shapes of ``x`` and ``match`` disagree, or a parameter is out of range.

    Source: spec SIC steps 6-9.
    """
    _check_input(x, geom, positions)
    v, _ = vector_layout(x.shape[-1], cfg.vector_size)
    expected = x.shape[:-1] + (v,)
    for name, arr in zip(BlockMatch._fields, match):
        if tuple(arr.shape) != expected:
            raise ValueError(f"match.{name} has shape {tuple(arr.shape)}, expected {expected} for x of shape {x.shape}")
    threshold, temperature = _scalars(cfg, threshold, temperature)
    return _vector_jit(
        x, BlockMatch(*match), threshold, temperature, positions, geom=geom, shape_cfg=_shape_cfg(cfg), relaxed=relaxed
    )


def similarity_concentration(
    x: jnp.ndarray,
    geom: VisualGeometry,
    cfg: FocusConfig = FocusConfig(),
    *,
    threshold=None,
    relaxed: bool = False,
    temperature: float = 0.02,
    positions=None,
    token_weight=None,
) -> SICResult:
    """SIC of one GEMM input: ``block_similarity`` then ``vector_concentration``.

    Args:
        x: ``(..., N, D)`` visual tokens (``N = geom.num_tokens``), any float dtype;
            decisions are taken in float32, merged means rounded once to ``x.dtype``.
        geom: patch grid of the visual tokens.
        cfg: Focus configuration (vector, window and m-tile sizes, threshold).
        threshold, relaxed, temperature: see ``vector_concentration``.
        positions: None, or ``(..., n)`` grid positions of the rows of ``x`` (SIC of the
            tokens SEC kept; see ``block_similarity``).
        token_weight: None, or ``(..., n)`` float keep weights in [0, 1] of relaxed SEC
            (relaxed mode only): a row of weight ``w`` is a zero vector with probability
            ``1 - w`` (see ``block.block_match``); its soft mask and the expected counts
            of ``sparsity`` are weighted accordingly.

    Returns:
        ``SICResult`` with ``output`` of the shape and dtype of ``x``.

    Raises:
        ValueError: wrong shape or dtype of ``x``, geometry mismatch, bad parameter.

    Source: spec "SIC: block- and vector-level similarity concentration"; reference
    ``Focus.forward`` (padding) and ``Focus.focus_similarity_concentration``.
    """
    _check_input(x, geom, positions, token_weight)
    if token_weight is not None and not relaxed:
        raise ValueError("token_weight (relaxed SEC keep weights) needs relaxed=True")
    threshold, temperature = _scalars(cfg, threshold, temperature)
    weight = None if token_weight is None else jnp.asarray(token_weight, jnp.float32)
    return _sic_jit(x, threshold, temperature, positions, weight, geom=geom, shape_cfg=_shape_cfg(cfg), relaxed=relaxed)
