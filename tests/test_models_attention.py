"""``focus_jax.models.attention.causal_attention`` against a numpy softmax with an explicit
mask: plain causal rows and packed segments (a shared prefix plus continuations that see
only the prefix and themselves)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focus_jax.models.attention import causal_attention


def _reference(q, k, v, valid, segments, scale):
    """Softmax attention over the explicit ``(S, S)`` mask of the module docstring."""
    b, s, hq, hd = q.shape
    g = hq // k.shape[2]
    out = np.zeros((b, s, hq, hd))
    i, j = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
    for row in range(b):
        seg = segments[row]
        allowed = (j <= i) & valid[row][None, :] & ((seg[None, :] == 0) | (seg[None, :] == seg[:, None]))
        allowed |= i == j
        for h in range(hq):
            scores = q[row, :, h] @ k[row, :, h // g].T * scale
            scores = np.where(allowed, scores, -np.inf)
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            out[row, :, h] = (p / p.sum(axis=1, keepdims=True)) @ v[row, :, h // g]
    return out.reshape(b, s, hq * hd)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    length=st.integers(3, 40),
    prefix=st.integers(1, 12),
    segment_lengths=st.lists(st.integers(1, 9), min_size=0, max_size=4),
    padding=st.integers(0, 5),
)
def test_segments_see_the_prefix_and_themselves(seed, length, prefix, segment_lengths, padding):
    rng = np.random.default_rng(seed)
    seg = np.concatenate(
        [np.zeros(prefix, np.int32)] + [np.full(n, i + 1, np.int32) for i, n in enumerate(segment_lengths)]
    )
    seg = np.pad(seg, (0, padding))[:length]
    seg = np.pad(seg, (0, length - len(seg)))
    valid = np.ones(length, bool)
    valid[length - min(padding, length - 1):] = False  # trailing padding keys
    b, hq, hkv, hd = 2, 4, 2, 8
    q, k, v = (rng.standard_normal((b, length, h, hd)).astype(np.float32) for h in (hq, hkv, hkv))
    segments, valid = np.stack([seg, np.zeros_like(seg)]), np.stack([valid, valid])  # row 1: no packing
    got = np.asarray(causal_attention(q, k, v, valid, scale=hd**-0.5, segment_ids=segments, block_q=8, block_k=8))
    want = _reference(q, k, v, valid, segments, hd**-0.5)
    err = np.abs(got - want).max()
    assert err < 2e-5, err
    plain = np.asarray(causal_attention(q[1:], k[1:], v[1:], valid[1:], scale=hd**-0.5, block_q=8, block_k=8))
    np.testing.assert_allclose(plain, got[1:], atol=2e-6)


def test_a_segment_ignores_the_others():
    """Changing segment 1's keys and values leaves segment 2's outputs bit-identical."""
    rng = np.random.default_rng(0)
    seg = np.array([[0] * 5 + [1] * 4 + [2] * 4])
    q, k, v = (rng.standard_normal((1, 13, 2, 4)).astype(np.float32) for _ in range(3))
    valid = np.ones((1, 13), bool)
    out = np.asarray(causal_attention(q, k, v, valid, scale=0.5, segment_ids=seg))
    k2, v2 = k.copy(), v.copy()
    k2[:, 5:9], v2[:, 5:9] = 10.0, -10.0
    out2 = np.asarray(causal_attention(q, k2, v2, valid, scale=0.5, segment_ids=seg))
    np.testing.assert_array_equal(out[:, 9:], out2[:, 9:])
    assert np.abs(out[:, 5:9] - out2[:, 5:9]).max() > 1.0


def test_prefill_refuses_segments_with_a_focus_plan():
    """Packed continuations are a dense-prefill feature: with Focus, SEC and SIC would mix
    the segments' rows, so the combination is refused by name."""
    import jax
    import jax.numpy as jnp

    from focus_jax import FocusConfig, VisualGeometry
    from focus_jax.models.focus_hooks import FocusPlan
    from focus_jax.models.qwen2 import modeling as qwen2

    cfg = qwen2.Qwen2Config(
        vocab_size=32, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=16
    )
    params = qwen2.init_params(cfg, jax.random.key(0))
    x, valid = jnp.zeros((1, 12, 32)), jnp.ones((1, 12), bool)
    plan = FocusPlan(FocusConfig(), VisualGeometry(2, 2, 2), num_layers=2, query_rows=4)
    with pytest.raises(ValueError, match="segment_ids .* dense prefill only"):
        qwen2.prefill(
            params,
            cfg,
            x,
            valid,
            jnp.arange(12)[None],
            plan=plan,
            visual_start=jnp.array([0]),
            segment_ids=jnp.zeros((1, 12), int),
        )
