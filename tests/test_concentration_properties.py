"""Properties of SIC on random geometries (hypothesis), cross-checked against an
independent PyTorch implementation written from the spec (tests/torch_reference.py).

Inputs are built from a few prototype vectors plus noise and a sprinkling of zero
tokens, so that every stage (zero vectors, similar vectors, long pointer chains, m-tiles)
is exercised.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focus_jax import FocusConfig, VisualGeometry
from focus_jax.concentration import similarity_concentration

from torch_reference import torch_sic

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def sic_case(draw):
    frames = draw(st.integers(1, 4))
    height = draw(st.integers(1, 4))
    width = draw(st.integers(1, 5))
    dim = draw(st.sampled_from([3, 8, 16, 20, 48]))
    cfg = FocusConfig(
        similarity_threshold=draw(st.sampled_from([0.0, 0.5, 0.8, 0.9, 0.97])),
        vector_size=draw(st.sampled_from([4, 8, 16])),
        block_size=draw(st.integers(1, 3)),
        frame_block_size=draw(st.integers(1, 3)),
        gemm_m_size=draw(st.sampled_from([None, None, 2, 5])),
    )
    seed = draw(st.integers(0, 2**31 - 1))
    geom = VisualGeometry(frames, height, width)
    return make_tokens(geom, dim, seed), geom, cfg


def make_tokens(geom: VisualGeometry, dim: int, seed: int) -> np.ndarray:
    """Tokens drawn from 3 prototypes with small noise; ~15% zero tokens."""
    rng = np.random.default_rng(seed)
    n = geom.num_tokens
    protos = rng.standard_normal((3, dim)).astype(np.float32)
    x = protos[rng.integers(0, 3, n)] + 0.15 * rng.standard_normal((n, dim)).astype(np.float32)
    x[rng.random(n) < 0.15] = 0.0
    return x


def _np(res):
    return {k: np.asarray(v) for k, v in res._asdict().items() if v is not None}


@SETTINGS
@given(sic_case())
def test_matches_independent_torch_implementation(case):
    x, geom, cfg = case
    res = _np(similarity_concentration(jnp.asarray(x), geom, cfg))
    out, mask, zero, group, sparsity = torch_sic(
        x, geom.frames, geom.height, geom.width, cfg.similarity_threshold, cfg.vector_size,
        cfg.block_size, cfg.frame_block_size, cfg.gemm_m_size,
    )
    np.testing.assert_array_equal(res["mask_zero"], zero.numpy())
    np.testing.assert_array_equal(res["mask_similar"], mask.numpy())
    np.testing.assert_array_equal(res["group_index"], group.numpy())
    np.testing.assert_allclose(res["output"], out.numpy(), rtol=1e-5, atol=1e-6)
    assert abs(float(res["sparsity"]) - sparsity) < 1e-6


@SETTINGS
@given(sic_case(), st.sampled_from([1.0, 1.5]))
def test_threshold_of_one_or_more_changes_nothing(case, threshold):
    x, geom, cfg = case
    res = similarity_concentration(jnp.asarray(x), geom, cfg, threshold=threshold)
    np.testing.assert_array_equal(np.asarray(res.output), x)
    assert not np.asarray(res.mask_similar).any()
    n, v = res.group_index.shape
    np.testing.assert_array_equal(np.asarray(res.group_index), np.arange(n * v).reshape(n, v))


@SETTINGS
@given(sic_case(), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))
def test_similar_vectors_never_grow_with_threshold(case, t1, t2):
    x, geom, cfg = case
    lo, hi = sorted((t1, t2))
    m_lo = np.asarray(similarity_concentration(jnp.asarray(x), geom, cfg, threshold=lo).mask_similar)
    m_hi = np.asarray(similarity_concentration(jnp.asarray(x), geom, cfg, threshold=hi).mask_similar)
    assert m_hi.sum() <= m_lo.sum()
    assert not (m_hi & ~m_lo).any()  # every vector similar at the higher threshold is at the lower


@SETTINGS
@given(sic_case(), st.floats(-1.0, 1.0))
def test_zero_vectors_never_match_and_stay_zero(case, threshold):
    x, geom, cfg = case
    res = _np(similarity_concentration(jnp.asarray(x), geom, cfg, threshold=threshold))
    zero, group = res["mask_zero"], res["group_index"]
    assert not (res["mask_similar"] & zero).any()
    # nothing points into a zero vector, and zero vectors point to themselves
    pointed_zero = zero.reshape(-1)[group.reshape(-1)].reshape(zero.shape)
    np.testing.assert_array_equal(pointed_zero, zero)
    v = zero.shape[1]
    xv = np.asarray(res["output"])
    width = cfg.vector_size if x.shape[1] > cfg.vector_size else x.shape[1]
    padded = np.pad(xv, ((0, 0), (0, v * width - x.shape[1]))).reshape(x.shape[0], v, width)
    assert not padded[zero].any()


@SETTINGS
@given(sic_case())
def test_merging_preserves_group_sums_and_sparsity_is_a_fraction(case):
    x, geom, cfg = case
    res = _np(similarity_concentration(jnp.asarray(x), geom, cfg))
    n, v = res["group_index"].shape
    width = cfg.vector_size if x.shape[1] > cfg.vector_size else x.shape[1]
    pad = lambda a: np.pad(a, ((0, 0), (0, v * width - a.shape[1]))).reshape(n * v, width).astype(np.float64)
    g = res["group_index"].reshape(-1)
    sums_in = np.zeros((n * v, width))
    sums_out = np.zeros((n * v, width))
    np.add.at(sums_in, g, pad(x))
    np.add.at(sums_out, g, pad(res["output"]))
    np.testing.assert_allclose(sums_out, sums_in, rtol=1e-5, atol=1e-5)
    s = float(res["sparsity"])
    assert 0.0 <= s <= 1.0
    assert s == pytest.approx((res["mask_similar"].sum() + res["mask_zero"].sum()) / (n * v), rel=1e-6)


@settings(max_examples=8, deadline=None)
@given(sic_case())
def test_identical_with_and_without_jit(case):
    x, geom, cfg = case
    jitted = _np(similarity_concentration(jnp.asarray(x), geom, cfg))
    with jax.disable_jit():
        eager = _np(similarity_concentration(jnp.asarray(x), geom, cfg))
    for key in ("mask_similar", "mask_zero", "group_index", "output", "sparsity"):
        np.testing.assert_array_equal(jitted[key], eager[key], err_msg=key)


@SETTINGS
@given(sic_case(), st.integers(2, 3))
def test_batch_equals_one_by_one(case, batch):
    x, geom, cfg = case
    xs = np.stack([x * (1 + 0.5 * b) if b % 2 else np.roll(x, b, axis=0) for b in range(batch)])
    batched = _np(similarity_concentration(jnp.asarray(xs), geom, cfg))
    for b in range(batch):
        single = _np(similarity_concentration(jnp.asarray(xs[b]), geom, cfg))
        for key, value in single.items():
            np.testing.assert_array_equal(batched[key][b], value, err_msg=f"{key}[{b}]")
