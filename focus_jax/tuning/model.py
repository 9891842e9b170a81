"""The model path of ``focus-jax tune``: Focus configurations evaluated on a calibration set.

One *evaluation* is one forward pass of the model over the whole calibration set (the
unit every search here is counted in). An exact evaluation of a ``FocusConfig`` gives:

- the accuracy proxy: the fraction of questions whose answer word is the arg-max of the
  next-token distribution after the prompt (the demo task's answers are one token, so this
  is greedy generation's first token), the answer cross-entropy (nats), and
  ``KL(dense || Focus)`` of that distribution (nats; the dense reference is one forward
  pass, made once);
- the modeled cost of the workload the model ran: every prompt's trace priced by
  ``costmodel`` (corrected mode, ``Workload.from_trace``) on an accelerator design,
  averaged over prompts (latency s, energy mJ; EDP = mean latency x mean energy).

Pricing another accelerator design for the same traces needs no forward pass, so every
searched Focus configuration is priced on the best design ``tune_hardware`` finds for its
mean workload (as well as on the paper's design).

The calibration questions come from ``focus_jax.data`` with ``CALIBRATION_SEED``, held-out
questions from ``qa_eval.EVAL_SEED``, training from seed 0: three disjoint sets. The batch
is split over every visible JAX device (a ``(devices, 1)`` data mesh).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import jax
import numpy as np

import costmodel as cm
from focus_jax.config import FocusConfig
from focus_jax.errors import InputError
from focus_jax.tuning.dse import Candidate
from focus_jax.tuning.hardware import HardwareSpace, Pricer, objective_value, tune_hardware

__all__ = [
    "CALIBRATION_SEED",
    "MODEL_SPACE",
    "CalibrationSet",
    "ModelEvaluator",
    "ModelPoint",
    "compiled_part",
    "grid_configs",
    "outer_configs",
    "search_objective",
    "sec_placement",
]

#: Data seed of the calibration questions (training uses 0, held-out ``qa_eval.EVAL_SEED``).
CALIBRATION_SEED = 2_000_003
#: Accelerator fields searched for each Focus configuration (no model evaluations needed). The
#: gather block stays at the paper's 8: the reference simulator ties it to the SIC block
#: (``main.py`` sets it from the block's dimensions in the block-size DSE), and the cost model
#: charges no area or power for a faster gather, so a free gather block would be driven to 1
#: for nothing (on the demo model that alone cuts the modeled latency by 60 %).
MODEL_SPACE = HardwareSpace(m_tile=(32, 1024), scatter_vectors=(1, 6), gather_block=(8, 8))
PAPER_DESIGN = (1024, 2, 8)
#: Compiled exact models (one per SEC schedule) an evaluator holds before it drops them all.
MAX_COMPILED_SCHEDULES = 8


@dataclasses.dataclass(frozen=True)
class CalibrationSet:
    """Questions and their generation prompts, in batches.

    Attributes:
        samples: the task samples.
        batches: ``make_batch`` generation prompts (``input_ids``, ``attention_mask``,
            ``pixel_values_videos``), left-padded, ``batch_size`` samples each.
        answers: ``(n,)`` int32 token id of each sample's (one-word) answer.
        seed: their data seed.
    """

    samples: tuple
    batches: tuple
    answers: np.ndarray
    seed: int

    @classmethod
    def build(
        cls, model_config, count: int, seed: int = CALIBRATION_SEED, batch_size: int = 64, task=None
    ) -> CalibrationSet:
        """``count`` questions of ``seed`` for a model of ``model_config`` (``LlavaOnevisionConfig``).

        Args:
            task: ``TaskConfig`` (default the demo model's, ``demo_model.demo_task_config``).

        Raises:
            InputError: ``count`` or ``batch_size`` below 1, or an answer that is not one
                token of the task vocabulary.
        """
        from focus_jax.data import build_tokenizer, generate_samples, make_batch
        from focus_jax.demo_model import demo_task_config

        if count < 1 or batch_size < 1:
            raise InputError(f"the calibration set needs >= 1 question and batch size, got {count} and {batch_size}")
        task = demo_task_config() if task is None else task
        samples = generate_samples(task, seed=seed, count=count)
        tokenizer = build_tokenizer()
        answers = []
        for s in samples:
            ids = tokenizer.encode(s.answer)
            if len(ids) != 1:
                raise InputError(f"answer {s.answer!r} is not one token; the accuracy proxy needs one-word answers")
            answers.append(ids[0])
        tokens = model_config.video_token_count(task.num_frames)
        batches = tuple(
            make_batch(
                samples[i : i + batch_size],
                tokenizer,
                num_video_tokens=tokens,
                image_size=model_config.vision.image_size,
                with_answers=False,
            )
            for i in range(0, count, batch_size)
        )
        return cls(tuple(samples), batches, np.asarray(answers, np.int32), seed)


def data_mesh():
    """A ``(devices, 1)`` mesh: the calibration batch split over every visible device."""
    from focus_jax.models.llava_onevision.sharding import make_mesh

    return make_mesh(jax.device_count(), 1)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@dataclasses.dataclass(frozen=True)
class ModelPoint:
    """One exactly evaluated Focus configuration.

    Attributes:
        focus: the configuration.
        accuracy: accuracy proxy (fraction); cross_entropy, kl: nats per question.
        paper: ``(latency s, energy mJ)`` on the paper's design (1024 / 2 / 8).
        design: ``(m_tile, scatter_vectors, gather_block)`` tuned for this workload, and
            tuned: ``(latency s, energy mJ)`` on it.
        kept_fraction: visual tokens entering the last layer / all (SEC), mean over prompts.
        similar_fraction: similar vectors / kept vectors (SIC), mean over GEMM inputs.
    """

    focus: FocusConfig
    accuracy: float
    cross_entropy: float
    kl: float
    paper: tuple
    design: tuple
    tuned: tuple
    kept_fraction: float
    similar_fraction: float

    def cost(self, objective: str, tuned: bool = True) -> float:
        """The modeled ``objective`` (``latency`` s, ``energy`` mJ, ``edp`` s x mJ)."""
        return float(objective_value(objective, *(self.tuned if tuned else self.paper)))


def search_objective(
    point: ModelPoint, objective: str, lam: float, reference: float, loss: str = "kl", tuned_hardware: bool = True
) -> float:
    """``loss + lam * cost / reference``: the scalar every search minimises (``loss``: ``kl`` or ``ce``)."""
    value = point.kl if loss == "kl" else point.cross_entropy
    return value + lam * point.cost(objective, tuned_hardware) / reference


class ModelEvaluator:
    """Exact evaluations of Focus configurations of one model on one calibration set, counted.

    Args:
        model: a ``LlavaOnevision`` (its own Focus setting is ignored).
        calibration: the ``CalibrationSet``.
        objective: what the per-configuration hardware search minimises.
        space: its bounds (``MODEL_SPACE``).

    ``evaluations`` counts forward passes over the calibration set (cached: a repeated
    configuration is free); the dense reference pass is counted in ``reference_passes``.
    """

    def __init__(
        self, model, calibration: CalibrationSet, objective: str = "latency", space: HardwareSpace = MODEL_SPACE
    ):
        self.model = model
        self.calibration = calibration
        self.objective = objective
        self.space = space
        self.evaluations = 0
        self.cache: dict[FocusConfig, ModelPoint] = {}
        self._models: dict[FocusConfig, object] = {}
        dense = model.with_focus(None)
        self.dense_logp = np.concatenate(
            [_log_softmax(np.asarray(self._last_logits(dense, b), np.float64)) for b in calibration.batches]
        )
        self.reference_passes = 1

    @staticmethod
    def _last_logits(model, batch, trace: bool = False, knobs=None):
        out = model.forward(
            batch["input_ids"],
            pixel_values_videos=batch["pixel_values_videos"],
            attention_mask=batch["attention_mask"],
            return_trace=trace,
            logits_to_keep=1,
            knobs=knobs,
        )
        if trace:
            return np.asarray(out[0])[:, -1], out[1]
        return np.asarray(out)[:, -1]

    def dense_accuracy(self) -> float:
        return float(np.mean(self.dense_logp.argmax(-1) == self.calibration.answers))

    def evaluate(self, cfg: FocusConfig) -> ModelPoint:
        """Forward pass over the calibration set with ``cfg`` (one evaluation) and its costs."""
        if cfg in self.cache:
            return self.cache[cfg]
        from focus_jax.knobs import FocusKnobs

        static = compiled_part(cfg)
        if static not in self._models:
            if len(self._models) >= MAX_COMPILED_SCHEDULES:
                # each SEC schedule is its own compiled prefill, and a grid over SEC placements
                # compiles dozens: XLA's CPU executables hold memory maps until the jit caches
                # drop them, and the process ran out of them (vm.max_map_count) at ~30
                self._models.clear()
                jax.clear_caches()
            self._models[static] = self.model.with_focus(static)
        knobs = FocusKnobs.from_config(cfg, self.model.config.text.num_layers)
        logits, traces = [], []
        for b in self.calibration.batches:
            lg, tr = self._last_logits(self._models[static], b, trace=True, knobs=knobs)
            logits.append(np.asarray(lg, np.float64))
            traces += [tr.to_focus_trace(i) for i in range(tr.batch_size)]
        self.evaluations += 1
        logp = _log_softmax(np.concatenate(logits))
        answers = self.calibration.answers
        accuracy = float(np.mean(logp.argmax(-1) == answers))
        ce = float(-np.mean(logp[np.arange(len(answers)), answers]))
        kl = float(np.mean(np.sum(np.exp(self.dense_logp) * (self.dense_logp - logp), axis=-1)))
        workloads = [cm.Workload.from_trace(t) for t in traces]
        point = self._price(cfg, workloads, accuracy, ce, kl)
        self.cache[cfg] = point
        return point

    def _price(self, cfg, workloads, accuracy, ce, kl) -> ModelPoint:
        prompts = [Candidate({"prompt": i}, wl, cfg.vector_size) for i, wl in enumerate(workloads)]
        pricer = Pricer(prompts, self.objective)
        mean = jax.tree.map(lambda *xs: np.mean(np.stack([np.asarray(x, np.float64) for x in xs]), axis=0), *workloads)
        design = tune_hardware(
            [Candidate({"mean": True}, mean, cfg.vector_size)],
            self.space,
            self.objective,
            steps=16,
            top_k=1,
            round_every=8,
            start=PAPER_DESIGN,
        ).design

        def on(d):
            figures = pricer.price([(i, *d) for i in range(len(prompts))])
            return float(figures[:, 0].mean()), float(figures[:, 1].mean())

        st = mean.focus
        kept = float(np.asarray(st.kept_tokens)[-1, -1] / float(mean.visual_tokens))
        total = np.asarray(st.kept_tokens) * np.asarray(st.vectors_per_token, float)
        similar = float(np.mean(np.asarray(st.similar_vectors) / np.maximum(total, 1.0)))
        return ModelPoint(cfg, accuracy, ce, kl, on(PAPER_DESIGN), tuple(design), on(design), kept, similar)


def compiled_part(cfg: FocusConfig) -> FocusConfig:
    """The part of ``cfg`` an exact prefill is compiled for: everything but the SIC threshold.

    The threshold travels in the knobs (``FocusKnobs``, traced), so configurations that differ
    only there share one compile; the SEC schedule, vector size and block sizes change the
    compiled shapes (``ModelEvaluator.evaluate``, ``model_job.evaluate_by_schedule``).
    """
    return cfg.replace(similarity_threshold=1.0)


def outer_configs(base: FocusConfig, vector_sizes=None, block_sizes=None) -> list[FocusConfig]:
    """``base`` at every (SIC vector size, SIC block size) pair, vector-size-major: the model path's
    outer enumeration (as the hardware path's over the DSE workloads, ``dse.dse_candidates``).

    Both change compiled shapes, so the tuner searches the rest once per pair instead of
    relaxing them. ``block_sizes`` sets ``FocusConfig.block_size`` (the spatial window; the
    frame window stays ``base``'s). A vector size that does not divide a GEMM input's width
    is valid: that input is zero-padded to whole vectors (spec, "SIC" step 1).

    Args:
        base: the configuration every pair starts from (the shipped one).
        vector_sizes, block_sizes: values to enumerate; None: ``base``'s own only.

    Returns:
        One configuration per distinct pair, in enumeration order.

    Raises:
        InputError: an empty list, or a value ``FocusConfig`` refuses (not an integer >= 1).
    """
    vectors = (base.vector_size,) if vector_sizes is None else tuple(vector_sizes)
    blocks = (base.block_size,) if block_sizes is None else tuple(block_sizes)
    if not vectors or not blocks:
        raise InputError("the outer enumeration needs at least one vector size and one block size")
    out = []
    for v, b in itertools.product(vectors, blocks):
        try:
            cfg = base.replace(vector_size=v, block_size=b)
        except InputError as exc:
            raise InputError(f"outer pair vector size {v!r}, block size {b!r}: {exc}") from None
        if cfg not in out:
            out.append(cfg)
    return out


def sec_placement(layers: Sequence[int], keeps, visual_tokens: int | None = None) -> tuple[tuple, tuple]:
    """Keep ratios at candidate SEC layers -> the SEC schedule a ``FocusConfig`` holds.

    This is how the tuner places SEC: every candidate layer has a keep ratio, and 1.0
    means "no SEC here". Ratios are relative to the original visual tokens (as
    ``FocusConfig.sec_alphas``), so the effective ratio at a layer is the running minimum;
    a layer whose effective ratio does not fall below the previous one's prunes nothing and
    is dropped. With ``visual_tokens`` (``N``), each ratio is first rounded to a whole
    number of tokens ``k / N`` (at least one), written so that the exact path's
    ``int(N * alpha)`` gives back ``k``.

    Args:
        layers: strictly increasing candidate SEC layers; keeps: one ratio per layer.

    Returns:
        ``(sec_layers, sec_alphas)``, possibly empty.
    """
    out_layers, out_alphas, current = [], [], 1.0
    n = None if visual_tokens is None else max(1, int(visual_tokens))
    for layer, keep in zip(layers, np.asarray(keeps, np.float64).reshape(-1), strict=True):
        a = float(np.clip(keep, 0.0, 1.0))
        if n is not None:
            k = max(1, int(round(a * n)))
            a = k / n
            while int(n * a) < k:  # k / N * N may land one ulp below k
                a = float(np.nextafter(a, 2.0))
        a = max(a, 1e-6)
        if a < current:
            out_layers.append(int(layer))
            out_alphas.append(a)
            current = a
    return tuple(out_layers), tuple(out_alphas)


def grid_configs(
    base: FocusConfig,
    thresholds: Sequence[float],
    keeps: Sequence[float],
    sec_layers: Sequence[int] | None = None,
    vector_sizes: Sequence[int] | None = None,
    block_sizes: Sequence[int] | None = None,
) -> list[FocusConfig]:
    """The full factorial grid in enumeration order: every (vector size, block size) pair
    (``outer_configs``; None: ``base``'s) x every global SIC threshold x every SEC keep ratio.

    Without ``sec_layers`` the keep ratio is that of the last SEC layer of ``base`` (``keeps``
    ignored without SEC). With ``sec_layers`` (the tuner's candidate layers) every
    non-increasing tuple of ``keeps`` over those layers, placed by ``sec_placement``: the
    same space the tuner searches. Duplicate configurations are listed once.

    Raises:
        InputError: a threshold outside [-1, 1], a keep ratio outside (0, 1], or as ``outer_configs``.
    """
    return [
        cfg
        for outer in outer_configs(base, vector_sizes, block_sizes)
        for cfg in _inner_grid(outer, thresholds, keeps, sec_layers)
    ]


def _inner_grid(base: FocusConfig, thresholds, keeps, sec_layers) -> list[FocusConfig]:
    """``grid_configs`` at ``base``'s vector and block sizes."""
    if sec_layers is not None:
        ordered = sorted({float(k) for k in keeps}, reverse=True)
        schedules = [
            sec_placement(sec_layers, t) for t in itertools.combinations_with_replacement(ordered, len(sec_layers))
        ]
    elif base.sec_layers:
        schedules = [(base.sec_layers, base.sec_alphas[:-1] + (float(k),)) for k in keeps]
    else:
        schedules = [(base.sec_layers, base.sec_alphas)]
    out = []
    for thr, (layers, alphas) in itertools.product(thresholds, schedules):
        try:
            cfg = base.replace(similarity_threshold=float(thr), sec_layers=layers, sec_alphas=alphas)
        except ValueError as exc:
            raise InputError(f"grid point threshold {thr}, keep {list(alphas)}: {exc}") from None
        if cfg not in out:
            out.append(cfg)
    return out
