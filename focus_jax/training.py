"""Training a LLaVA-OneVision-architecture model on the synthetic video QA task (optax).

The loss is next-token cross-entropy on the answers and their closing ``<|im_end|>``
through the same forward as inference (vision tower, projector, Qwen2 prefill), plus an
auxiliary visual-token loss (``visual_targets``). Each clip can be asked several
questions (``TrainConfig.questions_per_clip``, ``training_questions``) packed in one row
behind one copy of the video (``make_packed_batch``; a segment mask makes each question
see only the video and itself), so one vision pass yields several answers. The optimiser
is AdamW with linear warm-up and cosine decay, global-norm clipping. Batches are fresh samples of
``focus_jax.data`` (batch ``k`` holds samples ``k*B .. (k+1)*B - 1`` of ``data_seed``),
rendered by a background thread while the previous step runs.

``train`` is deterministic: same ``TrainConfig``, same parameters (on the same backend).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from focus_jax.models.llava_onevision import modeling
from focus_jax.models.qwen2 import modeling as qwen2

__all__ = [
    "TrainConfig",
    "make_optimizer",
    "make_train_step",
    "render_batch",
    "training_questions",
    "visual_targets",
    "init_probe",
    "task_loss",
    "answer_predictions",
    "answer_accuracy",
    "train",
    "TrainResult",
]


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
        aux_weight: weight of the auxiliary visual-token loss (``visual_targets``; 0 turns
            it off). It supervises every visual token with the colour and shape of the
            object covering it, through a linear probe that is discarded after training:
            one answer token per clip is too little signal to train the vision tower from
            scratch in the 45-minute budget.
        questions_per_clip: questions asked about each clip in one packed row
            (``training_questions``): several answers per vision pass. ``focus-jax
            train-demo`` uses 4 (about 0.45 s per step of 8 clips on 2 cores, as for 1).
            Measured on the demo model (teacher-forced accuracy on 240 held-out
            questions): with perfect visual tokens in place of the vision tower, 8
            questions per clip sped up the decoder's lookups (79 % vs 62 % after ~1000
            steps); with the trained tower on unaligned objects (no shape features) they
            did not help; on the patch-aligned task 4 per clip reached 89 % after 5000
            steps (see the README).

    Raises:
        ValueError: naming a non-positive size or an out-of-range rate.
    """

    steps: int = 5000
    batch_size: int = 8
    learning_rate: float = 1.5e-3
    warmup_steps: int = 100
    final_lr_fraction: float = 0.05
    weight_decay: float = 0.05
    clip_norm: float = 1.0
    seed: int = 0
    data_seed: int = 0
    eval_every: int = 250
    aux_weight: float = 1.0
    questions_per_clip: int = 1

    def __post_init__(self):
        for name in ("steps", "batch_size", "questions_per_clip"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must lie in [0, steps), got {self.warmup_steps}")
        if self.aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {self.aux_weight}")
        if (
            not self.learning_rate > 0
            or not 0 <= self.final_lr_fraction <= 1
            or self.weight_decay < 0
            or not self.clip_norm > 0
        ):
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


def visual_targets(samples, grid: int) -> dict[str, np.ndarray]:
    """What the auxiliary loss teaches each visual token: the colour, shape and motion of the
    object covering it, and the clip's object count.

    Token ``(f, i, j)`` (frame-major, row-major, as the video's placeholders) covers the
    pixel cell ``[i*H/grid, (i+1)*H/grid) x [j*W/grid, ...)`` of frame ``f`` (the pooled
    ``grid x grid`` layout of LLaVA-OneVision's 2x bilinear pooling). Its class is the object
    with the largest coverage of that cell if it covers at least 15 % of it, else
    "background" (class ``len(COLORS)`` resp. ``len(SHAPES)``). Motion classes: the index
    of the object's direction in ``DIRECTIONS``, ``len(DIRECTIONS)`` for a static object,
    one more for background.

    Args:
        samples: task samples with ``scene``; grid: pooled tokens per frame side.

    Returns:
        ``token_colors``, ``token_shapes``, ``token_motion``: ``(B, F * grid * grid)``
        int32; ``object_count``: ``(B,)`` int32, objects in the clip minus one.
    """
    from focus_jax.data.scene import COLORS, DIRECTIONS, SHAPES, object_masks

    colors, shapes, motion = [], [], []
    color_ids, shape_ids = {c: i for i, c in enumerate(COLORS)}, {s: i for i, s in enumerate(SHAPES)}
    motion_ids = {d: i for i, d in enumerate(DIRECTIONS)} | {None: len(DIRECTIONS)}
    for sample in samples:
        scene = sample.scene
        masks = object_masks(scene)  # (F, n, H, W)
        f, n, h, w = masks.shape
        cover = masks.reshape(f, n, grid, h // grid, grid, w // grid).mean(axis=(3, 5)).reshape(f, n, grid * grid)
        best = cover.argmax(axis=1)
        present = cover.max(axis=1) >= 0.15
        obj_color = np.array([color_ids[o.color] for o in scene.objects])
        obj_shape = np.array([shape_ids[o.shape] for o in scene.objects])
        colors.append(np.where(present, obj_color[best], len(COLORS)).reshape(-1))
        shapes.append(np.where(present, obj_shape[best], len(SHAPES)).reshape(-1))
        obj_motion = np.array([motion_ids[o.direction] for o in scene.objects])
        motion.append(np.where(present, obj_motion[best], len(DIRECTIONS) + 1).reshape(-1))
    return {
        "token_colors": np.stack(colors).astype(np.int32),
        "token_shapes": np.stack(shapes).astype(np.int32),
        "token_motion": np.stack(motion).astype(np.int32),
        "object_count": np.array([len(s.scene.objects) - 1 for s in samples], np.int32),
    }


def init_probe(model_cfg, key: jax.Array) -> dict:
    """Linear probes of the auxiliary loss, decoder width -> classes: colour and shape (+
    background) of projected visual tokens; motion (directions, static, background) of the
    decoder's last hidden state at visual tokens; object count at the video's newline token."""
    from focus_jax.data.scene import COLORS, DIRECTIONS, SHAPES

    d = model_cfg.text.hidden_size
    sizes = {"color": len(COLORS) + 1, "shape": len(SHAPES) + 1, "motion": len(DIRECTIONS) + 2, "count": 4}
    keys = jax.random.split(key, len(sizes))
    return {name: jax.random.normal(k, (d, n), jnp.float32) * d**-0.5 for k, (name, n) in zip(keys, sizes.items())}


def _cross_entropy(logits, targets):
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, targets[..., None], axis=-1))


def task_loss(state: dict, model_cfg, batch: dict, aux_weight: float) -> jnp.ndarray:
    """Answer cross-entropy plus ``aux_weight`` times the visual-token probe loss.

    The forward is ``llava_onevision.modeling``'s (video features, placeholder merge, Qwen2
    prefill, logits), with the video features computed once and shared by both terms.

    Args:
        state: ``{"model": params, "probe": init_probe(...)}``.
        batch: ``render_batch`` arrays (the ``visual_targets`` ones used if
            ``aux_weight > 0``).

    Returns:
        float32 scalar.
    """
    params = state["model"]
    ids, mask = batch["input_ids"], batch["attention_mask"] > 0
    feats = modeling.video_features(params, model_cfg, batch["pixel_values_videos"])  # (B, T + 1, D)
    x = qwen2.embed_tokens(params["language"], ids)
    x = modeling.merge_embeddings(x, ids, model_cfg.video_token_id, feats.reshape(-1, feats.shape[-1]))
    hidden = qwen2.prefill(
        params["language"], model_cfg.text, x, mask, batch["positions"], segment_ids=batch["segment_ids"]
    ).hidden
    loss = modeling.loss_fn(qwen2.logits_from_hidden(params["language"], model_cfg.text, hidden), batch["labels"])[0]
    if aux_weight:
        probe, grid_tokens = state["probe"], feats[:, :-1]  # drop the newline
        # the decoder's states at the video placeholders (contiguous in every row); causal
        # attention lets a token of frame t see frames <= t, enough to tell its motion
        start = jnp.argmax(ids == model_cfg.video_token_id, axis=1)
        video_rows = start[:, None] + jnp.arange(feats.shape[1])
        video_hidden = jnp.take_along_axis(hidden, video_rows[..., None], axis=1)
        aux = (
            _cross_entropy(grid_tokens @ probe["color"], batch["token_colors"])
            + _cross_entropy(grid_tokens @ probe["shape"], batch["token_shapes"])
            + _cross_entropy(video_hidden[:, :-1] @ probe["motion"], batch["token_motion"])
            + _cross_entropy(video_hidden[:, -1] @ probe["count"], batch["object_count"])
        )
        loss = loss + aux_weight * aux / 4
    return loss


def make_train_step(model_cfg, optimizer: optax.GradientTransformation, aux_weight: float = 0.0) -> Callable:
    """Jitted ``(state, opt_state, batch) -> (state, opt_state, loss)`` of ``task_loss``.

    ``state``: ``{"model": params, "probe": probe}``; ``batch``: ``render_batch`` arrays
    (``input_ids``, ``attention_mask``, ``labels`` ``(B, L)`` int32,
    ``pixel_values_videos`` ``(B, F, 3, H, W)`` float32, ``visual_targets``).
    """

    @jax.jit
    def step(state, opt_state, batch):
        value, grads = jax.value_and_grad(task_loss)(state, model_cfg, batch, aux_weight)
        updates, opt_state = optimizer.update(grads, opt_state, state)
        return optax.apply_updates(state, updates), opt_state, value

    return step


def answer_predictions(params: dict, model_cfg, batch: dict) -> np.ndarray:
    """Teacher-forced prediction of each row's first answer token: ``(B,)`` int32, the
    argmax logit at the position before the first labelled token.

    ``batch``: ``make_batch(..., with_answers=True)`` arrays (right padded).
    """
    return np.asarray(
        _answer_predictions(
            params,
            batch["input_ids"],
            batch["attention_mask"],
            batch["labels"],
            batch["pixel_values_videos"],
            cfg=model_cfg,
        )
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
    positions = modeling.positions_from_mask(mask)
    logits, _ = modeling.forward(params, cfg, input_ids, mask, positions, pixel_values_videos=videos)
    first = jnp.argmax(labels != modeling.IGNORE_INDEX, axis=1)  # first labelled position = answer token
    return jnp.argmax(logits[jnp.arange(input_ids.shape[0]), first - 1], axis=-1).astype(jnp.int32)


_answer_predictions = jax.jit(_answer_predictions_impl, static_argnames=("cfg",))


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from focus_jax.data import build_tokenizer

    return build_tokenizer()


#: Upper bound on the tokens of one packed question segment (question, turn markers,
#: one-word answer, ``<|im_end|>``); the longest question of the task needs 15.
_SEGMENT_TOKENS = 16


def training_questions(sample, data_seed: int, k: int, row: int, questions_per_clip: int) -> list[tuple[str, str]]:
    """The ``(question, answer)`` pairs asked about one training clip: the sample's own
    question first (so the families stay balanced), then up to ``questions_per_clip - 1``
    others of ``scene_questions``, drawn without replacement by a generator seeded with
    ``(data_seed, k, row)``."""
    from focus_jax.data import scene_questions

    others = [(q, a) for _, q, a in scene_questions(sample.scene) if q != sample.question]
    rng = np.random.default_rng([data_seed, k, row, 0x9A])
    picked = rng.permutation(len(others))[: questions_per_clip - 1]
    return [(sample.question, sample.answer)] + [others[i] for i in sorted(picked)]


def render_batch(
    task_cfg, data_seed: int, batch_size: int, grid: int, k: int, questions_per_clip: int = 1
) -> dict[str, np.ndarray]:
    """Training batch ``k``: samples ``k*batch_size ..`` of ``data_seed``, each asked
    ``training_questions`` in one packed row (``make_packed_batch``).

    Rows are padded to one fixed length (video tokens + 32, plus ``_SEGMENT_TOKENS`` per
    further question) so every step reuses one compilation; the ``visual_targets`` arrays
    (``grid x grid`` pooled tokens per frame) are added.
    """
    from focus_jax.data import generate_samples, make_packed_batch

    samples = generate_samples(task_cfg, data_seed, batch_size, k * batch_size)
    num_video_tokens = task_cfg.num_frames * grid * grid + 1
    questions = [training_questions(s, data_seed, k, row, questions_per_clip) for row, s in enumerate(samples)]
    length = num_video_tokens + 32 + (questions_per_clip - 1) * _SEGMENT_TOKENS
    batch = make_packed_batch(
        samples,
        questions,
        _tokenizer(),
        num_video_tokens=num_video_tokens,
        image_size=task_cfg.resolution,
        length=length,
    )
    return batch | visual_targets(samples, grid)


def _batches(make: Callable[[int], dict], steps: int, workers: int) -> Iterator[dict]:
    """``make(k)`` for ``k < steps`` in order, rendered ahead of use by one background thread
    (``workers == 0``) or by ``workers`` processes (spawned: JAX must not fork). An
    exception in ``make`` is raised here, at the batch that failed."""
    import concurrent.futures
    import multiprocessing

    if workers == 0:
        executor = concurrent.futures.ThreadPoolExecutor(1)
    else:
        executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    ahead = 2 * max(workers, 1)
    with executor:
        pending = collections.deque(executor.submit(make, k) for k in range(min(steps, ahead)))
        for k in range(steps):
            batch = pending.popleft().result()
            if k + ahead < steps:
                pending.append(executor.submit(make, k + ahead))
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
    model_cfg,
    task_cfg,
    cfg: TrainConfig,
    eval_batch: dict | None = None,
    callback: Callable | None = None,
    workers: int = 0,
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
    optimizer = make_optimizer(cfg)
    model_key, probe_key = jax.random.split(jax.random.key(cfg.seed))
    state = {"model": modeling.init_params(model_cfg, model_key), "probe": init_probe(model_cfg, probe_key)}
    opt_state = optimizer.init(state)
    step_fn = make_train_step(model_cfg, optimizer, cfg.aux_weight)

    make = functools.partial(
        render_batch,
        task_cfg,
        cfg.data_seed,
        cfg.batch_size,
        model_cfg.pooled_side,
        questions_per_clip=cfg.questions_per_clip,
    )

    losses, evals = [], []
    start = time.perf_counter()
    for step, batch in enumerate(_batches(make, cfg.steps, workers), start=1):
        state, opt_state, loss = step_fn(state, opt_state, {k: jnp.asarray(v) for k, v in batch.items()})
        losses.append(float(loss))
        accuracy = None
        if eval_batch is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps):
            accuracy = answer_accuracy(state["model"], model_cfg, eval_batch)
            evals.append((step, accuracy))
        if callback is not None:
            callback(step, losses[-1], accuracy)
    return TrainResult(jax.device_get(state["model"]), losses, evals, time.perf_counter() - start)
