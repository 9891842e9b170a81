"""``focus-jax tune --hardware-only``: tune the accelerator for a workload, compare with the
baselines and the paper's DSE, and write the design file.

The workload is the paper's DSE (LLaVA-Video-7B / VideoMME SEC schedule, every vector
size and block size as an outer candidate, ``focus_jax.tuning.dse``), or a fixed one: a
``focus-jax`` trace, or an SEC schedule plus one similar-vector fraction. No weights are
needed, so this is the path for full-size models.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

import costmodel as cm
import focus_jax
from focus_jax.config import FocusConfig, paper_config
from focus_jax.design import Design, HardwareDesign
from focus_jax.errors import InputError
from focus_jax.tuning import dse
from focus_jax.tuning.dse import Candidate
from focus_jax.tuning.hardware import (
    HardwareResult,
    HardwareSpace,
    Pricer,
    evaluations_to_reach,
    grid_search,
    random_search,
    tune_hardware,
)

__all__ = ["RANDOM_SEEDS", "HardwareTuning", "hardware_candidates", "run_hardware_tuning"]

#: Random-search repeats whose median evaluations-to-target is reported.
RANDOM_SEEDS = 10
_PAPER_DESIGN = (1024, 2, 8)
#: Models with an SEC schedule in the paper (``focus_jax/resources/focus.csv``).
_PAPER_MODELS = ("llava_vid", "llava_onevision", "minicpm_v", "qwen2_5_vl")


def hardware_candidates(
    model: str = "llava_vid",
    seq_len: int | None = None,
    trace: Path | None = None,
    similar_fraction: float | None = None,
) -> list[Candidate]:
    """The outer candidates of a hardware-only search.

    - ``trace``: one candidate, the trace's workload (its vector size and blocks are fixed).
    - ``similar_fraction``: one candidate, ``model``'s paper SEC schedule (``paper_config``;
      none, i.e. SIC only, for a model the paper did not run) at ``seq_len`` tokens with
      that similar-vector fraction at vector size 32.
    - otherwise: the paper's DSE (``dse.dse_candidates``; ``model`` must be ``llava_vid``).

    Raises:
        InputError: an unknown model, a model without the paper's DSE, a bad length or
            fraction, or an unreadable trace.
    """
    if trace is not None:
        from focus_jax.trace import FocusTrace

        loaded = FocusTrace.load(trace)
        wl = cm.Workload.from_trace(loaded)
        vs = int(loaded.config.vector_size)
        return [Candidate({"source": str(trace), "vector_size": vs}, wl, vs)]
    if seq_len is not None and seq_len < 1:
        raise InputError(f"--seq-len must be a positive integer, got {seq_len}")
    if similar_fraction is not None:
        if not 0 <= similar_fraction < 1:
            raise InputError(f"--sparsity must lie in [0, 1), got {similar_fraction}")
        try:
            shape = cm.ModelShape.load(model)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        cfg = paper_config(model) if model in _PAPER_MODELS else FocusConfig(sec_layers=(), sec_alphas=())
        t = float(seq_len or 11648)
        stats = cm.FocusStats.from_schedule(shape, t, cfg.sec_layers, cfg.sec_alphas, similar_fraction)
        label = {"model": model, "seq_len": int(t), "similar_fraction": similar_fraction, "vector_size": 32}
        return [Candidate(label, cm.Workload(shape, t, focus=stats), 32)]
    if model != dse.DSE_POINT[0]:
        raise InputError(
            f"the paper's DSE is on {dse.DSE_POINT[0]}; for --model {model} give --sparsity S or --trace FILE"
        )
    return dse.dse_candidates(seq_len)


@dataclasses.dataclass(frozen=True)
class HardwareTuning:
    """Everything one ``tune --hardware-only`` run produced (``to_dict`` is its ``--json``)."""

    tuned: HardwareResult
    baseline: HardwareResult
    grid: HardwareResult | None
    grid_to_reach: int | None
    random_to_reach: float | None
    random_at_budget: HardwareResult | None
    dse_best: dict
    design: Design
    design_path: Path | None
    wall_s: float

    def to_dict(self) -> dict:
        def figures(r: HardwareResult) -> dict:
            return {
                "accuracy": None,
                "latency_s": r.time_s,
                "energy_mJ": r.energy_mJ,
                "edp": r.edp,
                "design": list(r.design),
                "candidate": r.label,
            }

        out = {
            "evaluations": self.tuned.evaluations,
            "grid_evaluations": self.grid.evaluations if self.grid else None,
            "grid_evaluations_to_reach": self.grid_to_reach,
            "random_evaluations": self.random_to_reach,
            "tuned": figures(self.tuned),
            "baseline": figures(self.baseline),
            "grid": figures(self.grid) if self.grid else None,
            "random_at_tuned_budget": figures(self.random_at_budget) if self.random_at_budget else None,
            "design": str(self.design_path) if self.design_path else None,
            "hardware": self.design.hardware.to_dict(),
            "wall_s": self.wall_s,
        }
        if self.dse_best:
            out["dse"] = self.dse_best
        return out


def _dse_comparison(candidates: list[Candidate], tuned: HardwareResult, objective: str) -> dict:
    """Best point of each paper sweep, priced like the tuned design (corrected mode, same workload)."""
    points = dse.dse_sweeps(candidates)
    index = {id(c): i for i, c in enumerate(candidates)}
    pricer = Pricer(candidates, objective)
    designs = [(index[id(p.candidate)], int(p.m_tile), p.scatter_vectors, 8) for p in points]
    priced = pricer.price(designs)
    sweeps = {}
    for p, (t, e, _) in zip(points, priced):
        best = sweeps.get(p.sweep)
        if best is None or t * e < best["edp"]:
            sweeps[p.sweep] = {
                "value": p.value,
                "latency_s": t,
                "energy_mJ": e,
                "edp": t * e,
                "published_edp": p.published_edp,
            }
    published = [p.published_edp for p in points if p.published_edp is not None]
    paper = cm.simulate(tuned.hardware(candidates), candidates[tuned.candidate].workload, mode="paper")
    return {
        "tuned_paper_mode_edp": paper.time_s * paper.energy_total_mJ,
        "full_factorial_evaluations": dse.full_factorial_size(),
        "sweeps": sweeps,
        "tuned_edp": tuned.edp,
        "tuned_beats_every_sweep": all(tuned.edp <= s["edp"] for s in sweeps.values()),
        "best_published_edp": min(published),
    }


def _design(candidate: Candidate, result: HardwareResult, objective: str, steps: int, seed: int) -> Design:
    cfg = paper_config(*dse.DSE_POINT) if "block" in candidate.label else FocusConfig()
    cfg = cfg.replace(vector_size=candidate.vector_size)
    if "block" in candidate.label:
        frames, block = dse.parse_block(candidate.label["block"])
        cfg = cfg.replace(block_size=block, frame_block_size=frames)
    hw = HardwareDesign.from_costmodel(candidate.hardware(*map(float, result.design)), candidate.vector_size)
    return Design(
        cfg,
        hw,
        {
            "name": objective,
            "mode": "corrected",
            "latency_s": result.time_s,
            "energy_mJ": result.energy_mJ,
            "edp": result.edp,
        },
        {
            "search": "hardware-only",
            "candidate": candidate.label,
            "steps": steps,
            "seed": seed,
            "evaluations": result.evaluations,
            "version": focus_jax.__version__,
        },
    )


def run_hardware_tuning(
    candidates: list[Candidate],
    objective: str = "edp",
    steps: int = 24,
    seed: int = 0,
    space: HardwareSpace | None = None,
    baselines: bool = True,
    out: Path | None = None,
    on_step=None,
) -> HardwareTuning:
    """Tune, price the baselines (paper design, full grid, random search) and write the design.

    Args:
        candidates: ``hardware_candidates`` output.
        objective: ``latency``, ``energy`` or ``edp``.
        steps: gradient steps per descended candidate.
        seed: random-search seed (the tuner itself is deterministic).
        space: bounds of m-tile, scatter vectors and gather block (default ``HardwareSpace()``).
        baselines: also run the full grid and random search (seconds: every grid design
            is priced once, vectorised).
        out: design-file path (None: not written).
        on_step: progress callback (``tune_hardware``).
    """
    began = time.perf_counter()
    space = HardwareSpace() if space is None else space
    tuned = tune_hardware(candidates, space, objective, steps=steps, on_step=on_step)
    default = next(
        (
            i
            for i, c in enumerate(candidates)
            if c.label.get("vector_size") == dse.DEFAULT_VECTOR_SIZE
            and c.label.get("block", "2x2x2") == dse.DEFAULT_BLOCK
            and c.label.get("array", "32x32") == "32x32"
        ),
        0,
    )
    pricer = Pricer(candidates, objective)
    base_design = (default, *_PAPER_DESIGN)
    pricer.price([base_design])
    t, e, o = pricer.cache[base_design]
    baseline = HardwareResult(default, candidates[default].label, _PAPER_DESIGN, t, e, o, 1)
    grid = grid_reach = random_reach = random_best = None
    if baselines:
        grid, values = grid_search(candidates, space, objective, pricer=pricer)
        grid_reach = evaluations_to_reach(values, tuned.objective)
        reaches = []
        for s in range(seed, seed + RANDOM_SEEDS):
            result, reach = random_search(candidates, values, tuned.evaluations, s, space, tuned.objective, pricer)
            if s == seed:
                random_best = result
            reaches.append(len(values) if reach is None else reach)
        random_reach = float(np.median(reaches))
    dse_best = _dse_comparison(candidates, tuned, objective) if "block" in candidates[0].label else {}
    design = _design(candidates[tuned.candidate], tuned, objective, steps, seed)
    path = design.save(out) if out is not None else None
    return HardwareTuning(
        tuned,
        baseline,
        grid,
        grid_reach,
        random_reach,
        random_best,
        dse_best,
        design,
        path,
        time.perf_counter() - began,
    )
