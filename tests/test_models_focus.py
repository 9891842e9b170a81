"""Focus inside the LLaVA-OneVision decoder: the hooks against the reference's golden
vectors, SEC against transformers' own layers with the tokens pruned by hand, the
kept-token SIC against the spec's scatter/SIC/gather definition, traces, and the KV
cache holding kept tokens only.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import golden_cases, load_golden

from focus_jax import FocusConfig, VisualGeometry, paper_config
from focus_jax.concentration import scatter_tokens, similarity_concentration
from focus_jax.models import focus_hooks
from focus_jax.models.focus_hooks import FocusPlan, VisualSpan
from focus_jax.models.qwen2.modeling import _segments
from focus_jax.trace import GEMM_NAMES, FocusTrace

import llava_tiny as tiny


def _as_tokens(hidden: np.ndarray, is_attention: bool) -> np.ndarray:
    h = hidden[0]
    return h.transpose(1, 0, 2).reshape(h.shape[1], -1) if is_attention else h


@pytest.mark.parametrize("case", golden_cases("sic"), ids=lambda c: c["name"])
def test_sic_hook_matches_reference_golden(case):
    """The decoder's SIC hook on a whole GEMM input (text + visual tokens of a prompt)."""
    data = load_golden(case["name"])
    x = _as_tokens(data["hidden_states"], case["is_attention"])
    expected = _as_tokens(data["output"], case["is_attention"])
    start, n = case["image_token_start"], case["image_token_length"]
    geom = VisualGeometry(case["frames"], case["patch_height"], case["patch_width"])
    cfg = FocusConfig(
        similarity_threshold=case["similarity_threshold"],
        vector_size=case["vector_size"],
        block_size=case["block_size"],
        frame_block_size=case["frame_block_size"],
        gemm_m_size=case["gemm_m_size"],
    )
    plan = FocusPlan(cfg, geom, num_layers=1, query_rows=1)
    name = "query" if case["is_attention"] else "q_proj"
    out, rec = focus_hooks.concentrate(plan, VisualSpan(jnp.array([start], jnp.int32)), name, jnp.asarray(x[None]))
    out = np.asarray(out[0])
    np.testing.assert_array_equal(np.asarray(rec.mask_zero[0]), data["mask_zero"][0])
    np.testing.assert_array_equal(np.asarray(rec.mask_similar[0]), data["mask_similar"][0])
    np.testing.assert_array_equal(np.asarray(rec.group_index[0]), data["group_idx"][0])
    np.testing.assert_array_equal(out[:start], x[:start])  # text untouched
    np.testing.assert_array_equal(out[start + n :], x[start + n :])
    vis, ref = out[start : start + n], expected[start : start + n]
    assert np.max(np.abs(vis - ref) / np.maximum(np.abs(ref), 1e-6)) <= 1e-5


def _video_like(rng, geom: VisualGeometry, dim: int, noise: float) -> np.ndarray:
    """Tokens = a pattern shared by each 2x3 patch block (in every frame) + noise."""
    f, h, w = np.meshgrid(np.arange(geom.frames), np.arange(geom.height), np.arange(geom.width), indexing="ij")
    block = (h // 2) * geom.width + w // 3
    patterns = rng.standard_normal((geom.height * geom.width, dim)).astype(np.float32)
    return patterns[block.reshape(-1)] + noise * rng.standard_normal((geom.num_tokens, dim)).astype(np.float32)


@pytest.mark.parametrize("kept, gemm_m_size", [(1.0, None), (0.5, None), (0.3, 7)])
def test_kept_sic_equals_scatter_sic_gather(kept, gemm_m_size):
    """SIC after pruning computed on kept tokens == the spec's scatter to the grid, SIC, gather."""
    rng = np.random.default_rng(int(kept * 10) + (gemm_m_size or 0))
    geom = VisualGeometry(4, 5, 6)
    cfg = FocusConfig(similarity_threshold=0.8, vector_size=16, gemm_m_size=gemm_m_size)
    x = _video_like(rng, geom, 72, 0.3)
    keep = np.sort(rng.choice(geom.num_tokens, max(1, int(kept * geom.num_tokens)), replace=False)).astype(np.int32)
    kept_sic = jax.jit(focus_hooks.kept_sic, static_argnames=("geom", "cfg"))
    out, mask, zero, group = kept_sic(jnp.asarray(x[keep]), jnp.asarray(keep), geom=geom, cfg=cfg)
    ref = similarity_concentration(scatter_tokens(jnp.asarray(x[keep]), jnp.asarray(keep), geom.num_tokens), geom, cfg)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref.output)[keep])
    np.testing.assert_array_equal(np.asarray(mask), np.asarray(ref.mask_similar)[keep])
    np.testing.assert_array_equal(np.asarray(zero), np.asarray(ref.mask_zero)[keep])
    np.testing.assert_array_equal(np.asarray(group), np.asarray(ref.group_index)[keep])
    assert np.asarray(mask).any()  # the check exercises merging


def test_sec_importance_matches_numpy_softmax():
    rng = np.random.default_rng(0)
    b, s, hq, hkv, hd = 2, 30, 4, 2, 8
    q, k = (
        rng.standard_normal((b, s, hq, hd)).astype(np.float32),
        rng.standard_normal((b, s, hkv, hd)).astype(np.float32),
    )
    valid = np.ones((b, s), bool)
    valid[1, :3] = False  # left padding of prompt 1
    start = np.array([4, 7])
    plan = FocusPlan(FocusConfig(), VisualGeometry(2, 3, 3), num_layers=1, query_rows=8)
    got = np.asarray(
        focus_hooks.sec_importance(
            plan,
            VisualSpan(jnp.asarray(start, jnp.int32)),
            jnp.asarray(q),
            jnp.asarray(k),
            jnp.asarray(valid),
            hd**-0.5,
        )
    )
    for i in range(b):
        kk = np.repeat(k[i], hq // hkv, axis=1)
        scores = np.einsum("qhd,khd->hqk", q[i], kk) * hd**-0.5
        allowed = np.tril(np.ones((s, s), bool)) & valid[i][None]
        scores = np.where(allowed, scores, -1e30)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        end = start[i] + 18
        ref = probs[:, end:, start[i] : end].max(axis=(0, 1))
        np.testing.assert_allclose(got[i], ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", golden_cases("semantic"), ids=lambda c: c["name"])
def test_semantic_prune_matches_reference_golden(case):
    data = load_golden(case["name"])
    start, n, s = case["image_token_start"], case["image_token_length"], case["seq_len"]
    k = FocusConfig(sec_layers=(0,), sec_alphas=(case["alpha"],)).kept_visual_tokens(n, 0, n)
    plan = FocusPlan(FocusConfig(), VisualGeometry(1, 1, n), num_layers=1, query_rows=case["query_token_length"])
    rows, span = focus_hooks.semantic_prune(
        plan, VisualSpan(jnp.array([start], jnp.int32)), jnp.asarray(data["token_importance"][None]), k, s
    )
    np.testing.assert_array_equal(np.asarray(rows[0]), data["retained_ids"])
    np.testing.assert_array_equal(np.asarray(span.keep[0]), data["retained_ids"][start : start + k] - start)


def test_plan_schedule_skips_layers_beyond_the_model():
    plan = FocusPlan(paper_config("llava_onevision"), VisualGeometry(8, 14, 14), num_layers=24, query_rows=16)
    assert plan.sec_steps == ((2, 627), (5, 470), (8, 313), (16, 235))  # layer 25 of the paper's list is beyond 24
    kept = plan.kept_tokens()
    assert kept[2].tolist() == [1568, 627] and kept[23].tolist() == [235, 235]
    assert _segments(24, plan) == [(0, 2, 627), (3, 5, 470), (6, 8, 313), (9, 16, 235), (17, 24, None)]


def test_focus_off_gives_dense_logits():
    """Threshold 1.0 (cosines are clipped to 1, so nothing is strictly above) and alphas 1.0."""
    model = tiny.jax_model()
    ids, mask, _, videos = tiny.video_prompts(3, seed=11)
    dense = np.asarray(model.forward(ids, pixel_values_videos=videos, attention_mask=mask))
    off = model.with_focus(FocusConfig(similarity_threshold=1.0, sec_layers=(2,), sec_alphas=(1.0,)))
    logits, trace = off.forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)
    err = np.abs(np.asarray(logits) - dense)[mask > 0].max()
    print(f"Focus off vs dense: max abs error {err:.2e}")  # float32 rounding: layers are grouped differently
    assert err <= 1e-4
    assert all(s == 0.0 for s in trace.sparsity(0).values())


def _hf_sec_reference(ids, videos, sec: dict) -> np.ndarray:
    """Logits of transformers' own layers with SEC applied by hand (no SIC): after the
    attention block of each layer in ``sec`` keep the ``sec[layer]`` visual tokens the
    query text attends to most (max over heads and query rows of the eager attention
    probabilities), with their original positions for RoPE."""
    from transformers import LlavaOnevisionForConditionalGeneration

    hf = LlavaOnevisionForConditionalGeneration.from_pretrained(
        tiny.checkpoint()[1], attn_implementation="eager"
    ).eval()
    lm = hf.model.language_model
    n = tiny.FRAMES * 16
    start = int(np.argmax(ids[0] == tiny.VIDEO_TOKEN))
    with torch.no_grad():
        h = hf.model(
            input_ids=torch.from_numpy(ids), pixel_values_videos=torch.from_numpy(videos), output_hidden_states=True
        ).hidden_states[0]
        pos = torch.arange(h.shape[1])[None]
        for i, layer in enumerate(lm.layers):
            s = h.shape[1]
            causal = torch.full((1, 1, s, s), torch.finfo(torch.float32).min).triu(1)
            cos_sin = lm.rotary_emb(h, pos)
            attn, probs = layer.self_attn(layer.input_layernorm(h), position_embeddings=cos_sin, attention_mask=causal)
            h = h + attn
            if i in sec:
                importance = probs[0, :, start + n :, start : start + n].amax(dim=(0, 1))
                local = torch.sort(torch.topk(importance, sec[i]).indices).values
                rows = torch.cat([torch.arange(start), start + local, torch.arange(start + n, s)])
                h, pos, n = h[:, rows], pos[:, rows], sec[i]
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return hf.lm_head(lm.norm(h)).numpy()


def test_sec_matches_transformers_layers_pruned_by_hand():
    model = tiny.jax_model()
    ids, mask, _, videos = tiny.video_prompts(1, seed=13)
    n = tiny.FRAMES * 16
    cfg = FocusConfig(sic=False, sec_layers=(1, 2), sec_alphas=(0.5, 0.25))
    ref = _hf_sec_reference(ids, videos, {1: n // 2, 2: n // 4})
    ours, trace = model.with_focus(cfg).forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)
    assert ours.shape == ref.shape == (1, ids.shape[1] - n + n // 4, 256)
    err = np.abs(np.asarray(ours) - ref).max()
    print(f"SEC (layers 1, 2) vs transformers pruned by hand: max abs error {err:.2e}")
    assert err <= 1e-4
    assert trace.kept_tokens().tolist() == [[64, 64], [64, 32], [32, 16], [16, 16]]


def test_focus_kv_cache_holds_kept_tokens_and_decode_runs():
    from focus_jax.models.llava_onevision.model import _prefill_jit

    model = tiny.jax_model().with_focus(FocusConfig(sic=False, sec_layers=(1, 2), sec_alphas=(0.5, 0.25)))
    ids, mask, _, videos = tiny.video_prompts(2, seed=19)
    arrays, _, plan, _ = model._inputs(ids, mask, None, None, videos, None)
    _, caches, *_ = _prefill_jit(model.params, **arrays, cfg=model.config, image_sizes=None, plan=plan, cache_extra=32)
    s = ids.shape[1]  # layers 0-1 see every token; layer 2 the 32 kept after layer 1; layer 3 the 16 after layer 2
    assert [c.k.shape[:3] for c in caches] == [(2, 2, s + 32), (1, 2, s - 32 + 32), (1, 2, s - 48 + 32)]
    out = model.generate(
        ids, pixel_values_videos=videos, attention_mask=mask, max_new_tokens=3, eos_token_id=[], seq_bucket=1
    )
    assert out.shape == (2, 3)


def test_trace_export(tmp_path):
    model = tiny.jax_model()
    ids, mask, _, videos = tiny.video_prompts(2, seed=17)
    cfg = FocusConfig(similarity_threshold=0.6, vector_size=16, sec_layers=(1,), sec_alphas=(0.5,))
    focus_model = model.with_focus(cfg)
    logits, trace = focus_model.forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)
    assert logits.shape == (2, ids.shape[1] - 32, 256)

    path = trace.save(tmp_path / "trace.npz", example=1)
    loaded = FocusTrace.load(path)
    assert loaded.geometry == VisualGeometry(tiny.FRAMES, 4, 4) and loaded.config == cfg
    assert loaded.text_tokens == int(mask[1].sum()) - 64
    assert sorted(loaded.gemms) == sorted((layer, g) for layer in range(4) for g in GEMM_NAMES)
    np.testing.assert_array_equal(loaded.kept_tokens, [[64, 64], [64, 32], [32, 32], [32, 32]])
    for (layer, name), g in loaded.gemms.items():
        v = 64 // 16 if name != "down_proj" else 128 // 16
        assert g.mask_zero.shape == (64, v)
        flat = np.arange(64 * v).reshape(64, v)
        assert (g.group_index <= flat).all() and (g.group_index % v == flat % v).all()  # earlier vector, same slot
        assert ((g.group_index != flat) == g.mask_similar).all()
        after_sec = layer > 1 or (layer == 1 and name in ("gate_proj", "down_proj"))
        assert g.mask_zero.all(axis=1).sum() == (32 if after_sec else 0)  # pruned tokens are zero vectors
    assert any(g.similar_vectors for g in loaded.gemms.values())
    import costmodel  # the trace feeds the cost model as written

    stats = costmodel.FocusStats.from_trace(loaded)
    assert stats.kept_tokens[:, GEMM_NAMES.index("gate_proj")].tolist() == [64, 32, 32, 32]
    assert stats.similar_vectors.sum() == sum(g.similar_vectors for g in loaded.gemms.values())



def test_baselines_refuse_image_prompts_and_trace_without_focus():
    """Focus runs on image prompts (tests/test_models_focus_images.py); the baselines, as
    their authors apply them, only on videos."""
    from focus_jax.baselines.config import default_method_config

    ids, mask, pos, pixel_values, sizes = tiny.image_prompts([(50, 60)])
    fastv_model = tiny.jax_model().with_method(default_method_config("fastv"))
    with pytest.raises(ValueError, match="video prompts"):
        fastv_model.forward(ids, pixel_values=pixel_values, image_sizes=sizes)
    vids = tiny.video_prompts(1)
    with pytest.raises(ValueError, match="return_trace"):
        tiny.jax_model().forward(vids[0], pixel_values_videos=vids[3], return_trace=True)
    with pytest.raises(ValueError, match="contiguous video tokens"):
        tiny.jax_model().forward(vids[0][:, :-20], pixel_values_videos=vids[3])


def test_generate_returns_the_forward_trace_from_its_one_prefill():
    """``generate(..., return_trace=True)``: the trace ``forward`` gives on the same prompts,
    recorded by the one compiled prefill that fills the KV cache. Bit-identical when
    generate adds no padding (a power-of-two batch, ``seq_bucket=1``): padding changes the
    shapes and so the float rounding, which can flip near-tie candidate choices."""
    import chex

    from focus_jax.models.llava_onevision.model import _forward_jit, _prefill_jit

    model = tiny.jax_model().with_focus(
        FocusConfig(similarity_threshold=0.55, vector_size=16, sec_layers=(1,), sec_alphas=(0.5,))
    )
    ids, mask, _, videos = tiny.video_prompts(2, seed=23)  # two prompts of different lengths, left-padded
    kwargs = dict(pixel_values_videos=videos, attention_mask=mask, max_new_tokens=2, eos_token_id=[], seq_bucket=1)
    compiles = _prefill_jit._cache_size(), _forward_jit._cache_size()
    tokens, trace = model.generate(ids, return_trace=True, **kwargs)
    assert (_prefill_jit._cache_size() - compiles[0], _forward_jit._cache_size() - compiles[1]) == (
        1,
        0,
    )  # one prefill compile
    np.testing.assert_array_equal(tokens, model.generate(ids, **kwargs))
    _, ref = model.forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)
    assert trace.plan == ref.plan and trace.model == ref.model and sorted(trace.gemms) == sorted(ref.gemms)
    chex.assert_trees_all_equal(trace.gemms, ref.gemms)
    np.testing.assert_array_equal(trace.rows, ref.rows)
    np.testing.assert_array_equal(trace.text_tokens, ref.text_tokens)
    assert any(z.any() for z, _, _ in trace.gemms.values()) and any(s.any() for _, s, _ in trace.gemms.values())
    with pytest.raises(ValueError, match="return_trace"):
        tiny.jax_model().generate(ids, return_trace=True, **kwargs)
