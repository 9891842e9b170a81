"""``focus_jax.training``: the optimiser learns, training is deterministic, and the cheap
teacher-forced accuracy agrees with greedy generation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from focus_jax import from_pretrained
from focus_jax.data import build_tokenizer, generate_samples, make_batch
from focus_jax.demo_model import demo_model_config, demo_task_config
from focus_jax.models.llava_onevision import modeling
from focus_jax.training import TrainConfig, answer_accuracy, answer_predictions, make_optimizer, make_train_step, render_batch, train
from tests.task_model import random_model_dir

CFG = demo_model_config()


def test_train_config_rejects_bad_values():
    for bad in (dict(steps=0), dict(batch_size=0), dict(warmup_steps=10, steps=10), dict(learning_rate=0.0), dict(final_lr_fraction=2.0)):
        with pytest.raises(ValueError):
            TrainConfig(**bad)


def test_a_fixed_batch_is_fitted():
    """Thirty steps on one batch drive its loss far down: gradients reach every block."""
    cfg = TrainConfig(steps=30, batch_size=4, learning_rate=3e-3, warmup_steps=3)
    optimizer = make_optimizer(cfg)
    params = modeling.init_params(CFG, jax.random.key(0))
    state = optimizer.init(params)
    step = make_train_step(CFG, optimizer)
    batch = {k: jnp.asarray(v) for k, v in render_batch(demo_task_config(), 0, 4, CFG.video_token_count(8), 0).items()}
    losses = []
    for _ in range(cfg.steps):
        params, state, loss = step(params, state, batch)
        losses.append(float(loss))
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert losses[-1] < 0.2 * losses[0]
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), params, modeling.init_params(CFG, jax.random.key(0)))
    assert all(jax.tree.leaves(moved["vision"])) and all(jax.tree.leaves(moved["projector"]))


def test_train_is_deterministic_and_weight_decay_skips_vectors():
    cfg = TrainConfig(steps=2, batch_size=2, warmup_steps=1)
    a = train(CFG, demo_task_config(), cfg)
    b = train(CFG, demo_task_config(), cfg)
    assert len(a.losses) == 2 and a.losses == b.losses
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)))
    # render_batch: batch k holds samples k*B.. of the seed, one fixed padded length
    batch = render_batch(demo_task_config(), 0, 2, CFG.video_token_count(8), 3)
    reference = make_batch(generate_samples(demo_task_config(), 0, 2, 6), build_tokenizer(), num_video_tokens=129, image_size=64, buckets=(161,))
    assert all(np.array_equal(batch[k], reference[k]) for k in reference)


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
