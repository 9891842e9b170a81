"""Sparsity traces: what Focus did to every GEMM input of one prefill.

A trace is the interface between ``focus_jax`` (which produces it) and ``costmodel``
(which prices it). Source: spec "Traces" -- per layer and GEMM name the ``mask_zero``,
``mask_similar`` and ``group_index`` arrays of SIC, plus the kept-token counts of SEC.

File format (``FocusTrace.save`` / ``FocusTrace.load``): one ``.npz`` archive
written with ``numpy.savez_compressed`` and read with ``allow_pickle=False``:

- ``__meta__``: a 0-d unicode array holding a JSON object with ``format`` (``"focus-trace"``),
  ``version`` (1), ``geometry`` (``frames``, ``height``, ``width``), ``config`` (the
  ``FocusConfig`` fields), ``model`` (``num_layers``, ``hidden_size``,
  ``intermediate_size``, ``num_heads``, ``num_kv_heads``, ``head_dim``), ``text_tokens``
  (prefix + query text tokens of the prompt) and ``layers`` (sorted layer indices present).
- ``kept_tokens``: ``(num_layers, 2)`` int32; visual tokens kept entering the attention
  block (column 0) and the MLP block (column 1) of each layer. SEC at layer ``l`` makes
  column 1 of ``l`` smaller than column 0.
- for each layer ``l`` and GEMM name ``g`` in ``GEMM_NAMES``:
  ``L{l:03d}/{g}/mask_zero``, ``.../mask_similar`` (``(N, V)`` bool) and
  ``.../group_index`` (``(N, V)`` int32, flat ``token * V + slot``) where ``N`` is the
  original number of visual tokens (pruned tokens appear as zero vectors) and
  ``V = ceil(D / vector_size)``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from focus_jax.config import FocusConfig, VisualGeometry

__all__ = ["GEMM_NAMES", "GemmTrace", "FocusTrace", "RelaxedFocusTrace"]

#: GEMM inputs that SIC concentrates, in the order they occur in a decoder layer (spec table).
GEMM_NAMES = ("q_proj", "query", "o_proj", "gate_proj", "down_proj")

_FORMAT = "focus-trace"
_VERSION = 1


@dataclasses.dataclass(frozen=True)
class GemmTrace:
    """SIC result of one GEMM input: three ``(N, V)`` arrays (numpy)."""

    mask_zero: np.ndarray
    mask_similar: np.ndarray
    group_index: np.ndarray

    def __post_init__(self):
        shapes = {a.shape for a in (self.mask_zero, self.mask_similar, self.group_index)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"GemmTrace arrays must share one (N, V) shape, got {sorted(shapes)}")

    @property
    def num_vectors(self) -> int:
        return int(self.mask_zero.size)

    @property
    def zero_vectors(self) -> int:
        """``Z``: vectors that are entirely zero (pruned tokens)."""
        return int(self.mask_zero.sum())

    @property
    def similar_vectors(self) -> int:
        """``S``: vectors merged into an earlier vector's group."""
        return int(self.mask_similar.sum())

    @property
    def zero_tokens(self) -> int:
        """``n0``: tokens whose vectors are all zero."""
        return int(self.mask_zero.all(axis=1).sum())

    @property
    def sparsity(self) -> float:
        """``(S + Z) / (N * V)``, spec SIC step 9."""
        return (self.similar_vectors + self.zero_vectors) / self.num_vectors


@dataclasses.dataclass(frozen=True)
class FocusTrace:
    """The trace of one prefill of one prompt (see the module docstring for the format).

    Attributes:
        geometry: visual-token grid.
        config: the Focus configuration that produced the trace.
        model: model dimensions (``num_layers``, ``hidden_size``, ``intermediate_size``,
            ``num_heads``, ``num_kv_heads``, ``head_dim``).
        text_tokens: number of text tokens of the prompt (never concentrated).
        kept_tokens: ``(num_layers, 2)`` int array, see module docstring.
        gemms: ``{(layer, gemm_name): GemmTrace}``.
    """

    geometry: VisualGeometry
    config: FocusConfig
    model: dict
    text_tokens: int
    kept_tokens: np.ndarray
    gemms: dict

    @property
    def num_layers(self) -> int:
        return int(self.model["num_layers"])

    def sparsity(self) -> dict:
        """``{(layer, name): sparsity}`` for every traced GEMM input."""
        return {key: g.sparsity for key, g in self.gemms.items()}

    def gemm_work(self) -> dict:
        """Visual-token GEMM work, ``{(layer, gemm): (focus_MACs, dense_MACs)}``.

        Dense: every one of the ``N`` visual tokens at every layer. Focus: only the
        unique vectors (neither zero nor similar) are multiplied, each with its
        ``vector_size``-row slice of the weight, and attention runs over the kept tokens.
        Per layer ``l`` with ``r`` visual tokens kept entering attention and unique-vector
        fraction ``f = 1 - sparsity`` of the GEMM input:

        - ``q_proj`` (serves q, k, v): ``N * D * (heads + 2 * kv_heads) * head_dim``;
        - ``o_proj``: ``N * D * D``; ``gate_proj`` (serves gate and up): ``N * D * 2I``;
          ``down_proj``: ``N * I * D`` -- each scaled by ``f`` for Focus;
        - ``query`` (Q.K^T): dense ``N * N * heads * head_dim``, Focus ``f * N * r * ...``;
          A.V (untraced): dense ``N * N * heads * head_dim``, Focus ``r * r * ...``.

        Text tokens are excluded; causality would halve dense and Focus attention alike.
        Units: multiply-accumulates. Source: spec "What the hardware gains".
        """
        m = self.model
        n = self.geometry.num_tokens
        d, inter = m["hidden_size"], m["intermediate_size"]
        q_width = m["num_heads"] * m["head_dim"]
        outputs = {
            "q_proj": (d, (m["num_heads"] + 2 * m["num_kv_heads"]) * m["head_dim"]),
            "o_proj": (q_width, d),
            "gate_proj": (d, 2 * inter),
            "down_proj": (inter, d),
        }
        work = {}
        for (layer, name), g in self.gemms.items():
            unique = 1.0 - g.sparsity
            if name == "query":
                kept = int(self.kept_tokens[layer, 0])
                dense = n * n * q_width
                work[(layer, "query")] = (unique * n * kept * q_width, dense)
                work[(layer, "attn_v")] = (kept * kept * q_width, dense)
            else:
                k, n_out = outputs[name]
                work[(layer, name)] = (unique * n * k * n_out, n * k * n_out)
        return work

    def work_fraction(self) -> float:
        """Focus' visual-token GEMM work as a fraction of dense (see ``gemm_work``)."""
        work = self.gemm_work().values()
        return sum(f for f, _ in work) / sum(d for _, d in work)

    def save(self, path: str | Path) -> Path:
        """Write the trace as ``.npz`` (format in the module docstring). Returns the path."""
        path = Path(path)
        meta = {
            "format": _FORMAT,
            "version": _VERSION,
            "geometry": dataclasses.asdict(self.geometry),
            "config": dataclasses.asdict(self.config),
            "model": {k: int(v) for k, v in self.model.items()},
            "text_tokens": int(self.text_tokens),
            "layers": sorted({layer for layer, _ in self.gemms}),
        }
        arrays = {"__meta__": np.array(json.dumps(meta)), "kept_tokens": np.asarray(self.kept_tokens, np.int32)}
        for (layer, name), g in self.gemms.items():
            prefix = f"L{layer:03d}/{name}/"
            arrays[prefix + "mask_zero"] = np.asarray(g.mask_zero, bool)
            arrays[prefix + "mask_similar"] = np.asarray(g.mask_similar, bool)
            arrays[prefix + "group_index"] = np.asarray(g.group_index, np.int32)
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FocusTrace":
        """Read a trace written by ``save``.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a focus-trace ``.npz`` of a supported version.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"trace file not found: {path}")
        try:
            data = np.load(path, allow_pickle=False)
            meta = json.loads(str(data["__meta__"]))
        except Exception as exc:  # corrupt zip, missing key, bad JSON
            raise ValueError(f"{path} is not a focus-jax trace file ({exc})") from None
        if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
            raise ValueError(f"{path}: unsupported trace format {meta.get('format')!r} version {meta.get('version')!r}")
        config = dict(meta["config"])
        config["sec_layers"] = tuple(config["sec_layers"])
        config["sec_alphas"] = tuple(config["sec_alphas"])
        gemms = {}
        for layer in meta["layers"]:
            for name in GEMM_NAMES:
                prefix = f"L{layer:03d}/{name}/"
                if prefix + "mask_zero" in data:
                    gemms[(layer, name)] = GemmTrace(
                        data[prefix + "mask_zero"], data[prefix + "mask_similar"], data[prefix + "group_index"]
                    )
        return cls(
            geometry=VisualGeometry(**meta["geometry"]),
            config=FocusConfig(**config),
            model=meta["model"],
            text_tokens=meta["text_tokens"],
            kept_tokens=data["kept_tokens"],
            gemms=gemms,
        )


@dataclasses.dataclass(frozen=True)
class RelaxedFocusTrace:
    """The trace of one relaxed prefill of one prompt: expected counts as JAX arrays.

    Relaxed Focus (``LlavaOnevision.forward(..., relaxed=True)``) has soft masks, so what
    the accelerator would skip is an expectation; the counts stay JAX arrays (traced
    under ``jax.grad``) so that gradients flow trace -> cost model:
    ``costmodel.Workload.from_trace(trace)`` and ``costmodel.FocusStats.from_trace(trace)``
    read them through ``focus_counts`` without leaving JAX.

    Attributes:
        geometry, config, model, text_tokens: as ``FocusTrace``.
        kept_tokens: ``(num_layers, 5)`` expected visual tokens not pruned by SEC, per
            layer and GEMM input (``GEMM_NAMES`` order), i.e. the sum of the soft keep
            weights (minus all-zero tokens).
        zero_vectors: ``(num_layers, 5)`` expected all-zero vectors ``Z`` (a token of keep
            weight ``w`` is pruned, ``V`` zero vectors, with probability ``1 - w``).
        similar_vectors: ``(num_layers, 5)`` expected merged vectors ``S`` (the soft SIC
            masks, weighted by the keep weights).
        vectors_per_token: ``V`` per GEMM input (static ints).
    """

    geometry: VisualGeometry
    config: FocusConfig
    model: dict
    text_tokens: int
    kept_tokens: object
    zero_vectors: object
    similar_vectors: object
    vectors_per_token: tuple

    @property
    def num_layers(self) -> int:
        return int(self.model["num_layers"])

    def focus_counts(self) -> tuple:
        """``(kept_tokens, zero_vectors, similar_vectors, vectors_per_token)``: the protocol
        ``costmodel.FocusStats.from_trace`` reads."""
        return self.kept_tokens, self.zero_vectors, self.similar_vectors, self.vectors_per_token

    def sparsity(self):
        """``(num_layers, 5)`` expected ``(S + Z) / (N * V)`` (spec SIC step 9)."""
        import jax.numpy as jnp

        total = self.geometry.num_tokens * jnp.asarray(self.vectors_per_token, jnp.float32)
        return (self.similar_vectors + self.zero_vectors) / total
