"""focus_jax's Qwen2.5-VL against transformers' (PyTorch) on a tiny random checkpoint.

Every comparison prints its max abs error (float32) and asserts <= 1e-4: merged visual
tokens (images of two sizes and a video, windows with padding), final logits of image and
video prompts at batch 1 and 2 (left padded, different image sizes), 20 greedy tokens
(M-RoPE positions continued in decode), Focus that merges and prunes nothing (dense
logits), Focus's SIC on the merged grid, ``generate``'s Focus trace (the forward one; padded
prompts: valid, priced by ``costmodel``), a ``save_pretrained`` round trip, bfloat16.
Preprocessing equals ``Qwen2VLImageProcessorPil`` on real photographs and real frames.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import qwen2_5_vl_tiny as tiny
import torch

from focus_jax import FocusConfig, VisualGeometry, paper_config
from focus_jax.concentration import similarity_concentration
from focus_jax.errors import InputError
from focus_jax.models.layers import rms_norm
from focus_jax.models.qwen2_5_vl import Qwen2_5_VL, modeling
from focus_jax.models.qwen2_5_vl.preprocessing import (
    ProcessorConfig,
    chat_prompt,
    expand_placeholders,
    preprocess_images,
    preprocess_video,
)
from focus_jax.trace import GEMM_NAMES

TOL = 1e-4
IMAGE_GRIDS = [(1, 8, 12), (1, 6, 6)]  # patches: merged 4 x 6 (windows 2 x 3) and 3 x 3 (padded windows)
VIDEO_GRID = (4, 6, 8)  # 4 temporal patches (8 frames), merged 3 x 4


def _err(name, ours, ref, mask=None) -> float:
    diff = np.abs(np.asarray(ours, np.float32) - np.asarray(ref, np.float32))
    err = float(diff[mask > 0].max() if mask is not None else diff.max())
    print(f"{name}: max abs error {err:.2e}")
    return err


def _hf_kwargs(ids, mask, pixels, grid, token):
    kw = {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "mm_token_type_ids": torch.from_numpy(tiny.token_types(ids)),
    }
    if token == tiny.IMAGE_TOKEN:
        return kw | {"pixel_values": torch.from_numpy(pixels), "image_grid_thw": torch.from_numpy(grid)}
    return kw | {"pixel_values_videos": torch.from_numpy(pixels), "video_grid_thw": torch.from_numpy(grid)}


def _ours_kwargs(pixels, grid, token):
    if token == tiny.IMAGE_TOKEN:
        return {"pixel_values": pixels, "image_grid_thw": grid}
    return {"pixel_values_videos": pixels, "video_grid_thw": grid}


def test_visual_tokens_match_transformers():
    hf, _ = tiny.checkpoint()
    model = tiny.jax_model()
    for name, grids, token in (
        ("images of two sizes", IMAGE_GRIDS, tiny.IMAGE_TOKEN),
        ("video", [VIDEO_GRID], tiny.VIDEO_TOKEN),
    ):
        _, _, pixels, grid = tiny.prompts(grids, token, seed=3)
        with torch.no_grad():
            out = hf.model.visual(torch.from_numpy(pixels), grid_thw=torch.from_numpy(grid))
        hidden = model.visual_features(pixels, grid, merge=False)
        assert hidden.shape == out.last_hidden_state.shape == (len(pixels), 32)
        assert _err(f"vision features (last block, window order), {name}", hidden, out.last_hidden_state.numpy()) <= TOL
        ours = model.visual_features(pixels, grid)
        assert ours.shape == out.pooler_output.shape == (sum(t * h * w for t, h, w in grids) // 4, 64)
        assert _err(f"merged visual tokens, {name}", ours, out.pooler_output.numpy()) <= TOL


@pytest.mark.parametrize(
    "grids,token",
    [
        ([IMAGE_GRIDS[0]], tiny.IMAGE_TOKEN),
        (IMAGE_GRIDS, tiny.IMAGE_TOKEN),
        ([VIDEO_GRID], tiny.VIDEO_TOKEN),
        ([VIDEO_GRID] * 2, tiny.VIDEO_TOKEN),
    ],
    ids=["image-batch1", "image-batch2", "video-batch1", "video-batch2"],
)
def test_logits_match_transformers(grids, token):
    hf, _ = tiny.checkpoint()
    ids, mask, pixels, grid = tiny.prompts(grids, token, seed=len(grids))
    with torch.no_grad():
        ref = hf(**_hf_kwargs(ids, mask, pixels, grid, token)).logits.numpy()
    ours = tiny.jax_model().forward(ids, mask, **_ours_kwargs(pixels, grid, token))
    assert ours.shape == ref.shape
    assert _err(f"logits, {len(grids)} prompt(s)", ours, ref, mask) <= TOL


def test_video_timing_moves_the_temporal_positions():
    """``second_per_grid_ts`` scales M-RoPE's time axis exactly as in transformers."""
    hf, _ = tiny.checkpoint()
    ids, mask, pixels, grid = tiny.prompts([VIDEO_GRID], tiny.VIDEO_TOKEN, seed=5)
    seconds = np.array([1.5], np.float32)
    with torch.no_grad():
        ref = hf(
            **_hf_kwargs(ids, mask, pixels, grid, tiny.VIDEO_TOKEN), second_per_grid_ts=torch.from_numpy(seconds)
        ).logits.numpy()
    model = tiny.jax_model()
    ours = model.forward(ids, mask, pixel_values_videos=pixels, video_grid_thw=grid, second_per_grid_ts=seconds)
    assert _err("logits with second_per_grid_ts 1.5", ours, ref) <= TOL
    positions, _ = modeling.rope_index(model.config, ids, mask, video_grid_thw=grid, second_per_grid_ts=seconds)
    start = int(np.argmax(ids[0] == tiny.VIDEO_TOKEN))
    assert positions[0, start + 12, 0] - positions[0, start, 0] == 3  # next temporal patch: int(1 * 2 tokens/s * 1.5 s)


def test_greedy_generation_matches_transformers():
    hf, _ = tiny.checkpoint()
    ids, mask, pixels, grid = tiny.prompts(IMAGE_GRIDS, tiny.IMAGE_TOKEN, seed=7)
    with torch.no_grad():
        ref = hf.generate(
            **_hf_kwargs(ids, mask, pixels, grid, tiny.IMAGE_TOKEN),
            max_new_tokens=20,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=tiny.PAD,
        )[:, ids.shape[1] :].numpy()
    ours = tiny.jax_model().generate(
        ids, mask, pixel_values=pixels, image_grid_thw=grid, max_new_tokens=20, eos_token_id=[]
    )
    print("transformers:", ref.tolist(), "\nfocus_jax:   ", ours.tolist())
    assert len(set(ref.ravel().tolist())) > 10  # not vacuous: varied tokens
    np.testing.assert_array_equal(ours, ref)


@pytest.fixture(scope="module")
def video_batch():
    """Two prompts with the same video grid whose temporal patches repeat (so SIC merges)."""
    ids, mask, pixels, grid = tiny.prompts([VIDEO_GRID] * 2, tiny.VIDEO_TOKEN, seed=11)
    per_t = VIDEO_GRID[1] * VIDEO_GRID[2]
    video = pixels.reshape(2, VIDEO_GRID[0], per_t, -1)
    video[:, 1] = video[:, 0]  # temporal patches 0 and 1 identical: a static scene
    return ids, mask, video.reshape(pixels.shape), grid


def _first_sic(model, ids, pixels, grid, token, geom, focus):
    """The first SIC of the prefill computed independently: ``similarity_concentration`` on
    ``geom`` of the visual span of layer 0's normed input (the ``q_proj`` GEMM input)."""
    cfg, params = model.config, model.params
    x = modeling.embed(
        params, cfg, jnp.asarray(ids), **_ours_kwargs(jnp.asarray(pixels), tuple(map(tuple, grid)), token)
    )
    start = np.argmax(ids == token, axis=1)
    vis = jnp.stack([x[i, s : s + geom.num_tokens] for i, s in enumerate(start)])
    layer0 = jax.tree.map(lambda a: a[0], params["language"]["layers"])
    return similarity_concentration(rms_norm(vis, layer0["attn_norm"], cfg.text.rms_norm_eps), geom, focus)


def test_focus_that_keeps_everything_gives_dense_logits(video_batch):
    ids, mask, pixels, grid = video_batch
    model = tiny.jax_model()
    dense = model.forward(ids, mask, pixel_values_videos=pixels, video_grid_thw=grid)
    keep_all = FocusConfig(
        similarity_threshold=1.0, sec_layers=(1, 2), sec_alphas=(1.0, 1.0)
    )  # cosines clip at 1: no merging
    focused = model.with_focus(keep_all).forward(ids, mask, pixel_values_videos=pixels, video_grid_thw=grid)
    assert focused.shape == dense.shape
    assert _err("Focus (threshold 1, keep 100 %) vs dense logits", focused, dense, mask) <= TOL
    # the KV cache after SEC (every token kept) decodes as the dense one
    kw = {"pixel_values_videos": pixels, "video_grid_thw": grid, "max_new_tokens": 8, "eos_token_id": []}
    np.testing.assert_array_equal(model.with_focus(keep_all).generate(ids, mask, **kw), model.generate(ids, mask, **kw))


def test_focus_sic_on_the_merged_grid_and_sec(video_batch):
    ids, mask, pixels, grid = video_batch
    model = tiny.jax_model()
    focus = FocusConfig(similarity_threshold=0.9, vector_size=16, sec_layers=(2,), sec_alphas=(0.5,))
    logits, trace = model.with_focus(focus).forward(
        ids, mask, pixel_values_videos=pixels, video_grid_thw=grid, return_trace=True
    )
    geom = VisualGeometry(4, 3, 4)
    assert trace.plan.geometry == geom
    # SIC of layer 0's q_proj input = similarity_concentration on the (4, 3, 4) merged grid
    ref = _first_sic(model, ids, pixels, grid, tiny.VIDEO_TOKEN, geom, focus)
    _mask_zero, mask_similar, group = trace.gemms[(0, "q_proj")]
    np.testing.assert_array_equal(mask_similar, np.asarray(ref.mask_similar))
    np.testing.assert_array_equal(group, np.asarray(ref.group_index))
    merged = float(mask_similar[:, geom.frame_stride : 2 * geom.frame_stride].mean())
    print(
        f"SIC at layer 0 q_proj: {mask_similar.mean():.3f} of vectors similar "
        f"({merged:.3f} in the repeated temporal patch)"
    )
    assert merged > 0.9
    kept = trace.kept_tokens()
    assert kept[2].tolist() == [48, 24] and kept[3].tolist() == [24, 24]
    assert logits.shape[1] == ids.shape[1] - 24  # SEC: the rows of the kept tokens
    ids, mask, pixels, grid = tiny.prompts(IMAGE_GRIDS, tiny.IMAGE_TOKEN)
    with pytest.raises(InputError, match="same grid"):  # one geometry per batch
        model.with_focus(focus).forward(ids, mask, pixel_values=pixels, image_grid_thw=grid)


def test_generate_returns_the_forward_trace_from_its_one_prefill(video_batch):
    """``generate(..., return_trace=True)``: the trace ``forward`` gives, from the one compiled
    prefill that fills the KV cache; bit-identical without the padding generate adds
    (``seq_bucket=1``: padding changes the shapes and so the rounding of near ties)."""
    import chex

    from focus_jax.models.qwen2_5_vl.model import _forward_jit, _prefill_jit

    ids, mask, pixels, grid = video_batch
    model = tiny.jax_model().with_focus(
        FocusConfig(similarity_threshold=0.9, vector_size=16, sec_layers=(2,), sec_alphas=(0.5,))
    )
    kw = {"pixel_values_videos": pixels, "video_grid_thw": grid, "max_new_tokens": 4, "eos_token_id": []}
    compiles = _prefill_jit._cache_size(), _forward_jit._cache_size()
    tokens, trace = model.generate(ids, mask, **kw, seq_bucket=1, return_trace=True)
    assert (_prefill_jit._cache_size() - compiles[0], _forward_jit._cache_size() - compiles[1]) == (1, 0)
    np.testing.assert_array_equal(tokens, model.generate(ids, mask, **kw, seq_bucket=1))
    _, ref = model.forward(ids, mask, pixel_values_videos=pixels, video_grid_thw=grid, return_trace=True)
    assert trace.plan == ref.plan and trace.model == ref.model and sorted(trace.gemms) == sorted(ref.gemms)
    chex.assert_trees_all_equal(trace.gemms, ref.gemms)
    np.testing.assert_array_equal(trace.rows, ref.rows)
    np.testing.assert_array_equal(trace.text_tokens, ref.text_tokens)
    assert any(s.any() for _, s, _ in trace.gemms.values())
    with pytest.raises(InputError, match="return_trace"):
        tiny.jax_model().generate(ids, mask, **kw, return_trace=True)


@pytest.mark.parametrize(
    "grids,token,geom",
    [
        ([VIDEO_GRID] * 2, tiny.VIDEO_TOKEN, VisualGeometry(4, 3, 4)),
        ([IMAGE_GRIDS[0]], tiny.IMAGE_TOKEN, VisualGeometry(1, 4, 6)),
    ],
    ids=["video-batch2", "image"],
)
def test_generate_trace_of_padded_prompts_feeds_the_cost_model(grids, token, geom):
    """With the left padding ``generate`` adds, the trace is of the caller's prompts: the
    merged grid's geometry (frames = temporal groups, H and W after the 2 x 2 merge), the
    first SIC equal to ``similarity_concentration`` on it, rows indexing the caller's
    ``input_ids``; each prompt's ``FocusTrace`` validates and prices in ``costmodel``."""
    import costmodel as cm
    from focus_jax.inference import modeled_cost

    ids, mask, pixels, grid = tiny.prompts(grids, token, seed=5)
    focus = FocusConfig(similarity_threshold=0.8, vector_size=16, sec_layers=(1,), sec_alphas=(0.5,))
    model = tiny.jax_model().with_focus(focus)
    kwargs = _ours_kwargs(pixels, grid, token)
    tokens, trace = model.generate(
        ids, mask, **kwargs, max_new_tokens=3, eos_token_id=[], seq_bucket=64, return_trace=True
    )
    assert tokens.shape == (len(grids), 3) and trace.batch_size == len(grids)
    assert trace.plan.geometry == geom
    ref = _first_sic(model, ids, pixels, grid, token, geom, focus)
    mask_zero, mask_similar, group = trace.gemms[(0, "q_proj")]
    np.testing.assert_array_equal(mask_similar, np.asarray(ref.mask_similar))
    np.testing.assert_array_equal(mask_zero, np.asarray(ref.mask_zero))
    np.testing.assert_array_equal(group, np.asarray(ref.group_index))
    _, fwd = model.forward(ids, mask, **kwargs, return_trace=True)
    np.testing.assert_array_equal(trace.rows, fwd.rows)  # SEC keeps the same tokens; rows index ids
    n = geom.num_tokens
    assert trace.rows.shape == (len(grids), ids.shape[1] - n // 2)
    for i in range(len(grids)):
        ft = trace.to_focus_trace(i)
        ft.validate()
        assert ft.text_tokens == int(mask[i].sum()) - n
        workload = cm.Workload.from_trace(ft, decode_tokens=3)
        assert (workload.visual_tokens, workload.frames, workload.text_tokens) == (n, geom.frames, ft.text_tokens)
        similar = sum(int(trace.gemms[key][1][i].sum()) for key in trace.gemms)
        assert float(workload.focus.similar_vectors.sum()) == similar > 0
        kept = np.asarray(workload.focus.kept_tokens)
        # SEC after layer 1's attention keeps half: for its MLP (gate_proj) and every later GEMM
        assert kept[:, GEMM_NAMES.index("q_proj")].tolist() == [n, n, n // 2, n // 2]
        assert kept[:, GEMM_NAMES.index("gate_proj")].tolist() == [n, n // 2, n // 2, n // 2]
        cost = modeled_cost(workload)  # as focus-jax run prices a trace
        print(f"{geom}: prompt {i} modeled Focus speedup {cost.speedup:.3f}, energy ratio {cost.energy_ratio:.3f}")
        assert np.isfinite(cost.speedup) and cost.speedup > 0


def test_paper_defaults_for_qwen2_5_vl():
    cfg = paper_config("qwen2_5_vl")
    assert (cfg.sec_layers, cfg.sec_alphas, cfg.similarity_threshold) == ((10, 15, 20), (0.3, 0.2, 0.1), 0.9)


def test_save_pretrained_loads_in_transformers_and_bfloat16(tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    import focus_jax

    model = tiny.jax_model()
    model.save_pretrained(tmp_path)
    reloaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path).eval()
    ids, mask, pixels, grid = tiny.prompts([IMAGE_GRIDS[0]], tiny.IMAGE_TOKEN, seed=1)
    with torch.no_grad():
        ref = reloaded(**_hf_kwargs(ids, mask, pixels, grid, tiny.IMAGE_TOKEN)).logits.numpy()
    ours = model.forward(ids, mask, pixel_values=pixels, image_grid_thw=grid)
    assert _err("logits of transformers reloading our checkpoint", ours, ref) <= TOL
    again = focus_jax.from_pretrained(tmp_path)  # dispatches on config.json's model_type
    assert isinstance(again, Qwen2_5_VL)
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(model.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    model16 = focus_jax.from_pretrained(tmp_path, dtype=jnp.bfloat16)
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree.leaves(model16.params))
    ours16 = model16.forward(ids, mask, pixel_values=pixels, image_grid_thw=grid)
    assert ours16.dtype == jnp.bfloat16
    err = _err("bfloat16 vs float32 logits", ours16, ours)
    assert err < 0.05 * float(np.abs(np.asarray(ours)).max())


def test_bad_inputs_are_named():
    model = tiny.jax_model()
    ids, mask, pixels, _grid = tiny.prompts([IMAGE_GRIDS[0]], tiny.IMAGE_TOKEN)
    with pytest.raises(InputError, match="placeholder tokens"):
        model.forward(ids, mask, pixel_values=pixels, image_grid_thw=np.array([IMAGE_GRIDS[1]]))
    with pytest.raises(InputError, match="given together"):
        model.forward(ids, mask, pixel_values=pixels)


def test_generate_refuses_bad_arguments_before_compiling():
    """``generate``'s shared checks (``generation.Sampling``, the context length) name the problem."""
    model = tiny.jax_model()
    ids, mask, pixels, grid = tiny.prompts([IMAGE_GRIDS[0]], tiny.IMAGE_TOKEN)
    kw = {"pixel_values": pixels, "image_grid_thw": grid}
    context = model.config.text.max_position_embeddings
    with pytest.raises(InputError, match=f"more than the model's context length of {context:,}"):
        model.generate(ids, mask, **kw, max_new_tokens=context - int(mask.sum()) + 1)
    with pytest.raises(InputError, match="max_new_tokens must be >= 1"):
        model.generate(ids, mask, **kw, max_new_tokens=0)
    with pytest.raises(InputError, match="top_p in"):
        model.generate(ids, mask, **kw, do_sample=True, top_p=0.0)


def test_focus_batches_refuse_mixed_visual_items_in_one_line():
    """Focus runs one static geometry per batch: prompts with different grids, or not one
    visual item each, are refused with a one-line InputError naming the problem."""
    model = tiny.jax_model().with_focus(FocusConfig(sec_layers=(1,), sec_alphas=(0.5,)))
    ids, mask, pixels, grid = tiny.prompts(IMAGE_GRIDS, tiny.IMAGE_TOKEN)
    with pytest.raises(InputError, match=r"same grid \(t, h, w\) for every prompt.*\(1, 8, 12\), \(1, 6, 6\)") as e:
        model.forward(ids, mask, pixel_values=pixels, image_grid_thw=grid)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="one image or video per prompt: got 2 visual items for 1 prompts") as e:
        two = [tiny.BOS] + sum(([tiny.VISION_START] + [tiny.IMAGE_TOKEN] * (h * w // 4) + [tiny.VISION_END]
                                for _, h, w in IMAGE_GRIDS), []) + [5, 6, 7]  # fmt: skip
        model.generate(np.array([two]), pixel_values=pixels, image_grid_thw=grid, max_new_tokens=2)
    assert "\n" not in str(e.value)
    # the same prompts run dense, and each alone with Focus
    assert model.with_focus(None).forward(ids, mask, pixel_values=pixels, image_grid_thw=grid).shape[0] == 2


def test_image_preprocessing_equals_transformers_on_photographs():
    import skimage.data
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    images = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    for max_pixels in (28 * 28 * 256, 28 * 28 * 1280):  # downscaled, and (rocket, 427 x 640) kept near its size
        ref = Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": max_pixels})(
            images, return_tensors="np"
        )
        pixels, grid = preprocess_images(images, ProcessorConfig(max_pixels=max_pixels))
        np.testing.assert_array_equal(grid, ref["image_grid_thw"])
        assert _err(f"image pixel rows, max_pixels {max_pixels}", pixels, ref["pixel_values"]) == 0.0


def test_video_preprocessing_on_real_frames():
    """The video layout, built from transformers' image processor run on each frame: patch
    row ``(g, block, 2x2)`` holds frames ``2g`` and ``2g + 1`` in its temporal slots; an odd
    frame count repeats the last frame."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from focus_jax.video import decode_video, demo_video_path

    frames = decode_video(demo_video_path(), 5)
    cfg = ProcessorConfig()
    pixels, grid = preprocess_video(frames, cfg)
    per_frame = Qwen2VLImageProcessorPil(
        size={"shortest_edge": cfg.video_min_pixels, "longest_edge": cfg.video_max_pixels}
    )(list(frames) + [frames[-1]], return_tensors="np")
    _, h, w = per_frame["image_grid_thw"][0]
    rows = per_frame["pixel_values"].reshape(6, h * w, 3, 2, 14, 14)[:, :, :, 0]  # one temporal slot per frame
    ref = np.stack([rows[0::2], rows[1::2]], axis=3).reshape(3 * h * w, -1)  # (group, token, C, T, p, p)
    np.testing.assert_array_equal(grid, [[3, h, w]])
    assert _err(f"video pixel rows, {frames.shape[1]}x{frames.shape[2]} -> {h * 14}x{w * 14}", pixels, ref) == 0.0


def test_prompt_layout():
    assert (
        expand_placeholders([5, tiny.IMAGE_TOKEN, 6, tiny.IMAGE_TOKEN], tiny.IMAGE_TOKEN, [2, 3])
        == [5] + [tiny.IMAGE_TOKEN] * 2 + [6] + [tiny.IMAGE_TOKEN] * 3
    )
    with pytest.raises(InputError, match="placeholder"):
        expand_placeholders([5, 6], tiny.IMAGE_TOKEN, [2])
    assert "<|vision_start|><|video_pad|><|vision_end|>why?" in chat_prompt("why?", "video")


@pytest.mark.parametrize("name, published", [("qwen2.5-vl-3b", 3.75e9), ("qwen2.5-vl-7b", 8.29e9)])
def test_full_size_configs(name, published):
    """Shipped configs: parameter counts (model cards), eval_shape forwards, costmodel shapes."""
    import json as _json
    from importlib import resources

    import costmodel
    from focus_jax.models.qwen2_5_vl import sizes

    cfg = sizes.load_config(name)
    counts = sizes.parameter_count(cfg)
    v, t = cfg.vision, cfg.text
    d, f, m = v.hidden_size, v.intermediate_size, v.hidden_size * 4
    vision = (
        v.patch_dim * d
        + v.depth * (2 * d + 3 * d * d + 3 * d + d * d + d + 3 * d * f + 2 * f + d)
        + d
        + m * m
        + m
        + m * t.hidden_size
        + t.hidden_size
    )
    h, kv, i = t.hidden_size, t.kv_size, t.intermediate_size
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h
    language = t.vocab_size * h + t.num_layers * layer + h + (0 if t.tie_word_embeddings else h * t.vocab_size)
    print(name, counts)
    assert (counts["vision"], counts["language"]) == (vision, language)
    assert abs(counts["total"] - published) / published < 0.005
    dense = sizes.check_shapes(cfg, frames=4)
    focused = sizes.check_shapes(cfg, frames=4, focus=paper_config("qwen2_5_vl"))
    assert dense.shape == focused.shape == (1, 1, t.vocab_size) and dense.dtype == jnp.bfloat16
    config = _json.loads(
        resources.files("focus_jax.models.qwen2_5_vl.configs").joinpath(sizes.KNOWN_CONFIGS[name]).read_text()
    )
    assert costmodel.ModelShape.load(name) == costmodel.ModelShape.from_config(config, name=name)


def test_model_info_command_knows_qwen2_5_vl():
    import json as _json

    from typer.testing import CliRunner

    from focus_jax.cli import app

    result = CliRunner().invoke(app, ["model-info", "qwen2.5-vl-3b", "--frames", "8", "--json"])
    assert result.exit_code == 0, result.output
    info = _json.loads(result.output)
    assert info["visual_tokens"] == 4 * 16 * 16  # 8 frames = 4 temporal patches of 448 px: 16 x 16 merged tokens
    assert info["kv_cache_gib"]["focus"] < 0.5 * info["kv_cache_gib"]["dense"]


def test_checkpoint_errors_name_the_tensor(tmp_path):
    from focus_jax.models.checkpoint import CheckpointError
    from focus_jax.models.safetensors_io import read_checkpoint, write_checkpoint

    _, src = tiny.checkpoint()
    tensors = read_checkpoint(src)
    config = (src / "config.json").read_text()
    cases = {
        "missing": (
            {k: v for k, v in tensors.items() if k != "visual.blocks.1.attn.qkv.bias"},
            "missing tensor 'visual.blocks.1.attn.qkv.bias'",
        ),
        "unknown": (tensors | {"visual.extra.weight": np.zeros(2, np.float32)}, "does not use: 'visual.extra.weight'"),
        "shape": (
            tensors | {"visual.merger.mlp.2.weight": np.zeros((64, 64), np.float32)},
            r"'visual.merger.mlp.2.weight' has shape \(64, 64\)",
        ),
    }
    for name, (weights, message) in cases.items():
        directory = tmp_path / name
        directory.mkdir()
        (directory / "config.json").write_text(config)
        write_checkpoint(directory, weights)
        with pytest.raises(CheckpointError, match=message):
            Qwen2_5_VL.from_pretrained(directory)
