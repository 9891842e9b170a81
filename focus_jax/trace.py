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
import math
import zipfile
from pathlib import Path

import numpy as np

from costmodel.workload import GEMM_NAMES  # the one definition: GEMM inputs SIC concentrates, in layer order
from focus_jax.config import FocusConfig, VisualGeometry
from focus_jax.errors import InputError
from focus_jax.inputs.jsonfile import MISSING, field
from focus_jax.inputs.limits import check_limit

__all__ = ["GEMM_NAMES", "GemmTrace", "FocusTrace", "RelaxedFocusTrace"]

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
            raise InputError(f"GemmTrace arrays must share one (N, V) shape, got {sorted(shapes)}")

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

    def gemm_work(self, merged: bool = True) -> dict:
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
        ``merged=False`` counts only SEC's savings (``f = 1 - Z / (N V)``: the rows a CPU or
        GPU GEMM skips); SIC's merged vectors need Focus' gather/scatter hardware.
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
            unique = 1.0 - (g.sparsity if merged else g.zero_vectors / g.num_vectors)
            if name == "query":
                kept = int(self.kept_tokens[layer, 0])
                dense = n * n * q_width
                work[(layer, "query")] = (unique * n * kept * q_width, dense)
                work[(layer, "attn_v")] = (kept * kept * q_width, dense)
            else:
                k, n_out = outputs[name]
                work[(layer, name)] = (unique * n * k * n_out, n * k * n_out)
        return work

    def work_fraction(self, merged: bool = True) -> float:
        """Focus' visual-token GEMM work as a fraction of dense (see ``gemm_work``)."""
        work = self.gemm_work(merged).values()
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

    def validate(self) -> None:
        """Check that the arrays agree with the geometry, the model and the configuration.

        ``kept_tokens`` must be ``(num_layers, 2)`` integers in ``[0, N]``; every GEMM
        trace of a layer in ``[0, num_layers)`` must be ``(N, V)`` with
        ``N = geometry.num_tokens`` and ``V = ceil(width / vector_size)`` for the GEMM
        input's width (``hidden_size`` for q_proj and gate_proj, ``num_heads * head_dim``
        for query and o_proj, ``intermediate_size`` for down_proj), boolean masks and
        ``group_index`` in ``[0, N * V)``.

        Raises:
            InputError: the first disagreement, named.
        """
        m, n = self.model, self.geometry.num_tokens
        layers = self.num_layers
        kept = np.asarray(self.kept_tokens)
        if kept.shape != (layers, 2) or not np.issubdtype(kept.dtype, np.integer):
            raise InputError(f"kept_tokens must be ({layers}, 2) integers, got {kept.shape} {kept.dtype}")
        if kept.size and (kept.min() < 0 or kept.max() > n):
            raise InputError(f"kept_tokens must lie in [0, {n}] (the geometry's visual tokens)")
        heads = m["num_heads"] * m["head_dim"]
        widths = {"q_proj": m["hidden_size"], "query": heads, "o_proj": heads, "gate_proj": m["hidden_size"],
                  "down_proj": m["intermediate_size"]}  # fmt: skip
        for (layer, name), g in self.gemms.items():
            where = f"layer {layer} {name}"
            if not 0 <= layer < layers or name not in widths:
                raise InputError(f"{where}: not a traced GEMM input of a {layers}-layer model")
            v = -(-widths[name] // self.config.vector_size)
            if g.mask_zero.shape != (n, v):
                raise InputError(
                    f"{where}: masks are {g.mask_zero.shape}, but the geometry "
                    f"{self.geometry.frames}x{self.geometry.height}x{self.geometry.width} "
                    f"and vector_size {self.config.vector_size} imply ({n}, {v})"
                )
            if (
                g.mask_zero.dtype != bool
                or g.mask_similar.dtype != bool
                or not np.issubdtype(g.group_index.dtype, np.integer)
            ):
                raise InputError(f"{where}: masks must be bool and group_index integer")
            if g.group_index.size and (g.group_index.min() < 0 or g.group_index.max() >= n * v):
                raise InputError(f"{where}: group_index must lie in [0, {n * v})")

    @classmethod
    def load(cls, path: str | Path) -> FocusTrace:
        """Read a trace written by ``save`` and ``validate`` it.

        Array sizes are checked from the archive's declarations before anything is
        decompressed: the total against ``limit("TRACE_BYTES")``, each ``.npy`` header's
        shape against the bytes its member declares (a zip bomb is refused unread).

        Raises:
            InputError: no such file; not a focus-trace ``.npz`` of a supported version;
                malformed metadata (field named); arrays too large or disagreeing with the
                geometry, model or configuration (``validate``).
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"trace file not found: {path}")
        try:
            headers = _npz_headers(path)
            data = np.load(path, allow_pickle=False)
            if "__meta__" not in headers or headers["__meta__"][0] != () or headers["__meta__"][1].kind != "U":
                raise InputError("no __meta__ string")
            meta = json.loads(str(data["__meta__"]))
        except InputError as exc:
            raise InputError(f"{path} is not a focus-jax trace file ({exc})") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:  # corrupt zip, bad JSON, ...
            raise InputError(f"{path} is not a focus-jax trace file ({' '.join(str(exc).split())})") from None
        try:
            if not isinstance(meta, dict):
                raise InputError(f"__meta__ must be a JSON object, got {type(meta).__name__}")
            if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
                raise InputError(f"unsupported trace format {meta.get('format')!r} version {meta.get('version')!r}")
            geometry = VisualGeometry(**_int_fields(meta, "geometry", ("frames", "height", "width")))
            config = FocusConfig.from_dict(field(meta, "config", MISSING, "__meta__", "dict"))
            model = _int_fields(meta, "model", _MODEL_FIELDS)
            check_limit("__meta__.model.num_layers", model["num_layers"], "LAYERS")
            text_tokens = field(meta, "text_tokens", MISSING, "__meta__", "int", lo=0, hi_name="POSITIONS")
            layers = field(meta, "layers", MISSING, "__meta__", "list")
            for layer in layers:
                field({"layers": layer}, "layers", None, "__meta__", "int", lo=0, hi=model["num_layers"] - 1)
            gemms = {}
            for layer in layers:
                for name in GEMM_NAMES:
                    prefix = f"L{layer:03d}/{name}/"
                    if prefix + "mask_zero" in headers:
                        try:
                            arrays = [data[prefix + k] for k in ("mask_zero", "mask_similar", "group_index")]
                        except KeyError as exc:
                            raise InputError(f"layer {layer} {name}: missing array {exc}") from None
                        gemms[(layer, name)] = GemmTrace(*arrays)
            if "kept_tokens" not in headers:
                raise InputError("missing array kept_tokens")
            trace = cls(geometry, config, model, text_tokens, data["kept_tokens"], gemms)
            trace.validate()
        except (TypeError, ValueError) as exc:  # InputError included
            raise InputError(f"{path}: {exc}") from None
        return trace


_MODEL_FIELDS = ("num_layers", "hidden_size", "intermediate_size", "num_heads", "num_kv_heads", "head_dim")


def _int_fields(meta: dict, key: str, names: tuple[str, ...]) -> dict:
    part = field(meta, key, MISSING, "__meta__", "dict")
    unknown = sorted(map(str, set(part) - set(names)))
    if unknown:
        raise InputError(f"__meta__.{key} has unknown fields: {', '.join(unknown)}")
    return {n: field(part, n, MISSING, f"__meta__.{key}", "int", lo=1, hi_name="WIDTH") for n in names}


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{array name: (shape, dtype)}`` of an ``.npz``, read from the ``.npy`` headers only.

    Raises:
        InputError: declared sizes above ``limit("TRACE_BYTES")``, a member that is not
            an ``.npy`` array, an object dtype, or a header whose shape needs more bytes
            than its member declares.
    """
    out = {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        check_limit("the trace's uncompressed size (bytes)", sum(i.file_size for i in infos), "TRACE_BYTES")
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise InputError(f"member {info.filename!r} is not a .npy array")
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            if dtype.hasobject:
                raise InputError(f"array {info.filename!r} has an object dtype")
            if math.prod(shape) * dtype.itemsize > info.file_size:
                raise InputError(f"array {info.filename!r} declares shape {shape} but holds {info.file_size} bytes")
            out[info.filename[: -len(".npy")]] = (tuple(shape), dtype)
    return out


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
