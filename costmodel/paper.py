"""The paper's evaluation points, its published results, and their reproduction.

The inputs are those of the paper's ``run_main_sim.sh`` (shipped in ``costmodel/data``):
sequence lengths and frame counts (``meta_data.csv``), Adaptiv and CMC sparsities
(``adaptiv_sparsity.csv``, ``cmc_sparsity.csv``) and Focus' SEC schedules
(``focus.csv``, read by ``focus_settings``). ``paper_design`` builds the ``(Hardware, Workload)``
of one accelerator on one point; ``reproduce`` runs them all and compares with the
published ``main_*.csv``.

Focus itself needs per-GEMM traces the paper did not publish, so its rows in the
comparison are the published values (``main_focus.csv``), marked as such; SEC-only,
whose kept-token schedule is deterministic, is computed.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import math
from importlib import resources
from pathlib import Path

from costmodel.hardware import Hardware, accelerator
from costmodel.simulate import simulate
from costmodel.workload import KNOWN_MODELS, FocusStats, Workload

__all__ = [
    "VIDEO_POINTS",
    "TABLE_KINDS",
    "PUBLISHED_FILES",
    "published",
    "focus_settings",
    "paper_design",
    "PointResult",
    "reproduce",
    "comparison_rows",
    "geomean",
    "write_comparison_csv",
    "plot_comparison",
    "focus_stand_in",
    "correction_effects",
]

#: The 9 video points (model x dataset) of the paper's main comparison.
VIDEO_POINTS = tuple(
    (m, d) for m in ("llava_vid", "llava_onevision", "minicpm_v") for d in ("videomme", "mlvu", "mvbench")
)
#: Accelerators of the comparison, baseline first.
TABLE_KINDS = ("dense", "adaptiv", "cmc", "sec-only", "focus")
#: Published result file of each accelerator.
PUBLISHED_FILES = {
    "dense": "main_dense.csv",
    "adaptiv": "main_adaptiv.csv",
    "cmc": "main_cmc.csv",
    "sec-only": "main_focus_SEC_only.csv",
    "focus": "main_focus.csv",
}


def _rows(filename: str) -> list[dict]:
    text = resources.files("costmodel.data").joinpath(filename).read_text()
    return list(csv.DictReader(text.splitlines()))


def _lookup(filename: str, model: str, dataset: str, model_key: str = "Model", dataset_key: str = "Dataset") -> dict:
    for row in _rows(filename):
        if row[model_key] == model and row[dataset_key] == dataset:
            return row
    raise ValueError(f"the paper has no {filename} entry for model {model!r} on dataset {dataset!r}")


def published(kind: str) -> dict[tuple[str, str], dict]:
    """Published rows of ``kind``: ``{(model, dataset): row}`` (CSV strings)."""
    return {(r["model"], r["dataset"]): r for r in _rows(PUBLISHED_FILES[kind])}


def focus_settings(model: str = "default", dataset: str = "") -> dict:
    """The paper's Focus settings for ``model``/``dataset`` (reference ``configs/focus.csv``).

    Returns:
        ``{"similarity_threshold": float, "sec_layers": tuple[int], "sec_alphas":
        tuple[float]}``; an empty or unknown dataset falls back to the model's first row.

    Raises:
        ValueError: unknown model name (``llava_vid``, ``llava_onevision``, ``minicpm_v``,
            ``qwen2_5_vl`` or ``default``).
    """
    rows = _rows("focus.csv")
    matches = [r for r in rows if r["model"] == model]
    if not matches:
        raise ValueError(f"unknown model {model!r}; known: {sorted({r['model'] for r in rows})}")
    row = next((r for r in matches if r["dataset"] == dataset), matches[0])
    return {
        "similarity_threshold": float(row["similarity_threshold"]),
        "sec_layers": tuple(int(x) for x in ast.literal_eval(row["selected_layers"])),
        "sec_alphas": tuple(float(a) for a in ast.literal_eval(row["alpha_list"])),
    }


def paper_design(kind: str, model: str, dataset: str) -> tuple[Hardware, Workload]:
    """The accelerator and workload of one run of the paper's ``run_main_sim.sh``.

    Every model is simulated with Qwen2-7B shapes over its visual tokens only, as in the
    paper. SEC-only uses the point's SEC schedule (``configs/focus.csv``).

    Raises:
        ValueError: unknown point, or ``kind == "focus"`` (its traces are not published).
    """
    meta = _lookup("meta_data.csv", model, dataset)
    wl = Workload(
        KNOWN_MODELS["qwen2-7b"], visual_tokens=float(meta["Sequence length"]), frames=float(meta["Num frames"])
    )
    if kind == "adaptiv":
        wl = wl.replace(adaptiv_sparsity=float(_lookup("adaptiv_sparsity.csv", model, dataset)["Sparsity"]))
    elif kind == "cmc":
        row = _lookup("cmc_sparsity.csv", model, dataset)
        wl = wl.replace(
            cmc_sparsity=tuple(float(row[k]) for k in ("linear_sparsity", "query_sparsity", "attn_score_sparsity"))
        )
    elif kind == "sec-only":
        cfg = focus_settings(model, dataset)
        wl = wl.replace(
            focus=FocusStats.from_schedule(wl.model, wl.visual_tokens, cfg["sec_layers"], cfg["sec_alphas"])
        )
    elif kind == "focus":
        raise ValueError("the paper's Focus results need its per-GEMM traces, which were not published")
    return accelerator(kind), wl


@dataclasses.dataclass(frozen=True)
class PointResult:
    """One model/dataset point: time (s) and energy (mJ) per accelerator.

    ``computed``: accelerators priced by ``costmodel`` (the others are published values);
    ``deviation``: largest relative difference of a computed time or energy from the
    published one.
    """

    model: str
    dataset: str
    seq_len: int
    time_s: dict
    energy_mJ: dict
    computed: tuple
    deviation: float


def reproduce(points=VIDEO_POINTS, kinds=TABLE_KINDS) -> list[PointResult]:
    """Price every point on every accelerator in paper mode (Focus: published values)."""
    out = []
    tables = {k: published(k) for k in kinds}
    for model, dataset in points:
        times, energies, computed, deviation = {}, {}, [], 0.0
        for kind in kinds:
            ref = tables[kind][(model, dataset)]
            ref_time, ref_energy = float(ref["execution_time"]), float(ref["total_energy"])
            if kind == "focus":
                times[kind], energies[kind] = ref_time, ref_energy
                continue
            report = simulate(*paper_design(kind, model, dataset), mode="paper")
            times[kind], energies[kind] = report.time_s, report.energy_total_mJ
            computed.append(kind)
            deviation = max(deviation, abs(report.time_s / ref_time - 1), abs(report.energy_total_mJ / ref_energy - 1))
        seq_len = int(_lookup("meta_data.csv", model, dataset)["Sequence length"])
        out.append(PointResult(model, dataset, seq_len, times, energies, tuple(computed), deviation))
    return out


def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def comparison_rows(results: list[PointResult]) -> list[dict]:
    """The paper's comparison: speedup and normalised energy vs SA, and Focus vs Adaptiv / CMC.

    One row per point and a final ``geomean`` row (geometric means over the points).
    """
    rows = []
    for r in results:
        t, e = r.time_s, r.energy_mJ
        row = {"model": r.model, "dataset": r.dataset, "seq_len": r.seq_len}
        for k in TABLE_KINDS[1:]:
            row[f"speedup_{k}"] = t["dense"] / t[k]
        for k in TABLE_KINDS[1:]:
            row[f"energy_{k}"] = e[k] / e["dense"]
        for k in ("adaptiv", "cmc"):
            row[f"focus_vs_{k}_speedup"] = t[k] / t["focus"]
            row[f"focus_vs_{k}_energy"] = e[k] / e["focus"]
        rows.append(row)
    mean = {"model": "geomean", "dataset": "", "seq_len": ""}
    for key in rows[0]:
        if key not in mean:
            mean[key] = geomean(row[key] for row in rows)
    return rows + [mean]


def write_comparison_csv(rows: list[dict], path: Path) -> Path:
    """Write ``comparison_rows`` output as CSV."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_comparison(rows: list[dict], path: Path) -> Path:
    """Grouped bar chart (PNG) of speedup and normalised energy vs SA per point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [f"{r['model']}\n{r['dataset']}" if r["dataset"] else "geomean" for r in rows]
    kinds = TABLE_KINDS[1:]
    names = {"adaptiv": "Adaptiv", "cmc": "CMC", "sec-only": "Focus SEC-only", "focus": "Focus (published)"}
    x = np.arange(len(rows))
    width = 0.8 / len(kinds)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.1 * len(rows)), 7), sharex=True)
    for ax, metric, title in (
        (axes[0], "speedup", "Speedup over SA (x)"),
        (axes[1], "energy", "Energy normalised to SA"),
    ):
        for i, k in enumerate(kinds):
            ax.bar(x + (i - (len(kinds) - 1) / 2) * width, [r[f"{metric}_{k}"] for r in rows], width, label=names[k])
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
    axes[1].axhline(1.0, color="black", linewidth=0.8)
    axes[1].set_ylim(0, 1.1)
    axes[0].legend(ncol=len(kinds), fontsize=8)
    axes[1].set_xticks(x, labels, fontsize=7)
    fig.suptitle("Focus and baselines, paper mode (costmodel)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------------------
# Focus stand-ins and the effect of each correction on the headline


def focus_stand_in(model: str, dataset: str, iterations: int = 40) -> tuple[float, Workload]:
    """A Focus workload standing in for an unpublished trace.

    The point's SEC schedule plus one similar-vector fraction for every GEMM input,
    bisected so that paper mode reproduces the published Focus total cycles
    (``main_focus.csv``; DRAM bytes and energy then land within a few percent).

    Returns:
        ``(similar_fraction, workload)``.
    """
    _, wl = paper_design("sec-only", model, dataset)
    cfg = focus_settings(model, dataset)
    target = float(published("focus")[(model, dataset)]["total_cycles"])
    hw = accelerator("focus")

    def workload(fraction):
        stats = FocusStats.from_schedule(
            wl.model, wl.visual_tokens, cfg["sec_layers"], cfg["sec_alphas"], similar_fraction=fraction
        )
        return wl.replace(focus=stats)

    low, high = 0.0, 0.99
    for _ in range(iterations):
        mid = (low + high) / 2
        if simulate(hw, workload(mid), mode="paper").total_cycles > target:
            low = mid
        else:
            high = mid
    return low, workload(low)


def _variants(text_tokens: int, decode_tokens: int):
    """Rows of ``correction_effects``: ``(name, mode, Corrections, workload changes, core energy)``."""
    from costmodel.corrections import ALL, PAPER

    only = {
        f: dataclasses.replace(PAPER, **{f: True})
        for f in ("attention_traffic", "roofline", "cacti_sram", "gemm_cycles")
    }
    return [
        ("paper", "paper", None, {}, "constant"),
        ("+ attention traffic (defect 1)", "corrected", only["attention_traffic"], {}, "constant"),
        ("+ DRAM roofline (defect 2)", "corrected", only["roofline"], {}, "constant"),
        ("+ CACTI SRAM energy (defect 3)", "corrected", only["cacti_sram"], {}, "constant"),
        ("+ per-partition GEMM cycles, Adaptiv A.V", "corrected", only["gemm_cycles"], {}, "constant"),
        ("corrected (all of the above)", "corrected", ALL, {}, "constant"),
        (f"corrected + {text_tokens} text tokens", "corrected", ALL, {"text_tokens": float(text_tokens)}, "constant"),
        (
            f"corrected + text + {decode_tokens} decode tokens",
            "corrected",
            ALL,
            {"text_tokens": float(text_tokens), "decode_tokens": decode_tokens},
            "constant",
        ),
        ("corrected, per-MAC core energy", "corrected", ALL, {}, "per_mac"),
    ]


def correction_effects(points=VIDEO_POINTS, text_tokens: int = 128, decode_tokens: int = 16) -> list[dict]:
    """Headline geometric means under the paper's model and under each correction.

    Focus is priced with ``focus_stand_in`` workloads (the paper's traces are not
    published); every other accelerator with the paper's inputs. ``text_tokens`` and
    ``decode_tokens`` are assumptions (the paper models neither).

    Returns:
        One dict per variant: ``variant``, and geometric means over ``points`` of speedup
        and energy ratio of Focus vs SA, Adaptiv and CMC, and of SEC-only vs SA.
    """
    designs = {}
    for model, dataset in points:
        for kind in ("dense", "adaptiv", "cmc", "sec-only"):
            designs[(model, dataset, kind)] = paper_design(kind, model, dataset)
        designs[(model, dataset, "focus")] = (accelerator("focus"), focus_stand_in(model, dataset)[1])
    rows = []
    for name, mode, fix, extra, core in _variants(text_tokens, decode_tokens):
        ratios = {key: [] for key in ("sa", "adaptiv", "cmc", "sec_only_sa")}
        energy = {key: [] for key in ratios}
        for model, dataset in points:
            rep = {}
            for kind in ("dense", "adaptiv", "cmc", "sec-only", "focus"):
                hw, wl = designs[(model, dataset, kind)]
                rep[kind] = simulate(hw, wl.replace(**extra), mode=mode, corrections=fix, core_energy=core)
            for key, base, target in (
                ("sa", "dense", "focus"),
                ("adaptiv", "adaptiv", "focus"),
                ("cmc", "cmc", "focus"),
                ("sec_only_sa", "dense", "sec-only"),
            ):
                ratios[key].append(rep[base].time_s / rep[target].time_s)
                energy[key].append(rep[base].energy_total_mJ / rep[target].energy_total_mJ)
        row = {"variant": name}
        for key in ratios:
            row[f"speedup_vs_{key}"] = geomean(ratios[key])
            row[f"energy_gain_vs_{key}"] = geomean(energy[key])
        rows.append(row)
    return rows
