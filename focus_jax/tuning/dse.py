"""The paper's design-space exploration (DSE) as workloads and sweeps ``costmodel`` can price.

The paper sweeps four factors one at a time around its default design on LLaVA-Video-7B /
VideoMME (T = 11648; ``dse_a_m_tile_size.csv``: 7 m-tiles, ``dse_b_vector_size.csv``: 6
vector sizes, ``dse_c_block_size.csv``: 9 SIC block sizes, ``dse_d_num_scatter_accumulator.csv``:
5 scatter-accumulator counts). The traces behind them were not published, so each algorithm
point (vector size, block size) becomes a stand-in workload: the point's SEC schedule plus
one similar-vector fraction, calibrated so that paper mode reproduces the published cycles
(as ``costmodel.paper.focus_stand_in`` does for the main table):

- block size ``b``: fraction ``f_b`` whose paper-mode total cycles equal the ``dse_c`` row;
- vector size ``v``: ``dse_b`` publishes one GEMM only (layer 9, ``o_proj``); the fraction
  ``g_v`` of that GEMM whose paper-mode compute cycles equal the row is found, and the
  whole-model fraction at ``(v, b)`` is ``min(f_b * g_v / g_32, 0.99)``: the assumption
  (stated, not measured) that a vector size scales every GEMM's similarity like that one.

``dse_sweeps`` lists the designs of the four sweeps on those workloads, so a tuned design
and the paper's best points are priced by the same model on the same workload.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

import costmodel as cm
from costmodel.accelerators import prefill_costs
from costmodel.corrections import PAPER
from costmodel.ops import EXACT

__all__ = [
    "DSE_BLOCKS",
    "DSE_FILES",
    "DSE_M_TILES",
    "DSE_POINT",
    "DSE_SCATTER_VECTORS",
    "DSE_VECTOR_SIZES",
    "Candidate",
    "DsePoint",
    "dse_candidates",
    "dse_sweeps",
    "full_factorial_size",
    "parse_block",
]

#: The (model, dataset) of the paper's DSE.
DSE_POINT = ("llava_vid", "videomme")
#: Values of each sweep, in the published files' row order (m-tile None: no tiling, "-1").
DSE_M_TILES = (None, 4096, 2048, 1024, 512, 128, 32)
DSE_VECTOR_SIZES = (4096, 2048, 512, 128, 32, 8)
DSE_BLOCKS = ("2x3x3", "1x2x2", "2x1x1", "3x2x2", "2x2x2", "1x1x1", "1x3x3", "3x3x3", "3x1x1")
DSE_SCATTER_VECTORS = (1, 2, 3, 4, 5)
DSE_FILES = {
    "m_tile": "dse_a_m_tile_size.csv",
    "vector_size": "dse_b_vector_size.csv",
    "block": "dse_c_block_size.csv",
    "scatter_vectors": "dse_d_num_scatter_accumulator.csv",
}
#: The paper's default point of every sweep.
DEFAULT_BLOCK = "2x2x2"
DEFAULT_VECTOR_SIZE = 32
#: The GEMM ``dse_b`` reports: layer 9, o_proj (row 3 of ``ModelShape.linear_gemms``).
_DSE_B_LAYER, _DSE_B_ROW = 9, 3
_MAX_FRACTION = 0.99


def parse_block(text: str) -> tuple[int, int]:
    """``"FxHxW"`` (frames x rows x columns of the SIC block) -> ``(frame_block_size, block_size)``.

    Raises:
        ValueError: not three positive integers, or rows != columns (Focus' blocks are square).
    """
    try:
        f, h, w = (int(x) for x in str(text).split("x"))
    except ValueError:
        raise ValueError(f"a block size is FxHxW (e.g. 2x2x2), got {text!r}") from None
    if min(f, h, w) < 1 or h != w:
        raise ValueError(f"a block size needs positive sizes and square spatial windows, got {text!r}")
    return f, h


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One outer (categorical) point of a hardware search: an algorithm setting and its workload.

    Attributes:
        label: JSON-ready description, e.g. ``{"vector_size": 32, "block": "2x2x2"}``.
        workload: the ``costmodel.Workload`` it produces.
        vector_size: SIC vector size (channels) the design is built for.
        rows, cols: systolic-array shape (PEs).
    """

    label: dict
    workload: cm.Workload
    vector_size: int = 32
    rows: int = 32
    cols: int = 32

    def hardware(self, m_tile=1024.0, scatter_vectors=2.0, gather_block=8.0) -> cm.Hardware:
        """The Focus accelerator of this candidate with the given (possibly traced) inner fields."""
        base = _base_hardware(self.rows, self.cols)
        return base.replace(m_tile=m_tile, scatter_vectors=scatter_vectors, gather_block=gather_block)


@functools.cache
def _base_hardware(rows: int, cols: int) -> cm.Hardware:
    return cm.focus(rows=rows, cols=cols)


def _rows(name: str) -> list[dict]:
    text = resources.files("costmodel.data").joinpath(name).read_text()
    return list(csv.DictReader(text.splitlines()))


def _stats(model, seq_len, cfg, fraction, vector_size):
    return cm.FocusStats.from_schedule(model, seq_len, cfg.sec_layers, cfg.sec_alphas, fraction, vector_size)


@functools.cache
def _paper_cycles_fn():
    def cycles(hw, wl):
        return cm.evaluate(hw, wl, mode="paper").total_cycles

    return jax.jit(jax.vmap(cycles, in_axes=(None, 0)))


@functools.cache
def _layer_compute_fn():
    def compute(hw, wl):
        return prefill_costs(hw, wl, EXACT, PAPER)[0].compute[_DSE_B_ROW, _DSE_B_LAYER]

    return jax.jit(jax.vmap(compute, in_axes=(None, 0)))


def _bisect(measure, targets: np.ndarray, rounds: int = 5, points: int = 33) -> np.ndarray:
    """Fractions ``f`` in ``[0, 0.99]`` with ``measure(f) == targets`` for a decreasing ``measure``.

    ``measure`` maps an ``(n, points)`` array of fractions to cycles of the same shape; each
    round narrows every bracket to one of ``points - 1`` sub-intervals (precision
    ``0.99 / 32**rounds``).
    """
    lo = np.zeros(len(targets))
    hi = np.full(len(targets), _MAX_FRACTION)
    for _ in range(rounds):
        grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, points)[None, :]
        values = measure(grid)
        above = values > targets[:, None]  # still too slow: more similarity needed
        i = np.clip(above.sum(axis=1) - 1, 0, points - 2)
        lo, hi = grid[np.arange(len(targets)), i], grid[np.arange(len(targets)), i + 1]
    return (lo + hi) / 2


@functools.cache
def _calibrated_fractions(model_name: str, dataset: str) -> tuple[dict, dict]:
    """``({block: f_b}, {vector size: g_v})`` fitted to the published DSE files (see module doc)."""
    from focus_jax.config import paper_config

    model = cm.KNOWN_MODELS[model_name]
    cfg = paper_config(model_name, dataset)
    seq_len = next(
        float(r["Sequence length"])
        for r in _rows("meta_data.csv")
        if (r["Model"], r["Dataset"]) == (model_name, dataset)
    )
    hw = cm.focus()
    wl = cm.Workload(model, seq_len)
    with jax.enable_x64(True):
        rows = {r["block_size"]: float(r["total_cycles"]) for r in _rows(DSE_FILES["block"])}
        targets = np.array([rows[b] for b in DSE_BLOCKS])

        def block_cycles(grid):
            batch = jax.vmap(lambda f: wl.replace(focus=_stats(model, seq_len, cfg, f, DEFAULT_VECTOR_SIZE)))(
                jnp.asarray(grid.reshape(-1))
            )
            return np.asarray(_paper_cycles_fn()(hw, batch)).reshape(grid.shape)

        f_block = dict(zip(DSE_BLOCKS, _bisect(block_cycles, targets)))

        rows = {int(r["vector_size"]): float(r["compute_cycles"]) for r in _rows(DSE_FILES["vector_size"])}
        g_vector = {}
        for v in DSE_VECTOR_SIZES:

            def layer_cycles(grid, v=v):
                def one(f):
                    frac = jnp.zeros((model.num_layers, len(cm.GEMM_NAMES))).at[_DSE_B_LAYER, 2].set(f)
                    return wl.replace(focus=_stats(model, seq_len, cfg, frac, v))

                batch = jax.vmap(one)(jnp.asarray(grid.reshape(-1)))
                return np.asarray(_layer_compute_fn()(hw, batch)).reshape(grid.shape)

            g_vector[v] = float(_bisect(layer_cycles, np.array([rows[v]]))[0])
    return {k: float(x) for k, x in f_block.items()}, g_vector


def dse_candidates(
    seq_len: float | None = None,
    vector_sizes=DSE_VECTOR_SIZES,
    blocks=DSE_BLOCKS,
    arrays=((32, 32),),
) -> list[Candidate]:
    """The outer points of the paper's DSE: every (array, vector size, block size) workload.

    LLaVA-Video-7B (Qwen2-7B shapes) with its VideoMME SEC schedule at ``seq_len`` visual
    tokens (default the DSE's 11648), paper-mode prefill of the visual tokens, similar
    fractions calibrated as the module docstring says.

    Raises:
        ValueError: a vector size or block the published sweeps do not cover, a bad array
            shape or sequence length.
    """
    from focus_jax.config import paper_config

    f_block, g_vector = _calibrated_fractions(*DSE_POINT)
    model = cm.KNOWN_MODELS[DSE_POINT[0]]
    cfg = paper_config(*DSE_POINT)
    t = 11648.0 if seq_len is None else float(seq_len)
    if t < 1:
        raise ValueError(f"the sequence length must be >= 1 token, got {seq_len}")
    out = []
    for rows, cols in arrays:
        if min(rows, cols) < 1:
            raise ValueError(f"array shapes must be positive, got {rows}x{cols}")
        for v in vector_sizes:
            if v not in g_vector:
                raise ValueError(f"vector size {v} is not one of the paper's DSE values {DSE_VECTOR_SIZES}")
            for b in blocks:
                if b not in f_block:
                    raise ValueError(f"block {b!r} is not one of the paper's DSE values {DSE_BLOCKS}")
                fraction = min(f_block[b] * g_vector[v] / g_vector[DEFAULT_VECTOR_SIZE], _MAX_FRACTION)
                wl = cm.Workload(model, t, focus=_stats(model, t, cfg, fraction, v))
                label = {
                    "vector_size": v,
                    "block": b,
                    "array": f"{rows}x{cols}",
                    "similar_fraction": round(fraction, 6),
                }
                out.append(Candidate(label, wl, v, rows, cols))
    return out


@dataclasses.dataclass(frozen=True)
class DsePoint:
    """One published DSE row: which sweep, its design, and its published figures.

    ``published_edp``: execution time (s) x total energy (mJ) as published (paper
    simulator, real traces; ``dse_b``'s are of one GEMM, so ``None``).
    """

    sweep: str
    value: object
    candidate: Candidate
    m_tile: float
    scatter_vectors: int
    published_time_s: float | None
    published_energy_mJ: float | None

    @property
    def published_edp(self) -> float | None:
        if self.published_time_s is None:
            return None
        return self.published_time_s * self.published_energy_mJ


def dse_sweeps(candidates: list[Candidate] | None = None) -> list[DsePoint]:
    """Every design of the paper's four one-factor sweeps on the calibrated workloads.

    Each sweep varies one factor around the default (m-tile 1024, 2 scatter vectors,
    vector size 32, block 2x2x2, gather block 8); m-tile "no tiling" is one tile of T.
    """
    candidates = dse_candidates() if candidates is None else candidates
    by = {(c.label["vector_size"], c.label["block"]): c for c in candidates if c.label["array"] == "32x32"}
    default = by[(DEFAULT_VECTOR_SIZE, DEFAULT_BLOCK)]
    t = float(default.workload.visual_tokens)
    points = []
    for row, m in zip(_rows(DSE_FILES["m_tile"]), DSE_M_TILES):
        points.append(
            DsePoint(
                "m_tile", m or -1, default, float(m or t), 2, float(row["execution_time"]), float(row["total_energy"])
            )
        )
    for v in DSE_VECTOR_SIZES:
        points.append(DsePoint("vector_size", v, by[(v, DEFAULT_BLOCK)], 1024.0, 2, None, None))
    for row in _rows(DSE_FILES["block"]):
        b = row["block_size"]
        points.append(
            DsePoint(
                "block",
                b,
                by[(DEFAULT_VECTOR_SIZE, b)],
                1024.0,
                2,
                float(row["execution_time"]),
                float(row["total_energy"]),
            )
        )
    for row in _rows(DSE_FILES["scatter_vectors"]):
        nsv = int(row["num_scatter"])
        points.append(
            DsePoint(
                "scatter_vectors", nsv, default, 1024.0, nsv, float(row["execution_time"]), float(row["total_energy"])
            )
        )
    return points


def full_factorial_size() -> int:
    """Designs in the full factorial grid of the four sweeps: 7 x 6 x 9 x 5 = 1890."""
    return len(DSE_M_TILES) * len(DSE_VECTOR_SIZES) * len(DSE_BLOCKS) * len(DSE_SCATTER_VECTORS)
