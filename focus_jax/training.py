"""Training a LLaVA-OneVision-architecture model on the synthetic video QA task (optax).

The loss is ``llava_onevision.modeling.training_loss`` (next-token cross-entropy on the
answer and its closing ``<|im_end|>``), i.e. the same forward as inference. The optimiser
is AdamW with linear warm-up and cosine decay, global-norm clipping. Batches are fresh
samples of ``focus_jax.data`` (batch ``k`` holds samples ``k*B .. (k+1)*B - 1`` of
``data_seed``), rendered by a background thread while the previous step runs.

``train`` is deterministic: same ``TrainConfig``, same parameters (on the same backend).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import queue
import threading
import time
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from focus_jax.models.llava_onevision import modeling

__all__ = ["TrainConfig", "make_optimizer", "make_train_step", "render_batch", "answer_predictions", "answer_accuracy", "train", "TrainResult"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        steps: optimiser steps; batch_size: clips per step.
        learning_rate: peak AdamW learning rate (after ``warmup_steps`` linear warm-up,
            cosine decay to ``learning_rate * final_lr_fraction``).
        weight_decay: AdamW decoupled weight decay; clip_norm: global gradient-norm clip.
        seed: parameter initialisation; data_seed: training clips (evaluate on another).
        eval_every: steps between held-out teacher-forced accuracy checks (0: never).

    Raises:
        ValueError: naming a non-positive size or an out-of-range rate.
    """

    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    final_lr_fraction: float = 0.05
    weight_decay: float = 0.05
    clip_norm: float = 1.0
    seed: int = 0
    data_seed: int = 0
    eval_every: int = 250

    def __post_init__(self):
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must lie in [0, steps), got {self.warmup_steps}")
        if not self.learning_rate > 0 or not 0 <= self.final_lr_fraction <= 1 or self.weight_decay < 0 or not self.clip_norm > 0:
            raise ValueError("learning_rate and clip_norm must be > 0, final_lr_fraction in [0, 1], weight_decay >= 0")


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """AdamW (b2 = 0.98) with warm-up + cosine schedule and global-norm clipping.

    Norm scales, biases and embeddings-free 1-D tensors are not weight-decayed.
    """
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, cfg.warmup_steps, cfg.steps, end_value=cfg.learning_rate * cfg.final_lr_fraction
    )
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip_norm),
        optax.adamw(schedule, b1=0.9, b2=0.98, weight_decay=cfg.weight_decay, mask=decay_mask),
    )


def make_train_step(model_cfg, optimizer: optax.GradientTransformation) -> Callable:
    """Jitted ``(params, opt_state, batch) -> (params, opt_state, loss)``.

    ``batch``: dict of ``input_ids``, ``attention_mask``, ``labels`` ``(B, L)`` int32 and
    ``pixel_values_videos`` ``(B, F, 3, H, W)`` float32 (``focus_jax.data.make_batch``).
    """

    def loss(params, batch):
        return modeling.training_loss(
            params, model_cfg, batch["input_ids"], batch["labels"], batch["attention_mask"], batch["pixel_values_videos"]
        )

    @jax.jit
    def step(params, opt_state, batch):
        value, grads = jax.value_and_grad(loss)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step


def answer_predictions(params: dict, model_cfg, batch: dict) -> np.ndarray:
    """Teacher-forced prediction of each row's first answer token: ``(B,)`` int32, the
    argmax logit at the position before the first labelled token.

    ``batch``: ``make_batch(..., with_answers=True)`` arrays (right padded).
    """
    return np.asarray(
        _answer_predictions(params, batch["input_ids"], batch["attention_mask"], batch["labels"], batch["pixel_values_videos"], cfg=model_cfg)
    )


def answer_accuracy(params: dict, model_cfg, batch: dict) -> float:
    """Fraction of rows whose ``answer_predictions`` is the reference answer's first token.

    Answers of the synthetic task are single words (one token), so this equals greedy
    exact match up to the closing ``<|im_end|>``, at the cost of one forward pass: cheap
    enough to track during training (``focus_jax.qa_eval`` does the full generation).
    """
    labels = np.asarray(batch["labels"])
    first = np.argmax(labels != modeling.IGNORE_INDEX, axis=1)
    reference = labels[np.arange(labels.shape[0]), first]
    return float(np.mean(answer_predictions(params, model_cfg, batch) == reference))


def _answer_predictions_impl(params, input_ids, attention_mask, labels, videos, cfg):
    mask = attention_mask > 0
    positions = jnp.where(mask, jnp.cumsum(mask, axis=1) - 1, 1)
    logits, _ = modeling.forward(params, cfg, input_ids, mask, positions, pixel_values_videos=videos)
    first = jnp.argmax(labels != modeling.IGNORE_INDEX, axis=1)  # first labelled position = answer token
    return jnp.argmax(logits[jnp.arange(input_ids.shape[0]), first - 1], axis=-1).astype(jnp.int32)


_answer_predictions = jax.jit(_answer_predictions_impl, static_argnames=("cfg",))


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from focus_jax.data import build_tokenizer

    return build_tokenizer()


def render_batch(task_cfg, data_seed: int, batch_size: int, num_video_tokens: int, k: int) -> dict[str, np.ndarray]:
    """Training batch ``k``: samples ``k*batch_size ..`` of ``data_seed``, padded to one fixed
    length (``num_video_tokens + 32``) so every step reuses one compilation."""
    from focus_jax.data import generate_samples, make_batch

    samples = generate_samples(task_cfg, data_seed, batch_size, k * batch_size)
    return make_batch(
        samples, _tokenizer(), num_video_tokens=num_video_tokens, image_size=task_cfg.resolution, buckets=(num_video_tokens + 32,)
    )


def _batches(make: Callable[[int], dict], steps: int, workers: int) -> Iterator[dict]:
    """``make(k)`` for ``k < steps`` in order, rendered ahead of use: by one thread
    (``workers == 0``) or by a pool of ``workers`` processes (spawned: JAX must not fork)."""
    if workers == 0:
        items: queue.Queue = queue.Queue(maxsize=2)
        threading.Thread(target=lambda: [items.put(make(k)) for k in range(steps)], daemon=True).start()
        for _ in range(steps):
            yield items.get()
        return
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = collections.deque(pool.submit(make, k) for k in range(min(steps, 2 * workers)))
        for k in range(steps):
            batch = pending.popleft().result()
            if k + len(pending) + 1 < steps:
                pending.append(pool.submit(make, k + len(pending) + 1))
            yield batch


@dataclasses.dataclass
class TrainResult:
    """``params`` (trained pytree), ``losses`` (per step), ``evals`` (``(step, accuracy)``),
    ``seconds`` (wall time of the loop)."""

    params: dict
    losses: list[float]
    evals: list[tuple[int, float]]
    seconds: float


def train(
    model_cfg, task_cfg, cfg: TrainConfig, eval_batch: dict | None = None, callback: Callable | None = None, workers: int = 0
) -> TrainResult:
    """Train a model from random initialisation on fresh synthetic clips.

    Args:
        model_cfg: ``LlavaOnevisionConfig`` (``focus_jax.demo_model.demo_model_config()``).
        task_cfg: ``focus_jax.data.TaskConfig`` (frame count and resolution must match the
            model's vision tower input).
        cfg: optimisation settings.
        eval_batch: held-out batch (``make_batch`` with answers) for teacher-forced
            accuracy every ``cfg.eval_every`` steps and at the end; None skips it.
        callback: called as ``callback(step, loss, accuracy_or_None)`` after each step.
        workers: processes rendering batches (0: one background thread). The data do
            not depend on it.

    Returns:
        ``TrainResult``.

    Raises:
        ValueError: the task's resolution is not the vision tower's input size.
    """
    if task_cfg.resolution != model_cfg.vision.image_size:
        raise ValueError(f"task resolution {task_cfg.resolution} != vision tower input {model_cfg.vision.image_size}")
    num_video = model_cfg.video_token_count(task_cfg.num_frames)
    optimizer = make_optimizer(cfg)
    params = modeling.init_params(model_cfg, jax.random.key(cfg.seed))
    opt_state = optimizer.init(params)
    step_fn = make_train_step(model_cfg, optimizer)

    make = functools.partial(render_batch, task_cfg, cfg.data_seed, cfg.batch_size, num_video)

    losses, evals = [], []
    start = time.perf_counter()
    for step, batch in enumerate(_batches(make, cfg.steps, workers), start=1):
        params, opt_state, loss = step_fn(params, opt_state, {k: jnp.asarray(v) for k, v in batch.items()})
        losses.append(float(loss))
        accuracy = None
        if eval_batch is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps):
            accuracy = answer_accuracy(params, model_cfg, eval_batch)
            evals.append((step, accuracy))
        if callback is not None:
            callback(step, losses[-1], accuracy)
    return TrainResult(jax.device_get(params), losses, evals, time.perf_counter() - start)
