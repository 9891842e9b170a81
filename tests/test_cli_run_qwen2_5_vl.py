"""``focus-jax run`` on a Qwen2.5-VL checkpoint: the tiny random model of ``qwen2_5_vl_tiny``
with a word-level tokenizer (the demo task's words, Qwen's special tokens at the config's
ids), a Qwen-style chat template, 7-px processor settings and a ``focus_config.json``.

The JSON report is checked against the Python API run independently on the same clip
(``preprocess_video``, ``chat_prompt``, ``Qwen2_5_VL.generate(..., return_trace=True)``):
answers, the merged grid's visual tokens, SEC's kept tokens, SIC's sparsity, the saved
trace (it validates, geometry of the merged grid) and the 7B projection's visual tokens.
The video's M-RoPE time step is transformers' processor rule, ``second_per_grid_ts =
temporal_patch_size / sampled fps``, computed here from the clip as written.
"""

import json
import shutil

import numpy as np
import pytest
import qwen2_5_vl_tiny as tiny
from typer.testing import CliRunner

from focus_jax import FocusConfig, VisualGeometry
from focus_jax.cli import app
from focus_jax.trace import GEMM_NAMES, FocusTrace

QUESTION = "what color is the moving shape?"
NEW_TOKENS = 4
#: The clip: the demo task's 8 frames written at 8 fps; ``run`` samples 8 frames (its default).
CLIP_FPS, CLIP_FRAMES, SAMPLED = 8, 8, 8
#: ``Qwen2_5_VLProcessor``: ``temporal_patch_size / VideoMetadata.sampled_fps``, the sampled
#: frames' rate ``SAMPLED / CLIP_FRAMES * CLIP_FPS``: 0.25 s per temporal patch.
SECONDS = tiny.TEMPORAL / (SAMPLED / CLIP_FRAMES * CLIP_FPS)
FOCUS = FocusConfig(similarity_threshold=0.8, vector_size=16, sec_layers=(1,), sec_alphas=(0.5,))
SPECIALS = {"<|vision_start|>": tiny.VISION_START, "<|vision_end|>": tiny.VISION_END,
            "<|image_pad|>": tiny.IMAGE_TOKEN, "<|video_pad|>": tiny.VIDEO_TOKEN}  # fmt: skip
#: Qwen2.5-VL's chat template for string or media-list contents, its default system turn first.
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer():
    """Word-level: the demo vocabulary (ids 0-47: pad, <|im_start|>, <|im_end|> = the tiny
    config's pad, bos, eos), unused fillers, Qwen's vision tokens at ids 252-255."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from focus_jax.data.tokenizer import IM_END, PAD_TOKEN, SPECIAL_TOKENS, UNK_TOKEN, VOCABULARY

    vocab = {word: i for i, word in enumerate(VOCABULARY)}
    vocab |= {f"<unused{i}>": i for i in range(len(VOCABULARY), tiny.VISION_START)} | SPECIALS
    assert sorted(vocab.values()) == list(range(256))
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"\n|\w+|[^\s\w]"), behavior="removed", invert=True)
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (*SPECIAL_TOKENS, *SPECIALS)])
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=IM_END, pad_token=PAD_TOKEN, unk_token=UNK_TOKEN,
                                   chat_template=CHAT_TEMPLATE, clean_up_tokenization_spaces=False)  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("qwen_run") / "model"
    shutil.copytree(tiny.checkpoint()[1], directory)
    _tokenizer().save_pretrained(str(directory))
    processor = {"patch_size": tiny.PATCH, "temporal_patch_size": tiny.TEMPORAL, "merge_size": tiny.MERGE}
    (directory / "preprocessor_config.json").write_text(json.dumps(processor))
    # 64 x 64 frames resized to 56 x 56 (at most 56 * 56 pixels): 8 x 8 patches, 4 x 4 merged tokens
    video = {"size": {"shortest_edge": 14 * 14 * 4, "longest_edge": 56 * 56}}
    (directory / "video_preprocessor_config.json").write_text(json.dumps(video))
    (directory / "focus_config.json").write_text(json.dumps(FOCUS.to_dict()))
    return directory


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from focus_jax.data import generate_sample, write_video
    from focus_jax.demo_model import demo_task_config

    sample = generate_sample(demo_task_config(), 0, 4)
    assert sample.question == QUESTION and len(sample.frames) == CLIP_FRAMES
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", sample.frames, fps=CLIP_FPS)


def _reference(model_dir, clip):
    """``(frames, ids, dense tokens, Focus tokens, ModelTrace)`` from the Python API."""
    from transformers import AutoTokenizer

    from focus_jax.models.qwen2_5_vl import Qwen2_5_VL
    from focus_jax.models.qwen2_5_vl.preprocessing import (
        ProcessorConfig,
        chat_prompt,
        expand_placeholders,
        preprocess_video,
    )
    from focus_jax.video import decode_visual

    frames, _ = decode_visual(clip, SAMPLED)
    pixels, grid = preprocess_video(frames, ProcessorConfig.from_pretrained(model_dir))
    assert grid.tolist() == [[4, 8, 8]]  # 8 frames in temporal pairs, 56 / 7 patches a side
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    ids = tokenizer(chat_prompt(QUESTION, "video"), add_special_tokens=False)["input_ids"]
    ids = np.array([expand_placeholders(ids, tiny.VIDEO_TOKEN, [64])])
    model = Qwen2_5_VL.from_pretrained(model_dir)
    kw = {"pixel_values_videos": pixels, "video_grid_thw": grid, "second_per_grid_ts": [SECONDS],
          "max_new_tokens": NEW_TOKENS}  # fmt: skip
    dense = model.generate(ids, **kw)
    focus, trace = model.with_focus(FOCUS).generate(ids, **kw, return_trace=True)
    decode = lambda t: tokenizer.decode(t, skip_special_tokens=True).strip()  # noqa: E731
    return frames, ids, decode(dense[0]), decode(focus[0]), trace


def test_run_json_report_equals_the_python_api(model_dir, clip, tmp_path, monkeypatch):
    from focus_jax import inference
    from focus_jax.models.qwen2_5_vl import modeling, params, sizes
    from focus_jax.models.qwen2_5_vl.preprocessing import ProcessorConfig, smart_resize

    seen, generate = [], inference.generate_with_trace

    def spy(model, ids, pixels, **kwargs):
        seen.append((ids, kwargs))
        return generate(model, ids, pixels, **kwargs)

    monkeypatch.setattr(inference, "generate_with_trace", spy)
    saved, picture = tmp_path / "trace.npz", tmp_path / "fates.png"
    args = ["run", clip, "-p", QUESTION, "--model", model_dir, "--max-new-tokens", NEW_TOKENS, "--json"]
    result = CliRunner().invoke(app, [*map(str, args), "--save-trace", str(saved), "--viz", str(picture)])
    assert result.exit_code == 0, result.output
    assert len(seen) == 4  # dense and Focus, each compiled then timed
    for _, kwargs in seen:
        assert kwargs["second_per_grid_ts"].dtype == np.float32
        np.testing.assert_allclose(kwargs["second_per_grid_ts"], [SECONDS], rtol=1e-6)
    # 2 tokens per second * 0.25 s: temporal patches 0, 0, 1, 1 (1 s per patch: 0, 2, 4, 6)
    ids, grid, cfg = seen[0][0], seen[0][1]["video_grid_thw"], params.read_config(model_dir)
    start = int(np.argmax(ids[0] == tiny.VIDEO_TOKEN))
    for seconds, times in ((SECONDS, [0, 0, 1, 1]), (1.0, [0, 2, 4, 6])):
        positions, _ = modeling.rope_index(cfg, ids, np.ones_like(ids), video_grid_thw=grid,
                                           second_per_grid_ts=[seconds])  # fmt: skip
        assert (positions[0, start : start + 64 : 16, 0] - positions[0, start, 0]).tolist() == times
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # one panel per temporal patch
    report = json.loads(result.stdout)
    frames, ids, dense, focus, trace = _reference(model_dir, clip)
    print(f"answers: dense {dense!r}, Focus {focus!r}; work fraction {report['work_fraction']:.3f}")
    assert (report["answer_dense"], report["answer"]) == (dense, focus)
    assert (report["frames"], report["visual_tokens"], report["prompt_tokens"]) == (8, 64, ids.shape[1])
    assert report["focus_config"] == FOCUS.to_dict()
    kept = trace.kept_tokens()
    assert report["kept_tokens_per_layer"] == kept[:, 0].tolist() == [64, 64, 32, 32]
    assert report["kept_tokens_per_sec_layer"] == [{"layer": 1, "kept_tokens": 32}]
    ours = trace.to_focus_trace(0)
    expected = {g: float(np.mean([ours.sparsity()[(layer, g)] for layer in range(4)])) for g in GEMM_NAMES}
    assert report["sparsity_per_gemm"] == pytest.approx(expected, abs=1e-12)
    assert report["sparsity_per_gemm"]["q_proj"] > 0  # SIC merged something
    loaded = FocusTrace.load(saved)
    loaded.validate()
    assert loaded.geometry == VisualGeometry(4, 4, 4)  # temporal groups, merged rows and columns
    for key, g in ours.gemms.items():
        np.testing.assert_array_equal(loaded.gemms[key].mask_similar, g.mask_similar)
        np.testing.assert_array_equal(loaded.gemms[key].group_index, g.group_index)
    m, p = report["modeled"], report["projection"]
    assert (m["visual_tokens"], m["text_tokens"]) == (64, ids.shape[1] - 64)
    shipped, full = ProcessorConfig(), sizes.load_config("qwen2.5-vl-7b")
    side = smart_resize(64, 64, shipped.factor, shipped.video_min_pixels, shipped.video_max_pixels)
    assert p["model"] == "qwen2.5-vl-7b"
    assert p["visual_tokens"] == full.token_count(sizes.video_grid(full, 8, *side))


def test_run_without_focus_and_refusals(model_dir, clip):
    args = ["run", str(clip), "-p", QUESTION, "--model", str(model_dir), "--max-new-tokens", str(NEW_TOKENS)]
    result = CliRunner().invoke(app, [*args, "--no-focus", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["focus_config"] is None and report["projection"] is None
    assert (report["visual_tokens"], report["modeled"]["visual_tokens"]) == (64, 64)
    result = CliRunner().invoke(app, [*args, "--method", "fastv"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "baselines run on LLaVA-OneVision checkpoints" in result.output


def test_second_per_grid_ts_follows_the_processor_rule(model_dir):
    """``temporal_patch_size / sampled fps``; frames of unknown timing (a still image) at
    transformers' default rate (``VideoMetadata.sampled_fps`` without fps: 24)."""
    from transformers.video_utils import VideoMetadata

    from focus_jax.errors import InputError
    from focus_jax.models.qwen2_5_vl.preprocessing import ProcessorConfig, second_per_grid_ts

    cfg = ProcessorConfig.from_pretrained(model_dir)
    unknown = VideoMetadata(total_num_frames=1, frames_indices=[0]).sampled_fps
    for fps, reference in ((0.8, 0.8), (None, unknown)):
        seconds = second_per_grid_ts(fps, cfg)
        assert seconds.shape == (1,) and seconds.dtype == np.float32
        assert seconds[0] == pytest.approx(tiny.TEMPORAL / reference)
    for bad in (0, -1.0, float("nan"), float("inf"), "8"):
        with pytest.raises(InputError, match="fps must be a positive finite number"):
            second_per_grid_ts(bad, cfg)
