"""Workloads: model shapes, token counts, and what concentration did to each GEMM input.

- ``ModelShape``: the decoder dimensions that fix the GEMMs of one layer, from a known name,
  any Hugging Face style config (dict or ``config.json`` path), or a ``FocusTrace``.
- ``FocusStats``: per layer and traced GEMM input (``focus_jax.trace.GEMM_NAMES``), the kept
  tokens ``r`` and the zero and similar vector counts ``Z``, ``S`` that price Focus (spec
  "Focus GEMMs from a trace"); from a trace, an SEC schedule, or plain sparsity statistics.
- ``Workload``: a model, its visual / text / decode token counts, and the sparsity inputs of
  each accelerator. A JAX pytree: counts and sparsities are leaves (vmap, grad).
- ``SparsityCurve``: similar-vector fraction as a function of the SIC threshold, so that a
  threshold can be optimised through the expected sparsity.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from costmodel.ops import EXACT, Ops

__all__ = [
    "GEMM_NAMES",
    "KNOWN_MODELS",
    "TraceLike",
    "Gemm",
    "ModelShape",
    "FocusStats",
    "Workload",
    "SparsityCurve",
    "sec_kept_tokens",
]

#: GEMM inputs that SIC concentrates and a trace records, in the order they occur in a decoder
#: layer (spec table): q/k/v input, Q of Q.K^T, o input, gate/up input, down input.
GEMM_NAMES = ("q_proj", "query", "o_proj", "gate_proj", "down_proj")


class TraceLike(Protocol):
    """What ``costmodel`` reads of a sparsity trace (``focus_jax.trace.FocusTrace`` is one;
    costmodel never imports focus_jax, it reads these attributes).

    ``model``: ``{"num_layers", "hidden_size", "intermediate_size", "num_heads",
    "num_kv_heads", "head_dim"}``; ``geometry``: ``num_tokens`` and ``frames``;
    ``text_tokens``: prompt tokens that are not grid tokens; ``num_layers``; ``gemms``:
    ``{(layer, gemm name): obj}`` where ``obj`` has ``mask_zero`` ``(N, V)`` and the counts
    ``zero_tokens``, ``zero_vectors``, ``similar_vectors``.
    """

    model: dict
    geometry: object
    text_tokens: int
    gemms: dict

    @property
    def num_layers(self) -> int: ...


@dataclasses.dataclass(frozen=True)
class Gemm:
    """One linear GEMM of a decoder layer: ``(M x in_features) . (in_features x out_features)``.

    ``trace``: index into ``GEMM_NAMES`` of the input it reads (k and v read q's input, up
    reads gate's).
    """

    name: str
    in_features: int
    out_features: int
    trace: int


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """Decoder dimensions (elements) of a transformer language model.

    Raises:
        ValueError: a non-positive dimension, or heads that do not divide evenly.
    """

    name: str
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    num_layers: int
    head_dim: int

    def __post_init__(self):
        for f in ("hidden_size", "intermediate_size", "num_heads", "num_kv_heads", "num_layers", "head_dim"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"model {self.name!r}: {f} must be a positive integer, got {v!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"model {self.name!r}: num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}"
            )

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    def linear_gemms(self) -> tuple[Gemm, ...]:
        """The seven projections of one layer (q, k, v, o, gate, up, down)."""
        d, i = self.hidden_size, self.intermediate_size
        return (
            Gemm("q_proj", d, self.q_size, 0),
            Gemm("k_proj", d, self.kv_size, 0),
            Gemm("v_proj", d, self.kv_size, 0),
            Gemm("o_proj", self.q_size, d, 2),
            Gemm("gate_proj", d, i, 3),
            Gemm("up_proj", d, i, 3),
            Gemm("down_proj", i, d, 4),
        )

    def linear_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(in_features, out_features, trace index)`` of ``linear_gemms`` as ``(7,)`` arrays."""
        gemms = self.linear_gemms()
        return (
            np.array([g.in_features for g in gemms], float),
            np.array([g.out_features for g in gemms], float),
            np.array([g.trace for g in gemms]),
        )

    def input_features(self) -> tuple[int, ...]:
        """Width (elements) of each traced GEMM input, in ``GEMM_NAMES`` order."""
        return (self.hidden_size, self.q_size, self.q_size, self.hidden_size, self.intermediate_size)

    @classmethod
    def from_config(cls, config: dict, name: str = "custom") -> "ModelShape":
        """From a Hugging Face style config (the ``text_config`` of a VLM config is used if present).

        Needs ``hidden_size``, ``intermediate_size``, ``num_attention_heads`` and
        ``num_hidden_layers``; ``num_key_value_heads`` defaults to the head count and
        ``head_dim`` to ``hidden_size / num_attention_heads``.

        Raises:
            ValueError: a required key is missing or a value is invalid.
        """
        if not isinstance(config, dict):
            raise ValueError(f"model config must be a JSON object, got {type(config).__name__}")
        cfg = config.get("text_config") or config.get("llm_config") or config
        missing = [
            k for k in ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers") if k not in cfg
        ]
        if missing:
            raise ValueError(f"model config {name!r} lacks {', '.join(missing)}")
        heads = cfg["num_attention_heads"]
        head_dim = cfg.get("head_dim") or (cfg["hidden_size"] // heads if isinstance(heads, int) and heads > 0 else 0)
        return cls(
            name=name,
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_heads=heads,
            num_kv_heads=cfg.get("num_key_value_heads") or heads,
            num_layers=cfg["num_hidden_layers"],
            head_dim=head_dim,
        )

    @classmethod
    def load(cls, name_or_path: str | Path) -> "ModelShape":
        """A known model name (``KNOWN_MODELS``) or the path of a ``config.json``.

        Raises:
            ValueError: a name that is neither known nor an existing file (reported as an
                unknown model), or an unreadable or invalid config.
        """
        key = str(name_or_path)
        if key in KNOWN_MODELS:
            return KNOWN_MODELS[key]
        path = Path(key)
        if not path.is_file():
            raise ValueError(f"unknown model {key!r}: not one of {sorted(KNOWN_MODELS)} and not a config.json file")
        try:
            config = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read model config {path}: {exc}") from None
        return cls.from_config(config, name=path.stem if path.name != "config.json" else path.parent.name)

    @classmethod
    def from_trace(cls, trace: TraceLike) -> "ModelShape":
        """The dimensions recorded in a ``focus_jax.trace.FocusTrace``."""
        m = trace.model
        return cls(
            name="trace",
            hidden_size=int(m["hidden_size"]),
            intermediate_size=int(m["intermediate_size"]),
            num_heads=int(m["num_heads"]),
            num_kv_heads=int(m["num_kv_heads"]),
            num_layers=int(m["num_layers"]),
            head_dim=int(m["head_dim"]),
        )


_QWEN2_7B = dict(hidden_size=3584, intermediate_size=18944, num_heads=28, num_kv_heads=4, num_layers=28, head_dim=128)

#: Known models. The four VLMs of the paper all use a Qwen2-7B-shaped language model
#: (LLaVA-Video-7B-Qwen2, LLaVA-OneVision-Qwen2-7B, MiniCPM-V 2.6, Qwen2.5-VL-7B).
KNOWN_MODELS = {
    "qwen2-7b": ModelShape("qwen2-7b", **_QWEN2_7B),
    "qwen2-0.5b": ModelShape(
        "qwen2-0.5b", hidden_size=896, intermediate_size=4864, num_heads=14, num_kv_heads=2, num_layers=24, head_dim=64
    ),
    "llava_vid": ModelShape("llava_vid", **_QWEN2_7B),
    "llava_onevision": ModelShape("llava_onevision", **_QWEN2_7B),
    "minicpm_v": ModelShape("minicpm_v", **_QWEN2_7B),
    "qwen2_5_vl": ModelShape("qwen2_5_vl", **_QWEN2_7B),
    # the language models of Qwen/Qwen2.5-VL-{3B,7B}-Instruct (focus_jax/models/qwen2_5_vl/configs)
    "qwen2.5-vl-3b": ModelShape(
        "qwen2.5-vl-3b",
        hidden_size=2048,
        intermediate_size=11008,
        num_heads=16,
        num_kv_heads=2,
        num_layers=36,
        head_dim=128,
    ),
    "qwen2.5-vl-7b": ModelShape("qwen2.5-vl-7b", **_QWEN2_7B),
}


def sec_kept_tokens(num_layers: int, visual_tokens, sec_layers, sec_alphas, ops: Ops = EXACT):
    """Visual tokens entering the attention and the MLP block of every layer under SEC.

    SEC at layer ``l`` keeps ``max(1, min(floor(T * alpha), kept))`` tokens after the layer's
    attention (spec "SEC"; ``focus_jax.config.FocusConfig.kept_visual_tokens``).

    Args:
        num_layers: decoder layers ``L``.
        visual_tokens: ``T`` (tokens).
        sec_layers: strictly increasing layer indices in ``[0, L)``.
        sec_alphas: retention ratios in ``(0, 1]`` (numbers or a traced array).
        ops: exact or relaxed ``floor`` (relaxed makes the counts differentiable in alpha).

    Returns:
        ``(attention, mlp)``: two ``(L,)`` float arrays of token counts.

    Raises:
        ValueError: mismatched lengths or a layer out of range.
    """
    layers = tuple(int(x) for x in sec_layers)
    xp = _array_module(ops, visual_tokens, sec_alphas)
    alphas = xp.asarray(sec_alphas, dtype=_float(xp)).reshape(-1)
    if len(layers) != alphas.shape[0]:
        raise ValueError(f"sec_layers and sec_alphas have different lengths ({len(layers)} and {alphas.shape[0]})")
    if any(not 0 <= x < num_layers for x in layers) or any(b <= a for a, b in zip(layers, layers[1:])):
        raise ValueError(f"sec_layers must be strictly increasing indices in [0, {num_layers}), got {list(layers)}")
    floor = np.floor if xp is np else ops.floor
    t = xp.asarray(visual_tokens, dtype=_float(xp))
    kept = t
    attention, mlp = [], []
    for layer in range(num_layers):
        attention.append(kept)
        if layer in layers:
            target = floor(t * alphas[layers.index(layer)])
            kept = xp.maximum(1.0, xp.minimum(target, kept))
        mlp.append(kept)
    return xp.stack(attention), xp.stack(mlp)


def _float(xp):
    """The float dtype of ``xp``: float64 for numpy, jax's default float (64-bit only under x64)."""
    return np.float64 if xp is np else jnp.result_type(float)


def _array_module(ops: Ops, *values):
    """numpy (float64, exact) for concrete inputs and exact rounding, jax.numpy otherwise."""
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(values))
    return np if ops.exact and not traced else jnp


@dataclasses.dataclass(frozen=True)
class FocusStats:
    """Concentration statistics of the traced GEMM inputs (counts, floats; ``(L, 5)`` arrays).

    Column ``j`` is ``GEMM_NAMES[j]``. ``kept_tokens``: tokens not pruned by SEC (``r``);
    ``zero_vectors``: all-zero vectors ``Z`` (pruned tokens count ``V`` each);
    ``similar_vectors``: vectors merged by SIC ``S``; ``vectors_per_token`` (static):
    ``V = ceil(width / vector_size)`` per column.
    """

    kept_tokens: jax.Array
    zero_vectors: jax.Array
    similar_vectors: jax.Array
    vectors_per_token: tuple

    @property
    def num_layers(self) -> int:
        return int(np.shape(self.kept_tokens)[0])

    @classmethod
    def from_trace(cls, trace) -> "FocusStats":
        """Counts of a ``focus_jax.trace.FocusTrace`` (every layer and GEMM input must be traced).

        A trace with a ``focus_counts()`` method (``focus_jax.trace.RelaxedFocusTrace``: the
        expected counts of a relaxed prefill) gives ``(kept_tokens, zero_vectors,
        similar_vectors, vectors_per_token)`` directly, ``(L, 5)`` arrays that stay JAX
        arrays (traced under ``jax.grad``): duck typing, nothing here imports focus_jax.

        Raises:
            ValueError: a layer or GEMM input is missing from the trace.
        """
        counts = getattr(trace, "focus_counts", None)
        if counts is not None:
            kept, zero, similar, vpt = counts()
            return cls(kept, zero, similar, tuple(int(v) for v in vpt))
        missing = [(layer, g) for layer in range(trace.num_layers) for g in GEMM_NAMES if (layer, g) not in trace.gemms]
        if missing:
            raise ValueError(f"trace lacks {len(missing)} (layer, gemm) entries, e.g. {missing[:3]}")
        kept = np.zeros((trace.num_layers, len(GEMM_NAMES)))
        zero = np.zeros_like(kept)
        similar = np.zeros_like(kept)
        vpt = []
        for j, g in enumerate(GEMM_NAMES):
            vpt.append(int(trace.gemms[(0, g)].mask_zero.shape[1]))
            for layer in range(trace.num_layers):
                gt = trace.gemms[(layer, g)]
                kept[layer, j] = gt.mask_zero.shape[0] - gt.zero_tokens
                zero[layer, j] = gt.zero_vectors
                similar[layer, j] = gt.similar_vectors
        return cls(kept, zero, similar, tuple(vpt))

    @classmethod
    def from_schedule(
        cls,
        model: ModelShape,
        visual_tokens,
        sec_layers=(),
        sec_alphas=(),
        similar_fraction=0.0,
        vector_size: int = 32,
        ops: Ops = EXACT,
    ) -> "FocusStats":
        """Statistics implied by an SEC schedule and a similar-vector fraction.

        Pruned tokens are zero vectors (``Z = (T - r) V``); a fraction ``similar_fraction``
        of the kept vectors is merged by SIC (``S = f r V``; 0 gives SEC only). The q/k/v,
        Q and o inputs of layer ``l`` see the tokens entering its attention, the MLP inputs
        the tokens after SEC (spec "SEC-only mode").

        Args:
            model: decoder shape.
            visual_tokens: ``T``.
            sec_layers, sec_alphas: the SEC schedule (see ``sec_kept_tokens``).
            similar_fraction: scalar, ``(5,)`` per GEMM input, or ``(L, 5)``, in [0, 1].
            vector_size: SIC vector size in elements.
            ops: exact or relaxed rounding of the kept-token counts.

        Raises:
            ValueError: a concrete ``similar_fraction`` that is not finite or outside
                [0, 1] (a traced one is the caller's to keep in range). A ValueError, not
                ``focus_jax.errors.InputError``: costmodel imports nothing from focus_jax;
                the CLI prints either as one ``error:`` line.
        """
        if not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(similar_fraction)):
            fraction = np.asarray(similar_fraction, dtype=float)
            if not (np.isfinite(fraction).all() and ((fraction >= 0) & (fraction <= 1)).all()):
                raise ValueError(f"similar_fraction must be finite and in [0, 1], got {similar_fraction!r}")
        attention, mlp = sec_kept_tokens(model.num_layers, visual_tokens, sec_layers, sec_alphas, ops)
        xp = _array_module(ops, visual_tokens, sec_alphas, similar_fraction)
        kept = xp.stack([attention, attention, attention, mlp, mlp], axis=1)
        vpt = tuple(math.ceil(w / vector_size) for w in model.input_features())
        v = np.asarray(vpt, dtype=float)
        zero = (xp.asarray(visual_tokens, dtype=_float(xp)) - kept) * v
        similar = xp.broadcast_to(xp.asarray(similar_fraction, dtype=_float(xp)), kept.shape) * kept * v
        return cls(kept, zero, similar, vpt)

    def validate(self, model: ModelShape, visual_tokens) -> None:
        """Check shapes and ranges against the model and ``T`` (concrete values only).

        Raises:
            ValueError: wrong shape or layer count, counts out of range.
        """
        shape = (model.num_layers, len(GEMM_NAMES))
        for name in ("kept_tokens", "zero_vectors", "similar_vectors"):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(
                    f"FocusStats.{name} must have shape {shape} for {model.name}, got {np.shape(getattr(self, name))}"
                )
        if len(self.vectors_per_token) != len(GEMM_NAMES):
            raise ValueError(f"FocusStats.vectors_per_token needs {len(GEMM_NAMES)} entries")
        if any(
            isinstance(x, jax.core.Tracer)
            for x in (self.kept_tokens, self.zero_vectors, self.similar_vectors, visual_tokens)
        ):
            return
        t = float(np.max(visual_tokens))
        kept, zero, similar = (
            np.asarray(x, float) for x in (self.kept_tokens, self.zero_vectors, self.similar_vectors)
        )
        total = t * np.asarray(self.vectors_per_token, float)
        if np.any(kept < 0) or np.any(kept > t):
            raise ValueError(f"FocusStats.kept_tokens must lie in [0, {t:g}]")
        if np.any(zero < 0) or np.any(similar < 0) or np.any(zero + similar > total + 1e-6):
            raise ValueError("FocusStats: zero and similar vector counts must be >= 0 and sum to at most T * V")

    def project(self, model: ModelShape, visual_tokens, from_tokens, vector_size: int = 32) -> "FocusStats":
        """The same per-layer fractions on another decoder (e.g. a trace of a small model
        priced at full size): layer ``l`` of ``model`` takes the statistics of layer
        ``floor(l * L_self / L_model)`` (same relative depth); kept tokens scale with
        ``visual_tokens / from_tokens``, zero and similar vectors with the vectors of
        ``model``'s inputs (``ceil(width / vector_size)`` per token).

        Args:
            model: the target shape; visual_tokens: its ``T``; from_tokens: the ``T`` these
                statistics were measured on; vector_size: SIC vector size in elements.
        """
        rows = (np.arange(model.num_layers) * self.num_layers) // model.num_layers
        v_from = np.asarray(self.vectors_per_token, float)
        vpt = tuple(math.ceil(w / vector_size) for w in model.input_features())
        per_vector = visual_tokens * np.asarray(vpt, float) / (from_tokens * v_from)
        kept = np.asarray(self.kept_tokens, float)[rows] * (visual_tokens / from_tokens)
        zero = np.asarray(self.zero_vectors, float)[rows] * per_vector
        similar = np.asarray(self.similar_vectors, float)[rows] * per_vector
        return FocusStats(kept, zero, similar, vpt)


jax.tree_util.register_dataclass(
    FocusStats, data_fields=["kept_tokens", "zero_vectors", "similar_vectors"], meta_fields=["vectors_per_token"]
)


@dataclasses.dataclass(frozen=True)
class Workload:
    """What runs on the accelerator: one prefill (and optionally a decode) of one prompt.

    Attributes:
        model: decoder shape (static).
        visual_tokens: ``T``, visual tokens of the prompt (tokens).
        frames: video frames ``F`` (CMC's codec partitions).
        text_tokens: text tokens of the prompt (tokens; corrected mode only -- the paper
            models visual tokens only).
        decode_tokens: generated tokens (static int; corrected mode only).
        focus: ``FocusStats`` for Focus and SEC-only (None otherwise).
        adaptiv_sparsity: Adaptiv's token sparsity ``s`` (fraction).
        cmc_sparsity: CMC's ``(linear, query, attention-score)`` sparsities (fractions).
    """

    model: ModelShape
    visual_tokens: float
    frames: float = 1
    text_tokens: float = 0
    decode_tokens: int = 0
    focus: FocusStats | None = None
    adaptiv_sparsity: float = 0.0
    cmc_sparsity: tuple = (0.0, 0.0, 0.0)

    def replace(self, **changes) -> "Workload":
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Check concrete values (tracers are skipped).

        Raises:
            ValueError: naming the field: a token count below 1 (0 for text), a sparsity
                outside [0, 1), a negative decode length, bad Focus statistics.
        """
        if isinstance(self.decode_tokens, bool) or not isinstance(self.decode_tokens, int) or self.decode_tokens < 0:
            raise ValueError(f"decode_tokens must be a non-negative integer, got {self.decode_tokens!r}")
        checks = {
            "visual_tokens": (self.visual_tokens, 1, None),
            "frames": (self.frames, 1, None),
            "text_tokens": (self.text_tokens, 0, None),
            "adaptiv_sparsity": (self.adaptiv_sparsity, 0, 1),
        }
        for i, s in enumerate(self.cmc_sparsity):
            checks[f"cmc_sparsity[{i}]"] = (s, 0, 1)
        for name, (value, low, high) in checks.items():
            if isinstance(value, jax.core.Tracer):
                continue
            arr = np.asarray(value, float)
            if not np.all(np.isfinite(arr)) or np.any(arr < low) or (high is not None and np.any(arr >= high)):
                bound = f"in [{low}, {high})" if high is not None else f">= {low}"
                raise ValueError(f"{name} must be {bound}, got {value!r}")
        if len(self.cmc_sparsity) != 3:
            raise ValueError(f"cmc_sparsity needs 3 values (linear, query, score), got {len(self.cmc_sparsity)}")
        if self.focus is not None:
            self.focus.validate(self.model, self.visual_tokens)

    @classmethod
    def from_trace(cls, trace: TraceLike, decode_tokens: int = 0) -> "Workload":
        """The workload recorded in a ``focus_jax.trace.FocusTrace`` (model, tokens, Focus counts)."""
        return cls(
            model=ModelShape.from_trace(trace),
            visual_tokens=float(trace.geometry.num_tokens),
            frames=float(trace.geometry.frames),
            text_tokens=float(trace.text_tokens),
            decode_tokens=decode_tokens,
            focus=FocusStats.from_trace(trace),
        )


jax.tree_util.register_dataclass(
    Workload,
    data_fields=["visual_tokens", "frames", "text_tokens", "focus", "adaptiv_sparsity", "cmc_sparsity"],
    meta_fields=["model", "decode_tokens"],
)


@dataclasses.dataclass(frozen=True)
class SparsityCurve:
    """Similar-vector fraction of SIC as a function of its similarity threshold.

    Piecewise linear through measured ``(threshold, sparsity)`` points (e.g. from
    ``focus-jax concentrate --json`` at several thresholds), constant outside; the
    derivative with respect to the threshold is finite everywhere, so a threshold can be
    tuned by gradient through the cost model.

    Raises:
        ValueError: fewer than two points, thresholds not increasing, sparsities outside [0, 1].
    """

    thresholds: tuple
    sparsities: tuple

    def __post_init__(self):
        th, sp = tuple(float(x) for x in self.thresholds), tuple(float(x) for x in self.sparsities)
        if len(th) < 2 or len(th) != len(sp):
            raise ValueError("SparsityCurve needs at least two (threshold, sparsity) points of equal count")
        if any(b <= a for a, b in zip(th, th[1:])):
            raise ValueError(f"SparsityCurve thresholds must increase, got {th}")
        if any(not 0 <= s <= 1 for s in sp):
            raise ValueError(f"SparsityCurve sparsities must lie in [0, 1], got {sp}")
        object.__setattr__(self, "thresholds", th)
        object.__setattr__(self, "sparsities", sp)

    def __call__(self, threshold):
        """Expected similar-vector fraction at ``threshold`` (array or number)."""
        return jnp.interp(
            jnp.asarray(threshold, dtype=_float(jnp)), jnp.asarray(self.thresholds), jnp.asarray(self.sparsities)
        )
