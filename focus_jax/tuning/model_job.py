"""``focus-jax tune`` on a model: searches over Focus configurations, held-out check, Pareto plot.

Every search is counted in model evaluations (forward passes over the calibration set,
``ModelEvaluator``) and scored by ``search_objective`` (KL to dense + lambda x modeled cost
/ the shipped configuration's cost). The reference points are the configuration shipped
with the model (``focus_config.json``) and the paper's default schedule scaled to the
model (for the 4-layer demo: SEC after layers 1 and 2 keeping 50 % / 25 %, SIC 0.9, as
``focus_jax.demo_model`` describes it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from focus_jax.config import FocusConfig
from focus_jax.tuning.model import (
    ModelEvaluator,
    ModelPoint,
    compiled_part,
    grid_configs,
    outer_configs,
    search_objective,
)

__all__ = [
    "ACCURACY_TOLERANCE",
    "GRID_KEEPS",
    "GRID_THRESHOLDS",
    "SearchRun",
    "grid_and_random",
    "evaluate_by_schedule",
    "paper_schedule",
    "pareto_front",
    "plot_pareto",
]

#: Accuracy (fraction) a chosen tuned design may lose against the shipped one on the calibration set.
ACCURACY_TOLERANCE = 0.005
#: The exact grid of the model path: global SIC threshold x a keep ratio at every candidate SEC
#: layer (non-increasing; on the 4-layer demo model 7 x 56 = 392 configurations). The keep
#: values reach the tuner's lower bound (0.02) and are dense where pruning starts to cost accuracy.
GRID_THRESHOLDS = (0.9, 0.95, 0.97, 0.975, 0.98, 0.99, 1.0)
GRID_KEEPS = (0.02, 0.25, 0.5, 0.75, 0.9, 1.0)


def paper_schedule(num_layers: int) -> FocusConfig:
    """The paper's default Focus (SIC 0.9, decreasing SEC keep ratios) scaled to ``num_layers``:
    SEC after layers ``L/4`` and ``L/2`` keeping 50 % and 25 % (layers 1 and 2 of 4)."""
    first, second = max(1, num_layers // 4), max(2, num_layers // 2)
    return FocusConfig(similarity_threshold=0.9, sec_layers=(first, second), sec_alphas=(0.5, 0.25))


@dataclasses.dataclass(frozen=True)
class SearchRun:
    """A baseline search: the points it evaluated in order, and its best by ``search_objective``."""

    name: str
    points: tuple
    scores: tuple

    @property
    def evaluations(self) -> int:
        return len(self.points)

    @property
    def best(self) -> ModelPoint:
        return self.points[int(np.argmin(self.scores))]

    def evaluations_to_reach(self, score: float) -> int | None:
        """1-based evaluations until a point scores ``<= score`` (None: never)."""
        hits = np.flatnonzero(np.asarray(self.scores) <= score + 1e-12)
        return int(hits[0]) + 1 if hits.size else None


def grid_and_random(
    evaluator: ModelEvaluator,
    base: FocusConfig,
    objective: str,
    lam: float,
    reference: float,
    random_budget: int,
    seed: int = 0,
    thresholds: Sequence[float] = GRID_THRESHOLDS,
    keeps: Sequence[float] = GRID_KEEPS,
    sec_layers: Sequence[int] | None = None,
    vector_sizes: Sequence[int] | None = None,
    block_sizes: Sequence[int] | None = None,
) -> tuple[SearchRun, SearchRun]:
    """The full grid (every point, enumeration order) and a random search of ``random_budget``
    points drawn without replacement from the same grid (``seed``), both counted in model
    evaluations (a point the evaluator already holds costs the grid nothing twice).

    ``sec_layers``: the tuner's candidate SEC layers, so that the grid places SEC over the
    same layers (``grid_configs``); None: the keep ratio of ``base``'s last SEC layer only.
    ``vector_sizes``, ``block_sizes``: the tuner's outer enumeration (``outer_configs``; None:
    ``base``'s), an outer product with the rest of the grid.
    """
    configs = grid_configs(base, thresholds, keeps, sec_layers, vector_sizes, block_sizes)
    points = tuple(evaluate_by_schedule(evaluator, configs))
    scores = tuple(search_objective(p, objective, lam, reference) for p in points)
    grid = SearchRun("grid", points, scores)
    order = np.random.default_rng(seed).permutation(len(configs))[: max(1, random_budget)]
    rand = SearchRun("random", tuple(points[i] for i in order), tuple(scores[i] for i in order))
    return grid, rand


def evaluate_by_schedule(evaluator: ModelEvaluator, configs: Sequence[FocusConfig]) -> list[ModelPoint]:
    """``evaluator.evaluate`` of every configuration, grouped by compiled part; returned in the given order.

    Each SEC schedule, vector size and block size is its own compiled prefill
    (``compiled_part``) and the evaluator holds only a few (``MAX_COMPILED_SCHEDULES``),
    while the threshold is a traced knob: grouping compiles each part once instead of once
    per threshold (a threshold-major grid over 35 schedules compiled 245 prefills). Groups
    run in order of first appearance, each in the given order. Results and counts are those
    of any order (each configuration is one evaluation, cached).
    """
    groups: dict[FocusConfig, list[int]] = {}
    for i, cfg in enumerate(configs):
        groups.setdefault(compiled_part(cfg), []).append(i)
    points = {i: evaluator.evaluate(configs[i]) for group in groups.values() for i in group}
    return [points[i] for i in range(len(configs))]


def pareto_front(points: Sequence[ModelPoint], objective: str) -> list[ModelPoint]:
    """The points no other point beats in both modeled ``objective`` cost and calibration KL (cheapest first)."""
    front, best_kl = [], float("inf")
    for p in sorted(points, key=lambda p: (p.cost(objective), p.kl)):
        if p.kl < best_kl:
            front.append(p)
            best_kl = p.kl
    return front


def plot_pareto(series: dict, path: Path, objective: str = "latency") -> Path:
    """Held-out accuracy vs modeled cost (PNG).

    Args:
        series: ``{label: [(cost, accuracy), ...]}``; a label with one point is drawn as a
            marker, with several as a scatter (lines for labels starting with "tuned").
        path: the PNG to write.
        objective: x-axis quantity (``latency`` in ms, ``energy`` in mJ, ``edp``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale, unit = {
        "latency": (1e3, "modeled latency (ms)"),
        "energy": (1.0, "modeled energy (mJ)"),
        "edp": (1e3, "modeled EDP (ms x mJ)"),
    }[objective]
    markers = {"shipped": ("*", 14), "paper schedule": ("s", 9)}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pts in series.items():
        pts = sorted(pts)
        x = [p[0] * scale for p in pts]
        y = [100 * p[1] for p in pts]
        if label in markers:
            ax.plot(x, y, markers[label][0], markersize=markers[label][1], label=label)
        elif label.startswith("tuned"):
            ax.plot(x, y, "o-", linewidth=2, label=label)
        else:
            ax.plot(x, y, ".", alpha=0.6, label=label)
    ax.set_xscale("log")
    ax.set_xlabel(unit + ", corrected mode")
    ax.set_ylabel("held-out accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Focus co-tuning: accuracy vs modeled cost")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _figures(point: ModelPoint, held: ModelPoint | None) -> dict:
    """``--json`` figures of a point: held-out accuracy, cost on its tuned design and on the paper's."""
    return {
        "accuracy": None if held is None else held.accuracy,
        "calibration_accuracy": point.accuracy,
        "kl": point.kl,
        "latency_s": point.tuned[0],
        "energy_mJ": point.tuned[1],
        "edp": point.tuned[0] * point.tuned[1],
        "design": list(point.design),
        "paper_hardware": {
            "latency_s": point.paper[0],
            "energy_mJ": point.paper[1],
            "edp": point.paper[0] * point.paper[1],
        },
        "focus": point.focus.to_dict(),
    }


def run_model_search(
    model,
    objective: str = "latency",
    lambdas: Sequence[float] = (1.0,),
    calibration: int = 64,
    seed: int = 0,
    baselines: bool = True,
    out: Path | None = None,
    pareto: Path | None = None,
    steps: int = 20,
    heldout: int | None = None,
    thresholds=GRID_THRESHOLDS,
    keeps=GRID_KEEPS,
    tuner_options: dict | None = None,
    on_eval=None,
    vector_sizes: Sequence[int] | None = None,
    block_sizes: Sequence[int] | None = None,
) -> dict:
    """Gradient co-tuning per lambda, the reference points, grid and random search, held-out check,
    design file and Pareto plot.

    Args:
        model: a ``LlavaOnevision`` with its shipped ``focus`` (load it with
            ``mesh=model.data_mesh()`` to split the batch over every device).
        objective: ``latency``, ``energy`` or ``edp``; lambdas: trade-off weights (the cost
            term is ``lambda x cost / shipped cost``).
        calibration, heldout: questions of each set (held-out default: as many).
        steps: gradient steps per lambda and outer pair (``focus_tuner.tune_focus``;
            ``tuner_options`` more).
        vector_sizes, block_sizes: SIC vector sizes and (spatial) block sizes enumerated
            outside the gradient search (``outer_configs``: every pair, each tuned from the
            shipped configuration at that pair; None: the shipped value only). A lambda's
            result is the pair with the best search objective; every pair's evaluations count.
        baselines: run the grid and random search (same space, outer pairs included, same objective).
        out: design file of the chosen tuned point: the cheapest whose *calibration*
            accuracy is within ``ACCURACY_TOLERANCE`` of the shipped configuration's, else the
            most accurate one. The held-out set plays no part in the choice, so its figures
            are an unbiased check of the chosen design.
        pareto: PNG of held-out accuracy vs modeled cost (None: no plot).
        on_eval: progress callback (evaluations so far).

    Returns:
        The ``--json`` object: ``evaluations`` (the chosen lambda's, all pairs), ``grid_evaluations`` /
        ``random_evaluations`` (model evaluations the grid, in enumeration order, and random
        search, median of 10 seeds, need to score as well as it; None: never),
        ``tuned`` / ``baseline`` / ``paper_schedule`` / ``grid`` / ``random`` figures,
        ``lambdas`` (per-lambda details; ``outer``: per pair ``vector_size``, ``block_size``,
        ``score``, ``evaluations``, ``stopped_early``), ``design``, ``pareto``.
    """
    from focus_jax.design import Design, HardwareDesign
    from focus_jax.qa_eval import EVAL_SEED
    from focus_jax.tuning.focus_tuner import sec_candidates, tune_focus
    from focus_jax.tuning.model import CalibrationSet

    shipped_cfg = model.focus
    if shipped_cfg is None:
        raise ValueError("the model has no Focus configuration to start from (focus_config.json)")
    starts = outer_configs(shipped_cfg, vector_sizes, block_sizes)
    cal = ModelEvaluator(model, CalibrationSet.build(model.config, calibration), objective)
    held = ModelEvaluator(model, CalibrationSet.build(model.config, heldout or calibration, seed=EVAL_SEED), objective)
    paper_cfg = paper_schedule(model.config.text.num_layers)
    shipped, paper = cal.evaluate(shipped_cfg), cal.evaluate(paper_cfg)
    reference = shipped.cost(objective)

    def acc(point):
        return held.evaluate(point.focus).accuracy

    series = {
        "shipped": [(shipped.cost(objective), acc(shipped))],
        "paper schedule": [(paper.cost(objective), acc(paper))],
    }
    options = dict(tuner_options or {})
    layers = sec_candidates(shipped_cfg, model.config.text.num_layers, options.pop("sec_layers", None))
    runs, fronts = {}, {}
    for lam in lambdas:
        pairs = [
            tune_focus(
                cal,
                objective,
                lam,
                reference,
                steps=steps,
                on_step=lambda e: on_eval and on_eval(cal.evaluations),
                sec_layers=layers,
                start=start,
                **options,
            )
            for start in starts
        ]
        tuned = min(pairs, key=lambda r: r.score)  # ties: the first pair in enumeration order
        evaluations = sum(r.evaluations for r in pairs)
        entry = {
            "evaluations": evaluations,
            "outer": [
                {
                    "vector_size": start.vector_size,
                    "block_size": start.block_size,
                    "score": r.score,
                    "evaluations": r.evaluations,
                    "stopped_early": r.stopped_early,
                }
                for start, r in zip(starts, pairs)
            ],
            "score": tuned.score,
            "stopped_early": tuned.stopped_early,
            "tuned": _figures(tuned.best, held.evaluate(tuned.best.focus)),
            "trajectory": list(tuned.trajectory),
        }
        if baselines:
            grid, rand = grid_and_random(
                cal,
                shipped_cfg,
                objective,
                lam,
                reference,
                evaluations,
                seed,
                thresholds,
                keeps,
                layers,
                vector_sizes,
                block_sizes,
            )
            reaches = []
            for s in range(seed, seed + 10):
                order = np.random.default_rng(s).permutation(grid.evaluations)
                r = SearchRun("random", tuple(grid.points[i] for i in order), tuple(grid.scores[i] for i in order))
                reaches.append(r.evaluations_to_reach(tuned.score) or grid.evaluations)
            entry |= {
                "grid_size": grid.evaluations,
                "grid_evaluations": grid.evaluations_to_reach(tuned.score),
                "random_evaluations": float(np.median(reaches)),
                "grid": _figures(grid.best, held.evaluate(grid.best.focus)),
                "random": _figures(rand.best, held.evaluate(rand.best.focus)),
            }
            for label, run in (("grid (Pareto front)", grid), ("random search (Pareto front)", rand)):
                fronts.setdefault(label, {}).update((p.focus, p) for p in pareto_front(run.points, objective))
        series.setdefault("tuned (lambda sweep)", []).append((tuned.best.cost(objective), acc(tuned.best)))
        runs[lam] = (tuned, entry)
        if on_eval is not None:
            on_eval(cal.evaluations)
    # held-out accuracy of each search's calibration Pareto front only (every lambda's, each point
    # once): the whole grid on the held-out set would cost as many evaluations again for points
    # nobody would pick
    for label, front in fronts.items():
        checked = evaluate_by_schedule(held, list(front))
        series[label] = [(p.cost(objective), h.accuracy) for p, h in zip(front.values(), checked)]
    baseline = _figures(shipped, held.evaluate(shipped_cfg))
    ok = [lam for lam, (t, _) in runs.items() if t.best.accuracy >= shipped.accuracy - ACCURACY_TOLERANCE]
    if ok:
        chosen = min(ok, key=lambda lam: runs[lam][0].best.cost(objective))
    else:
        chosen = max(runs, key=lambda lam: runs[lam][0].best.accuracy)
    tuned, entry = runs[chosen]
    result = {
        "objective": objective,
        "calibration": calibration,
        "held_out": heldout or calibration,
        "dense_accuracy": held.dense_accuracy(),
        "lambda": chosen,
        "evaluations": entry["evaluations"],
        "grid_evaluations": entry.get("grid_evaluations"),
        "random_evaluations": entry.get("random_evaluations"),
        "grid_size": entry.get("grid_size"),
        "tuned": entry["tuned"],
        "baseline": baseline,
        "paper_schedule": _figures(paper, held.evaluate(paper_cfg)),
        "grid": entry.get("grid"),
        "random": entry.get("random"),
        "lambdas": {str(lam): e for lam, (_, e) in runs.items()},
        "total_evaluations": cal.evaluations,
        "held_out_evaluations": held.evaluations,
    }
    if out is not None:
        best = tuned.best
        design = Design(
            best.focus,
            HardwareDesign.from_costmodel(model_design_hardware(best), best.focus.vector_size),
            {
                "name": objective,
                "lambda": chosen,
                "mode": "corrected",
                **{k: entry["tuned"][k] for k in ("accuracy", "latency_s", "energy_mJ", "edp")},
            },
            {
                "search": "model",
                "calibration": calibration,
                "calibration_seed": cal.calibration.seed,
                "held_out_seed": held.calibration.seed,
                "steps": steps,
                "seed": seed,
                "vector_sizes": sorted({c.vector_size for c in starts}),
                "block_sizes": sorted({c.block_size for c in starts}),
                "evaluations": entry["evaluations"],
                "version": _version(),
            },
        )
        result["design"] = str(design.save(out))
    if pareto is not None:
        result["pareto"] = str(plot_pareto(series, pareto, objective))
    return result


def _version() -> str:
    import focus_jax

    return focus_jax.__version__


def model_design_hardware(point: ModelPoint):
    """The Focus ``costmodel.Hardware`` of a point's tuned design."""
    import costmodel as cm

    m, s, g = point.design
    return cm.focus(m_tile=m, scatter_vectors=s, gather_block=g)
