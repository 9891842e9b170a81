"""Exact-match accuracy of generated answers, overall and per question family.

Answers are compared after ``normalize_answer`` (case, surrounding white space and
trailing punctuation ignored, as in VQA scoring), then must match exactly: "red" and
"Red." are correct for "red", "red circle" is not.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Sequence

__all__ = ["normalize_answer", "FamilyAccuracy", "AccuracyReport", "score_answers", "score_samples"]

_TRAILING = string.punctuation + string.whitespace


def normalize_answer(text: str) -> str:
    """Lower-case ``text``, collapse white space and strip punctuation at both ends."""
    return " ".join(text.lower().split()).strip(_TRAILING)


@dataclasses.dataclass(frozen=True)
class FamilyAccuracy:
    """``correct`` of ``total`` answers right; ``accuracy`` in [0, 1]."""

    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclasses.dataclass(frozen=True)
class AccuracyReport:
    """Overall and per-family exact-match accuracy (``per_family`` in first-seen order)."""

    overall: FamilyAccuracy
    per_family: dict[str, FamilyAccuracy]

    @property
    def accuracy(self) -> float:
        return self.overall.accuracy

    def to_dict(self) -> dict:
        """JSON-ready: ``{"accuracy", "correct", "total", "per_family": {family: {...}}}``."""
        row = lambda a: {"accuracy": a.accuracy, "correct": a.correct, "total": a.total}  # noqa: E731
        return {**row(self.overall), "per_family": {f: row(a) for f, a in self.per_family.items()}}


def score_answers(predictions: Sequence[str], references: Sequence[str], families: Sequence[str]) -> AccuracyReport:
    """Exact-match accuracy of ``predictions`` against ``references``, grouped by ``families``.

    Raises:
        ValueError: the three sequences differ in length or are empty.
    """
    if not (len(predictions) == len(references) == len(families)):
        raise ValueError(
            f"predictions, references and families must have the same length, got "
            f"{len(predictions)}, {len(references)} and {len(families)}"
        )
    if not predictions:
        raise ValueError("nothing to score: no predictions")
    counts: dict[str, list[int]] = {}
    for pred, ref, family in zip(predictions, references, families):
        tally = counts.setdefault(family, [0, 0])
        tally[0] += normalize_answer(pred) == normalize_answer(ref)
        tally[1] += 1
    per_family = {f: FamilyAccuracy(c, t) for f, (c, t) in counts.items()}
    overall = FamilyAccuracy(sum(a.correct for a in per_family.values()), len(predictions))
    return AccuracyReport(overall, per_family)


def score_samples(predictions: Sequence[str], samples: Sequence) -> AccuracyReport:
    """``score_answers`` against task samples (objects with ``answer`` and ``family``)."""
    return score_answers(predictions, [s.answer for s in samples], [s.family for s in samples])
