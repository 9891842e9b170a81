"""Exact-match scoring of generated answers, overall and per family."""

import pytest

from focus_jax.data import TaskConfig, generate_samples, normalize_answer, score_answers, score_samples


def test_normalisation():
    assert normalize_answer("  Red. ") == "red"
    assert normalize_answer("LEFT!") == "left"
    assert normalize_answer("red  circle") == "red circle"
    assert normalize_answer("\n") == ""


def test_scores_per_family():
    report = score_answers(
        ["red", "Blue.", "circle", "two", "three", "up"],
        ["red", "green", "circle", "two", "two", "up"],
        ["color", "color", "shape", "count", "count", "direction"],
    )
    assert (report.overall.correct, report.overall.total) == (4, 6)
    assert report.accuracy == pytest.approx(4 / 6)
    assert {f: (a.correct, a.total) for f, a in report.per_family.items()} == {
        "color": (1, 2), "shape": (1, 1), "count": (1, 2), "direction": (1, 1)}
    assert list(report.per_family) == ["color", "shape", "count", "direction"]
    d = report.to_dict()
    assert d["correct"] == 4 and d["per_family"]["count"] == {"accuracy": 0.5, "correct": 1, "total": 2}


def test_extra_words_are_wrong():
    assert score_answers(["red circle"], ["red"], ["color"]).accuracy == 0.0


def test_score_samples():
    samples = generate_samples(TaskConfig(), 4, 12)
    perfect = score_samples([s.answer.upper() for s in samples], samples)
    assert perfect.accuracy == 1.0 and sum(a.total for a in perfect.per_family.values()) == 12
    shifted = score_samples([s.answer for s in samples[1:]] + [samples[0].answer], samples)
    assert shifted.accuracy < 1.0


@pytest.mark.parametrize("args, match", [
    ((["a"], ["a", "b"], ["x", "y"]), "same length"),
    (([], [], []), "no predictions"),
])
def test_errors(args, match):
    with pytest.raises(ValueError, match=match):
        score_answers(*args)
