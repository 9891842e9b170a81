"""Synthetic video question answering: the task the embedded demo model is trained on.

Clips of moving coloured shapes over crops of scikit-image's bundled photographs, with
questions in six families (``color``, ``shape``, ``direction``, ``count``, ``moving``,
``first``), a word-level tokenizer in Hugging Face format, batching into
LLaVA-OneVision inputs, and exact-match scoring.

- Task: ``TaskConfig``, ``generate_sample``, ``generate_samples``, ``sample_spec``,
  ``scene_questions``, ``FAMILIES``, ``ANSWERS`` (``focus_jax.data.task``); scenes: ``focus_jax.data.scene``.
- Video files: ``write_video`` (``focus_jax.video``, re-exported; read back with ``decode_video``).
- Tokenizer: ``build_tokenizer``, ``save_tokenizer``, ``prompt_text``, ``special_token_ids``,
  ``VOCABULARY`` (``focus_jax.data.tokenizer``).
- Model inputs: ``preprocess_frames``, ``video_token_count``, ``encode_prompt``,
  ``encode_example``, ``make_batch``, ``make_packed_batch``, ``iterate_batches``, ``IGNORE_INDEX``
  (``focus_jax.data.batching``).
- Scoring: ``score_answers``, ``score_samples``, ``normalize_answer``
  (``focus_jax.data.evaluation``).
"""

from focus_jax.data.batching import (
    IGNORE_INDEX,
    encode_example,
    encode_prompt,
    iterate_batches,
    make_batch,
    make_packed_batch,
    preprocess_frames,
    video_token_count,
)
from focus_jax.data.evaluation import AccuracyReport, normalize_answer, score_answers, score_samples
from focus_jax.data.task import (
    ANSWERS,
    FAMILIES,
    QASpec,
    TaskConfig,
    VideoQASample,
    generate_sample,
    generate_samples,
    sample_spec,
    scene_questions,
)
from focus_jax.data.tokenizer import VOCABULARY, build_tokenizer, prompt_text, save_tokenizer, special_token_ids
from focus_jax.video import write_video  # re-exported: the task writes its clips with it

__all__ = [
    "TaskConfig",
    "VideoQASample",
    "QASpec",
    "FAMILIES",
    "ANSWERS",
    "generate_sample",
    "generate_samples",
    "sample_spec",
    "scene_questions",
    "write_video",
    "VOCABULARY",
    "build_tokenizer",
    "save_tokenizer",
    "prompt_text",
    "special_token_ids",
    "IGNORE_INDEX",
    "preprocess_frames",
    "video_token_count",
    "encode_prompt",
    "encode_example",
    "make_batch",
    "make_packed_batch",
    "iterate_batches",
    "AccuracyReport",
    "normalize_answer",
    "score_answers",
    "score_samples",
]
