"""Every golden case of the reference implementation, reproduced exactly.

Masks and group indices must be identical, outputs within 1e-5 relative, sparsity equal
to the reference's; SEC cases: importance and kept positions identical.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import golden_cases, load_golden

from focus_jax import FocusConfig, VisualGeometry
from focus_jax.concentration import (
    select_tokens,
    sequence_keep_indices,
    similarity_concentration,
    token_importance,
)


def _as_tokens(hidden: np.ndarray, is_attention: bool) -> np.ndarray:
    """Reference layout -> (S, D); attention (heads, S, hd) becomes (S, heads*hd)."""
    h = hidden[0]
    if is_attention:
        return h.transpose(1, 0, 2).reshape(h.shape[1], -1)
    return h


@pytest.mark.parametrize("case", golden_cases("sic"), ids=lambda c: c["name"])
def test_sic_matches_reference(case):
    data = load_golden(case["name"])
    start, n = case["image_token_start"], case["image_token_length"]
    x = _as_tokens(data["hidden_states"], case["is_attention"])[start : start + n]
    expected = _as_tokens(data["output"], case["is_attention"])[start : start + n]
    geom = VisualGeometry(case["frames"], case["patch_height"], case["patch_width"])
    cfg = FocusConfig(
        similarity_threshold=case["similarity_threshold"],
        vector_size=case["vector_size"],
        block_size=case["block_size"],
        frame_block_size=case["frame_block_size"],
        gemm_m_size=case["gemm_m_size"],
    )
    res = similarity_concentration(jnp.asarray(x), geom, cfg)

    np.testing.assert_array_equal(np.asarray(res.mask_zero), data["mask_zero"][0])
    np.testing.assert_array_equal(np.asarray(res.mask_similar), data["mask_similar"][0])
    np.testing.assert_array_equal(np.asarray(res.group_index), data["group_idx"][0])
    out = np.asarray(res.output)
    rel = np.max(np.abs(out - expected) / np.maximum(np.abs(expected), 1e-6))
    print(f"{case['name']}: max relative output error {rel:.3e}, sparsity {float(res.sparsity):.6f}")
    assert rel <= 1e-5
    assert float(res.sparsity) == pytest.approx(case["sparsity"], rel=1e-6)


@pytest.mark.parametrize("case", golden_cases("semantic"), ids=lambda c: c["name"])
def test_sec_matches_reference(case):
    data = load_golden(case["name"])
    start, n, q = case["image_token_start"], case["image_token_length"], case["query_token_length"]
    imp = token_importance(jnp.asarray(data["attn_weights"][0]), start, n, q)
    np.testing.assert_array_equal(np.asarray(imp), data["token_importance"])
    k = FocusConfig(sec_layers=(0,), sec_alphas=(case["alpha"],)).kept_visual_tokens(n, 0, n)
    keep = sequence_keep_indices(select_tokens(imp, k), start, n, case["seq_len"])
    np.testing.assert_array_equal(np.asarray(keep), data["retained_ids"])
