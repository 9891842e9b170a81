"""Gradient co-tuning of Focus knobs and the accelerator on a calibration set (the model path).

The loss of one step is

    KL(dense || relaxed Focus) of the answer distribution                  (nats / question)
    + lambda * cost(relaxed Focus on TunableHardware) / reference cost

where the relaxed forward (``LlavaOnevision.forward(..., knobs, relaxed=True,
return_trace=True)``) gives soft answer logits and a trace of expected counts, each
prompt's workload is ``costmodel.Workload.from_trace`` of it and the cost is
``costmodel.evaluate(..., mode="relaxed")`` averaged over prompts: gradients flow into the
``TunableFocus`` thresholds and keep ratios through the model and the cost model, and into
the ``TunableHardware`` coordinates through the cost model. Adam (``nnx.Optimizer``).

SEC placement is tuned with the keep ratios: every candidate layer (default every decoder
layer but the first) carries a keep ratio, 1.0 meaning "no SEC here", and the relaxed SEC
prunes softly wherever a ratio drops below the running minimum (``sec_placement``). The
start (default the model's shipped configuration) is its schedule spread over the candidate
layers, so it prices and scores exactly as itself. Vector and block sizes stay the start's
(they change compiled shapes; ``model_job.run_model_search`` enumerates them outside).

Every ``round_every`` steps and at the end the knobs are rounded to a ``FocusConfig``
(``FocusKnobs.to_config``: one global threshold, rounded to ``THRESHOLD_STEP``; keep ratios
to whole tokens, placed by ``sec_placement``), evaluated exactly (``ModelEvaluator``: one model evaluation, its
hardware re-tuned for the exact workload), and the search continues from the rounded
point (DOSA). Early stopping: ``patience`` roundings without a better exact objective.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import costmodel as cm
from focus_jax.config import FocusConfig
from focus_jax.tuning.hardware import adam, objective_value
from focus_jax.tuning.knobs import TunableFocus, TunableHardware, project
from focus_jax.tuning.model import ModelEvaluator, ModelPoint, search_objective, sec_placement

__all__ = ["THRESHOLD_STEP", "FocusTuneResult", "round_config", "sec_candidates", "spread_schedule", "tune_focus"]

#: Resolution of a rounded threshold.
THRESHOLD_STEP = 1e-3


class Tunables(nnx.Module):
    """The knobs tuned together: ``focus`` (``TunableFocus``) and ``hardware`` (``TunableHardware``)."""

    def __init__(self, focus: TunableFocus, hardware: TunableHardware):
        self.focus = focus
        self.hardware = hardware


@dataclasses.dataclass(frozen=True)
class FocusTuneResult:
    """Outcome of ``tune_focus``.

    Attributes:
        best: the best exactly evaluated ``ModelPoint``; score: its ``search_objective``.
        evaluations: model evaluations spent (relaxed steps + exact roundings).
        trajectory: one dict per step: ``step``, ``loss``, ``kl``, ``latency_s``,
            ``energy_mJ`` (relaxed), ``threshold`` (mean), ``keep``; rounded steps add
            ``exact`` (score), ``accuracy`` and the rounded ``focus``.
        stopped_early: early stopping ended the run.
        wall_s: seconds.
    """

    best: ModelPoint
    score: float
    evaluations: int
    trajectory: tuple
    stopped_early: bool
    wall_s: float


def sec_candidates(cfg: FocusConfig, num_layers: int, layers=None) -> tuple[int, ...]:
    """The layers the tuner may place SEC at: ``layers`` (default every layer from 1 to
    ``num_layers - 1``; the paper never prunes after the first layer) plus ``cfg``'s own SEC layers.

    Raises:
        ValueError: a layer outside ``[0, num_layers)``.
    """
    chosen = set(range(1, num_layers) if layers is None else (int(x) for x in layers)) | set(cfg.sec_layers)
    if any(not 0 <= x < num_layers for x in chosen):
        raise ValueError(f"SEC candidate layers must lie in [0, {num_layers}), got {sorted(chosen)}")
    return tuple(sorted(chosen))


def spread_schedule(cfg: FocusConfig, layers: tuple[int, ...]) -> FocusConfig:
    """``cfg`` with its SEC schedule spread over ``layers`` (a superset of ``cfg.sec_layers``):
    each layer's ratio is the one in effect there (1.0 before the first SEC layer), so the
    exact path keeps the same tokens everywhere (an SEC layer keeping ``int(N * alpha)`` >= the
    kept tokens keeps them all)."""
    alphas, current = [], 1.0
    own = dict(zip(cfg.sec_layers, cfg.sec_alphas))
    for layer in layers:
        current = min(current, own.get(layer, current))
        alphas.append(current)
    return cfg.replace(sec_layers=tuple(layers), sec_alphas=tuple(alphas))


def round_config(base: FocusConfig, thresholds, keep, visual_tokens: int, layers=None) -> FocusConfig:
    """Concrete knobs -> the nearest ``FocusConfig`` the exact path and the design file hold.

    One global threshold (the mean, ``FocusKnobs.to_config``'s rule) rounded to
    ``THRESHOLD_STEP``; each keep ratio to a whole number of tokens of ``visual_tokens``, at
    ``layers`` (default ``base.sec_layers``; one ratio each), placed by ``sec_placement``.
    """
    thr = float(np.clip(np.round(np.mean(np.asarray(thresholds, np.float64)) / THRESHOLD_STEP) * THRESHOLD_STEP, -1, 1))
    sec_layers, alphas = sec_placement(base.sec_layers if layers is None else layers, keep, visual_tokens)
    return base.replace(similarity_threshold=round(thr, 6), sec_layers=sec_layers, sec_alphas=alphas)


def _at_the_edge(spread: FocusConfig, visual_tokens: int, keep_bounds) -> FocusConfig:
    """``spread`` with every candidate layer that prunes nothing moved to prune two tokens.

    A layer at its running ratio sits where the relaxed SEC's soft top-k keeps every token
    with weight ~1 (``soft_top_k``'s boundary lies below the least important token): its
    keep ratio gets no gradient and would never move. Two tokens below, the boundary lies
    among real importances, so the gradient says whether pruning there pays; rounding
    (``sec_placement``, whole tokens) still gives the unpruned schedule if the search
    leaves it there.
    """
    edge = 2.0 / max(1, int(visual_tokens))
    alphas, previous = [], 1.0
    for a in spread.sec_alphas:
        alphas.append(float(max(keep_bounds[0], a - edge)) if a >= previous else a)
        previous = a
    return spread.replace(sec_alphas=tuple(alphas))


@functools.cache
def _prompt_costs(objective: str, temperature: float):
    """Jitted relaxed cost of every prompt of a batch: ``(time_s (B,), energy_mJ (B,))``."""

    def one(hw, template, kept, zero, similar, text):
        stats = cm.FocusStats(kept, zero, similar, template.focus.vectors_per_token)
        r = cm.evaluate(hw, template.replace(text_tokens=text, focus=stats), mode="relaxed", temperature=temperature)
        return r.time_s, r.energy_total_mJ

    return jax.jit(jax.vmap(one, in_axes=(None, None, 0, 0, 0, 0)))


def tune_focus(
    evaluator: ModelEvaluator,
    objective: str = "latency",
    lam: float = 1.0,
    reference: float | None = None,
    *,
    steps: int = 10,
    learning_rate: float = 0.05,
    temperature: float = 0.05,
    granularity: str = "global",
    round_every: int = 2,
    patience: int = 2,
    threshold_bounds=(0.85, 1.0),
    keep_bounds=(0.02, 1.0),
    sec_layers=None,
    start: FocusConfig | None = None,
    on_step=None,
) -> FocusTuneResult:
    """Co-tune the Focus knobs and the accelerator of ``evaluator.model`` (see the module docstring).

    Args:
        evaluator: the calibration-set ``ModelEvaluator``.
        objective, lam, reference: the cost term (``reference``: cost of the start, default
            its exact cost on its tuned design).
        start: the configuration to start from (default ``evaluator.model.focus``); its
            vector and block sizes hold for the whole search (they change compiled shapes:
            ``model_job.run_model_search`` enumerates them outside).
        steps, learning_rate, temperature, granularity, round_every, patience: search settings.
        threshold_bounds, keep_bounds: bounds of the knobs.
        sec_layers: candidate SEC layers (``sec_candidates``; default every layer but the
            first); ``start.sec_layers`` keeps its placement.
        on_step: called with each trajectory entry.

    Raises:
        ValueError: a model without Focus, bad settings (as ``TunableFocus``).
    """
    from focus_jax.knobs import FocusKnobs

    model, calib = evaluator.model, evaluator.calibration
    base = model.focus if start is None else start
    if base is None:
        raise ValueError("tune_focus needs a model with a Focus configuration to start from")
    if steps < 1 or round_every < 1 or patience < 1:
        raise ValueError("steps, round_every and patience must be >= 1")
    began = time.perf_counter()
    spent_before = evaluator.evaluations
    start_point = evaluator.evaluate(base)
    reference = start_point.cost(objective) if reference is None else reference
    num_layers = model.config.text.num_layers
    layers = sec_candidates(base, num_layers, sec_layers)
    visual_tokens = (
        model.config.video_token_count(calib.batches[0]["pixel_values_videos"].shape[1]) - 1
    )  # grid, no newline
    spread = spread_schedule(base, layers)
    relaxed_model = model.with_focus(spread)  # SEC hooks at every candidate layer
    tun = Tunables(
        TunableFocus(spread, num_layers, granularity, threshold_bounds, keep_bounds),
        TunableHardware(evaluator.space, start_point.design),
    )
    tun.focus.set(_at_the_edge(spread, visual_tokens, keep_bounds))
    optimizer = nnx.Optimizer(tun, adam(float(learning_rate)), wrt=nnx.Param)
    base_hw = cm.focus()
    costs = _prompt_costs(objective, float(temperature))
    n = len(calib.answers)
    relaxed_steps = 0
    best, best_score = start_point, search_objective(start_point, objective, lam, reference)
    since_best, stopped, trajectory = 0, False, []

    def loss_fn(t: Tunables):
        knobs = FocusKnobs(**t.focus())
        hw = t.hardware(base_hw)
        kl, times, energies, row = 0.0, [], [], 0
        for batch in calib.batches:
            logits, trace = relaxed_model.forward(
                batch["input_ids"],
                pixel_values_videos=batch["pixel_values_videos"],
                attention_mask=batch["attention_mask"],
                knobs=knobs,
                relaxed=True,
                temperature=temperature,
                return_trace=True,
                logits_to_keep=1,
            )
            logp = jax.nn.log_softmax(logits[:, -1].astype(jnp.float32), axis=-1)
            dense = jnp.asarray(evaluator.dense_logp[row : row + logp.shape[0]], jnp.float32)
            kl = kl + jnp.sum(jnp.exp(dense) * (dense - logp))
            row += logp.shape[0]
            template = cm.Workload.from_trace(trace.to_focus_trace(0))
            t_s, e_mJ = costs(
                hw,
                template,
                trace.kept_tokens,
                trace.zero_vectors,
                trace.similar_vectors,
                jnp.asarray(trace.text_tokens, jnp.float32),
            )
            times.append(t_s)
            energies.append(e_mJ)
        time_s, energy = jnp.mean(jnp.concatenate(times)), jnp.mean(jnp.concatenate(energies))
        cost = objective_value(objective, time_s, energy)
        return kl / n + lam * cost / reference, (kl / n, time_s, energy)

    for step in range(steps):
        (value, (kl, time_s, energy)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(tun)
        optimizer.update(tun, grads)
        project(tun)
        relaxed_steps += 1
        entry = {
            "step": step,
            "loss": float(value),
            "kl": float(kl),
            "latency_s": float(time_s),
            "energy_mJ": float(energy),
            "threshold": float(jnp.mean(tun.focus.thresholds())),
            "keep": [float(k) for k in tun.focus.keep()],
        }
        if (step + 1) % round_every == 0 or step == steps - 1:
            cfg = round_config(base, tun.focus.thresholds(), tun.focus.keep(), visual_tokens, layers)
            point = evaluator.evaluate(cfg)
            score = search_objective(point, objective, lam, reference)
            entry |= {"exact": score, "accuracy": point.accuracy, "focus": cfg.to_dict(), "design": list(point.design)}
            if score < best_score - 1e-12:
                best, best_score, since_best = point, score, 0
            else:
                since_best += 1
            tun.focus.set(_at_the_edge(spread_schedule(cfg, layers), visual_tokens, keep_bounds))  # DOSA
            tun.hardware.set(point.design)
        trajectory.append(entry)
        if on_step is not None:
            on_step(entry)
        if since_best >= patience:
            stopped = True
            break
    evaluations = relaxed_steps + evaluator.evaluations - spent_before
    return FocusTuneResult(best, best_score, evaluations, tuple(trajectory), stopped, time.perf_counter() - began)
