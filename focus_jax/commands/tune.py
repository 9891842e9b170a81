"""``focus-jax tune``: co-tune Focus and the accelerator against an accuracy-latency objective.

Argument parsing and printing only; the searches live in ``focus_jax.tuning``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table


def tune(
    hardware_only: bool = typer.Option(
        False, "--hardware-only", help="Tune the accelerator only, for a workload (no weights)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Model directory (default: the embedded demo model); hardware-only: a costmodel model name (llava_vid).",
    ),
    seq_len: int | None = typer.Option(None, "--seq-len", help="Hardware-only: visual tokens T (default 11648)."),
    trace: str | None = typer.Option(None, "--trace", help="Hardware-only: a focus-jax trace (.npz) as the workload."),
    sparsity: float | None = typer.Option(
        None, "--sparsity", help="Hardware-only: similar-vector fraction instead of the DSE."
    ),
    objective: str = typer.Option("edp", "--objective", help="latency, energy or edp."),
    steps: int | None = typer.Option(
        None, "--steps", help="Gradient steps (hardware-only: per descended candidate, default 24; model: 10)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed (random-search baseline)."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Also run the grid and random searches."),
    lambdas: list[float] = typer.Option(  # noqa: B008
        [1.0], "--lambda", help="Weight of the modeled cost (relative to the shipped one); repeatable."
    ),
    calibration: int = typer.Option(64, "--calibration", help="Calibration questions (and as many held-out ones)."),
    vector_sizes: list[int] | None = typer.Option(  # noqa: B008
        None, "--vector-size", help="Model path: SIC vector size to enumerate; repeatable (default: the shipped one)."
    ),
    block_sizes: list[int] | None = typer.Option(  # noqa: B008
        None, "--block-size", help="Model path: SIC spatial block size to enumerate; repeatable (default: shipped)."
    ),
    pareto: str | None = typer.Option(None, "--pareto", help="Draw held-out accuracy vs modeled cost to this PNG."),
    out: str = typer.Option("design.json", "--out", help="Design file to write."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Tune Focus thresholds and the accelerator (m-tile, scatter vectors, gather block) by gradient descent."""
    from focus_jax.errors import InputError
    from focus_jax.tuning.hardware import OBJECTIVES

    if objective not in OBJECTIVES:
        raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    steps = (24 if hardware_only else 10) if steps is None else steps
    if steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}")
    if hardware_only and (vector_sizes or block_sizes):
        raise InputError("--vector-size and --block-size are the model path's; --hardware-only enumerates the DSE's")
    if hardware_only:
        _tune_hardware(
            model or "llava_vid",
            seq_len,
            Path(trace) if trace else None,
            sparsity,
            objective,
            steps,
            seed,
            baselines,
            Path(out),
            as_json,
        )
        return
    if trace or sparsity is not None or seq_len is not None:
        raise InputError("--trace, --sparsity and --seq-len describe a workload: they need --hardware-only")
    if calibration < 1 or any(not lam >= 0 for lam in lambdas):
        raise InputError("--calibration must be >= 1 and every --lambda >= 0")
    _tune_model(
        model,
        objective,
        lambdas,
        steps,
        calibration,
        seed,
        baselines,
        Path(out),
        Path(pareto) if pareto else None,
        as_json,
        vector_sizes or None,
        block_sizes or None,
    )


def _tune_model(
    model_dir, objective, lambdas, steps, calibration, seed, baselines, out, pareto, as_json, vector_sizes, block_sizes
) -> None:
    from focus_jax.demo_model import demo_model_dir
    from focus_jax.inference import model_focus_config
    from focus_jax.models.llava_onevision.model import from_pretrained
    from focus_jax.tuning.model import data_mesh
    from focus_jax.tuning.model_job import run_model_search

    directory = Path(model_dir) if model_dir else demo_model_dir()
    model = from_pretrained(directory, focus=model_focus_config(directory), mesh=data_mesh())
    console = Console(stderr=as_json)
    with Progress(
        TextColumn("[bold]tune[/]"),
        BarColumn(),
        TextColumn("{task.completed} model evaluations"),
        console=console,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task("", total=None)
        report = run_model_search(
            model,
            objective,
            lambdas,
            calibration,
            seed,
            baselines,
            out=out,
            pareto=pareto,
            steps=steps,
            on_eval=lambda n: progress.update(task, completed=n),
            vector_sizes=vector_sizes,
            block_sizes=block_sizes,
        )
    if as_json:
        print(json.dumps(report))
        return
    table = Table(
        title=f"Focus tuning on {escape(str(directory.name))} ({objective}; held-out accuracy, corrected mode)"
    )
    for col in (
        "configuration",
        "held-out acc.",
        "KL (calib.)",
        "latency (ms)",
        "energy (mJ)",
        "m/scatter/gather",
        "paper-hw latency (ms)",
    ):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    rows = [
        ("shipped", report["baseline"]),
        ("paper schedule", report["paper_schedule"]),
        (f"tuned (lambda {report['lambda']:g})", report["tuned"]),
        ("grid best", report["grid"]),
        ("random best", report["random"]),
    ]
    for name, f in rows:
        if f is None:
            continue
        table.add_row(
            name,
            f"{100 * f['accuracy']:.1f} %",
            f"{f['kl']:.4f}",
            f"{1e3 * f['latency_s']:.4f}",
            f"{f['energy_mJ']:.4f}",
            "/".join(map(str, f["design"])),
            f"{1e3 * f['paper_hardware']['latency_s']:.4f}",
        )
    console.print(table)
    console.print(
        f"tuned with {report['evaluations']} model evaluations; to score as well the grid needs "
        f"{report['grid_evaluations']} of {report['grid_size']}, random search {report['random_evaluations']} (median)"
    )
    outer = report["lambdas"][str(report["lambda"])]["outer"]
    if len(outer) > 1:
        focus = report["tuned"]["focus"]
        console.print(
            f"over {len(outer)} vector/block pairs, best: vector size {focus['vector_size']}, "
            f"block size {focus['block_size']}"
        )
    console.print(
        f"wrote {escape(str(report.get('design')))}"
        + (f" and {escape(report['pareto'])}" if "pareto" in report else "")
    )


def _tune_hardware(model, seq_len, trace, sparsity, objective, steps, seed, baselines, out, as_json) -> None:
    from focus_jax.tuning.hardware_job import hardware_candidates, run_hardware_tuning

    candidates = hardware_candidates(model, seq_len, trace, sparsity)
    console = Console(stderr=as_json)
    with Progress(
        TextColumn("[bold]tune[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} {task.description}"),
        console=console,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task("", total=None)

        def on_step(entry):
            note = f"cand {entry['candidate']} step {entry['step']} relaxed {entry['relaxed']:.4g}"
            progress.update(task, advance=1, description=escape(note))

        result = run_hardware_tuning(candidates, objective, steps, seed, baselines=baselines, out=out, on_step=on_step)
    report = result.to_dict()
    if as_json:
        print(json.dumps(report))
        return
    table = Table(title=f"hardware-only tuning ({objective}, corrected mode)")
    for col in (
        "search",
        "evaluations",
        "latency (s)",
        "energy (mJ)",
        "EDP (s mJ)",
        "m-tile/scatter/gather",
        "vector block array",
    ):
        table.add_column(col, justify="left" if col in ("search", "vector block array") else "right")
    rows = [("paper design", result.baseline), ("tuned (gradient)", result.tuned)]
    if result.grid is not None:
        rows += [("grid (full)", result.grid), ("random (tuned's budget)", result.random_at_budget)]
    for name, r in rows:
        label = " ".join(str(v) for k, v in r.label.items() if k in ("vector_size", "block", "array", "source"))
        table.add_row(
            name,
            str(r.evaluations),
            f"{r.time_s:.4f}",
            f"{r.energy_mJ:,.1f}",
            f"{r.edp:.4g}",
            " / ".join(map(str, r.design)),
            escape(label),
        )
    console.print(table)
    if result.grid is not None:
        console.print(
            f"evaluations to reach the tuned design: grid {result.grid_to_reach} (enumeration order), "
            f"random {result.random_to_reach:g} (median of 10 seeds)"
        )
    if "dse" in report:
        d = report["dse"]
        best = ", ".join(f"{k} {s['value']}: {s['edp']:.4g}" for k, s in d["sweeps"].items())
        verdict = "beats" if d["tuned_beats_every_sweep"] else "does NOT beat"
        console.print(
            f"paper DSE sweeps' best EDP (same model and workload): {best}; tuned {d['tuned_edp']:.4g} {verdict} "
            f"every sweep with {result.tuned.evaluations} evaluations (full factorial "
            f"{d['full_factorial_evaluations']})"
        )
    console.print(f"wrote {escape(str(result.design_path))} in {result.wall_s:.1f} s")
