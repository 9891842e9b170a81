"""The baselines inside the tiny LLaVA-OneVision: token removal (done here by masking
slots) equals transformers' own layers run on the physically shortened sequence; CMC and
FrameFusion traces."""

import json

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

import llava_tiny as tiny

N = tiny.FRAMES * 16


@pytest.fixture(scope="module")
def prompt():
    ids, mask, _, videos = tiny.video_prompts(1, seed=23)
    return ids, mask, videos


def _hf_removed(ids, videos, keep_before: dict) -> np.ndarray:
    """Last-row logits of transformers' own layers when, before layer ``i``, the visual tokens
    are cut to ``keep_before[i](h, probs_of_previous_layer, start, n)`` (ascending local
    indices), keeping original RoPE positions (as Adaptiv and FastV do)."""
    from transformers import LlavaOnevisionForConditionalGeneration

    hf = LlavaOnevisionForConditionalGeneration.from_pretrained(
        tiny.checkpoint()[1], attn_implementation="eager"
    ).eval()
    lm = hf.model.language_model
    start, n = int(np.argmax(ids[0] == tiny.VIDEO_TOKEN)), N
    with torch.no_grad():
        h = hf.model(
            input_ids=torch.from_numpy(ids), pixel_values_videos=torch.from_numpy(videos), output_hidden_states=True
        ).hidden_states[0]
        pos, probs = torch.arange(h.shape[1])[None], None
        for i, layer in enumerate(lm.layers):
            if i in keep_before:
                local = torch.as_tensor(keep_before[i](h, probs, start, n))
                rows = torch.cat([torch.arange(start), start + local, torch.arange(start + n, h.shape[1])])
                h, pos, n = h[:, rows], pos[:, rows], len(local)
            s = h.shape[1]
            causal = torch.full((1, 1, s, s), torch.finfo(torch.float32).min).triu(1)
            attn, probs = layer.self_attn(
                layer.input_layernorm(h), position_embeddings=lm.rotary_emb(h, pos), attention_mask=causal
            )
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
    logits, traces = (
        tiny.jax_model()
        .with_method(cfg)
        .forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)
    )
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
    logits, traces = (
        tiny.jax_model()
        .with_method(cfg)
        .forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)
    )
    assert np.abs(np.asarray(logits)[:, -1] - ref).max() <= 1e-4
    kept = traces[0].kept_tokens
    assert (kept == kept[0, 0]).all() and kept[0, 0] < N
    assert traces[0].token_sparsity() == pytest.approx(1 - kept[0, 0] / N)


def test_cmc_and_framefusion_traces_in_the_model(prompt):
    """(Decode after a baseline prefill, and generate's own trace, run in
    test_baselines_compare.py's eval test.)"""
    ids, mask, videos = prompt
    model = tiny.jax_model()
    (ff,) = model.with_method(FrameFusionConfig(similarity_lower_bound=0.0)).forward(
        ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True
    )[1]
    assert 0.0 < ff.work_fraction() < 1.0  # merging at layer 0 shrinks every later block
    assert ff.kept_tokens[-1, 1] < N and (np.diff(ff.kept_tokens.reshape(-1)) <= 0).all()
    cmc = model.with_method(CMCConfig(threshold=2.0, query_threshold=2.0, score_threshold=0.01))
    (t,) = cmc.forward(ids, pixel_values_videos=videos, attention_mask=mask, return_trace=True)[1]
    assert t.layer_sparsity.shape == (4, 3) and ((t.layer_sparsity >= 0) & (t.layer_sparsity <= 0.875)).all()
    assert t.layer_sparsity.max() > 0 and 0.0 < t.work_fraction() < 1.0


def test_configs_round_trip_and_reject_bad_values():
    for cfg in (CMCConfig(), AdaptivConfig(0.3), FrameFusionConfig(cost=0.5, num_layers=28), FastVConfig(k=3, r=0.75)):
        assert method_from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert paper_method_config("cmc", "llava_onevision", "mlvu") == CMCConfig(
        threshold=0.5, query_threshold=0.6, score_threshold=5e-5
    )
    assert paper_method_config("adaptiv", "minicpm_v", "mvbench").threshold == 0.1
    assert paper_method_config("adaptiv", "unknown").threshold == 0.6
    for bad in (
        {"method": "cmc", "interval": 4, "i_frame_position": 4},
        {"method": "fastv", "r": 1.0},
        {"method": "adaptiv", "thr": 1},
        {"method": "nope"},
        {"method": "framefusion", "cost": 0.0},
        [1],
    ):
        with pytest.raises(InputError):
            method_from_dict(bad)
