"""Question-answering evaluation of a model on the synthetic video task, dense and with Focus.

For each batch of held-out questions: greedy generation without Focus and with it
(``focus_jax.inference.generate_with_trace``), exact match against the reference answers
(``focus_jax.data.score_samples``), and the fraction of the dense visual-token GEMM work
that Focus executes (``FocusTrace.work_fraction`` of the Focus prefill of every prompt,
averaged over prompts). ``load_task_model``, ``eval_task_config`` and ``goal_checks``
serve ``focus-jax eval``.

Held-out means another data seed than training (``EVAL_SEED``; training uses
``TrainConfig.data_seed``, 0 by default).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from focus_jax.config import FocusConfig

__all__ = [
    "EVAL_SEED",
    "GOALS",
    "EvalReport",
    "answer_questions",
    "evaluate",
    "goal_checks",
    "eval_task_config",
    "held_out_samples",
    "load_task_model",
]

#: Data seed of the held-out evaluation questions.
EVAL_SEED = 1_000_003
#: Goals of the embedded demo model (issue "the main job"): dense accuracy, Focus accuracy
#: relative to dense, and Focus' fraction of dense visual-token GEMM work.
GOALS = {"dense_accuracy": 0.90, "focus_retention": 0.97, "work_fraction": 0.25}


def goal_checks(report: dict) -> dict[str, bool | None]:
    """``{goal: met}`` for ``GOALS`` (None where the report (``EvalReport.to_dict``) lacks the number)."""
    out = {}
    for name, bound in GOALS.items():
        value = report.get(name)
        out[name] = None if value is None else (value <= bound if name == "work_fraction" else value >= bound)
    return out


def eval_task_config(vision, frames: int):
    """The ``TaskConfig`` to question a model with ``vision`` (``SiglipVisionConfig``) on:
    frames of its input size, objects aligned to its patches as the demo model is trained
    (``demo_task_config``), or free placement where the patch size does not divide the
    input into at least ``MIN_ALIGN_CELLS`` cells per side (e.g. 384 px with 14 px patches)."""
    from focus_jax.data import TaskConfig
    from focus_jax.data.task import MIN_ALIGN_CELLS

    side, patch = vision.image_size, vision.patch_size
    align = patch if side % patch == 0 and side // patch >= MIN_ALIGN_CELLS else 1
    return TaskConfig(num_frames=frames, resolution=side, align=align)


def held_out_samples(task, questions: int, batch_size: int = 50, seed: int | None = None) -> Iterator:
    """The ``questions`` held-out samples of ``task`` (``TaskConfig``), rendered lazily
    ``batch_size`` at a time (``generate_samples(task, seed, n, start)``), so memory does not
    grow with ``questions``; ``seed`` None is ``EVAL_SEED``.

    Raises:
        InputError: ``questions`` above ``focus_jax.inputs.limits`` ``QUESTIONS``.
    """
    from focus_jax.data import generate_samples
    from focus_jax.inputs.limits import check_limit

    check_limit("--questions", questions, "QUESTIONS")  # now, not at the first sample
    seed = EVAL_SEED if seed is None else seed
    return (
        sample
        for start in range(0, questions, batch_size)
        for sample in generate_samples(task, seed, min(batch_size, questions - start), start)
    )


def load_task_model(model_dir):
    """``(model, model_dir, focus_config_or_None)`` of a model trained on the synthetic task
    (``model_dir`` None: the embedded demo model; the Focus configuration is its
    ``focus_config.json``).

    Raises:
        InputError: not a model directory (``check_model_dir``); ValueError: a model whose vocabulary
            is not the task's (``focus_jax.data.VOCABULARY``).
    """
    import focus_jax
    from focus_jax.data import special_token_ids
    from focus_jax.demo_model import demo_model_dir
    from focus_jax.inference import model_focus_config
    from focus_jax.inputs.model_dir import check_model_dir

    model_dir = check_model_dir(demo_model_dir() if model_dir is None else model_dir)
    model = focus_jax.from_pretrained(model_dir)
    ids = special_token_ids()
    if model.config.text.vocab_size < ids["vocab_size"] or model.config.video_token_id != ids["video_token_id"]:
        raise ValueError(
            f"{model_dir} is not a model of the synthetic video QA task (its vocabulary differs from focus_jax.data's)"
        )
    return model, model_dir, model_focus_config(model_dir)


@dataclasses.dataclass(frozen=True)
class EvalReport:
    """Result of ``evaluate``.

    Attributes:
        questions: number of questions.
        dense, focus: ``focus_jax.data.AccuracyReport`` (overall and per family); ``focus``
            is None when no Focus configuration was given.
        work_fraction: mean Focus visual-token GEMM work / dense (None without Focus).
        focus_config: the Focus configuration used.
    """

    questions: int
    dense: object
    focus: object | None
    work_fraction: float | None
    focus_config: FocusConfig | None

    @property
    def retention(self) -> float | None:
        """Focus accuracy / dense accuracy (None without Focus or with zero dense accuracy)."""
        if self.focus is None or self.dense.accuracy == 0:
            return None
        return self.focus.accuracy / self.dense.accuracy

    def to_dict(self) -> dict:
        """JSON-ready summary: overall numbers, ``per_family`` dense/Focus reports, the config."""
        dense = self.dense.to_dict()["per_family"]
        focus = None if self.focus is None else self.focus.to_dict()["per_family"]
        return {
            "questions": self.questions,
            "dense_accuracy": self.dense.accuracy,
            "focus_accuracy": None if self.focus is None else self.focus.accuracy,
            "focus_retention": self.retention,
            "work_fraction": self.work_fraction,
            "per_family": {
                family: {"dense": row, "focus": None if focus is None else focus[family]}
                for family, row in dense.items()
            },
            "focus_config": None if self.focus_config is None else self.focus_config.to_dict(),
        }


def question_batch(config, samples, tokenizer) -> dict:
    """The prompts of ``samples`` for a model of ``config`` (``LlavaOnevisionConfig``): one
    ``make_batch(..., with_answers=False)`` row each, the video placeholder expanded to the
    model's token count for the clips' frames and the frames at its input size.

    Returns ``make_batch``'s arrays (``input_ids``, ``attention_mask`` ``(B, L)`` int32,
    ``pixel_values_videos`` ``(B, F, 3, H, W)`` float32).
    """
    from focus_jax.data import make_batch

    frames = int(np.shape(samples[0].frames)[0])
    return make_batch(
        samples,
        tokenizer,
        num_video_tokens=config.video_token_count(frames),
        image_size=config.vision.image_size,
        with_answers=False,
    )


def answer_questions(
    model, tokenizer, samples: Sequence, max_new_tokens: int = 4
) -> tuple[list[str], list[float] | None]:
    """Greedy answers of ``model`` (a ``LlavaOnevision``, dense or with Focus) to ``samples``.

    Args:
        model: the model; its Focus configuration (if any) applies.
        tokenizer: the task tokenizer (``focus_jax.data.build_tokenizer``).
        samples: task samples (``frames`` ``(F, H, W, 3)`` uint8 at the model's input size,
            ``question``).
        max_new_tokens: generated tokens (answers are one word and ``<|im_end|>``).

    Returns:
        ``(answers, work_fractions)``: decoded answers (special tokens removed, stripped) and,
        with Focus, each prompt's ``FocusTrace.work_fraction()`` (else None).
    """
    from focus_jax.inference import generate_with_trace

    batch = question_batch(model.config, samples, tokenizer)
    tokens, trace = generate_with_trace(
        model, batch["input_ids"], batch["pixel_values_videos"], batch["attention_mask"], max_new_tokens=max_new_tokens
    )
    answers = [tokenizer.decode(row, skip_special_tokens=True).strip() for row in tokens]
    if trace is None:
        return answers, None
    return answers, [trace.to_focus_trace(i).work_fraction() for i in range(len(samples))]


def evaluate(
    model,
    samples: Iterable,
    focus: FocusConfig | None,
    batch_size: int = 50,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Dense and Focus accuracy and Focus' work fraction of ``model`` on ``samples``.

    Args:
        model: a ``LlavaOnevision`` (its own Focus setting is ignored).
        samples: task samples with reference ``answer`` and ``family``: a sequence or
            any iterable (e.g. a generator rendering them lazily); it is consumed
            ``batch_size`` samples at a time and only answers and families are kept, so
            memory does not grow with the number of questions.
        focus: Focus configuration, or None for dense only.
        batch_size: prompts per generate call (the last batch may be smaller).
        progress: called with the number of questions done after each batch.

    Returns:
        ``EvalReport``.

    Raises:
        ValueError: no samples, or ``batch_size`` < 1.
    """
    from focus_jax.data import build_tokenizer, score_answers

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tokenizer = build_tokenizer()
    dense_model, focus_model = model.with_focus(None), None if focus is None else model.with_focus(focus)
    dense_answers, focus_answers, fractions, references, families = [], [], [], [], []
    iterator = iter(samples)
    while chunk := list(itertools.islice(iterator, batch_size)):
        references += [s.answer for s in chunk]
        families += [s.family for s in chunk]
        dense_answers += answer_questions(dense_model, tokenizer, chunk)[0]
        if focus_model is not None:
            answers, work = answer_questions(focus_model, tokenizer, chunk)
            focus_answers += answers
            fractions += work
        if progress is not None:
            progress(len(references))
    if not references:
        raise ValueError("no samples to evaluate")
    return EvalReport(
        questions=len(references),
        dense=score_answers(dense_answers, references, families),
        focus=None if focus_model is None else score_answers(focus_answers, references, families),
        work_fraction=None if focus_model is None else float(np.mean(fractions)),
        focus_config=focus,
    )
