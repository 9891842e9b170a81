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
from focus_jax.tuning.model import ModelEvaluator, ModelPoint, grid_configs, search_objective

__all__ = [
    "GRID_KEEPS",
    "GRID_THRESHOLDS",
    "SearchRun",
    "grid_and_random",
    "paper_schedule",
    "plot_pareto",
]

#: The exact grid of the model path: global SIC threshold x keep ratio of the last SEC layer.
GRID_THRESHOLDS = (0.9, 0.95, 0.97, 0.975, 0.98, 0.99, 1.0)
GRID_KEEPS = (0.05, 0.1, 0.25, 0.5, 1.0)


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


def grid_and_random(evaluator: ModelEvaluator, base: FocusConfig, objective: str, lam: float, reference: float,
                    random_budget: int, seed: int = 0, thresholds: Sequence[float] = GRID_THRESHOLDS,
                    keeps: Sequence[float] = GRID_KEEPS) -> tuple[SearchRun, SearchRun]:
    """The full grid (every point, enumeration order) and a random search of ``random_budget``
    points drawn without replacement from the same grid (``seed``), both counted in model
    evaluations (a point the evaluator already holds costs the grid nothing twice).
    """
    configs = grid_configs(base, thresholds, keeps)
    points = tuple(evaluator.evaluate(c) for c in configs)
    scores = tuple(search_objective(p, objective, lam, reference) for p in points)
    grid = SearchRun("grid", points, scores)
    order = np.random.default_rng(seed).permutation(len(configs))[: max(1, random_budget)]
    rand = SearchRun("random", tuple(points[i] for i in order), tuple(scores[i] for i in order))
    return grid, rand


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

    scale, unit = {"latency": (1e3, "modeled latency (ms)"), "energy": (1.0, "modeled energy (mJ)"),
                   "edp": (1e3, "modeled EDP (ms x mJ)")}[objective]
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
        "paper_hardware": {"latency_s": point.paper[0], "energy_mJ": point.paper[1], "edp": point.paper[0] * point.paper[1]},
        "focus": point.focus.to_dict(),
    }


def run_model_search(model, objective: str = "latency", lambdas: Sequence[float] = (1.0,), calibration: int = 64,
                     seed: int = 0, baselines: bool = True, random_budget: int | None = None, out: Path | None = None,
                     pareto: Path | None = None, thresholds=GRID_THRESHOLDS, keeps=GRID_KEEPS, on_eval=None) -> dict:
    """Reference points, grid and random search on a model, held-out check, design file, Pareto plot.

    Args:
        model: a ``LlavaOnevision`` (load it with ``mesh=data_mesh()`` to split the batch over
            every device); its calibration and held-out sets have ``calibration`` questions each.
        objective: ``latency``, ``energy`` or ``edp``; lambdas: the trade-off weights.
        random_budget: random-search evaluations (default a tenth of the grid).
        out: design file of the best point found (None: not written).
        pareto: PNG path (None: no plot).
        on_eval: called with the number of calibration evaluations after each one.

    Returns:
        The ``--json`` object (see the command).
    """
    from focus_jax.design import Design, HardwareDesign
    from focus_jax.qa_eval import EVAL_SEED
    from focus_jax.tuning.model import CalibrationSet

    cal = ModelEvaluator(model, CalibrationSet.build(model.config, calibration), objective)
    held = ModelEvaluator(model, CalibrationSet.build(model.config, calibration, seed=EVAL_SEED), objective)
    shipped_cfg = model.focus
    if shipped_cfg is None:
        raise ValueError("the model has no Focus configuration to start from (focus_config.json)")
    paper_cfg = paper_schedule(model.config.text.num_layers)
    counted = _counting(cal, on_eval)
    shipped, paper = counted(shipped_cfg), counted(paper_cfg)
    reference = shipped.cost(objective)
    result = {"objective": objective, "calibration": calibration, "held_out": calibration,
              "dense_accuracy": held.dense_accuracy(), "lambdas": {}}
    series = {"shipped": [(shipped.cost(objective), held.evaluate(shipped_cfg).accuracy)],
              "paper schedule": [(paper.cost(objective), held.evaluate(paper_cfg).accuracy)]}
    best_overall = shipped
    for lam in lambdas:
        entry = {"baseline": _figures(shipped, held.evaluate(shipped_cfg))}
        if baselines:
            budget = random_budget or max(1, len(thresholds) * len(keeps) // 10)
            grid, rand = grid_and_random(_Counted(cal, on_eval), shipped_cfg, objective, lam, reference, budget, seed,
                                         thresholds, keeps)
            entry["grid"] = _figures(grid.best, held.evaluate(grid.best.focus))
            entry["random"] = _figures(rand.best, held.evaluate(rand.best.focus))
            entry["grid_evaluations"] = grid.evaluations
            entry["random_evaluations"] = rand.evaluations
            series.setdefault("grid", []).extend((p.cost(objective), held.evaluate(p.focus).accuracy) for p in grid.points)
            if search_objective(grid.best, objective, lam, reference) < search_objective(best_overall, objective, lam, reference):
                best_overall = grid.best
        result["lambdas"][str(lam)] = entry
    result["evaluations"] = cal.evaluations
    result["baseline"] = _figures(shipped, held.evaluate(shipped_cfg))
    result["paper_schedule"] = _figures(paper, held.evaluate(paper_cfg))
    result["best"] = _figures(best_overall, held.evaluate(best_overall.focus))
    if out is not None:
        hw = model_design_hardware(best_overall)
        design = Design(best_overall.focus, HardwareDesign.from_costmodel(hw, best_overall.focus.vector_size),
                        {"name": objective, "mode": "corrected", **{k: result["best"][k] for k in ("latency_s", "energy_mJ", "edp")}},
                        {"search": "model", "calibration": calibration, "calibration_seed": cal.calibration.seed,
                         "seed": seed, "evaluations": cal.evaluations})
        result["design"] = str(design.save(out))
    if pareto is not None:
        result["pareto"] = str(plot_pareto(series, pareto, objective))
    return result


def model_design_hardware(point: ModelPoint):
    """The Focus ``costmodel.Hardware`` of a point's tuned design."""
    import costmodel as cm

    m, s, g = point.design
    return cm.focus(m_tile=m, scatter_vectors=s, gather_block=g)


class _Counted:
    """An evaluator proxy that reports progress after each new evaluation."""

    def __init__(self, evaluator: ModelEvaluator, on_eval):
        self.evaluator, self.on_eval = evaluator, on_eval

    def evaluate(self, cfg):
        point = self.evaluator.evaluate(cfg)
        if self.on_eval is not None:
            self.on_eval(self.evaluator.evaluations)
        return point


def _counting(evaluator, on_eval):
    return _Counted(evaluator, on_eval).evaluate
