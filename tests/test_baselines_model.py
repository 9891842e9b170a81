"""The baselines inside the tiny LLaVA-OneVision: neutral settings give the dense logits;
token removal (done here by masking slots) equals transformers' own layers run on the
physically shortened sequence; decode and traces work."""

import json

import llava_tiny as tiny
import numpy as np
import pytest
import torch

from focus_jax.baselines import (
    AdaptivConfig,
    CMCConfig,
    FastVConfig,
    FrameFusionConfig,
    method_from_dict,
    paper_method_config,
)
from focus_jax.baselines.adaptiv import adaptiv_merge
from focus_jax.config import VisualGeometry
from focus_jax.errors import InputError

N = tiny.FRAMES * 16


@pytest.fixture(scope="module")
def prompt():
    ids, mask, _, videos = tiny.video_prompts(1, seed=23)
    return ids, mask, videos


@pytest.fixture(scope="module")
def dense(prompt):
    ids, mask, videos = prompt
    return np.asarray(tiny.jax_model().forward(ids, pixel_values_videos=videos, attention_mask=mask))


@pytest.mark.parametrize(
    "cfg",
    [
        FrameFusionConfig(cost=1.0),  # the full budget: sparsity bound 0, nothing merged or pruned
        FastVConfig(k=2, r=0.0),  # keep all
    ],
    ids=lambda c: c.method,
)
def test_neutral_settings_give_dense_logits(prompt, dense, cfg):
    ids, mask, videos = prompt
    logits, traces = tiny.jax_model().with_method(cfg).forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)
    err = np.abs(np.asarray(logits) - dense)[mask > 0].max()
    assert err <= 1e-4, err
    assert traces[0].kept_tokens.tolist() == [[N, N]] * 4
    assert traces[0].work_fraction() == pytest.approx(1.0)


def _hf_removed(ids, videos, keep_before: dict) -> np.ndarray:
    """Last-row logits of transformers' own layers when, before layer ``i``, the visual tokens
    are cut to ``keep_before[i](h, probs_of_previous_layer, start, n)`` (ascending local
    indices), keeping original RoPE positions (as Adaptiv and FastV do)."""
    from transformers import LlavaOnevisionForConditionalGeneration

    hf = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny.checkpoint()[1], attn_implementation="eager").eval()
    lm = hf.model.language_model
    start, n = int(np.argmax(ids[0] == tiny.VIDEO_TOKEN)), N
    with torch.no_grad():
        h = hf.model(input_ids=torch.from_numpy(ids), pixel_values_videos=torch.from_numpy(videos), output_hidden_states=True).hidden_states[0]
        pos, probs = torch.arange(h.shape[1])[None], None
        for i, layer in enumerate(lm.layers):
            if i in keep_before:
                local = torch.as_tensor(keep_before[i](h, probs, start, n))
                rows = torch.cat([torch.arange(start), start + local, torch.arange(start + n, h.shape[1])])
                h, pos, n = h[:, rows], pos[:, rows], len(local)
            s = h.shape[1]
            causal = torch.full((1, 1, s, s), torch.finfo(torch.float32).min).triu(1)
            attn, probs = layer.self_attn(layer.input_layernorm(h), position_embeddings=lm.rotary_emb(h, pos), attention_mask=causal)
            h = h + attn
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return hf.lm_head(lm.norm(h[:, -1])).numpy()


def test_fastv_equals_transformers_with_tokens_removed(prompt):
    ids, mask, videos = prompt
    cfg = FastVConfig(k=2, r=0.5)

    def fastv(h, probs, start, n):  # FastV's own rule, on transformers' layer-1 probabilities
        att = probs[0].mean(dim=0)[-1, start : start + n]
        return torch.sort(torch.topk(att, round(n * (1 - cfg.r))).indices).values

    ref = _hf_removed(ids, videos, {cfg.k: fastv})
    logits, traces = tiny.jax_model().with_method(cfg).forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)
    assert np.abs(np.asarray(logits)[:, -1] - ref).max() <= 1e-4
    assert traces[0].kept_tokens.tolist() == [[N, N], [N, N], [N // 2, N // 2], [N // 2, N // 2]]


def test_adaptiv_equals_transformers_with_tokens_removed(prompt):
    ids, mask, videos = prompt
    cfg = AdaptivConfig(threshold=0.2)
    geom = VisualGeometry(tiny.FRAMES, 4, 4)

    def adaptiv(h, probs, start, n):
        merged = np.asarray(adaptiv_merge(h[0, start : start + n].numpy(), geom, cfg.threshold).merge_mask)
        assert 0 < merged.sum() < n
        return np.flatnonzero(~merged)

    ref = _hf_removed(ids, videos, {0: adaptiv})
    logits, traces = tiny.jax_model().with_method(cfg).forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)
    assert np.abs(np.asarray(logits)[:, -1] - ref).max() <= 1e-4
    kept = traces[0].kept_tokens
    assert (kept == kept[0, 0]).all() and kept[0, 0] < N
    assert traces[0].token_sparsity() == pytest.approx(1 - kept[0, 0] / N)


def test_decode_and_traces():
    ids, mask, _, videos = tiny.video_prompts(2, seed=29)
    model = tiny.jax_model()
    run = model.with_method(FrameFusionConfig(similarity_lower_bound=0.0))
    logits, traces = run.forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)
    out = run.generate(ids, pixel_values_videos=videos, attention_mask=mask, max_new_tokens=2, eos_token_id=[], seq_bucket=1)
    np.testing.assert_array_equal(out[:, 0], np.asarray(logits)[:, -1].argmax(-1))
    for t in traces:  # merging at layer 0 shrinks every later block
        assert 0.0 < t.work_fraction() < 1.0
        assert t.kept_tokens[-1, 1] < N and (np.diff(t.kept_tokens.reshape(-1)) <= 0).all()
    cmc = model.with_method(CMCConfig(threshold=2.0, query_threshold=2.0, score_threshold=0.01))
    _, traces = cmc.forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)
    for t in traces:
        assert t.layer_sparsity.shape == (4, 3) and ((t.layer_sparsity >= 0) & (t.layer_sparsity <= 0.875)).all()
        assert t.layer_sparsity.max() > 0 and 0.0 < t.work_fraction() < 1.0


def test_configs_round_trip_and_reject_bad_values():
    for cfg in (CMCConfig(), AdaptivConfig(0.3), FrameFusionConfig(cost=0.5, num_layers=28), FastVConfig(k=3, r=0.75)):
        assert method_from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert paper_method_config("cmc", "llava_onevision", "mlvu") == CMCConfig(threshold=0.5, query_threshold=0.6, score_threshold=5e-5)
    assert paper_method_config("adaptiv", "minicpm_v", "mvbench").threshold == 0.1
    assert paper_method_config("adaptiv", "unknown").threshold == 0.6
    for bad in ({"method": "cmc", "interval": 4, "i_frame_position": 4}, {"method": "fastv", "r": 1.0}, {"method": "adaptiv", "thr": 1},
                {"method": "nope"}, {"method": "framefusion", "cost": 0.0}, [1]):  # fmt: skip
        with pytest.raises(InputError):
            method_from_dict(bad)
