"""Public API behaviour: validation errors, dtypes, hand-made cases, helpers, traces."""

import jax.numpy as jnp
import numpy as np
import pytest

from focus_jax import FocusConfig, FocusTrace, GemmTrace, VisualGeometry, paper_config
from focus_jax.concentration import (
    NO_CANDIDATE,
    block_similarity,
    gather_tokens,
    scatter_tokens,
    select_tokens,
    sequence_keep_indices,
    similarity_concentration,
    token_importance,
    vector_concentration,
    window_offsets,
)
from focus_jax.errors import InputError

GEOM = VisualGeometry(2, 3, 4)


@pytest.mark.parametrize(
    "field, value",
    [
        ("similarity_threshold", 1.5),
        ("similarity_threshold", -1.01),
        ("similarity_threshold", float("nan")),
        ("vector_size", 0),
        ("block_size", -1),
        ("frame_block_size", 2.5),
        ("gemm_m_size", 0),
        ("sec_alphas", (0.4, 0.0, 0.2, 0.1, 0.1)),
        ("sec_alphas", (0.4, 1.2, 0.2, 0.1, 0.1)),
        ("sec_layers", (3, 3, 9, 18, 26)),
        ("sec_layers", (-1, 6, 9, 18, 26)),
        ("sec_layers", (3, 6)),
    ],
)
def test_focus_config_rejects_invalid_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        FocusConfig(**{field: value})


@pytest.mark.parametrize("frames, height, width", [(0, 2, 2), (1, -2, 2), (1, 2, 1.5)])
def test_geometry_rejects_invalid_dimensions(frames, height, width):
    with pytest.raises(ValueError, match="VisualGeometry"):
        VisualGeometry(frames, height, width)


def test_bad_inputs_raise_clear_errors():
    x = jnp.ones((GEOM.num_tokens, 8))
    with pytest.raises(ValueError, match="needs 24"):
        similarity_concentration(jnp.ones((23, 8)), GEOM)
    with pytest.raises(ValueError, match="floating"):
        similarity_concentration(jnp.ones((24, 8), jnp.int32), GEOM)
    with pytest.raises(ValueError, match=r"\(\.\.\., N, D\)"):
        similarity_concentration(jnp.ones((24,)), GEOM)
    with pytest.raises(ValueError, match="threshold"):
        similarity_concentration(x, GEOM, threshold=-3.0)
    with pytest.raises(ValueError, match="temperature"):
        similarity_concentration(x, GEOM, relaxed=True, temperature=0.0)
    with pytest.raises(TypeError, match="VisualGeometry"):
        similarity_concentration(x, (2, 3, 4))
    match = block_similarity(x, GEOM, FocusConfig(vector_size=4))
    with pytest.raises(ValueError, match="match.similarity"):
        vector_concentration(x, match, GEOM, FocusConfig(vector_size=8))


def test_window_offsets_follow_reference_order_and_clip_to_the_grid():
    assert window_offsets(VisualGeometry(4, 14, 14), 2, 2) == (1, 14, 15, 196, 197, 210, 211)
    assert window_offsets(VisualGeometry(1, 14, 14), 2, 2) == (1, 14, 15)  # one frame: no temporal
    assert window_offsets(VisualGeometry(3, 1, 5), 3, 1) == (1, 2)  # one row: mh = 1
    assert window_offsets(VisualGeometry(2, 2, 2), 1, 2) == (4,)  # temporal only
    assert window_offsets(VisualGeometry(2, 2, 2), 1, 1) == ()  # no candidates at all


def test_hand_made_copies_are_found_with_their_offsets():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((GEOM.num_tokens, 8)).astype(np.float32)
    x[5] = 2.0 * x[4]  # left neighbour, scaled: cosine exactly 1
    x[12 + 6] = x[6]  # same patch, next frame: offset 12
    x[7] = 0.0  # a zero token
    res = block_similarity(jnp.asarray(x), GEOM, FocusConfig(vector_size=8))
    sim, off = np.asarray(res.similarity)[:, 0], np.asarray(res.offset)[:, 0]
    assert off[5] == 1 and sim[5] == pytest.approx(1.0)
    assert off[18] == 12 and sim[18] == pytest.approx(1.0)
    assert sim[7] == NO_CANDIDATE and np.asarray(res.mask_zero)[7, 0]
    assert sim[0] == NO_CANDIDATE  # the first token has no earlier neighbour
    out = similarity_concentration(jnp.asarray(x), GEOM, FocusConfig(similarity_threshold=0.99, vector_size=8))
    merged = np.asarray(out.output)
    np.testing.assert_allclose(merged[4], 1.5 * x[4], rtol=1e-6)  # mean of x4 and 2*x4
    np.testing.assert_allclose(merged[5], merged[4])
    assert np.asarray(out.group_index)[5, 0] == 4


def test_bfloat16_input_keeps_dtype_and_decisions():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 16)).astype(np.float32)
    x32 = jnp.asarray(base[rng.integers(0, 6, GEOM.num_tokens)]).astype(jnp.bfloat16).astype(jnp.float32)
    cfg = FocusConfig(vector_size=8)
    r16 = similarity_concentration(x32.astype(jnp.bfloat16), GEOM, cfg)
    r32 = similarity_concentration(x32, GEOM, cfg)
    assert r16.output.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(r16.mask_similar), np.asarray(r32.mask_similar))
    np.testing.assert_array_equal(np.asarray(r16.group_index), np.asarray(r32.group_index))
    np.testing.assert_allclose(np.asarray(r16.output, np.float32), np.asarray(r32.output), rtol=1e-2, atol=1e-2)


def test_sec_helpers_keep_original_positions():
    seq_len, start, n = 12, 2, 6
    keep = sequence_keep_indices(jnp.asarray([1, 4]), start, n, seq_len)
    np.testing.assert_array_equal(np.asarray(keep), [0, 1, 3, 6, 8, 9, 10, 11])
    positions = jnp.arange(seq_len)
    hidden = jnp.arange(seq_len * 3, dtype=jnp.float32).reshape(seq_len, 3)
    np.testing.assert_array_equal(np.asarray(gather_tokens(positions, keep, axis=0)), np.asarray(keep))
    kept_visual = gather_tokens(hidden[start : start + n], jnp.asarray([1, 4]))
    grid = scatter_tokens(kept_visual, jnp.asarray([1, 4]), n)
    expected = np.zeros((n, 3), np.float32)
    expected[[1, 4]] = np.asarray(hidden)[[start + 1, start + 4]]
    np.testing.assert_array_equal(np.asarray(grid), expected)


def test_sec_importance_and_selection_on_a_hand_made_attention_map():
    heads, seq = 2, 8  # 1 prefix, 4 visual, 3 query
    probs = np.zeros((heads, seq, seq), np.float32)
    probs[0, 5, 1 + 2] = 0.9  # query row 5 attends visual token 2
    probs[1, 7, 1 + 0] = 0.5
    probs[1, 6, 1 + 3] = 0.7
    probs[0, 2, 1 + 1] = 0.99  # a visual row: not a query row, ignored
    imp = token_importance(jnp.asarray(probs), 1, 4, 3)
    np.testing.assert_allclose(np.asarray(imp), [0.5, 0.0, 0.9, 0.7])
    np.testing.assert_array_equal(np.asarray(select_tokens(imp, 2)), [2, 3])
    with pytest.raises(ValueError, match="k must be"):
        select_tokens(imp, 5)
    with pytest.raises(ValueError, match="num_query"):
        token_importance(jnp.asarray(probs), 1, 4, 4)
    with pytest.raises(ValueError, match="visual span"):
        token_importance(jnp.asarray(probs), 5, 4, 1)


def test_paper_configs_and_sec_keep_counts():
    vid = paper_config("llava_vid", "videomme")
    assert vid.sec_layers == (3, 6, 9, 18, 26) and vid.sec_alphas == (0.4, 0.3, 0.2, 0.15, 0.1)
    assert paper_config("llava_onevision", "mvbench").sec_alphas == (0.4, 0.3, 0.25, 0.2, 0.1)
    assert paper_config("minicpm_v", "mlvu").similarity_threshold == 0.95
    with pytest.raises(ValueError, match="unknown model"):
        paper_config("gpt5")
    # spec check numbers: T = 11648 -> 4659 -> 3494 -> 2329 -> 1747 -> 1164
    kept, counts = 11648, []
    for layer in range(28):
        kept = vid.kept_visual_tokens(11648, layer, kept)
        counts.append(kept)
    assert sorted(set(counts), reverse=True) == [11648, 4659, 3494, 2329, 1747, 1164]


def test_trace_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(2)
    gemm = lambda v: GemmTrace(
        rng.random((24, v)) < 0.2, rng.random((24, v)) < 0.4, rng.integers(0, 24 * v, (24, v)).astype(np.int32)
    )
    trace = FocusTrace(
        geometry=GEOM,
        config=FocusConfig(),
        model={
            "num_layers": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 4,
            "num_kv_heads": 2,
            "head_dim": 16,
        },
        text_tokens=9,
        kept_tokens=np.array([[24, 24], [24, 9]], np.int32),
        gemms={
            (layer, name): gemm(2 if name != "down_proj" else 4)
            for layer in range(2)
            for name in ("q_proj", "down_proj")
        },
    )
    loaded = FocusTrace.load(trace.save(tmp_path / "t.npz"))
    assert loaded.geometry == trace.geometry and loaded.config == trace.config and loaded.model == trace.model
    np.testing.assert_array_equal(loaded.kept_tokens, trace.kept_tokens)
    assert loaded.sparsity() == trace.sparsity()
    for key, g in trace.gemms.items():
        np.testing.assert_array_equal(loaded.gemms[key].group_index, g.group_index)
    with pytest.raises(InputError, match="not found"):
        FocusTrace.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a focus-jax trace"):
        FocusTrace.load(tmp_path / "bad.npz")


def test_work_fraction_by_hand():
    # one layer, 4 tokens (2 pruned before the MLP), D = 4, I = 8, vector 4: V = 1 (2 for down)
    geom = VisualGeometry(1, 2, 2)
    z = np.zeros((4, 1), bool)
    sim = np.array([[False], [True], [False], [False]])  # 1 of 4 similar: f = 0.75
    gi = np.arange(4, dtype=np.int32)[:, None]
    zero_mlp = np.array([[False], [False], [True], [True]])  # 2 pruned: f = 0.5
    gemms = {
        (0, "q_proj"): GemmTrace(z, sim, gi),
        (0, "query"): GemmTrace(z, sim, gi),
        (0, "o_proj"): GemmTrace(z, z, gi),
        (0, "gate_proj"): GemmTrace(zero_mlp, z, gi),
        (0, "down_proj"): GemmTrace(
            np.repeat(zero_mlp, 2, 1), np.zeros((4, 2), bool), np.arange(8, dtype=np.int32).reshape(4, 2)
        ),
    }
    model = {
        "num_layers": 1,
        "hidden_size": 4,
        "intermediate_size": 8,
        "num_heads": 2,
        "num_kv_heads": 1,
        "head_dim": 2,
    }
    trace = FocusTrace(geom, FocusConfig(vector_size=4), model, 3, np.array([[4, 2]]), gemms)
    work = trace.gemm_work()
    assert work[(0, "q_proj")] == (0.75 * 4 * 4 * 8, 4 * 4 * 8)  # (heads + 2 kv) * hd = 8 outputs
    assert work[(0, "query")] == (0.75 * 4 * 4 * 4, 64) and work[(0, "attn_v")] == (64, 64)
    assert work[(0, "o_proj")] == (64, 64)
    assert work[(0, "gate_proj")] == (0.5 * 4 * 4 * 16, 256) and work[(0, "down_proj")] == (0.5 * 4 * 8 * 4, 128)
    focus = 96 + 48 + 64 + 64 + 128 + 64
    assert trace.work_fraction() == pytest.approx(focus / (128 + 64 + 64 + 64 + 256 + 128))
