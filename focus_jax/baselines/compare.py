"""Focus and the baselines side by side on the same questions: accuracy, visual-token GEMM
work, and modeled latency / energy on each method's accelerator.

- Accuracy: greedy answers of the model (``LlavaOnevision``) with each method, exact match
  (``focus_jax.data.score_samples``).
- Work: executed visual-token GEMM MACs / dense, per prompt (``FocusTrace.work_fraction``,
  ``MethodTrace.work_fraction``), averaged.
- Cost: ``costmodel`` in corrected mode, one prefill plus ``decode_tokens`` decode steps
  per question, averaged over questions: dense on the dense systolic array, Focus on
  Focus (``FocusStats`` from its trace), CMC on CMC (its measured linear / query /
  attention-score sparsities, as the paper feeds ``cmc_sparsity.csv``), Adaptiv on
  Adaptiv (its measured token sparsity, as ``adaptiv_sparsity.csv``), FrameFusion and
  FastV on the dense systolic array with their reduced token counts, layer by layer (a
  layer whose attention and MLP blocks see different counts is priced at their
  MAC-weighted mean).

``equal_work`` searches one knob per baseline so that its work matches a target (Focus')
within a tolerance: CMC's linear ``threshold``, Adaptiv's ``threshold``, FrameFusion's
``cost``, FastV's ``r``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np

from focus_jax.baselines.config import AdaptivConfig, BaselineConfig, CMCConfig, FastVConfig, FrameFusionConfig
from focus_jax.config import FocusConfig
from focus_jax.errors import InputError

__all__ = [
    "ACCELERATORS",
    "KNOBS",
    "Comparison",
    "MethodResult",
    "baseline_from_options",
    "compare",
    "default_methods",
    "equal_work",
    "eval_methods",
    "method_on_prompt",
    "plot_comparison",
    "price",
    "print_comparison",
    "print_method_report",
    "read_method_config",
    "run_eval_methods",
    "run_method",
    "traced_work",
]

#: costmodel kind each method is priced on.
ACCELERATORS = {
    "dense": "dense",
    "focus": "focus",
    "cmc": "cmc",
    "adaptiv": "adaptiv",
    "framefusion": "dense",
    "fastv": "dense",
}

#: The knob ``equal_work`` moves per baseline, its search interval and whether more of it
#: means more work.
KNOBS = {
    "cmc": ("threshold", 0.0, 4.0, False),
    "adaptiv": ("threshold", -1.0, 1.0, True),
    "framefusion": ("cost", 0.01, 1.0, True),
    "fastv": ("r", 0.0, 0.99, False),
}


@dataclasses.dataclass(frozen=True)
class MethodResult:
    """One method on the comparison's questions.

    Attributes:
        label: row name; method: ``dense``, ``focus`` or a baseline name; config: its
            config dict (None for dense).
        accelerator: ``costmodel`` kind it is priced on.
        accuracy: exact-match accuracy; per_family: ``{family: accuracy}``.
        work_fraction: mean executed visual-token GEMM work / dense.
        latency_s, energy_mJ: mean modeled time and energy per question (prefill + decode).
        answers: the answers, in question order.
    """

    label: str
    method: str
    config: dict | None
    accelerator: str
    accuracy: float
    per_family: dict
    work_fraction: float
    latency_s: float
    energy_mJ: float
    answers: tuple = ()

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("answers")
        return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """All methods on the same ``questions`` (``results[0]`` is the reference row, dense
    when present): ``to_dict`` adds each row's accuracy / latency / energy relative to it."""

    questions: int
    results: tuple

    def to_dict(self) -> dict:
        ref = self.results[0]
        rows = []
        for r in self.results:
            row = r.to_dict()
            row["accuracy_vs_reference"] = r.accuracy / ref.accuracy if ref.accuracy else None
            row["speedup_vs_reference"] = ref.latency_s / r.latency_s
            row["energy_vs_reference"] = r.energy_mJ / ref.energy_mJ
            rows.append(row)
        return {"questions": self.questions, "reference": ref.label, "methods": rows}

    @classmethod
    def from_dict(cls, d: dict) -> Comparison:
        """Inverse of ``to_dict`` (answers are not stored; derived ratios are dropped)."""
        names = {f.name for f in dataclasses.fields(MethodResult)} - {"answers"}
        return cls(
            int(d["questions"]), tuple(MethodResult(**{k: v for k, v in r.items() if k in names}) for r in d["methods"])
        )


# ---------------------------------------------------------------------------- cost


def _shape(text, layers: int | None = None):
    import costmodel as cm

    return cm.ModelShape(
        name="model",
        hidden_size=text.hidden_size,
        intermediate_size=text.intermediate_size,
        num_heads=text.num_heads,
        num_kv_heads=text.num_kv_heads,
        num_layers=layers or text.num_layers,
        head_dim=text.head_dim,
    )


@functools.lru_cache(maxsize=4096)
def _simulate(
    kind: str, shape, visual: float, frames: int, text: int, decode: int, extra: tuple = ()
) -> tuple[float, float]:
    import costmodel as cm

    wl = cm.Workload(shape, float(visual), frames=float(frames), text_tokens=float(text), decode_tokens=int(decode))
    if kind == "cmc":
        wl = wl.replace(cmc_sparsity=extra)
    elif kind == "adaptiv":
        wl = wl.replace(adaptiv_sparsity=extra[0])
    r = cm.simulate(cm.accelerator(kind), wl, mode="corrected")
    return r.time_s, r.energy_total_mJ


def _layer_mix(text) -> float:
    """Share of a layer's per-token linear MACs in its attention block (q, k, v, o)."""
    attn = (
        text.hidden_size * (text.num_heads + 2 * text.num_kv_heads) * text.head_dim
        + text.num_heads * text.head_dim * text.hidden_size
    )
    return attn / (attn + 3 * text.hidden_size * text.intermediate_size)


def price(text, trace, visual: int, frames: int, text_tokens: int, decode_tokens: int) -> tuple[str, float, float]:
    """``(accelerator, time_s, energy_mJ)`` of one question (see the module docstring).

    Args:
        text: the decoder's ``Qwen2Config``.
        trace: None (dense), a ``FocusTrace`` or a ``MethodTrace``.
        visual, frames: grid tokens and frames; text_tokens: the other prompt tokens;
            decode_tokens: generated tokens priced after the prefill.
    """
    import costmodel as cm

    shape = _shape(text)
    if trace is None:
        return ("dense", *_simulate("dense", shape, visual, frames, text_tokens, decode_tokens))
    method = getattr(trace, "method", "focus")
    if method == "focus":
        wl = cm.Workload(
            shape, float(visual), frames=float(frames), text_tokens=float(text_tokens), decode_tokens=int(decode_tokens)
        )
        r = cm.simulate(cm.focus(), wl.replace(focus=cm.FocusStats.from_trace(trace)), mode="corrected")
        return "focus", r.time_s, r.energy_total_mJ
    if method == "cmc":
        sparsity = tuple(round(min(s, 0.999), 6) for s in trace.mean_sparsity())
        return ("cmc", *_simulate("cmc", shape, visual, frames, text_tokens, decode_tokens, sparsity))
    if method == "adaptiv":
        sparsity = (round(min(trace.token_sparsity(), 0.999), 6),)
        return ("adaptiv", *_simulate("adaptiv", shape, visual, frames, text_tokens, decode_tokens, sparsity))
    one, mix = _shape(text, 1), _layer_mix(text)
    time_s = energy = 0.0
    for r_a, r_m in np.asarray(trace.kept_tokens, float):
        tokens = max(1.0, round(mix * r_a + (1 - mix) * r_m, 3))
        t, e = _simulate("dense", one, tokens, frames, text_tokens, decode_tokens)
        time_s, energy = time_s + t, energy + e
    return "dense", time_s, energy


# ---------------------------------------------------------------------------- running


def _label(cfg) -> str:
    if cfg is None:
        return "dense"
    return "focus" if isinstance(cfg, FocusConfig) else cfg.method


def run_method(
    model,
    cfg,
    samples: Sequence,
    batch_size: int = 50,
    decode_tokens: int = 2,
    label: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> MethodResult:
    """Answer ``samples`` with ``model`` running ``cfg`` and price every prompt.

    Args:
        model: a ``LlavaOnevision`` (its own Focus setting is ignored).
        cfg: None (dense), a ``FocusConfig`` or a baseline config.
        samples: task samples (``focus_jax.data``) with ``answer`` and ``family``.
        batch_size: prompts per generate call. decode_tokens: decode steps priced.
        label: row name (default: the method name). progress: called with questions done.

    Returns:
        ``MethodResult``.

    Raises:
        InputError: no samples, or ``batch_size`` < 1.
    """
    from focus_jax.data import build_tokenizer, score_samples
    from focus_jax.qa_eval import question_batch

    if not samples:
        raise InputError("no samples to evaluate")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    method = _label(cfg)
    runner = model.with_focus(cfg) if method in ("dense", "focus") else model.with_method(cfg)
    tok, text = build_tokenizer(), model.config.text
    frames = int(np.shape(samples[0].frames)[0])
    visual = frames * model.config.tokens_per_frame
    answers, work, time_s, energy = [], [], [], []
    accelerator = ACCELERATORS[method]
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        batch = question_batch(model.config, chunk, tok)
        ids, pixels, mask = batch["input_ids"], batch["pixel_values_videos"], batch["attention_mask"]
        if method == "dense":
            tokens, traces = (
                runner.generate(ids, pixel_values_videos=pixels, attention_mask=mask, max_new_tokens=4),
                [None] * len(chunk),
            )
        else:  # the trace comes from generate's own prefill
            tokens, traced = runner.generate(
                ids, pixel_values_videos=pixels, attention_mask=mask, max_new_tokens=4, return_trace=True
            )
            traces = [traced.to_focus_trace(i) for i in range(len(chunk))] if method == "focus" else traced
        answers += [tok.decode(row, skip_special_tokens=True).strip() for row in tokens]
        text_tokens = np.asarray(mask).sum(axis=1) - visual
        for trace, n_text in zip(traces, text_tokens):
            work.append(1.0 if trace is None else trace.work_fraction())
            accelerator, t, e = price(text, trace, visual, frames, int(n_text), decode_tokens)
            time_s.append(t)
            energy.append(e)
        if progress is not None:
            progress(start + len(chunk))
    report = score_samples(answers, samples)
    return MethodResult(
        label=label or method,
        method=method,
        config=None if cfg is None else cfg.to_dict(),
        accelerator=accelerator,
        accuracy=report.accuracy,
        per_family={f: row["accuracy"] for f, row in report.to_dict()["per_family"].items()},
        work_fraction=float(np.mean(work)),
        latency_s=float(np.mean(time_s)),
        energy_mJ=float(np.mean(energy)),
        answers=tuple(answers),
    )


def compare(
    model,
    samples: Sequence,
    methods: Sequence,
    batch_size: int = 50,
    decode_tokens: int = 2,
    progress: Callable[[str, int], None] | None = None,
) -> Comparison:
    """Every method of ``methods`` (``(label, cfg)`` pairs or configs; None: dense) on the
    same ``samples``; the first is the reference row. See ``run_method``."""
    results = []
    for item in methods:
        label, cfg = item if isinstance(item, tuple) else (None, item)
        name = label or _label(cfg)
        tick = None if progress is None else functools.partial(progress, name)
        results.append(run_method(model, cfg, samples, batch_size, decode_tokens, label=name, progress=tick))
    return Comparison(len(samples), tuple(results))


# ---------------------------------------------------------------------------- equal work


def traced_work(model, cfg: BaselineConfig, samples: Sequence, batch_size: int = 50) -> float:
    """Mean visual-token GEMM work fraction of ``cfg`` on ``samples`` (traced prefills only)."""
    from focus_jax.data import build_tokenizer
    from focus_jax.qa_eval import question_batch

    tok, runner = build_tokenizer(), model.with_method(cfg)
    work = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        batch = question_batch(model.config, chunk, tok)
        _, traces = runner.forward(
            batch["input_ids"],
            pixel_values_videos=batch["pixel_values_videos"],
            attention_mask=batch["attention_mask"],
            return_trace=True,
        )
        work += [t.work_fraction() for t in traces]
    return float(np.mean(work))


def equal_work(
    model,
    base: BaselineConfig,
    samples: Sequence,
    target: float,
    tolerance: float = 0.02,
    steps: int = 12,
    batch_size: int = 50,
) -> tuple[BaselineConfig, float]:
    """Bisect ``KNOBS[base.method]`` so that the method's work is within ``tolerance`` of
    ``target`` on ``samples``.

    Returns:
        ``(config, work)``: the config found and its work; if ``steps`` bisections do not
        reach the tolerance (work is a step function of the knob), the closest one seen.

    Raises:
        InputError: ``target`` outside (0, 1].
    """
    if not 0 < target <= 1:
        raise InputError(f"target work must lie in (0, 1], got {target}")
    name, lo, hi, increasing = KNOBS[base.method]
    best = None
    for _ in range(steps):
        mid = (lo + hi) / 2
        cfg = base.replace(**{name: round(mid, 6)})
        work = traced_work(model, cfg, samples, batch_size)
        if best is None or abs(work - target) < abs(best[1] - target):
            best = (cfg, work)
        if abs(work - target) <= tolerance:
            break
        if (work < target) == increasing:
            lo = mid
        else:
            hi = mid
    return best


# ---------------------------------------------------------------------------- plot


def plot_comparison(comparison: Comparison, path) -> None:
    """Accuracy vs modeled latency (one point per method, labelled with its accelerator and
    work), written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in comparison.results:
        ax.scatter(r.latency_s * 1e3, r.accuracy * 100, s=40)
        ax.annotate(
            f"{r.label} ({r.accelerator}, work {r.work_fraction:.0%})",
            (r.latency_s * 1e3, r.accuracy * 100),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xlabel("modeled latency per question (ms, prefill + decode)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{comparison.questions} questions: accuracy vs modeled latency")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def default_methods(focus: FocusConfig | None) -> list:
    """``[("dense", None), ("focus", focus), cmc, adaptiv, framefusion, fastv]`` with the
    references' default configs (Focus omitted when None)."""
    out = [("dense", None)]
    if focus is not None:
        out.append(("focus", focus))
    return out + [(c.method, c) for c in (CMCConfig(), AdaptivConfig(), FrameFusionConfig(), FastVConfig())]


# ---------------------------------------------------------------------------- command support


def read_method_config(path) -> BaselineConfig:
    """A baseline config from a JSON file (``{"method": "cmc", ...}``, ``to_dict``'s form).

    Raises:
        InputError: unreadable file, invalid JSON, or as ``method_from_dict``.
    """
    import json
    from pathlib import Path

    from focus_jax.baselines.config import method_from_dict

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--method-config {path}: {exc}") from None
    return method_from_dict(data)


def eval_methods(method: str | None, method_config, focus: FocusConfig | None, compare_all: bool) -> list:
    """The ``(label, cfg)`` rows ``focus-jax eval`` runs: dense first, then ``method`` (with the
    config file if given, else the reference default; ``focus``: the model's Focus config),
    or with ``compare_all`` every method (the file replacing its method's default row).

    Raises:
        InputError: an unknown method, a config file of another method than ``--method``,
            or Focus requested for a model without a Focus config.
    """
    from focus_jax.baselines.config import METHODS, default_method_config

    if method is not None and method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    cfg = None if method_config is None else read_method_config(method_config)
    if cfg is not None and method is not None and cfg.method != method:
        raise InputError(f"--method-config holds a {cfg.method} config, not {method}")
    if compare_all:
        rows = [(label, cfg if cfg is not None and label == cfg.method else c) for label, c in default_methods(focus)]
        return rows
    name = method or cfg.method
    if name == "focus":
        if focus is None:
            raise InputError("the model has no focus_config.json; pass --focus-config")
        return [("dense", None), ("focus", focus)]
    return [("dense", None), (name, cfg or default_method_config(name))]


def print_comparison(console, d: dict) -> None:
    """Print ``Comparison.to_dict()`` as one rich table (labels escaped)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"{d['questions']} held-out questions: accuracy, visual-token GEMM work, modeled cost (per question)"
    )
    for col in ("method", "accelerator", "accuracy", "vs dense", "GEMM work", "latency", "energy", "speed-up"):
        table.add_column(col, justify="left" if col in ("method", "accelerator") else "right")
    for r in d["methods"]:
        table.add_row(
            escape(r["label"]),
            r["accelerator"],
            f"{r['accuracy']:.1%}",
            "-" if r["accuracy_vs_reference"] is None else f"{r['accuracy_vs_reference']:.1%}",
            f"{r['work_fraction']:.1%}",
            f"{r['latency_s'] * 1e3:.3f} ms",
            f"{r['energy_mJ']:.3f} mJ",
            f"{r['speedup_vs_reference']:.2f}x",
        )
    console.print(table)
    console.print(
        "modeled: costmodel (corrected mode), prefill + decode, each method on its accelerator; "
        "work: executed visual-token GEMM MACs / dense"
    )


def run_eval_methods(
    model, task, seed: int, questions: int, rows: list, batch_size: int, plot=None, as_json: bool = False
) -> dict:
    """``focus-jax eval --method/--compare``: render ``questions`` held-out questions of
    ``task`` (data seed ``seed``), run ``compare`` on ``rows``, print the table (or one JSON
    object) and write the plot. Returns ``Comparison.to_dict()``."""
    import json

    from rich.console import Console
    from rich.progress import Progress

    from focus_jax.data import generate_samples
    from focus_jax.inputs.limits import check_limit

    check_limit("--questions", questions, "QUESTIONS")  # every method answers the same list of them
    with Progress(transient=True, disable=as_json) as bar:
        job = bar.add_task("rendering questions", total=questions)
        samples = []
        for start in range(0, questions, 50):
            samples += generate_samples(task, seed, min(50, questions - start), start)
            bar.update(job, completed=len(samples))
        jobs = {label: bar.add_task(f"answering ({label})", total=questions) for label, _ in rows}
        result = compare(
            model, samples, rows, batch_size, progress=lambda label, done: bar.update(jobs[label], completed=done)
        )
    out = result.to_dict()
    if plot is not None:
        plot_comparison(result, plot)
        out["plot"] = str(plot)
    if as_json:
        print(json.dumps(out))
    else:
        print_comparison(Console(), out)
    return out


def method_on_prompt(model, cfg: BaselineConfig, ids, pixels, max_new_tokens: int, decode: Callable, eos) -> dict:
    """``focus-jax run --method``: one prompt answered with baseline ``cfg``.

    Args:
        model: the dense ``LlavaOnevision``; ids: ``(1, S)`` prompt; pixels: ``(1, F, C, H, W)``.
        max_new_tokens: greedy tokens at most; decode: tokens -> text; eos: end-of-sequence ids.

    Returns:
        ``{"method", "config", "answer", "kept_tokens_per_layer" ([[attention, MLP], ...]),
        "layer_sparsity" (CMC: per layer [linear, query, score]; else None), "work_fraction",
        "modeled": {"accelerator", "time_s", "energy_mJ"}}``; decode priced for the answer's
        length (end token included).
    """
    tokens, traces = model.with_method(cfg).generate(
        ids, pixel_values_videos=pixels, max_new_tokens=max_new_tokens, return_trace=True
    )
    tokens, trace = np.asarray(tokens)[0], traces[0]
    stops = [i for i, t in enumerate(tokens.tolist()) if t in tuple(eos)]
    length = stops[0] + 1 if stops else len(tokens)
    visual = trace.geometry.num_tokens
    kind, time_s, energy = price(
        model.config.text, trace, visual, trace.geometry.frames, int(ids.shape[1]) - visual, length
    )
    return {
        "method": cfg.method,
        "config": cfg.to_dict(),
        "answer": decode(tokens[:length]),
        "kept_tokens_per_layer": trace.kept_tokens.tolist(),
        "layer_sparsity": None if trace.layer_sparsity is None else trace.layer_sparsity.tolist(),
        "work_fraction": trace.work_fraction(),
        "modeled": {"accelerator": kind, "time_s": time_s, "energy_mJ": energy},
    }


def baseline_from_options(method: str | None, method_config) -> BaselineConfig | None:
    """``focus-jax run --method/--method-config``: the baseline config to run, or None.

    Raises:
        InputError: ``method`` is not a baseline, or the file holds another method's config.
    """
    from focus_jax.baselines.config import default_method_config

    if method is None and method_config is None:
        return None
    if method is not None and method not in KNOBS:
        raise InputError(f"--method must be one of {', '.join(KNOBS)} (Focus runs by default), got {method!r}")
    cfg = default_method_config(method) if method_config is None else read_method_config(method_config)
    if method is not None and cfg.method != method:
        raise InputError(f"--method-config holds a {cfg.method} config, not {method}")
    return cfg


def print_method_report(console, m: dict, dense_time_s: float) -> None:
    """Print ``method_on_prompt``'s result (answer, tokens kept, work, modeled cost)."""
    from rich.markup import escape

    kept = ", ".join(f"{a}/{b}" for a, b in m["kept_tokens_per_layer"])
    console.print(f"[bold]answer ({m['method']}):[/] {escape(repr(m['answer']))}")
    console.print(
        f"{m['method']}: visual tokens entering attention/MLP of each layer: {kept}; "
        f"visual-token GEMM work {m['work_fraction']:.1%} of dense"
    )
    cost = m["modeled"]
    console.print(
        f"{m['method']} modeled on the {cost['accelerator']} accelerator: {cost['time_s'] * 1e3:.3f} ms "
        f"({dense_time_s / cost['time_s']:.2f}x vs dense), {cost['energy_mJ']:.3f} mJ"
    )
