"""``focus_jax.training``: the optimiser learns, training is deterministic, and the cheap
teacher-forced accuracy agrees with greedy generation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from focus_jax import from_pretrained
from focus_jax.data import build_tokenizer, generate_samples, make_batch
from focus_jax.demo_model import demo_model_config, demo_task_config
from focus_jax.models.llava_onevision import modeling
from focus_jax.training import (
    TrainConfig,
    answer_accuracy,
    answer_predictions,
    init_probe,
    make_optimizer,
    make_train_step,
    render_batch,
    train,
    training_questions,
    visual_targets,
)

from task_model import random_model_dir

CFG = demo_model_config()


def test_train_config_rejects_bad_values():
    for bad in (
        dict(steps=0),
        dict(batch_size=0),
        dict(warmup_steps=10, steps=10),
        dict(learning_rate=0.0),
        dict(final_lr_fraction=2.0),
        dict(aux_weight=-1.0),
        dict(questions_per_clip=0),
    ):
        with pytest.raises(ValueError):
            TrainConfig(**bad)


def test_a_fixed_batch_is_fitted():
    """Thirty steps on one batch drive its loss far down: gradients reach every block."""
    cfg = TrainConfig(steps=30, batch_size=4, learning_rate=3e-3, warmup_steps=3)
    optimizer = make_optimizer(cfg)
    init = {"model": modeling.init_params(CFG, jax.random.key(0)), "probe": init_probe(CFG, jax.random.key(1))}
    state, opt_state = init, optimizer.init(init)
    step = make_train_step(CFG, optimizer, aux_weight=0.5)
    batch = {k: jnp.asarray(v) for k, v in render_batch(demo_task_config(), 0, 4, CFG.pooled_side, 0).items()}
    losses = []
    for _ in range(cfg.steps):
        state, opt_state, loss = step(state, opt_state, batch)
        losses.append(float(loss))
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert losses[-1] < 0.2 * losses[0]
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state, init)
    # SigLIP's post_layernorm is unused: LLaVA-OneVision reads the last layer before it
    vision = {k: v for k, v in moved["model"]["vision"].items() if k != "post_ln"}
    assert all(jax.tree.leaves(vision)) and all(jax.tree.leaves(moved["probe"]))
    assert not any(jax.tree.leaves(moved["model"]["vision"]["post_ln"]))


def test_train_is_deterministic_and_batches_are_indexed_by_step():
    cfg = TrainConfig(steps=2, batch_size=2, warmup_steps=1)
    a = train(CFG, demo_task_config(), cfg)
    b = train(CFG, demo_task_config(), cfg)
    assert len(a.losses) == 2 and a.losses == b.losses
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)))
    # render_batch: batch k holds samples k*B.. of the seed, one fixed padded length
    batch = render_batch(demo_task_config(), 0, 2, CFG.pooled_side, 3)
    reference = make_batch(
        generate_samples(demo_task_config(), 0, 2, 6), build_tokenizer(), num_video_tokens=129, image_size=64
    )
    length = reference["input_ids"].shape[1]
    assert all(np.array_equal(batch[k][:, :length], reference[k]) for k in ("input_ids", "labels", "attention_mask"))
    assert np.array_equal(batch["pixel_values_videos"], reference["pixel_values_videos"])
    assert batch["input_ids"].shape == render_batch(demo_task_config(), 0, 2, CFG.pooled_side, 9)["input_ids"].shape


def test_packed_questions_are_computed_as_single_questions():
    """A training row asking several questions about one clip gives, at every answer
    token, the logits of the single-question prompt: the packing (segment mask, positions)
    changes the cost, not the model's function."""
    from focus_jax.models.qwen2 import modeling as qwen2

    params = modeling.init_params(CFG, jax.random.key(3))
    task, tok = demo_task_config(), build_tokenizer()
    packed = render_batch(task, 0, 2, CFG.pooled_side, 5, questions_per_clip=6)

    def answer_logits(batch, packed_rows):
        ids, mask = jnp.asarray(batch["input_ids"]), jnp.asarray(batch["attention_mask"]) > 0
        feats = modeling.video_features(params, CFG, jnp.asarray(batch["pixel_values_videos"]))
        x = modeling.merge_embeddings(
            qwen2.embed_tokens(params["language"], ids), ids, CFG.video_token_id, feats.reshape(-1, feats.shape[-1])
        )
        positions = batch["positions"] if packed_rows else jnp.where(mask, jnp.cumsum(mask, axis=1) - 1, 1)
        segments = batch["segment_ids"] if packed_rows else None
        hidden = qwen2.prefill(
            params["language"], CFG.text, x, mask, jnp.asarray(positions), segment_ids=segments
        ).hidden
        logits = np.asarray(qwen2.logits_from_hidden(params["language"], CFG.text, hidden))
        labelled = batch["labels"] != modeling.IGNORE_INDEX
        return [logits[row, np.nonzero(labelled[row])[0] - 1] for row in range(len(logits))]  # rows predicting labels

    got = answer_logits(packed, True)
    worst = 0.0
    for row, sample in enumerate(generate_samples(task, 0, 2, 10)):
        pairs = training_questions(sample, 0, 5, row, 6)
        assert pairs[0] == (sample.question, sample.answer) and len(set(pairs)) == len(pairs) > 2
        singles = [dataclasses.replace(sample, question=q, answer=a) for q, a in pairs]
        want = answer_logits(make_batch(singles, tok, num_video_tokens=129, image_size=64), False)
        worst = max(worst, float(np.abs(got[row] - np.concatenate(want)).max()))
    print(f"packed vs single-question logits: max abs diff {worst:.2e}")
    assert worst < 1e-5


def test_visual_targets_name_the_object_under_each_token():
    """Each object's cells carry its colour/shape class; the rest is background; the
    pooled 4x4 grid of 16x16-pixel cells is read off the rendered pixels independently.
    An object can go unlabelled only where it fills less than 15 % of every cell (on the
    patch-aligned demo task: a star or cross straddling four cells, ~10 % of their frames)."""
    from focus_jax.data.scene import COLORS, DIRECTIONS, SHAPES

    samples = generate_samples(demo_task_config(), 2, 6)
    targets = visual_targets(samples, 4)
    colors, shapes, motion = targets["token_colors"], targets["token_shapes"], targets["token_motion"]
    assert colors.shape == shapes.shape == motion.shape == (6, 128)
    assert targets["object_count"].tolist() == [len(s.scene.objects) - 1 for s in samples]
    for sample, c, s, m in zip(samples, colors, shapes, motion):
        assert np.array_equal(c == len(COLORS), s == len(SHAPES)) and np.array_equal(
            c == len(COLORS), m == len(DIRECTIONS) + 1
        )
        frames = (
            sample.frames.astype(np.int32).reshape(8, 4, 16, 4, 16, 3).transpose(0, 1, 3, 2, 4, 5).reshape(128, 256, 3)
        )
        for obj in sample.scene.objects:
            rgb = np.array(COLORS[obj.color])
            painted = (np.abs(frames - rgb).max(axis=-1) <= 2).mean(axis=1)  # fraction of the cell in the exact colour
            labelled = c == list(COLORS).index(obj.color)
            assert (labelled.any() or painted.max() < 0.15) and np.all(painted[labelled] > 0.05)
            assert np.all(s[labelled] == SHAPES.index(obj.shape))
            assert np.all(m[labelled] == (list(DIRECTIONS).index(obj.direction) if obj.moves else len(DIRECTIONS)))
            assert not np.any(labelled & (painted == 0))


def test_train_rejects_a_task_at_another_resolution():
    from focus_jax.data import TaskConfig

    with pytest.raises(ValueError, match="resolution"):
        train(CFG, TaskConfig(num_frames=8, resolution=96), TrainConfig(steps=2, batch_size=1, warmup_steps=0))


def test_teacher_forced_accuracy_matches_greedy_generation():
    """First answer token by teacher forcing == first generated token (answers are one word)."""
    model = from_pretrained(random_model_dir())
    samples = generate_samples(demo_task_config(), 5, 8)
    tok = build_tokenizer()
    train_batch = make_batch(samples, tok, num_video_tokens=129, image_size=64)
    prompts = make_batch(samples, tok, num_video_tokens=129, image_size=64, with_answers=False)
    first = model.generate(prompts["input_ids"], pixel_values_videos=prompts["pixel_values_videos"],
                           attention_mask=prompts["attention_mask"], max_new_tokens=1)[:, 0]  # fmt: skip
    train_batch = {k: jnp.asarray(v) for k, v in train_batch.items()}
    np.testing.assert_array_equal(answer_predictions(model.params, model.config, train_batch), first)
    answer_ids = np.array([tok(s.answer, add_special_tokens=False)["input_ids"][0] for s in samples])
    assert answer_accuracy(model.params, model.config, train_batch) == float(np.mean(first == answer_ids))


def test_a_failing_batch_raises_instead_of_hanging():
    from focus_jax.training import _batches

    def make(k):
        if k == 2:
            raise ValueError("clip 2 failed")
        return {"k": k}

    batches = _batches(make, 5, workers=0)
    assert [next(batches)["k"] for _ in range(2)] == [0, 1]
    with pytest.raises(ValueError, match="clip 2 failed"):
        next(batches)
