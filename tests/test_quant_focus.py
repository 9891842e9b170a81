"""The model's Focus hooks with the integer arithmetic (``FocusPlan.arithmetic="int8"``) and
the capture callback, against the integer golden model (``focus_jax.quant``) applied by hand."""

import jax.numpy as jnp
import numpy as np
import pytest

from focus_jax.concentration import select_tokens, similarity_concentration
from focus_jax.config import FocusConfig, VisualGeometry
from focus_jax.errors import InputError
from focus_jax.models import focus_hooks
from focus_jax.models.focus_hooks import FocusPlan, VisualSpan
from focus_jax.quant import (
    quantize_importance,
    quantize_symmetric,
    quantized_block_match,
    quantized_sic_decisions,
    tau_fixed,
)
from focus_jax.quant_demo import Recorder

GEOM = VisualGeometry(3, 4, 4)
CFG = FocusConfig(similarity_threshold=0.95, vector_size=16)


def _tokens(rng, n, d):
    x = rng.normal(size=(n, d)).astype(np.float32)
    for p in range(1, n):
        if rng.random() < 0.6:
            x[p] = x[p - rng.choice([1, 4, 16]) if p >= 16 else p - 1] + rng.uniform(0.05, 0.4) * rng.normal(size=d)
    return x


def _batch(seed=0, prefix=3, suffix=2, d=48):
    rng = np.random.default_rng(seed)
    n = GEOM.num_tokens
    vis = np.stack([_tokens(rng, n, d) for _ in range(2)])
    x = rng.normal(size=(2, prefix + n + suffix, d)).astype(np.float32)
    x[:, prefix : prefix + n] = vis
    return x, vis, jnp.full((2,), prefix, jnp.int32)


def test_int8_concentrate_takes_the_golden_models_decisions():
    x, vis, start = _batch()
    plan = FocusPlan(CFG, GEOM, 1, 1, arithmetic="int8")
    out, rec = focus_hooks.concentrate(plan, VisualSpan(start), "q_proj", jnp.asarray(x))
    for b in range(2):
        q, _ = quantize_symmetric(vis[b])
        gold = quantized_block_match(q, GEOM, CFG, tau_fixed(CFG.similarity_threshold))
        assert np.array_equal(np.asarray(rec.mask_similar[b]), np.asarray(gold.mask_similar))
        assert np.array_equal(np.asarray(rec.mask_zero[b]), np.asarray(gold.mask_zero))
    sim = np.asarray(rec.mask_similar)
    assert 0 < sim.sum() < sim.size
    np.testing.assert_array_equal(np.asarray(out[:, :3]), x[:, :3])  # text rows untouched


def test_int8_sic_after_pruning_equals_the_golden_model_on_the_scattered_grid():
    rng = np.random.default_rng(1)
    x = _tokens(rng, GEOM.num_tokens, 48)
    keep = np.sort(rng.choice(GEOM.num_tokens, 30, replace=False)).astype(np.int32)
    dec = quantized_sic_decisions(x[keep], GEOM, CFG, positions=keep)
    grid = np.zeros_like(x)
    grid[keep] = x[keep]
    q, _ = quantize_symmetric(grid)
    gold = quantized_block_match(q, GEOM, CFG, tau_fixed(CFG.similarity_threshold))
    assert np.array_equal(np.asarray(dec.mask_similar), np.asarray(gold.mask_similar)[keep])
    assert np.asarray(dec.mask_similar).sum() > 0
    # row offsets point at the kept row holding the grid candidate
    rows, slots = np.nonzero(np.asarray(dec.candidate) > 0)
    cand_rows = rows - np.asarray(dec.offset)[rows, slots]
    assert np.array_equal(keep[cand_rows], keep[rows] - np.asarray(gold.offset)[keep][rows, slots])
    # and the hook, with the span of the kept tokens, merges with exactly these decisions
    plan = FocusPlan(CFG, GEOM, 1, 1, arithmetic="int8")
    xs = np.concatenate([np.zeros((1, 48), np.float32), x[keep], np.zeros((1, 48), np.float32)])[None]
    span = VisualSpan(jnp.array([1], jnp.int32), jnp.asarray(keep)[None])
    _, rec = focus_hooks.concentrate(plan, span, "gate_proj", jnp.asarray(xs))
    assert np.array_equal(np.asarray(rec.mask_similar[0])[keep], np.asarray(dec.mask_similar))


def test_capture_sees_every_prompts_visual_rows_and_leaves_float_bit_identical():
    x, vis, start = _batch(seed=2)
    rec = Recorder()
    plan = FocusPlan(CFG, GEOM, 1, 1, capture=rec)
    out, r = focus_hooks.concentrate(plan, VisualSpan(start), "o_proj", jnp.asarray(x))
    out.block_until_ready()
    ref = similarity_concentration(jnp.asarray(vis), GEOM, CFG)
    np.testing.assert_array_equal(np.asarray(out[:, 3 : 3 + GEOM.num_tokens]), np.asarray(ref.output))
    assert [c.name for c in rec.sic] == ["o_proj"] * 2 and all(c.positions is None for c in rec.sic)
    for b in range(2):
        np.testing.assert_array_equal(rec.sic[b].x, vis[b])


def test_int8_sec_keeps_the_top_k_of_quantised_importances():
    rng = np.random.default_rng(3)
    n, b, s, hq, hd = 12, 1, 20, 2, 8
    plan = FocusPlan(FocusConfig(), VisualGeometry(1, 3, 4), 1, 8, arithmetic="int8", capture=Recorder())
    q = jnp.asarray(rng.normal(size=(b, s, hq, hd)) * 3, jnp.float32)
    k = jnp.asarray(rng.normal(size=(b, s, hq, hd)) * 3, jnp.float32)
    span = VisualSpan(jnp.array([2], jnp.int32))
    imp = focus_hooks.sec_importance(plan, span, q, k, jnp.ones((b, s), bool), hd**-0.5, k_keep=5)
    imp.block_until_ready()
    (sec,) = plan.capture.sec
    assert sec.probs.shape == (hq, s - 2 - n, n) and sec.k == 5
    # numpy: softmax rows of the query text, causal, columns of the visual tokens
    scores = np.einsum("shd,thd->hst", np.asarray(q[0]), np.asarray(k[0])) * hd**-0.5
    scores = np.where(np.tril(np.ones((s, s), bool)), scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    want = np.max(np.asarray(quantize_importance(p[:, 2 + n :, 2 : 2 + n])), axis=(0, 1))
    assert imp.dtype == jnp.int32 and np.array_equal(np.asarray(imp[0]), want)
    rows, _ = focus_hooks.semantic_prune(plan, span, imp, 5, s)
    kept = np.asarray(rows[0, 2:7]) - 2
    assert np.array_equal(kept, np.asarray(select_tokens(jnp.asarray(want), 5)))


def test_unknown_arithmetic_and_relaxed_int8_are_refused():
    with pytest.raises(InputError, match="arithmetic"):
        FocusPlan(CFG, GEOM, 1, 1, arithmetic="fp8")
    x, _, start = _batch()
    with pytest.raises(ValueError, match="relaxed"):
        focus_hooks.concentrate(FocusPlan(CFG, GEOM, 1, 1, arithmetic="int8"), VisualSpan(start), "q_proj",
                                jnp.asarray(x), relaxed=True)


def test_agreement_stats_count_sec_swaps_that_quantisation_ties_cause():
    from focus_jax.models.focus_hooks import SECInput
    from focus_jax.quant_demo import AgreementStats

    probs = np.zeros((2, 3, 6), np.float32)
    probs[0, 1] = [0.1, 0.5, 0.2, 0.4, 0.4 + 2e-6, 0.05]  # tokens 3 and 4 round to the same 16-bit value
    assert np.asarray(quantize_importance(probs[0, 1, 3])) == np.asarray(quantize_importance(probs[0, 1, 4]))
    stats = AgreementStats()
    stats(SECInput(probs, 3))  # both keep {1, 3, 4}
    stats(SECInput(probs, 2))  # float keeps {1, 4}, the integer tie goes to the lower index: {1, 3}
    assert stats.sec_maps == 2 and stats.sec_kept == 5 and stats.sec_kept_common == 4
    assert stats.to_dict()["sec_kept_agreement"] == 0.8
