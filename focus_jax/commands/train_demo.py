"""``focus-jax train-demo``: train the embedded demo model from scratch on the synthetic task.

Reproduces ``focus_jax/resources/demo_model`` (the shipped checkpoint was written by
``focus-jax train-demo --out focus_jax/resources/demo_model``): the tiny
LLaVA-OneVision of ``focus_jax.demo_model`` trained with ``focus_jax.training`` on fresh
clips, then written as a Hugging Face checkpoint with the demo Focus configuration and a
``training_log.json`` (settings, loss curve, held-out teacher-forced accuracy, wall time).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer


def train_demo(
    out: Path = typer.Option(
        Path("demo_model"),
        "--out",
        help="Directory to write the checkpoint to (created; must be empty unless --overwrite).",
    ),
    steps: int = typer.Option(5000, min=1, help="Optimiser steps."),
    batch_size: int = typer.Option(8, min=1, help="Clips per step."),
    questions_per_clip: int = typer.Option(4, min=1, help="Questions asked about each clip, packed in one row."),
    learning_rate: float = typer.Option(1.5e-3, min=0.0, help="Peak AdamW learning rate."),
    seed: int = typer.Option(0, min=0, help="Initialisation seed."),
    data_seed: int = typer.Option(0, min=0, help="Training-data seed."),
    workers: int = typer.Option(0, min=0, help="Processes rendering clips (0: one background thread)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing checkpoint in --out."),
) -> None:
    """Train the embedded demo model (about 37 minutes on 2 CPU cores) and write it to --out."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from focus_jax.data import build_tokenizer, generate_samples, make_batch
    from focus_jax.demo_model import DEMO_FOCUS, demo_model_config, demo_task_config, write_model_dir
    from focus_jax.inputs.outputs import check_output_dir
    from focus_jax.training import TrainConfig, train

    check_output_dir(out, overwrite)  # before the first step: a failed write must not waste the training
    cfg = TrainConfig(steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed, data_seed=data_seed,
                      warmup_steps=min(80, steps - 1), questions_per_clip=questions_per_clip)  # fmt: skip
    model_cfg, task = demo_model_config(), demo_task_config()
    held_out = generate_samples(task, data_seed + 1, 240)
    eval_batch = make_batch(held_out, build_tokenizer(), num_video_tokens=model_cfg.video_token_count(task.num_frames),
                            image_size=task.resolution)  # fmt: skip
    console = Console()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        job = bar.add_task("training", total=steps)

        def report(step, loss, accuracy):
            bar.update(job, completed=step, description=f"training  loss {loss:.3f}")
            if accuracy is not None:
                console.print(f"step {step}: held-out answer accuracy (teacher-forced) {accuracy:.1%}")

        result = train(model_cfg, task, cfg, eval_batch=eval_batch, callback=report, workers=workers)
    write_model_dir(out, model_cfg, result.params, DEMO_FOCUS)
    log = {
        "train_config": dataclasses.asdict(cfg),
        "task_config": dataclasses.asdict(task),
        "seconds": result.seconds,
        "held_out_accuracy": result.evals,
        "loss": result.losses,
    }
    (out / "training_log.json").write_text(json.dumps(log) + "\n")
    console.print(
        f"wrote {escape(str(out))} ({result.seconds / 60:.1f} min of training); "
        f"evaluate it with `focus-jax eval --model {escape(str(out))}`"
    )
