"""``focus-jax eval``: accuracy of a task model on held-out synthetic questions, dense vs Focus.

Parses the options, renders the held-out questions, runs ``focus_jax.qa_eval.evaluate``
and prints dense accuracy, Focus accuracy (and its ratio to dense) and the fraction of
the dense visual-token GEMM work Focus executes, per question family too, against the
goals of the embedded demo model (``qa_eval.GOALS``: dense >= 90 %, Focus >= 97 % of
dense, work <= 25 %).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def evaluate(
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the embedded demo model)."),
    questions: int = typer.Option(500, min=1, help="Held-out questions."),
    frames: int = typer.Option(8, min=4, max=64, help="Frames per clip."),
    focus_config: Optional[Path] = typer.Option(
        None, help="Focus configuration or design file (JSON; default: the model's focus_config.json)."
    ),
    no_focus: bool = typer.Option(False, "--no-focus", help="Dense accuracy only."),
    batch_size: int = typer.Option(50, min=1, help="Questions per generate call."),
    seed: Optional[int] = typer.Option(None, min=0, help="Data seed of the questions (default: the held-out seed)."),
    check: bool = typer.Option(False, "--check", help="Exit with status 2 if a goal is missed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    method: Optional[str] = typer.Option(
        None, "--method", help="focus, cmc, adaptiv, framefusion or fastv: that method vs dense."
    ),
    method_config: Optional[Path] = typer.Option(
        None, "--method-config", help='Baseline config JSON ({"method": ..., fields}).'
    ),
    compare: bool = typer.Option(
        False, "--compare", help="Every method on the same questions: accuracy, work, modeled cost."
    ),
    plot: Optional[Path] = typer.Option(
        None, "--plot", help="With --compare/--method: accuracy vs modeled latency PNG."
    ),
) -> None:
    """Evaluate a task model on held-out synthetic video questions, dense and with Focus."""
    from rich.progress import Progress

    from focus_jax.config import FocusConfig
    from focus_jax.qa_eval import EVAL_SEED, eval_task_config, goal_checks, held_out_samples, load_task_model
    from focus_jax.qa_eval import evaluate as run_eval

    loaded, model_dir, default_focus = load_task_model(model)
    focus = None
    if not no_focus:
        focus = default_focus if focus_config is None else FocusConfig.load(focus_config, label="--focus-config")
        if focus is None:
            raise ValueError(f"{model_dir} has no focus_config.json; pass --focus-config or --no-focus")
    task = eval_task_config(loaded.config.vision, frames)
    if compare or method is not None or method_config is not None:
        from focus_jax.baselines.compare import eval_methods, run_eval_methods

        rows = eval_methods(method, method_config, focus, compare)
        return run_eval_methods(
            loaded, task, EVAL_SEED if seed is None else seed, questions, rows, batch_size, plot, as_json
        )
    samples = held_out_samples(task, questions, batch_size, seed)
    with Progress(transient=True, disable=as_json) as bar:
        job = bar.add_task("rendering and answering (dense + Focus)", total=questions)
        report = run_eval(loaded, samples, focus, batch_size, progress=lambda done: bar.update(job, completed=done))
    out = report.to_dict()
    out["goals"] = goal_checks(out)
    out["model"] = str(model_dir)
    missed = any(v is False for v in out["goals"].values())
    if as_json:
        print(json.dumps(out))
    else:
        _print(out)
    if check and missed:
        raise typer.Exit(code=2)


def _print(out: dict) -> None:
    console = Console()
    pct = lambda v: "-" if v is None else f"{v:.1%}"
    table = Table(title=f"{out['questions']} held-out questions ({escape(out['model'])})")
    for col in ("family", "dense", "Focus"):
        table.add_column(col, justify="right")
    for family, row in out["per_family"].items():
        table.add_row(
            family, pct(row["dense"]["accuracy"]), pct(None if row["focus"] is None else row["focus"]["accuracy"])
        )
    table.add_row("all", pct(out["dense_accuracy"]), pct(out["focus_accuracy"]), style="bold")
    console.print(table)
    mark = {True: "[green]met[/]", False: "[red]missed[/]", None: "-"}
    goals = out["goals"]
    console.print(f"dense accuracy      {pct(out['dense_accuracy'])}   goal >= 90%   {mark[goals['dense_accuracy']]}")
    console.print(f"Focus / dense       {pct(out['focus_retention'])}   goal >= 97%   {mark[goals['focus_retention']]}")
    console.print(
        f"Focus GEMM work     {pct(out['work_fraction'])}   goal <= 25%   {mark[goals['work_fraction']]}  "
        "(visual-token GEMM MACs executed / dense)"
    )
