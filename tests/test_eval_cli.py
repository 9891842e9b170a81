"""``focus_jax.qa_eval`` and the ``eval`` / ``train-demo`` commands on a random model of the
demo architecture: numbers agree with direct generation and scoring, errors are one line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from focus_jax import from_pretrained
from focus_jax.cli import app
from focus_jax.config import FocusConfig
from focus_jax.data import build_tokenizer, generate_samples, make_batch, score_samples
from focus_jax.demo_model import DEMO_FOCUS, FOCUS_CONFIG_FILE, demo_task_config
from focus_jax.qa_eval import EVAL_SEED, evaluate

from task_model import random_model_dir

runner = CliRunner()


def test_evaluate_matches_direct_generation_and_traces():
    model = from_pretrained(random_model_dir())
    samples = generate_samples(demo_task_config(), 3, 6)
    report = evaluate(model, samples, DEMO_FOCUS, batch_size=4)
    tok = build_tokenizer()
    prompts = make_batch(samples, tok, num_video_tokens=129, image_size=64, with_answers=False)
    tokens = model.generate(prompts["input_ids"], pixel_values_videos=prompts["pixel_values_videos"],
                            attention_mask=prompts["attention_mask"], max_new_tokens=4)  # fmt: skip
    answers = [tok.decode(t, skip_special_tokens=True).strip() for t in tokens]
    assert report.dense.to_dict() == score_samples(answers, samples).to_dict()
    _, trace = model.with_focus(DEMO_FOCUS).forward(
        prompts["input_ids"],
        pixel_values_videos=prompts["pixel_values_videos"],
        attention_mask=prompts["attention_mask"],
        return_trace=True,
    )
    expected = np.mean([trace.to_focus_trace(i).work_fraction() for i in range(6)])
    assert report.work_fraction == pytest.approx(expected, rel=1e-12)
    assert 0 < report.work_fraction < 1
    dense_only = evaluate(model, samples[:2], None)
    assert dense_only.focus is None and dense_only.work_fraction is None and dense_only.retention is None


def test_eval_json_fields_and_goal_checks():
    result = runner.invoke(
        app, ["eval", "--model", str(random_model_dir()), "--questions", "6", "--batch-size", "6", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {
        "questions",
        "dense_accuracy",
        "focus_accuracy",
        "focus_retention",
        "work_fraction",
        "per_family",
        "goals",
        "focus_config",
    } <= set(out)
    assert out["questions"] == 6 and set(out["per_family"]) == {
        "color",
        "shape",
        "direction",
        "count",
        "moving",
        "first",
    }
    assert out["focus_config"] == DEMO_FOCUS.to_dict()
    assert out["goals"]["work_fraction"] == (out["work_fraction"] <= 0.25)
    # the questions are the held-out seed's first six
    assert (
        out["dense_accuracy"]
        == evaluate(
            from_pretrained(random_model_dir()), generate_samples(demo_task_config(), EVAL_SEED, 6), None
        ).dense.accuracy
    )
    checked = runner.invoke(
        app, ["eval", "--model", str(random_model_dir()), "--questions", "2", "--no-focus", "--check", "--json"]
    )
    assert checked.exit_code == 2  # a random model misses the dense-accuracy goal


def _one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_eval_errors(tmp_path):
    _one_line_error(runner.invoke(app, ["eval", "--model", str(tmp_path / "missing")]), "does not exist")
    _one_line_error(runner.invoke(app, ["eval", "--model", str(tmp_path)]), "config.json")
    import llava_tiny

    _one_line_error(runner.invoke(app, ["eval", "--model", str(llava_tiny.checkpoint()[1])]), "synthetic video QA task")
    bad = tmp_path / "focus.json"
    bad.write_text('{"similarity_threshold": 3}')
    _one_line_error(
        runner.invoke(app, ["eval", "--model", str(random_model_dir()), "--focus-config", str(bad)]),
        "similarity_threshold",
    )
    import shutil

    corrupt = tmp_path / "corrupt_model"
    shutil.copytree(random_model_dir(), corrupt)
    (corrupt / "focus_config.json").write_text("{not json")
    _one_line_error(runner.invoke(app, ["eval", "--model", str(corrupt)]), "focus_config.json")


def test_train_demo_writes_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["train-demo", "--out", str(out), "--steps", "2", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    log = json.loads((out / "training_log.json").read_text())
    assert log["train_config"]["steps"] == 2 and len(log["loss"]) == 2 and log["held_out_accuracy"][-1][0] == 2
    assert FocusConfig.load(out / FOCUS_CONFIG_FILE) == DEMO_FOCUS
    assert from_pretrained(out).config.video_token_count(8) == 129
    from transformers import AutoTokenizer, LlavaOnevisionForConditionalGeneration

    assert LlavaOnevisionForConditionalGeneration.from_pretrained(
        out
    ).config.video_token_index == build_tokenizer().convert_tokens_to_ids("<video>")
    assert AutoTokenizer.from_pretrained(out).decode([5, 6]) == build_tokenizer().decode([5, 6])
    _one_line_error(runner.invoke(app, ["train-demo", "--out", str(out), "--steps", "2"]), "--overwrite")


def test_eval_questions_a_model_on_its_patch_grid():
    """``eval`` renders the demo task (objects on whole patches) for the demo architecture
    and falls back to free placement where the patches do not tile the frame into >= 8
    cells per side (a real LLaVA-OneVision: 384 px, 14 px patches)."""
    import dataclasses

    from focus_jax.demo_model import demo_model_config
    from focus_jax.qa_eval import eval_task_config

    vision = demo_model_config().vision
    assert eval_task_config(vision, 8) == demo_task_config()
    assert eval_task_config(dataclasses.replace(vision, image_size=384, patch_size=14), 8).align == 1
    assert eval_task_config(dataclasses.replace(vision, image_size=64, patch_size=16), 6).align == 1
