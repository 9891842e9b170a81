"""Hardware-only tuning: gradient descent on the relaxed cost model, DOSA style, with baselines.

The inner design fields of a Focus accelerator (m-tile, scatter vectors, gather block) are
tuned by Adam (optax) on ``log objective`` of ``costmodel.evaluate(..., mode="relaxed")``
(smooth floors, ceilings and maxima, so ``jax.grad`` with respect to ``Hardware`` leaves is
finite); the categorical fields (SIC vector size, block size, array shape: each a different
workload or buffer layout) are an outer enumeration of ``Candidate`` points. As in DOSA
(Hong et al., MICRO 2023) the continuous point is rounded to a valid design every few steps
and at the end, the rounded design is priced exactly (``mode="corrected"``) and the search
continues from it; the best exact design wins, and a last coordinate polish tries the
neighbouring values of each integer field.

Every exact pricing of a new design and every relaxed value-and-gradient counts as one
evaluation, so the tuner, ``grid_search`` (the full factorial grid of the same space) and
``random_search`` (uniform samples of it) are compared at equal cost.

Objectives (``OBJECTIVES``): ``latency`` (s), ``energy`` (mJ), ``edp`` (s x mJ).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import costmodel as cm
from focus_jax.tuning.dse import Candidate

__all__ = ["OBJECTIVES", "HardwareResult", "HardwareSpace", "Pricer", "grid_search", "random_search", "tune_hardware"]

OBJECTIVES = ("latency", "energy", "edp")


def objective_value(objective: str, time_s, energy_mJ):
    """``latency`` -> s, ``energy`` -> mJ, ``edp`` -> s x mJ (arrays or numbers).

    Raises:
        ValueError: unknown objective.
    """
    if objective == "latency":
        return time_s
    if objective == "energy":
        return energy_mJ
    if objective == "edp":
        return time_s * energy_mJ
    raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")


@dataclasses.dataclass(frozen=True)
class HardwareSpace:
    """Bounds of the inner (integer) design fields; a field with ``lo == hi`` is fixed.

    Attributes:
        m_tile: ``(lo, hi)`` tokens; valid m-tiles are the powers of two in between (the
            sizes the CACTI table holds exactly, and the paper's sweep values).
        scatter_vectors: ``(lo, hi)`` SIC scatter accumulators (CACTI tabulates 1..6).
        gather_block: ``(lo, hi)`` SIC gather block ``bs`` (cycles per token and n-subtile).

    Raises:
        ValueError: bounds that are not ordered positive integers, m-tile bounds that hold
            no power of two, or scatter vectors outside 1..6.
    """

    m_tile: tuple[int, int] = (32, 16384)
    scatter_vectors: tuple[int, int] = (1, 6)
    gather_block: tuple[int, int] = (1, 16)

    def __post_init__(self):
        for name in ("m_tile", "scatter_vectors", "gather_block"):
            lo, hi = getattr(self, name)
            if isinstance(lo, bool) or not isinstance(lo, int) or not isinstance(hi, int) or not 1 <= lo <= hi:
                raise ValueError(f"HardwareSpace.{name} must be integers 1 <= lo <= hi, got {getattr(self, name)!r}")
        if not self.values()[0]:
            raise ValueError(f"HardwareSpace.m_tile {self.m_tile} holds no power of two")
        if self.scatter_vectors[1] > 6:
            raise ValueError(f"scatter vectors above 6 are outside the CACTI table, got {self.scatter_vectors}")

    def values(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """The valid values of (m-tile, scatter vectors, gather block)."""
        lo, hi = self.m_tile
        ms = tuple(2**k for k in range(math.ceil(math.log2(lo)), math.floor(math.log2(hi)) + 1))
        return (
            ms,
            tuple(range(self.scatter_vectors[0], self.scatter_vectors[1] + 1)),
            tuple(range(self.gather_block[0], self.gather_block[1] + 1)),
        )

    def size(self) -> int:
        """Inner designs per candidate."""
        return math.prod(len(v) for v in self.values())

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the continuous coordinates ``(log2 m, nsv, log2 bs)``."""
        ms, nsv, gb = self.values()
        lo = np.array([math.log2(ms[0]), nsv[0], math.log2(gb[0])])
        hi = np.array([math.log2(ms[-1]), nsv[-1], math.log2(gb[-1])])
        return lo, hi

    def to_coords(self, m_tile, scatter_vectors, gather_block) -> np.ndarray:
        """A design -> continuous coordinates, clipped to the bounds."""
        lo, hi = self.bounds()
        return np.clip(np.array([math.log2(m_tile), scatter_vectors, math.log2(gather_block)], float), lo, hi)

    def round(self, coords) -> tuple[int, int, int]:
        """Continuous coordinates -> the nearest valid design ``(m_tile, scatter_vectors, gather_block)``."""
        ms, nsv, gb = self.values()
        x = np.asarray(coords, float)
        m = min(ms, key=lambda v: abs(math.log2(v) - x[0]))
        s = min(nsv, key=lambda v: abs(v - x[1]))
        g = min(gb, key=lambda v: abs(v - 2.0 ** x[2]))
        return m, s, g

    def neighbours(self, design: tuple[int, int, int]) -> list[tuple[int, int, int]]:
        """Designs one valid value away in one field."""
        out = []
        for axis, vals in enumerate(self.values()):
            i = vals.index(design[axis])
            for j in (i - 1, i + 1):
                if 0 <= j < len(vals):
                    out.append(tuple(vals[j] if a == axis else design[a] for a in range(3)))
        return out


def _structure(c: Candidate) -> tuple:
    """Candidates with equal structure share one compiled evaluation."""
    return (c.vector_size, c.rows, c.cols, c.workload.model, c.workload.decode_tokens)


@functools.cache
def _exact_fn(mode: str):
    def one(hw, wl):
        r = cm.evaluate(hw, wl, mode=mode)
        return r.time_s, r.energy_total_mJ

    return jax.jit(jax.vmap(one))


@functools.cache
def adam(learning_rate: float) -> optax.GradientTransformation:
    """``optax.adam``, one object per learning rate: ``nnx.jit`` caches compiled steps by the
    optimiser's structure, which holds the transformation (a new one would recompile)."""
    return optax.adam(learning_rate)


@functools.cache
def _relaxed_step(objective: str, temperature: float, learning_rate: float):
    """A jitted ``nnx`` training step of a ``TunableHardware`` on ``log objective`` in relaxed mode."""
    from flax import nnx

    from focus_jax.tuning.knobs import train_step

    @nnx.jit
    def step(module, optimizer, base, wl):
        def loss(m):
            r = cm.evaluate(m(base), wl, mode="relaxed", temperature=temperature)
            return jnp.log(objective_value(objective, r.time_s, r.energy_total_mJ))

        return train_step(optimizer, module, loss)  # projected: clips the module into its bounds

    return step


def _stack(trees):
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x, np.float64) for x in xs]), *trees)


class Pricer:
    """Exact pricing (``mode``, 64-bit) of ``(candidate index, m_tile, scatter_vectors, gather_block)``
    designs, with a cache: ``evaluations`` counts each distinct design priced once.

    Args:
        candidates: the outer points.
        objective: one of ``OBJECTIVES``.
        mode: ``"corrected"`` (default) or ``"paper"`` (``costmodel`` modes).
    """

    def __init__(self, candidates: list[Candidate], objective: str = "edp", mode: str = "corrected"):
        objective_value(objective, 1.0, 1.0)
        self.candidates = list(candidates)
        self.objective = objective
        self.mode = mode
        self.cache: dict[tuple, tuple[float, float, float]] = {}
        self.evaluations = 0

    def price(self, designs) -> np.ndarray:
        """``(n, 3)`` array of ``(time_s, energy_mJ, objective)`` for ``designs`` (uncached ones counted)."""
        designs = [tuple(int(v) for v in d) for d in designs]
        todo = sorted({d for d in designs if d not in self.cache})
        groups: dict[tuple, list] = {}
        for d in todo:
            groups.setdefault(_structure(self.candidates[d[0]]), []).append(d)
        for group in groups.values():
            for start in range(0, len(group), 8192):
                self._price_batch(group[start : start + 8192])
        self.evaluations += len(todo)
        return np.array([self.cache[d] for d in designs], float).reshape(-1, 3)

    def _price_batch(self, batch: list[tuple]) -> None:
        n = len(batch)
        # pad to a few distinct batch sizes (each compiles once): powers of two >= 16, then multiples of 1024
        size = max(16, 1 << (n - 1).bit_length()) if n <= 1024 else -(-n // 1024) * 1024
        padded = batch + [batch[-1]] * (size - n)
        first = self.candidates[padded[0][0]]
        base = first.hardware()
        hws = [base.replace(m_tile=float(m), scatter_vectors=float(s), gather_block=float(g)) for _, m, s, g in padded]
        wls = [self.candidates[i].workload for i, *_ in padded]
        with jax.enable_x64(True):
            time_s, energy = (np.asarray(x) for x in _exact_fn(self.mode)(_stack(hws), _stack(wls)))
        obj = objective_value(self.objective, time_s, energy)
        for d, t, e, o in zip(batch, time_s[:n], energy[:n], obj[:n]):
            self.cache[d] = (float(t), float(e), float(o))


@dataclasses.dataclass(frozen=True)
class HardwareResult:
    """Outcome of a hardware search.

    Attributes:
        candidate: index of the winning outer point; label: its label.
        design: ``(m_tile, scatter_vectors, gather_block)`` integers.
        time_s, energy_mJ, objective: exact figures of the winner (``Pricer.mode``).
        evaluations: evaluations spent (see module docstring).
        trajectory: one dict per step (tuner) with ``candidate``, ``step``, ``relaxed``
            objective, the rounded design and its exact objective where priced.
        wall_s: seconds.
    """

    candidate: int
    label: dict
    design: tuple
    time_s: float
    energy_mJ: float
    objective: float
    evaluations: int
    trajectory: tuple = ()
    wall_s: float = 0.0

    @property
    def edp(self) -> float:
        return self.time_s * self.energy_mJ

    def hardware(self, candidates: list[Candidate]) -> cm.Hardware:
        """The winner as a ``costmodel.Hardware``."""
        m, s, g = self.design
        return candidates[self.candidate].hardware(float(m), float(s), float(g))


def _result(pricer: Pricer, best: tuple, evaluations: int, trajectory=(), wall_s=0.0) -> HardwareResult:
    t, e, o = pricer.cache[best]
    return HardwareResult(
        best[0], pricer.candidates[best[0]].label, best[1:], t, e, o, evaluations, tuple(trajectory), wall_s
    )


def tune_hardware(
    candidates: list[Candidate],
    space: HardwareSpace = HardwareSpace(),
    objective: str = "edp",
    *,
    steps: int = 24,
    top_k: int = 3,
    round_every: int = 8,
    learning_rate: float = 0.25,
    temperature: float = 0.05,
    start: tuple[int, int, int] = (1024, 2, 8),
    mode: str = "corrected",
    on_step: Callable[[dict], None] | None = None,
) -> HardwareResult:
    """DOSA-style search: screen the candidates, descend on the best ``top_k``, round, polish.

    1. Price ``start`` (rounded into ``space``) exactly on every candidate; keep the
       ``top_k`` best.
    2. On each kept candidate, ``steps`` Adam steps (an ``nnx.Optimizer`` over a
       ``knobs.TunableHardware``) on ``log objective`` in relaxed mode over the
       coordinates ``(log2 m_tile, scatter_vectors, log2 gather_block)``, clipped to the
       bounds; every ``round_every`` steps and at the end the point is rounded, priced
       exactly, and the search continues from the rounded point.
    3. Coordinate polish of the best exact design over ``space.neighbours`` until no
       neighbour improves.

    Args:
        candidates: outer points (``dse_candidates`` or a trace's single workload).
        space: bounds of the inner fields.
        objective: one of ``OBJECTIVES``.
        steps, top_k, round_every, learning_rate, temperature: search settings.
        start: initial design (the paper's 1024 / 2 / 8).
        mode: exact pricing mode of the rounded designs.
        on_step: called with each trajectory entry (progress display).

    Returns:
        ``HardwareResult`` (deterministic: no randomness is involved).

    Raises:
        ValueError: no candidates, bad settings or objective.
    """
    if not candidates:
        raise ValueError("tune_hardware needs at least one candidate")
    if steps < 1 or top_k < 1 or round_every < 1 or not learning_rate > 0:
        raise ValueError("steps, top_k and round_every must be >= 1 and the learning rate positive")
    from flax import nnx

    from focus_jax.tuning.knobs import TunableHardware

    began = time.perf_counter()
    pricer = Pricer(candidates, objective, mode)
    start = space.round(space.to_coords(*start))
    screen = pricer.price([(i, *start) for i in range(len(candidates))])[:, 2]
    order = [int(i) for i in np.argsort(screen, kind="stable")[:top_k]]
    best = (order[0], *start)
    relaxed_evals = 0
    trajectory = []
    step_fn = _relaxed_step(objective, float(temperature), float(learning_rate))
    for i in order:
        cand = candidates[i]
        base, wl = cand.hardware(), cand.workload
        module = TunableHardware(space, start)
        optimizer = nnx.Optimizer(module, adam(float(learning_rate)), wrt=nnx.Param)
        for step in range(steps):
            value = step_fn(module, optimizer, base, wl)
            relaxed_evals += 1
            entry = {"candidate": i, "step": step, "relaxed": float(jnp.exp(value))}
            if (step + 1) % round_every == 0 or step == steps - 1:
                design = (i, *module.rounded())
                entry["design"] = design[1:]
                entry["exact"] = float(pricer.price([design])[0, 2])
                if pricer.cache[design][2] < pricer.cache[best][2]:
                    best = design
                module.set(design[1:])  # DOSA: continue from the rounded point
            trajectory.append(entry)
            if on_step is not None:
                on_step(entry)
    while True:  # coordinate polish around the best exact design
        nbrs = [(best[0], *n) for n in space.neighbours(best[1:])]
        values = pricer.price(nbrs)[:, 2]
        j = int(np.argmin(values))
        if values[j] >= pricer.cache[best][2]:
            break
        best = nbrs[j]
    return _result(pricer, best, pricer.evaluations + relaxed_evals, trajectory, time.perf_counter() - began)


def _all_designs(candidates, space: HardwareSpace) -> list[tuple]:
    ms, nsv, gb = space.values()
    return [(i, m, s, g) for i in range(len(candidates)) for m in ms for s in nsv for g in gb]


def grid_search(
    candidates: list[Candidate],
    space: HardwareSpace = HardwareSpace(),
    objective: str = "edp",
    mode: str = "corrected",
    pricer: Pricer | None = None,
) -> tuple[HardwareResult, np.ndarray]:
    """Price the full factorial grid (every candidate x every valid inner design).

    Returns:
        ``(best, objectives)``: the best design (``evaluations`` = grid size) and the
        objective of every grid point in enumeration order (candidate, m-tile, scatter
        vectors, gather block), for ``random_search`` and evaluations-to-target counts.
    """
    began = time.perf_counter()
    pricer = pricer or Pricer(candidates, objective, mode)
    designs = _all_designs(candidates, space)
    values = pricer.price(designs)[:, 2]
    best = designs[int(np.argmin(values))]
    return _result(pricer, best, len(designs), wall_s=time.perf_counter() - began), values


def evaluations_to_reach(values_in_order: np.ndarray, target: float) -> int | None:
    """1-based count of evaluations until a value ``<= target`` first appears (None: never)."""
    hits = np.flatnonzero(np.asarray(values_in_order) <= target * (1 + 1e-12))
    return int(hits[0]) + 1 if hits.size else None


def random_search(
    candidates: list[Candidate],
    grid_values: np.ndarray,
    budget: int,
    seed: int = 0,
    space: HardwareSpace = HardwareSpace(),
    target: float | None = None,
    pricer: Pricer | None = None,
):
    """Uniform random search without replacement over the same grid, ``budget`` evaluations.

    Uses the grid's exact objectives (``grid_search``'s second output), so it costs nothing
    to replay; ``pricer`` (the grid's) supplies the winner's figures.

    Returns:
        ``(best within budget, evaluations to reach target or None)``.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(grid_values))
    designs = _all_designs(candidates, space)
    picked = order[: max(1, int(budget))]
    best = designs[int(picked[np.argmin(grid_values[picked])])]
    pricer = pricer or Pricer(candidates)
    pricer.price([best])
    reach = None if target is None else evaluations_to_reach(grid_values[order], target)
    return _result(pricer, best, len(picked)), reach
