"""``focus-jax simulate``: latency, energy, area and power of a prefill on Focus or a baseline.

Prices one workload with ``costmodel`` (paper or corrected mode), or with
``--reproduce-paper`` reruns the paper's main comparison, prints it, and writes it as CSV
and as a bar chart (PNG).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

_CLI_MODES = ("paper", "corrected")


def _parse_list(option: str, text: str, kind):
    """``"3,6,9"`` -> ``[3, 6, 9]``; a one-line ValueError naming ``option`` otherwise."""
    try:
        values = [kind(x) for x in text.split(",")]
    except ValueError:
        noun = "integers" if kind is int else "numbers"
        raise ValueError(f"{option} must be a comma-separated list of {noun}, got {text!r}") from None
    return values


def _sparsities(values: list[str]) -> list[float]:
    out = []
    for v in values:
        out += _parse_list("--sparsity", v, float)
    for s in out:
        if not 0 <= s < 1:
            raise ValueError(f"--sparsity values must lie in [0, 1), got {s}")
    return out


def build_workload(
    accelerator: str,
    model: str,
    seq_len: Optional[int],
    frames: Optional[int],
    sec_layers: Optional[str],
    sec_alphas: Optional[str],
    sparsity: list[str],
    trace: Optional[Path],
    mode: str,
    text_tokens: Optional[int],
    decode_tokens: int,
):
    """Turn the command-line options into ``(Hardware, Workload)``; ValueError on bad input."""
    import costmodel as cm

    if accelerator not in cm.KINDS:
        raise ValueError(f"unknown accelerator {accelerator!r}; choose one of {', '.join(cm.KINDS)}")
    if mode not in _CLI_MODES:
        raise ValueError(f"unknown mode {mode!r}; choose paper or corrected")
    for name, value in (("--text-tokens", text_tokens or 0), ("--decode-tokens", decode_tokens)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    fractions = _sparsities(sparsity)
    if trace is not None:
        if accelerator in ("focus", "sec-only") and (sec_layers or sec_alphas or fractions):
            raise ValueError(
                "--trace already fixes the SEC schedule and sparsities; drop --sec-layers/--sec-alphas/--sparsity"
            )
        wl = _trace_workload(trace, seq_len, frames, text_tokens, decode_tokens, mode)
    else:
        wl = _option_workload(model, seq_len, frames, text_tokens, decode_tokens)
    return cm.accelerator(accelerator), _with_sparsities(accelerator, wl, fractions, model, sec_layers, sec_alphas)


def _trace_workload(path: Path, seq_len, frames, text_tokens, decode_tokens: int, mode: str):
    """``Workload.from_trace`` of a trace file; ``--frames``/``--text-tokens`` override its
    counts (paper mode prices visual tokens only: no text unless given)."""
    import costmodel as cm
    from focus_jax.trace import FocusTrace

    wl = cm.Workload.from_trace(FocusTrace.load(path), decode_tokens=decode_tokens)
    tokens = int(wl.visual_tokens)
    if seq_len is not None and seq_len != tokens:
        raise ValueError(f"--seq-len {seq_len} disagrees with the trace's {tokens} visual tokens")
    if frames is not None and not 1 <= frames <= tokens:
        raise ValueError(f"--frames must lie in [1, {tokens}], got {frames}")
    if text_tokens is None:
        text_tokens = wl.text_tokens if mode == "corrected" else 0
    return wl.replace(frames=float(frames or wl.frames), text_tokens=float(text_tokens))


def _option_workload(model: str, seq_len, frames, text_tokens, decode_tokens: int):
    import costmodel as cm

    shape = cm.ModelShape.load(model)
    if seq_len is None:
        raise ValueError("give --seq-len T (visual tokens) or --trace FILE")
    if seq_len < 1:
        raise ValueError(f"--seq-len must be a positive integer, got {seq_len}")
    frames = 1 if frames is None else frames
    if not 1 <= frames <= seq_len:
        raise ValueError(f"--frames must lie in [1, {seq_len}], got {frames}")
    return cm.Workload(shape, float(seq_len), frames=float(frames), text_tokens=float(text_tokens or 0),
                       decode_tokens=decode_tokens)  # fmt: skip


def _with_sparsities(accelerator: str, wl, fractions: list[float], model: str, sec_layers, sec_alphas):
    """``wl`` with the sparsity inputs of ``accelerator`` (a trace's Focus statistics stay for Focus kinds)."""
    from costmodel.workload import FocusStats

    if accelerator in ("focus", "sec-only"):
        if accelerator == "sec-only" and fractions:
            raise ValueError("sec-only runs SEC without SIC: it takes no --sparsity")
        if wl.focus is not None:  # from the trace
            return wl
        if accelerator == "focus" and not fractions:
            raise ValueError("focus needs --trace FILE or --sparsity S (fraction of the kept vectors SIC merges)")
        if len(fractions) not in (0, 1, 5):
            raise ValueError("focus takes one --sparsity value, or five (q_proj, query, o_proj, gate_proj, down_proj)")
        layers, alphas = _sec_schedule(model, wl.model, sec_layers, sec_alphas)
        fraction = fractions[0] if len(fractions) == 1 else (fractions or 0.0)
        stats = FocusStats.from_schedule(wl.model, wl.visual_tokens, layers, alphas, similar_fraction=fraction)
        return wl.replace(focus=stats)
    wl = wl.replace(focus=None)
    if accelerator == "adaptiv":
        if len(fractions) != 1:
            raise ValueError("adaptiv needs one --sparsity S (fraction of tokens merged)")
        return wl.replace(adaptiv_sparsity=fractions[0])
    if accelerator == "cmc":
        if len(fractions) not in (1, 3):
            raise ValueError("cmc needs --sparsity linear,query,score (or one value for all three)")
        return wl.replace(cmc_sparsity=tuple(fractions * 3 if len(fractions) == 1 else fractions))
    if fractions:
        raise ValueError("the dense array takes no --sparsity")
    return wl


def _sec_schedule(model: str, shape, sec_layers: Optional[str], sec_alphas: Optional[str]):
    from focus_jax.config import FocusConfig, paper_config

    if (sec_layers is None) != (sec_alphas is None):
        raise ValueError("give --sec-layers and --sec-alphas together")
    if sec_layers is None:
        known = model in ("llava_vid", "llava_onevision", "minicpm_v", "qwen2_5_vl")
        cfg = paper_config(model) if known else FocusConfig()
        layers, alphas = cfg.sec_layers, cfg.sec_alphas
    else:
        layers = _parse_list("--sec-layers", sec_layers, int)
        alphas = _parse_list("--sec-alphas", sec_alphas, float)
        cfg = FocusConfig(sec_layers=tuple(layers), sec_alphas=tuple(alphas))  # validates ranges
    if layers and max(layers) >= shape.num_layers:
        raise ValueError(f"--sec-layers {list(layers)} exceed the model's {shape.num_layers} layers")
    return tuple(layers), tuple(alphas)


def simulate(
    accelerator: str = typer.Option("focus", "--accelerator", help="dense, focus, sec-only, adaptiv or cmc."),
    model: str = typer.Option(
        "llava_vid",
        "--model",
        help="llava_vid, llava_onevision, minicpm_v, qwen2_5_vl, qwen2-7b, qwen2-0.5b, or a config.json.",
    ),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Visual tokens T of the prompt."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Video frames (CMC's codec partitions)."),
    sec_layers: Optional[str] = typer.Option(None, "--sec-layers", help="SEC layers, e.g. 3,6,9,18,26."),
    sec_alphas: Optional[str] = typer.Option(
        None, "--sec-alphas", help="SEC retention ratios, e.g. 0.4,0.3,0.2,0.15,0.1."
    ),
    sparsity: list[str] = typer.Option(
        [],
        "--sparsity",
        help="Focus: similar-vector fraction (1 or 5 values); Adaptiv: token sparsity; CMC: linear,query,score.",
    ),
    trace: Optional[Path] = typer.Option(
        None, "--trace", help="A focus-jax trace (.npz) instead of --seq-len/--sparsity."
    ),
    mode: str = typer.Option("paper", "--mode", help="paper (the published model) or corrected."),
    text_tokens: Optional[int] = typer.Option(
        None, "--text-tokens", help="Text tokens of the prompt (corrected mode; default: the trace's, else 0)."
    ),
    decode_tokens: int = typer.Option(0, "--decode-tokens", help="Generated tokens (corrected mode)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    reproduce_paper: bool = typer.Option(False, "--reproduce-paper", help="Rerun the paper's comparison (CSV + PNG)."),
    output_dir: Path = typer.Option(Path("."), "--output-dir", help="Where --reproduce-paper writes its CSV and PNG."),
    design: Optional[Path] = typer.Option(
        None, "--design", help="Design file (focus-jax tune): its accelerator, and its SEC schedule unless given."
    ),
) -> None:
    """Price a prefill (and decode) on Focus or a baseline accelerator with costmodel."""
    if reproduce_paper:
        _reproduce(output_dir, mode, as_json)
        return
    import costmodel as cm

    chosen = None
    if design is not None:
        from focus_jax.design import Design

        chosen = Design.load(design)
        accelerator = chosen.hardware.kind
        if trace is None and sec_layers is None and sec_alphas is None and accelerator in ("focus", "sec-only"):
            sec_layers = ",".join(map(str, chosen.focus.sec_layers)) or None
            sec_alphas = ",".join(map(str, chosen.focus.sec_alphas)) or None
    hw, wl = build_workload(
        accelerator, model, seq_len, frames, sec_layers, sec_alphas, sparsity, trace, mode, text_tokens, decode_tokens
    )
    if chosen is not None:
        hw = chosen.hardware.to_costmodel()
    report = cm.simulate(hw, wl, mode=mode)
    result = {
        "accelerator": accelerator,
        "model": wl.model.name,
        "mode": mode,
        "seq_len": int(wl.visual_tokens),
        "text_tokens": int(wl.text_tokens),
        "decode_tokens": wl.decode_tokens,
    } | report.to_dict()
    if as_json:
        print(json.dumps(result))
        return
    table = Table(
        title=f"{escape(accelerator)} on {escape(str(wl.model.name))}, T = {int(wl.visual_tokens)} ({mode} mode)"
    )
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for label, value in (
        ("total cycles", f"{report.total_cycles:,.0f}"),
        ("compute cycles", f"{report.compute_cycles:,.0f}"),
        ("stall cycles", f"{report.stall_cycles:,.0f}"),
        ("time", f"{report.time_s:.4f} s"),
        ("DRAM traffic", f"{report.dram_bytes / 1e9:,.3f} GB"),
        ("energy: DRAM", f"{report.energy_dram_mJ:,.1f} mJ"),
        ("energy: SRAM", f"{report.energy_sram_mJ:,.1f} mJ"),
        ("energy: core", f"{report.energy_core_mJ:,.1f} mJ"),
        ("energy: total", f"{report.energy_total_mJ:,.1f} mJ"),
        ("area", f"{report.area_mm2:.4f} mm^2"),
        ("on-chip power", f"{report.onchip_power_mW:,.2f} mW"),
    ):
        table.add_row(label, value)
    Console().print(table)


def _reproduce(output_dir: Path, mode: str, as_json: bool) -> None:
    from costmodel import paper

    if mode not in _CLI_MODES:
        raise ValueError(f"unknown mode {mode!r}; choose paper or corrected")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"--output-dir {output_dir} is not a directory")
    output_dir.mkdir(parents=True, exist_ok=True)
    results = paper.reproduce()
    rows = paper.comparison_rows(results)
    csv_path = paper.write_comparison_csv(rows, output_dir / "paper_comparison.csv")
    png_path = paper.plot_comparison(rows, output_dir / "paper_comparison.png")
    deviation = max(r.deviation for r in results)
    effects = paper.correction_effects() if mode == "corrected" else None
    if effects is not None:
        paper.write_comparison_csv(effects, output_dir / "correction_effects.csv")
    if as_json:
        print(json.dumps({"rows": rows, "max_deviation": deviation, "correction_effects": effects}))
        return
    console = Console()
    names = {"adaptiv": "Adaptiv", "cmc": "CMC", "sec-only": "SEC-only", "focus": "Focus*"}
    for metric, title, base in (
        ("speedup", "Speedup over SA (x)", "speedup"),
        ("energy", "Energy normalised to SA; Focus' energy gain over Adaptiv / CMC (x)", "energy"),
    ):
        table = Table(title=title)
        for col in ("model", "dataset", "T", *names.values(), "Focus vs Adaptiv", "Focus vs CMC"):
            table.add_column(col, justify="left" if col in ("model", "dataset") else "right")
        for r in rows:
            table.add_row(
                r["model"],
                r["dataset"],
                str(r["seq_len"]),
                *(f"{r[f'{metric}_{k}']:.3f}" for k in names),
                *(f"{r[f'focus_vs_{k}_{base}']:.3f}" for k in ("adaptiv", "cmc")),
            )
        console.print(table)
    if effects is not None:
        eff = Table(title="Headline geometric means under each correction (Focus: fitted stand-ins)")
        eff.add_column("variant")
        for col in ("Focus/SA", "Focus/Adaptiv", "Focus/CMC", "SEC-only/SA"):
            eff.add_column(col + " (speed / energy)", justify="right")
        for e in effects:
            eff.add_row(
                e["variant"],
                *(
                    f"{e[f'speedup_vs_{k}']:.3f} / {e[f'energy_gain_vs_{k}']:.3f}"
                    for k in ("sa", "adaptiv", "cmc", "sec_only_sa")
                ),
            )
        console.print(eff)
    console.print(f"wrote {escape(str(csv_path))} and {escape(str(png_path))}")
