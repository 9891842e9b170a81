"""Properties of the baselines on random geometries (hypothesis), against plain numpy
implementations written from the originals' descriptions (loops over the compacted
sequence, as the PyTorch code sees it)."""

import itertools

import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focus_jax.baselines.adaptiv import adaptiv_merge
from focus_jax.baselines.cmc import cmc_approximate, cmc_detect
from focus_jax.baselines.fastv import fastv_keep
from focus_jax.baselines.framefusion import FrameFusionState, framefusion_merge
from focus_jax.config import VisualGeometry

SETTINGS = settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tokens(rng, geom, dim, noise):
    """Tokens from 3 prototypes plus noise, so that similar and dissimilar pairs both occur."""
    protos = rng.standard_normal((3, dim)).astype(np.float32)
    return protos[rng.integers(0, 3, geom.num_tokens)] + noise * rng.standard_normal((geom.num_tokens, dim)).astype(
        np.float32
    )


@st.composite
def grid(draw, max_frames=10):
    geom = VisualGeometry(draw(st.integers(1, max_frames)), draw(st.integers(1, 3)), draw(st.integers(1, 4)))
    return geom, draw(st.sampled_from([4, 8, 12])), draw(st.integers(0, 2**31 - 1))


@SETTINGS
@given(grid(), st.integers(1, 4), st.floats(0.05, 1.0))
def test_cmc_matches_numpy(case, interval, threshold):
    geom, dim, seed = case
    i_pos = seed % interval
    rng = np.random.default_rng(seed)
    x = _tokens(rng, geom, dim, 0.1).reshape(geom.frames, geom.frame_stride, dim)
    match = cmc_detect(jnp.asarray(x), threshold, interval, i_pos)
    f, p = geom.frames, geom.frame_stride
    fp = -(-f // interval) * interval
    xp = np.concatenate([x, np.zeros((fp - f, p, dim), np.float32)])
    out = xp.copy()
    for frame in range(fp):
        ref = xp[(frame // interval) * interval + i_pos]
        dist = np.abs(xp[frame][:, None] - ref[None]).sum(-1)  # (P, P)
        best = dist.min(-1)
        clear = np.abs(best - threshold * dim) > 1e-3  # away from the bound: no rounding ambiguity
        mask = np.asarray(match.mask[frame])
        np.testing.assert_array_equal(mask[clear], (best < threshold * dim)[clear])
        for q in np.flatnonzero(mask):
            assert dist[q, match.reference[frame, q]] <= best[q] + 1e-4
            out[frame, q] = ref[match.reference[frame, q]]
    np.testing.assert_array_equal(np.asarray(cmc_approximate(jnp.asarray(x), match, interval, i_pos)), out[:f])
    assert int(match.informative) + int(match.non_informative) == geom.num_tokens


@SETTINGS
@given(grid(), st.floats(-0.5, 1.0))
def test_adaptiv_matches_numpy(case, threshold):
    geom, dim, seed = case
    x = _tokens(np.random.default_rng(seed), geom, dim, 0.5)
    res = adaptiv_merge(jnp.asarray(x), geom, threshold)
    n, w, fs = geom.num_tokens, geom.width, geom.frame_stride
    s = np.sign(x)
    merge, pointer = np.zeros(n, bool), np.arange(n)
    for i in range(n):
        top = (s[i - w] * s[i]).sum() if i >= w else 0.0
        left = (s[i - 1] * s[i]).sum() if i >= 1 else 0.0
        margin = (i % fs) // w == 0 or (i % fs) % w == 0 or (geom.frames > 1 and i < fs)
        if max(top, left) / dim >= threshold and not margin:
            merge[i], pointer[i] = True, i - (1 if left > top else w)
    while not np.array_equal(pointer, pointer[pointer]):
        pointer = pointer[pointer]
    np.testing.assert_array_equal(np.asarray(res.merge_mask), merge)
    np.testing.assert_array_equal(np.asarray(res.pointer), pointer)
    assert not merge[pointer].any()  # every chain ends at a kept token


def _numpy_merge(x, alive, geom, lb, bound):
    """One FrameFusion merge on the compacted sequence (the reference's view): by-patch order
    of the alive tokens, similarity with the previous one of the same patch, runs of
    similar tokens averaged into the token before the run. Threshold path only."""
    p = geom.frame_stride
    order = [g for patch in range(p) for g in range(patch, geom.num_tokens, p) if alive[g]]
    sim = [-2.0] + [
        float(np.dot(x[a], x[b]) / (np.linalg.norm(x[a]) * np.linalg.norm(x[b]))) if a % p == b % p else -2.0
        for a, b in itertools.pairwise(order)
    ]
    merged = [s >= lb for s in sim]
    assert sum(merged) / len(order) < bound  # the case must take the threshold path
    out, new_alive = x.copy(), alive.copy()
    for j, g in enumerate(order):
        if not merged[j] and (j + 1 < len(order) and merged[j + 1]):
            run = [g]
            k = j + 1
            while k < len(order) and merged[k]:
                run.append(order[k])
                new_alive[order[k]] = False
                k += 1
            out[g] = x[run].mean(0)
    return out, new_alive


@SETTINGS
@given(grid(max_frames=5), st.floats(0.0, 0.95))
def test_framefusion_merge_on_slots_matches_compacted_numpy(case, lb):
    geom, dim, seed = case
    rng = np.random.default_rng(seed)
    x = _tokens(rng, geom, dim, 0.3)
    alive = rng.random(geom.num_tokens) < 0.7
    alive[0] = True
    x[~alive] = 7.0  # dead slots must not matter
    state = FrameFusionState(
        jnp.asarray(alive), jnp.asarray(False), jnp.asarray(False), jnp.int32(0), jnp.float32(1.0), jnp.float32(0.0)
    )
    cost, layers = 0.001, 28  # sparsity bound 1 - cost = 0.999: the threshold path
    out, new = framefusion_merge(jnp.asarray(x), state, geom, lb, 0.0, cost, layers)
    ref_out, ref_alive = _numpy_merge(x, alive, geom, lb, bound=0.999)
    np.testing.assert_array_equal(np.asarray(new.alive), ref_alive)
    np.testing.assert_allclose(np.asarray(out)[ref_alive], ref_out[ref_alive], atol=1e-5)
    assert int(new.steps) == 1 and not bool(new.finish_pruning)


@SETTINGS
@given(st.integers(2, 60), st.integers(0, 2**31 - 1))
def test_fastv_keeps_the_most_attended(n, seed):
    att = np.random.default_rng(seed).random(n).astype(np.float32)
    keep = 1 + seed % n
    mask, index = fastv_keep(jnp.asarray(att), keep)
    mask = np.asarray(mask)
    assert mask.sum() == keep and np.array_equal(np.flatnonzero(mask), np.asarray(index))
    if keep < n:
        assert att[mask].min() >= att[~mask].max()
