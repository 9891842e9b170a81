"""The JAX baselines reproduce the original PyTorch implementations' vectors
(tests/data/baselines/*.npz, written by tests/data/baselines/make_golden.py from the
originals): masks, indices and counts exactly, outputs to 1e-5."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from focus_jax.baselines.adaptiv import adaptiv_merge
from focus_jax.baselines.cmc import cmc_approximate, cmc_detect
from focus_jax.baselines.fastv import fastv_keep, fastv_kept_count
from focus_jax.baselines.framefusion import framefusion_merge, framefusion_prune, initial_state
from focus_jax.config import VisualGeometry

DATA = Path(__file__).parent / "data" / "baselines"


@pytest.fixture(scope="module")
def golden():
    return {name: dict(np.load(DATA / f"{name}.npz")) for name in ("cmc", "adaptiv", "framefusion", "fastv")}


def _same_reference(match, expected, mask):
    """The matched I-frame patch of every replaced token equals the reference's. (Where a
    token is kept, its match is unused, and near-ties of L1 sums of unrelated rows may
    round differently in torch.cdist.)"""
    assert mask.any()
    np.testing.assert_array_equal(np.asarray(match.reference)[mask], expected[mask])


@pytest.mark.parametrize("case", ["video", "tail", "random"])
def test_cmc_matches_reference(golden, case):
    g = {k[len(f"cmc_{case}_") :]: v for k, v in golden["cmc"].items() if k.startswith(f"cmc_{case}_")}
    frames, h, w, start, heads = (int(v) for v in g["meta"])
    thr, thr_q, thr_s = (float(v) for v in g["thresholds"])
    p, n = h * w, frames * h * w
    vis = lambda a: a[..., start : start + n, :]
    grid = lambda a: jnp.asarray(a.reshape(a.shape[:-2] + (frames, p, a.shape[-1])))

    linear = cmc_detect(grid(vis(g["embeds"][0])), thr)
    np.testing.assert_array_equal(np.asarray(linear.mask), g["linear_mask"])
    _same_reference(linear, g["linear_reference"], g["linear_mask"])
    assert int(linear.informative) == int(g["linear_informative"])
    out = cmc_approximate(grid(vis(g["later"][0])), linear)
    np.testing.assert_allclose(np.asarray(out).reshape(n, -1), g["linear_out"][0], atol=1e-5, rtol=0)

    query = cmc_detect(grid(vis(g["query"][0])), thr_q)
    np.testing.assert_array_equal(np.asarray(query.mask), g["query_mask"])
    _same_reference(query, g["query_reference"], g["query_mask"])
    assert int(query.informative) == int(g["query_informative"])
    out = cmc_approximate(grid(vis(g["query"][0])), query)
    np.testing.assert_allclose(np.asarray(out).reshape(heads, n, -1), g["query_out"][0], atol=1e-5, rtol=0)

    rows = vis(g["probs"][0])  # (heads, N, S): the width of the bound is the key count
    score = cmc_detect(grid(rows), thr_s)
    np.testing.assert_array_equal(np.asarray(score.mask), g["score_mask"])
    _same_reference(score, g["score_reference"], g["score_mask"])
    assert int(score.informative) == int(g["score_informative"])
    out = cmc_approximate(grid(rows), score)
    np.testing.assert_allclose(np.asarray(out).reshape(heads, n, -1), g["probs_out"][0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", ["video", "image", "wide"])
def test_adaptiv_matches_reference(golden, case):
    g = {k[len(f"adaptiv_{case}_") :]: v for k, v in golden["adaptiv"].items() if k.startswith(f"adaptiv_{case}_")}
    frames, h, w, start = (int(v) for v in g["meta"])
    geom = VisualGeometry(frames, h, w)
    n = geom.num_tokens
    hidden = g["hidden"][0]
    res = adaptiv_merge(jnp.asarray(hidden[start : start + n]), geom, float(g["threshold"]))
    np.testing.assert_array_equal(np.asarray(res.merge_mask), g["merge_mask"])
    np.testing.assert_array_equal(np.asarray(res.pointer), g["pointer"])
    assert g["merge_mask"].any() and not g["merge_mask"].all()
    kept = np.concatenate([hidden[:start], hidden[start : start + n][~np.asarray(res.merge_mask)], hidden[start + n :]])
    np.testing.assert_array_equal(kept, g["out"][0])


@pytest.mark.parametrize("case", ["video", "budget", "random"])
def test_framefusion_call_sequence_matches_reference(golden, case):
    g = golden["framefusion"]
    frames, h, w, start, _, calls = (int(v) for v in g[f"ff_{case}_meta"])
    cost, lb, ratio_lb = (float(v) for v in g[f"ff_{case}_params"])
    geom = VisualGeometry(frames, h, w)
    n, layers = geom.num_tokens, 28  # the reference's hard-coded decoder depth
    state = initial_state(n)
    pruned = False
    for c in range(calls):
        pre = f"ff_{case}_{c}_"
        alive = g[pre + "alive_in"]
        np.testing.assert_array_equal(np.asarray(state.alive), alive)
        np.testing.assert_array_equal([bool(state.finish_merging), bool(state.finish_pruning)], g[pre + "flags_in"])
        hidden = g[pre + "hidden"][0]
        slots = np.zeros((n, hidden.shape[1]), np.float32)
        slots[alive] = hidden[start : start + alive.sum()]
        slots[~alive] = 1e3  # dead slots must not matter
        if pre + "attn" in g:  # pruning call: head-mean attention of the last token on the visual rows
            att = g[pre + "attn"][0].mean(axis=(0, 1))[start : start + alive.sum()]
            full = np.zeros(n, np.float32)
            full[alive] = att
            state = framefusion_prune(jnp.asarray(full), state, cost, layers)
            pruned |= bool(state.finish_pruning) and not g[pre + "flags_in"][1]
        out, state = framefusion_merge(jnp.asarray(slots), state, geom, lb, ratio_lb, cost, layers)
        new_alive = g[pre + "alive_out"]
        np.testing.assert_array_equal(np.asarray(state.alive), new_alive)
        np.testing.assert_array_equal([bool(state.finish_merging), bool(state.finish_pruning)], g[pre + "flags_out"])
        assert int(state.steps) == len(g[pre + "sparsity_list"])
        expected = g[pre + "out"][0][start : start + new_alive.sum()]
        np.testing.assert_allclose(np.asarray(out)[new_alive], expected, atol=1e-5, rtol=0)
    if case == "random":
        assert pruned  # the sequence exercises the attention pruning


@pytest.mark.parametrize("case", ["half", "quarter", "most"])
def test_fastv_matches_reference(golden, case):
    g = golden["fastv"]
    n, start = (int(v) for v in g[f"fastv_{case}_meta"])
    attn = g[f"fastv_{case}_attn"][0].mean(axis=0)[-1][start : start + n]
    keep = fastv_kept_count(n, float(g[f"fastv_{case}_r"]))
    mask, index = fastv_keep(jnp.asarray(attn), keep)
    expected = g[f"fastv_{case}_keep"]
    visual = expected[(expected >= start) & (expected < start + n)] - start
    np.testing.assert_array_equal(np.asarray(index), visual)
    assert int(mask.sum()) == keep == len(visual)
