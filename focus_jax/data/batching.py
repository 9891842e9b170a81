"""Turn task samples into model inputs: token ids with expanded video placeholders, answer-only
labels, static-shape padding, and SigLIP-preprocessed pixels.

Token layout of one training example (``V = num_video_tokens``; see ``video_token_count``)::

    <|im_start|> user \\n <video>*V \\n {question tokens} <|im_end|> \\n <|im_start|> assistant \\n {answer} <|im_end|>
    labels: -100 everywhere except at {answer} and the final <|im_end|>

``<video>`` is repeated ``V`` times in ``input_ids``, as transformers'
``LlavaOnevisionProcessor.replace_video_token`` does, so that the model replaces the
placeholders one-to-one by the video features (transformers' ``get_placeholder_mask``).
Labels follow transformers' causal-LM convention: aligned with ``input_ids``, the model
shifts them (position ``t`` predicts ``labels[t + 1]``).
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np

from focus_jax.data.tokenizer import IM_END, UNK_TOKEN, VIDEO_TOKEN, prompt_text

__all__ = [
    "IGNORE_INDEX", "SIGLIP_MEAN", "SIGLIP_STD", "preprocess_frames", "video_token_count",
    "encode_prompt", "encode_example", "bucket_length", "make_batch", "make_packed_batch", "iterate_batches",
]

#: Label value without a loss (transformers' ``CrossEntropyLoss`` ignore index).
IGNORE_INDEX = -100
#: SigLIP normalisation (``SiglipImageProcessor`` / LLaVA-OneVision's image processor).
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


def preprocess_frames(
    frames: np.ndarray,
    size: int,
    mean: Sequence[float] = SIGLIP_MEAN,
    std: Sequence[float] = SIGLIP_STD,
) -> np.ndarray:
    """Resize, rescale and normalise video frames as Hugging Face's SigLIP image processor does.

    Each frame is resized with PIL bicubic resampling to ``size x size`` (uint8, as the
    processor's PIL path does), multiplied by 1/255 (in float64, stored as float32), then
    normalised ``(x - mean) / std`` per channel: the model's own preprocessing
    (``llava_onevision.preprocessing.preprocess_frames``) with these settings, after
    checking the arguments. Matches ``SiglipImageProcessor(size=
    {"height": size, "width": size})`` (transformers' PIL backend; mean = std = 0.5).

    Args:
        frames: ``(F, H, W, 3)`` uint8 RGB.
        size: side of the vision tower's input in pixels.
        mean, std: per-channel normalisation (3 values each).

    Returns:
        ``(F, 3, size, size)`` float32, channels first.

    Raises:
        ValueError: ``frames`` is not a ``(F, H, W, 3)`` uint8 array with ``F >= 1``,
            ``size`` is not a positive integer, or ``mean``/``std`` do not hold 3 values
            (``std`` non-zero).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must have shape (F, H, W, 3) with F >= 1, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    mean32 = np.asarray(mean, np.float32).reshape(-1)
    std32 = np.asarray(std, np.float32).reshape(-1)
    if mean32.shape != (3,) or std32.shape != (3,) or np.any(std32 == 0):
        raise ValueError(f"mean and std need 3 values each (std non-zero), got {list(mean)} and {list(std)}")
    from focus_jax.models.llava_onevision.preprocessing import ProcessorConfig
    from focus_jax.models.llava_onevision.preprocessing import preprocess_frames as model_preprocess

    return model_preprocess(
        frames,
        ProcessorConfig(
            size=(int(size), int(size)), image_mean=tuple(map(float, mean32)), image_std=tuple(map(float, std32))
        ),
    )


def video_token_count(num_frames: int, image_size: int, patch_size: int) -> int:
    """``<video>`` placeholders of a clip: ``F * ceil(P / 2)^2 + 1`` with ``P = image_size // patch_size``.

    LLaVA-OneVision pools each frame's ``P x P`` patch grid to ``ceil(P/2) x ceil(P/2)``
    (bilinear) and appends one ``image_newline`` after the whole video (transformers'
    ``LlavaOnevisionProcessor.replace_video_token``).

    Raises:
        ValueError: an argument is not a positive integer, or ``patch_size > image_size``.
    """
    for name, value in (("num_frames", num_frames), ("image_size", image_size), ("patch_size", patch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if patch_size > image_size:
        raise ValueError(f"patch_size ({patch_size}) must not exceed image_size ({image_size})")
    pooled = math.ceil((image_size // patch_size) / 2)
    return int(num_frames) * pooled * pooled + 1


def _expand_video(ids: list[int], video_id: int, num_video_tokens: int) -> list[int]:
    if (
        isinstance(num_video_tokens, bool)
        or not isinstance(num_video_tokens, (int, np.integer))
        or num_video_tokens < 1
    ):
        raise ValueError(f"num_video_tokens must be a positive integer, got {num_video_tokens!r}")
    at = ids.index(video_id)
    return ids[:at] + [video_id] * int(num_video_tokens) + ids[at + 1 :]


def _check_known(tokenizer, ids: list[int], text: str, what: str) -> None:
    unk = tokenizer.convert_tokens_to_ids(UNK_TOKEN)
    if unk in ids:
        raise ValueError(f"{what} {text!r} has words outside the tokenizer's vocabulary")


def encode_prompt(tokenizer, question: str, num_video_tokens: int) -> list[int]:
    """Token ids of the generation prompt for ``question`` with ``num_video_tokens`` ``<video>`` ids.

    Raises:
        ValueError: ``question`` is empty, contains ``<video>`` itself, or
            ``num_video_tokens`` is not a positive integer.
    """
    if not question or not question.strip():
        raise ValueError("question is empty")
    if VIDEO_TOKEN in question:
        raise ValueError(f"question must not contain {VIDEO_TOKEN}: the prompt adds the video")
    ids = tokenizer(prompt_text(question), add_special_tokens=False)["input_ids"]
    return _expand_video(ids, tokenizer.convert_tokens_to_ids(VIDEO_TOKEN), num_video_tokens)


def encode_example(tokenizer, question: str, answer: str, num_video_tokens: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of a training example: prompt, ``answer``, ``<|im_end|>``.

    Labels are ``IGNORE_INDEX`` on the prompt (video included) and equal the ids on the
    answer and the closing ``<|im_end|>``.

    Raises:
        ValueError: as ``encode_prompt``; or ``answer`` is empty or has words outside the
            vocabulary (the model could not be taught to produce it).
    """
    prompt = encode_prompt(tokenizer, question, num_video_tokens)
    if not answer or not answer.strip():
        raise ValueError("answer is empty")
    target = tokenizer(answer, add_special_tokens=False)["input_ids"]
    _check_known(tokenizer, target, answer, "answer")
    target = target + [tokenizer.convert_tokens_to_ids(IM_END)]
    return prompt + target, [IGNORE_INDEX] * len(prompt) + target


def bucket_length(length: int, buckets: Sequence[int] | None = None, multiple: int = 16) -> int:
    """Padded length for a batch whose longest sequence is ``length``: the smallest of
    ``buckets`` that fits, or (no buckets) ``length`` rounded up to a multiple of ``multiple``.

    Static lengths let a jitted model compile once per bucket instead of once per batch.

    Raises:
        ValueError: no bucket is long enough, or ``multiple`` < 1.
    """
    if buckets:
        fitting = [b for b in sorted(buckets) if b >= length]
        if not fitting:
            raise ValueError(f"a sequence of {length} tokens exceeds the largest bucket ({max(buckets)})")
        return int(fitting[0])
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    return int(-(-length // multiple) * multiple)


def make_batch(
    samples: Sequence,
    tokenizer,
    *,
    num_video_tokens: int,
    image_size: int,
    with_answers: bool = True,
    padding_side: str | None = None,
    buckets: Sequence[int] | None = None,
    length_multiple: int = 16,
    mean: Sequence[float] = SIGLIP_MEAN,
    std: Sequence[float] = SIGLIP_STD,
) -> dict[str, np.ndarray]:
    """Arrays for a batch of task samples (objects with ``frames``, ``question``, ``answer``).

    Args:
        samples: ``B >= 1`` samples with the same frame count ``F``.
        tokenizer: the task tokenizer (``build_tokenizer``) or a compatible one.
        num_video_tokens: ``<video>`` placeholders per clip (``video_token_count``).
        image_size: side of the vision tower's input (``preprocess_frames``).
        with_answers: True for training (answer + ``<|im_end|>`` appended, ``labels``
            returned); False for generation prompts.
        padding_side: "right" or "left"; default "right" for training, "left" for
            generation (the new tokens then follow every prompt directly).
        buckets, length_multiple: padded length (``bucket_length``).
        mean, std: pixel normalisation.

    Returns:
        ``input_ids`` ``(B, L)`` int32 (padding ``<|endoftext|>``), ``attention_mask``
        ``(B, L)`` int32 (0 at padding), ``labels`` ``(B, L)`` int32 (training only;
        ``IGNORE_INDEX`` except answer and closing ``<|im_end|>``), and
        ``pixel_values_videos`` ``(B, F, 3, image_size, image_size)`` float32.

    Raises:
        ValueError: no samples, frame counts differ, bad ``padding_side``, or as
            ``encode_example`` / ``bucket_length`` / ``preprocess_frames``.
    """
    if not samples:
        raise ValueError("samples is empty")
    frame_counts = {np.shape(s.frames)[0] for s in samples}
    if len(frame_counts) != 1:
        raise ValueError(f"all samples of a batch need the same number of frames, got {sorted(frame_counts)}")
    padding_side = padding_side or ("right" if with_answers else "left")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")

    if with_answers:
        encoded = [encode_example(tokenizer, s.question, s.answer, num_video_tokens) for s in samples]
    else:
        encoded = [(ids, None) for ids in (encode_prompt(tokenizer, s.question, num_video_tokens) for s in samples)]
    length = bucket_length(max(len(ids) for ids, _ in encoded), buckets, length_multiple)
    out = _padded_rows(encoded, length, tokenizer.pad_token_id, padding_side)
    out["pixel_values_videos"] = np.stack([preprocess_frames(s.frames, image_size, mean, std) for s in samples])
    if not with_answers:
        del out["labels"]
    return out


def _padded_rows(encoded, length: int, pad_id: int, padding_side: str) -> dict[str, np.ndarray]:
    """``input_ids`` / ``attention_mask`` / ``labels`` ``(B, length)`` int32 of ``(ids, labels
    or None)`` rows, padded on ``padding_side`` (``pad_id``, mask 0, ``IGNORE_INDEX``)."""
    batch = len(encoded)
    input_ids = np.full((batch, length), pad_id, np.int32)
    attention_mask = np.zeros((batch, length), np.int32)
    labels = np.full((batch, length), IGNORE_INDEX, np.int32)
    for row, (ids, lab) in enumerate(encoded):
        span = slice(0, len(ids)) if padding_side == "right" else slice(length - len(ids), length)
        input_ids[row, span] = ids
        attention_mask[row, span] = 1
        if lab is not None:
            labels[row, span] = lab
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def make_packed_batch(
    samples: Sequence,
    questions: Sequence[Sequence[tuple[str, str]]],
    tokenizer,
    *,
    num_video_tokens: int,
    image_size: int,
    length: int,
    mean: Sequence[float] = SIGLIP_MEAN,
    std: Sequence[float] = SIGLIP_STD,
) -> dict[str, np.ndarray]:
    """Training arrays that ask several questions about each clip in one row.

    Row ``b`` holds the shared prefix ``<|im_start|> user \\n <video>*V \\n`` of clip ``b``
    once, then one segment ``{question} <|im_end|> \\n <|im_start|> assistant \\n {answer}
    <|im_end|>`` per ``(question, answer)`` of ``questions[b]``. ``segment_ids`` (0 on the
    prefix, ``s`` on segment ``s``) let every segment attend only to the prefix and itself
    (``attention.causal_attention``), and each segment's positions continue from the
    prefix, so every segment is computed exactly as the single-question example
    ``encode_example`` would be, at the cost of one vision pass and one prefix.

    Args:
        samples: ``B >= 1`` samples (``frames``), same frame count.
        questions: per sample, ``>= 1`` ``(question, answer)`` pairs.
        length: padded row length.

    Returns:
        ``input_ids``, ``attention_mask``, ``labels``, ``positions`` (RoPE positions),
        ``segment_ids``: ``(B, length)`` int32; ``pixel_values_videos``
        ``(B, F, 3, image_size, image_size)`` float32.

    Raises:
        ValueError: ``samples`` and ``questions`` differ in length, a sample has no
            question, a row exceeds ``length``, or as ``encode_example``.
    """
    if not samples or len(samples) != len(questions):
        raise ValueError(f"need one list of questions per sample, got {len(questions)} for {len(samples)} samples")
    video_id = tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
    batch = len(samples)
    arrays = {
        name: np.full((batch, length), fill, np.int32)
        for name, fill in (
            ("input_ids", tokenizer.pad_token_id),
            ("attention_mask", 0),
            ("labels", IGNORE_INDEX),
            ("positions", 1),
            ("segment_ids", 0),
        )
    }
    for row, pairs in enumerate(questions):
        if not pairs:
            raise ValueError(f"sample {row} has no question")
        encoded = [encode_example(tokenizer, question, answer, num_video_tokens) for question, answer in pairs]
        first = encoded[0][0]
        prefix = len(first) - first[::-1].index(video_id) + 1  # through the "\n" after the video
        ids, labels, positions, segments = first[:prefix], encoded[0][1][:prefix], list(range(prefix)), [0] * prefix
        for seg, (full, full_labels) in enumerate(encoded, start=1):
            ids += full[prefix:]
            labels += full_labels[prefix:]
            positions += range(prefix, len(full))
            segments += [seg] * (len(full) - prefix)
        if len(ids) > length:
            raise ValueError(f"row {row} needs {len(ids)} tokens, more than length={length}")
        for name, values in (
            ("input_ids", ids),
            ("labels", labels),
            ("positions", positions),
            ("segment_ids", segments),
            ("attention_mask", [1] * len(ids)),
        ):
            arrays[name][row, : len(values)] = values
    arrays["pixel_values_videos"] = np.stack([preprocess_frames(s.frames, image_size, mean, std) for s in samples])
    return arrays


def iterate_batches(
    config,
    tokenizer,
    *,
    seed: int,
    batch_size: int,
    num_video_tokens: int,
    image_size: int,
    start: int = 0,
    **batch_kwargs,
) -> Iterator[dict[str, np.ndarray]]:
    """Endless training batches of fresh samples: batch ``k`` holds samples
    ``start + k*batch_size ..`` of ``seed`` (``focus_jax.data.generate_samples``), so a run
    resumed at ``start`` sees the same data. ``batch_kwargs`` go to ``make_batch``.

    Raises:
        ValueError: ``batch_size`` < 1, or as ``make_batch`` (on the first ``next``).
    """
    from focus_jax.data.task import generate_samples

    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

    def batches():
        index = start
        while True:
            samples = generate_samples(config, seed, batch_size, index)
            index += batch_size
            yield make_batch(
                samples, tokenizer, num_video_tokens=num_video_tokens, image_size=image_size, **batch_kwargs
            )

    return batches()
