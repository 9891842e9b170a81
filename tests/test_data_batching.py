"""Batching: SigLIP preprocessing parity with transformers, token/label layout, padding, and a
tiny transformers LLaVA-OneVision consuming the batch (placeholders line up, loss on answers only)."""

import numpy as np
import pytest

from focus_jax.data import (
    IGNORE_INDEX,
    VOCABULARY,
    TaskConfig,
    build_tokenizer,
    encode_example,
    generate_samples,
    make_batch,
    make_packed_batch,
    preprocess_frames,
    video_token_count,
)
from focus_jax.data.batching import bucket_length


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def samples():
    return generate_samples(TaskConfig(num_frames=4, resolution=64), 2, 6)


# ----------------------------------------------------------------------------- preprocessing

@pytest.mark.parametrize("size", [32, 64, 96, 384])
def test_preprocess_matches_siglip_image_processor(size):
    from transformers import SiglipImageProcessor

    rng = np.random.default_rng(size)
    clip = generate_samples(TaskConfig(num_frames=4, resolution=96), 0, 1)[0].frames
    noisy = rng.integers(0, 256, (3, 50, 70, 3), dtype=np.uint8)  # non-square, full-range noise
    processor = SiglipImageProcessor(size={"height": size, "width": size})
    for frames in (clip, noisy):
        ref = processor(list(frames), return_tensors="np")["pixel_values"]
        ours = preprocess_frames(frames, size)
        err = np.abs(ref - ours).max()
        print(f"size {size}, input {frames.shape[1:3]}: max abs error vs SiglipImageProcessor {err:.2e}")
        assert ours.shape == ref.shape == (len(frames), 3, size, size) and ours.dtype == np.float32
        assert err <= 1e-6


def test_preprocess_custom_normalisation_matches():
    from transformers import SiglipImageProcessor

    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # CLIP's
    frames = generate_samples(TaskConfig(num_frames=4), 1, 1)[0].frames
    ref = SiglipImageProcessor(size={"height": 48, "width": 48}, image_mean=mean, image_std=std)(
        list(frames), return_tensors="np")["pixel_values"]
    assert np.abs(ref - preprocess_frames(frames, 48, mean, std)).max() <= 1e-6


@pytest.mark.parametrize(
    "frames, size, match",
    [
        (np.zeros((2, 8, 8, 3), np.float32), 8, "uint8"),
        (np.zeros((8, 8, 3), np.uint8), 8, "shape"),
        (np.zeros((2, 8, 8, 4), np.uint8), 8, "shape"),
        (np.zeros((2, 8, 8, 3), np.uint8), 0, "size"),
        (np.zeros((2, 8, 8, 3), np.uint8), 8.0, "size"),
    ],
)
def test_preprocess_errors(frames, size, match):
    with pytest.raises(ValueError, match=match):
        preprocess_frames(frames, size)


def test_preprocess_bad_mean():
    with pytest.raises(ValueError, match="mean and std"):
        preprocess_frames(np.zeros((1, 8, 8, 3), np.uint8), 8, mean=(0.5, 0.5), std=(0.5, 0.5, 0.5))


# ----------------------------------------------------------------------------- token layout

def test_video_token_count():
    assert video_token_count(8, 64, 8) == 8 * 4 * 4 + 1
    assert video_token_count(8, 384, 14) == 8 * 14 * 14 + 1  # 27 patches -> 14 after pooling (LLaVA-OV 0.5B)
    with pytest.raises(ValueError, match="num_frames"):
        video_token_count(0, 64, 8)
    with pytest.raises(ValueError, match="patch_size"):
        video_token_count(8, 8, 16)


def test_example_layout_and_labels(tok):
    n = video_token_count(4, 64, 8)
    ids, labels = encode_example(tok, "what color is the star?", "red", n)
    tokens = [VOCABULARY[i] for i in ids]
    expected = (["<|im_start|>", "user", "\n"] + ["<video>"] * n + ["\n", "what", "color", "is", "the", "star", "?",
                "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n", "red", "<|im_end|>"])
    assert tokens == expected
    assert labels[:-2] == [IGNORE_INDEX] * (len(ids) - 2) and labels[-2:] == ids[-2:]


@pytest.mark.parametrize("question, answer, match", [
    ("", "red", "question is empty"),
    ("what <video> is it?", "red", "must not contain"),
    ("what color is the star?", "", "answer is empty"),
    ("what color is the star?", "magenta", "outside the tokenizer's vocabulary"),
])
def test_encode_errors(tok, question, answer, match):
    with pytest.raises(ValueError, match=match):
        encode_example(tok, question, answer, 17)


def test_make_batch_training(tok, samples):
    n = video_token_count(4, 64, 8)
    batch = make_batch(samples, tok, num_video_tokens=n, image_size=64)
    b = len(samples)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "pixel_values_videos"}
    length = batch["input_ids"].shape[1]
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (b, length)
    assert length % 16 == 0 and batch["input_ids"].dtype == np.int32
    assert batch["pixel_values_videos"].shape == (b, 4, 3, 64, 64) and batch["pixel_values_videos"].dtype == np.float32
    for row, s in enumerate(samples):
        ids, labels = encode_example(tok, s.question, s.answer, n)
        k = len(ids)
        assert batch["input_ids"][row, :k].tolist() == ids and batch["labels"][row, :k].tolist() == labels
        assert batch["attention_mask"][row].tolist() == [1] * k + [0] * (length - k)  # right padding
        assert (batch["input_ids"][row, k:] == tok.pad_token_id).all() and (
            batch["labels"][row, k:] == IGNORE_INDEX
        ).all()
        assert (batch["input_ids"][row] == tok.video_token_id).sum() == n
        labelled = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX]
        assert tok.decode(labelled.tolist(), skip_special_tokens=True) == s.answer
        np.testing.assert_array_equal(batch["pixel_values_videos"][row], preprocess_frames(s.frames, 64))


def test_packed_batch_layout(tok, samples):
    """One prefix, then each question's segment exactly as ``encode_example`` lays it out
    after the prefix, with positions restarting after the prefix and its own segment id."""
    n = video_token_count(4, 64, 8)
    questions = [
        [(s.question, s.answer), ("how many shapes are there?", "two")][: 1 + row % 2] for row, s in enumerate(samples)
    ]
    batch = make_packed_batch(samples, questions, tok, num_video_tokens=n, image_size=64, length=192)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "positions", "segment_ids", "pixel_values_videos"}
    prefix = 3 + n + 1  # <|im_start|> user \n <video>*n \n
    for row, pairs in enumerate(questions):
        ids, labels, positions, segments = [], [], [], []
        for seg, (question, answer) in enumerate(pairs, start=1):
            full, full_labels = encode_example(tok, question, answer, n)
            if seg == 1:
                ids, labels, positions, segments = (
                    full[:prefix],
                    full_labels[:prefix],
                    list(range(prefix)),
                    [0] * prefix,
                )
            ids, labels = ids + full[prefix:], labels + full_labels[prefix:]
            positions += range(prefix, len(full))
            segments += [seg] * (len(full) - prefix)
        k = len(ids)
        assert batch["input_ids"][row, :k].tolist() == ids and batch["labels"][row, :k].tolist() == labels
        assert batch["positions"][row, :k].tolist() == positions and batch["segment_ids"][row, :k].tolist() == segments
        assert batch["attention_mask"][row].tolist() == [1] * k + [0] * (192 - k)
        assert (batch["labels"][row, k:] == IGNORE_INDEX).all()
        np.testing.assert_array_equal(batch["pixel_values_videos"][row], preprocess_frames(samples[row].frames, 64))


def test_packed_batch_errors(tok, samples):
    n = video_token_count(4, 64, 8)
    pairs = [(samples[0].question, samples[0].answer)]
    with pytest.raises(ValueError, match="one list of questions per sample"):
        make_packed_batch(samples[:2], [pairs], tok, num_video_tokens=n, image_size=64, length=192)
    with pytest.raises(ValueError, match="has no question"):
        make_packed_batch(samples[:1], [[]], tok, num_video_tokens=n, image_size=64, length=192)
    with pytest.raises(ValueError, match="more than length=64"):
        make_packed_batch(samples[:1], [pairs], tok, num_video_tokens=n, image_size=64, length=64)
    with pytest.raises(ValueError, match="outside the tokenizer's vocabulary"):
        make_packed_batch(
            samples[:1], [[("what color is the star?", "magenta")]], tok, num_video_tokens=n, image_size=64, length=192
        )


def test_make_batch_generation_is_left_padded(tok, samples):
    n = video_token_count(4, 64, 8)
    batch = make_batch(samples, tok, num_video_tokens=n, image_size=32, with_answers=False, buckets=(64, 128, 256))
    assert "labels" not in batch and batch["input_ids"].shape[1] == 128
    assert batch["pixel_values_videos"].shape[-1] == 32
    im_start, assistant, newline = (VOCABULARY.index(t) for t in ("<|im_start|>", "assistant", "\n"))
    assert (batch["input_ids"][:, -3:] == [im_start, assistant, newline]).all(), "prompts end where generation starts"
    assert (batch["attention_mask"][:, -1] == 1).all() and (batch["attention_mask"][:, 0] == 0).all()


def test_make_batch_errors(tok, samples):
    n = video_token_count(4, 64, 8)
    with pytest.raises(ValueError, match="samples is empty"):
        make_batch([], tok, num_video_tokens=n, image_size=64)
    mixed = [samples[0], generate_samples(TaskConfig(num_frames=6), 0, 1)[0]]
    with pytest.raises(ValueError, match="same number of frames"):
        make_batch(mixed, tok, num_video_tokens=n, image_size=64)
    with pytest.raises(ValueError, match="padding_side"):
        make_batch(samples, tok, num_video_tokens=n, image_size=64, padding_side="middle")
    with pytest.raises(ValueError, match="largest bucket"):
        make_batch(samples, tok, num_video_tokens=n, image_size=64, buckets=(32,))
    with pytest.raises(ValueError, match="num_video_tokens"):
        make_batch(samples, tok, num_video_tokens=0, image_size=64)


def test_bucket_length():
    assert bucket_length(1) == 16 and bucket_length(16) == 16 and bucket_length(17) == 32
    assert bucket_length(90, (64, 128, 96)) == 96
    assert bucket_length(5, multiple=1) == 5


# ----------------------------------------------------------------------------- transformers consumes the batch

def test_transformers_llava_onevision_consumes_the_batch(tok, samples):
    """A tiny random transformers model accepts the batch (it checks that the placeholders match
    its video features one-to-one) and its loss is the cross-entropy on answer + <|im_end|> only."""
    import torch
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        Qwen2Config,
        SiglipVisionConfig,
    )

    from focus_jax.data import special_token_ids

    ids = special_token_ids()
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(image_size=64, patch_size=8, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2).to_dict(),
        text_config=Qwen2Config(vocab_size=ids["vocab_size"], hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=1, bos_token_id=ids["bos_token_id"],
                                eos_token_id=ids["eos_token_id"], pad_token_id=ids["pad_token_id"]).to_dict(),
        image_token_id=ids["image_token_id"], video_token_id=ids["video_token_id"],
        vision_feature_layer=-1, vision_feature_select_strategy="full",
    )
    torch.manual_seed(0)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    batch = make_batch(samples, tok, num_video_tokens=video_token_count(4, 64, 8), image_size=64)
    inputs = {k: torch.from_numpy(v.astype(np.int64) if v.dtype == np.int32 else v) for k, v in batch.items()}
    with torch.no_grad():
        out = model(**inputs)
    logits, labels = out.logits.float().numpy(), batch["labels"]
    # independent loss: position t predicts labels[t + 1], only where labelled
    shifted = logits[:, :-1] - logits[:, :-1].max(-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    targets = labels[:, 1:]
    valid = targets != IGNORE_INDEX
    assert valid.sum() == 2 * len(samples)  # answer + <|im_end|> per sample
    manual = -np.take_along_axis(logp, np.where(valid, targets, 0)[..., None], -1)[..., 0][valid].mean()
    print(f"transformers loss {out.loss.item():.6f}, independent {manual:.6f}")
    assert abs(out.loss.item() - manual) < 1e-5


def test_iterate_batches_is_resumable(tok):
    from focus_jax.data import iterate_batches

    cfg = TaskConfig(num_frames=4)
    kwargs = dict(seed=3, batch_size=2, num_video_tokens=video_token_count(4, 64, 8), image_size=64)
    stream = iterate_batches(cfg, tok, **kwargs)
    first, second = next(stream), next(stream)
    resumed = next(iterate_batches(cfg, tok, start=2, **kwargs))
    for key in first:
        np.testing.assert_array_equal(second[key], resumed[key])
    assert not np.array_equal(first["pixel_values_videos"], second["pixel_values_videos"])
    expected = make_batch(generate_samples(cfg, 3, 2), tok, num_video_tokens=kwargs["num_video_tokens"], image_size=64)
    np.testing.assert_array_equal(first["input_ids"], expected["input_ids"])
    with pytest.raises(ValueError, match="batch_size"):
        iterate_batches(cfg, tok, **{**kwargs, "batch_size": 0})
