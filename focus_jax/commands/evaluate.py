"""``focus-jax eval``: accuracy of a task model on held-out synthetic questions, dense vs Focus.

Prints dense accuracy, Focus accuracy (and its ratio to dense) and the fraction of the
dense visual-token GEMM work Focus executes, per question family too, against the goals
of the embedded demo model: dense >= 90 %, Focus >= 97 % of dense, work <= 25 %.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

#: Goals of the embedded demo model (issue "the main job"): dense accuracy, Focus accuracy
#: relative to dense, and Focus' fraction of dense visual-token GEMM work.
GOALS = {"dense_accuracy": 0.90, "focus_retention": 0.97, "work_fraction": 0.25}


def goal_checks(report: dict) -> dict[str, bool | None]:
    """``{goal: met}`` for ``GOALS`` (None where the report lacks the number)."""
    out = {}
    for name, bound in GOALS.items():
        value = report.get(name)
        out[name] = None if value is None else (value <= bound if name == "work_fraction" else value >= bound)
    return out


def eval_task_config(vision, frames: int):
    """The ``TaskConfig`` to question a model with ``vision`` (``SiglipVisionConfig``) on:
    frames of its input size, objects aligned to its patches as the demo model is trained
    (``demo_task_config``), or free placement where the patch size does not divide the
    input into at least ``MIN_ALIGN_CELLS`` cells per side (e.g. 384 px with 14 px patches)."""
    from focus_jax.data import TaskConfig
    from focus_jax.data.task import MIN_ALIGN_CELLS

    side, patch = vision.image_size, vision.patch_size
    align = patch if side % patch == 0 and side // patch >= MIN_ALIGN_CELLS else 1
    return TaskConfig(num_frames=frames, resolution=side, align=align)


def load_task_model(model_dir: Optional[Path]):
    """``(model, model_dir, focus_config_or_None)`` of a model trained on the synthetic task.

    Raises:
        FileNotFoundError / ValueError: not a model directory, or a model whose vocabulary
            is not the task's (``focus_jax.data.VOCABULARY``).
    """
    import focus_jax
    from focus_jax.data import special_token_ids
    from focus_jax.demo_model import demo_model_dir, read_focus_config

    model_dir = demo_model_dir() if model_dir is None else Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    model = focus_jax.from_pretrained(model_dir)
    ids = special_token_ids()
    if model.config.text.vocab_size < ids["vocab_size"] or model.config.video_token_id != ids["video_token_id"]:
        raise ValueError(f"{model_dir} is not a model of the synthetic video QA task (its vocabulary differs from focus_jax.data's)")
    return model, model_dir, read_focus_config(model_dir)


def evaluate(
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the embedded demo model)."),
    questions: int = typer.Option(500, min=1, help="Held-out questions."),
    frames: int = typer.Option(8, min=4, max=64, help="Frames per clip."),
    focus_config: Optional[Path] = typer.Option(None, help="Focus configuration JSON (default: the model's focus_config.json)."),
    no_focus: bool = typer.Option(False, "--no-focus", help="Dense accuracy only."),
    batch_size: int = typer.Option(50, min=1, help="Questions per generate call."),
    seed: Optional[int] = typer.Option(None, min=0, help="Data seed of the questions (default: the held-out seed)."),
    check: bool = typer.Option(False, "--check", help="Exit with status 2 if a goal is missed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    method: Optional[str] = typer.Option(None, "--method", help="focus, cmc, adaptiv, framefusion or fastv: that method vs dense."),
    method_config: Optional[Path] = typer.Option(None, "--method-config", help="Baseline config JSON ({\"method\": ..., fields})."),
    compare: bool = typer.Option(False, "--compare", help="Every method on the same questions: accuracy, work, modeled cost."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="With --compare/--method: accuracy vs modeled latency PNG."),
) -> None:
    """Evaluate a task model on held-out synthetic video questions, dense and with Focus."""
    from rich.progress import Progress

    from focus_jax.commands.run import read_focus_file
    from focus_jax.data import generate_samples
    from focus_jax.qa_eval import EVAL_SEED, evaluate as run_eval

    loaded, model_dir, default_focus = load_task_model(model)
    focus = None
    if not no_focus:
        focus = default_focus if focus_config is None else read_focus_file(focus_config)
        if focus is None:
            raise ValueError(f"{model_dir} has no focus_config.json; pass --focus-config or --no-focus")
    task = eval_task_config(loaded.config.vision, frames)
    if compare or method is not None or method_config is not None:
        from focus_jax.baselines.compare import eval_methods, run_eval_methods

        rows = eval_methods(method, method_config, focus, compare)
        return run_eval_methods(loaded, task, EVAL_SEED if seed is None else seed, questions, rows, batch_size, plot, as_json)
    with Progress(transient=True, disable=as_json) as bar:
        job = bar.add_task("rendering questions", total=questions)
        samples = []
        for start in range(0, questions, 50):
            samples += generate_samples(task, EVAL_SEED if seed is None else seed, min(50, questions - start), start)
            bar.update(job, completed=len(samples))
        job = bar.add_task("answering (dense + Focus)", total=questions)
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
    table = Table(title=f"{out['questions']} held-out questions ({out['model']})")
    for col in ("family", "dense", "Focus"):
        table.add_column(col, justify="right")
    for family, row in out["per_family"].items():
        table.add_row(family, pct(row["dense"]["accuracy"]), pct(None if row["focus"] is None else row["focus"]["accuracy"]))
    table.add_row("all", pct(out["dense_accuracy"]), pct(out["focus_accuracy"]), style="bold")
    console.print(table)
    mark = {True: "[green]met[/]", False: "[red]missed[/]", None: "-"}
    goals = out["goals"]
    console.print(f"dense accuracy      {pct(out['dense_accuracy'])}   goal >= 90%   {mark[goals['dense_accuracy']]}")
    console.print(f"Focus / dense       {pct(out['focus_retention'])}   goal >= 97%   {mark[goals['focus_retention']]}")
    console.print(f"Focus GEMM work     {pct(out['work_fraction'])}   goal <= 25%   {mark[goals['work_fraction']]}  (visual-token GEMM MACs executed / dense)")
