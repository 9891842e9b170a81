"""The design file: one JSON that ties a Focus configuration to the accelerator built for it.

Shared by ``focus-jax tune`` (writes it), ``run`` / ``eval`` (``--focus-config FILE``: its
``focus`` part), ``simulate --design FILE`` (prices its ``hardware`` part) and ``rtl`` (the
RTL generator reads both parts). Format (``format: "focus-design"``, ``version: 1``)::

    {"format": "focus-design", "version": 1,
     "focus":      FocusConfig.to_dict(),
     "hardware":   {"kind": "focus", "rows": 32, "cols": 32, "dataflow": "ws",
                    "m_tile": 1024, "n_tile": 96, "k_tile": 32, "scatter_vectors": 2,
                    "gather_block": 8, "vector_size": 32, "data_width": 16},
     "objective":  {...what it was tuned for and the figures reached...},
     "provenance": {...model, calibration set, steps, seed, version...}}

Every ``hardware`` number is a positive integer (what a generator needs); ``kind`` is one
of ``costmodel.KINDS`` and ``dataflow`` one of ``costmodel.DATAFLOWS``. ``vector_size``
must equal ``focus.vector_size`` (the SIC unit's vector is the GEMM's K-slice). A bad file
is an ``InputError`` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from focus_jax.config import FocusConfig
from focus_jax.errors import InputError

__all__ = ["DESIGN_FORMAT", "DESIGN_VERSION", "MAX_DESIGN_BYTES", "Design", "HardwareDesign"]

DESIGN_FORMAT = "focus-design"
DESIGN_VERSION = 1
#: A design file is a few hundred bytes; anything far larger is refused before parsing.
MAX_DESIGN_BYTES = 1 << 20

_INT_FIELDS = (
    "rows",
    "cols",
    "m_tile",
    "n_tile",
    "k_tile",
    "scatter_vectors",
    "gather_block",
    "vector_size",
    "data_width",
)
#: Upper bound of every integer hardware field (a 65536-wide array or m-tile is already absurd).
_INT_LIMIT = 1 << 16


@dataclasses.dataclass(frozen=True)
class HardwareDesign:
    """The accelerator part of a design file: integers a generator can build from.

    Attributes:
        kind: costmodel accelerator kind (``costmodel.KINDS``).
        rows, cols: systolic-array height (K tile) and width (N tile), in PEs.
        dataflow: ``"ws"``, ``"os"`` or ``"is"`` (``costmodel.DATAFLOWS``).
        m_tile: GEMM m-tile in tokens; n_tile, k_tile: buffer tiles in elements.
        scatter_vectors: SIC scatter accumulators; gather_block: SIC gather block ``bs``.
        vector_size: SIC vector width in channels (the K-slice of the GEMM).
        data_width: activation / weight width in bits (16 = FP16 as in the paper, 8 = INT8).

    Raises:
        InputError: naming the field, for an unknown kind or dataflow or an integer
            outside ``[1, 65536]``.
    """

    kind: str = "focus"
    rows: int = 32
    cols: int = 32
    dataflow: str = "ws"
    m_tile: int = 1024
    n_tile: int = 96
    k_tile: int = 32
    scatter_vectors: int = 2
    gather_block: int = 8
    vector_size: int = 32
    data_width: int = 16

    def __post_init__(self):
        from costmodel import DATAFLOWS, KINDS

        if self.kind not in KINDS:
            raise InputError(f"hardware.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.dataflow not in DATAFLOWS:
            raise InputError(f"hardware.dataflow must be one of {', '.join(DATAFLOWS)}, got {self.dataflow!r}")
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
                object.__setattr__(self, name, value)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _INT_LIMIT:
                raise InputError(f"hardware.{name} must be an integer in [1, {_INT_LIMIT}], got {value!r}")

    def to_dict(self) -> dict:
        """JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d) -> HardwareDesign:
        """Inverse of ``to_dict``.

        Raises:
            InputError: not an object, an unknown field, or as the constructor.
        """
        if not isinstance(d, dict):
            raise InputError(f"hardware must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"unknown hardware fields: {', '.join(map(str, unknown))}")
        return cls(**d)

    @classmethod
    def from_costmodel(cls, hw, vector_size: int = 32, data_width: int = 16) -> HardwareDesign:
        """The design-file view of a ``costmodel.Hardware`` whose array, tile and SIC fields
        are whole numbers (a tuned design after rounding).

        Raises:
            InputError: a field that is not a whole number (an unrounded design), or as the
                constructor.
        """
        fields = {}
        for name in ("rows", "cols", "m_tile", "n_tile", "k_tile", "scatter_vectors", "gather_block"):
            value = float(getattr(hw, name))
            if not value.is_integer():
                raise InputError(
                    f"hardware.{name} must be a whole number to be built, got {value!r} "
                    "(round the design first)"
                )
            fields[name] = int(value)
        return cls(kind=hw.kind, dataflow=hw.dataflow, vector_size=vector_size, data_width=data_width, **fields)

    def to_costmodel(self):
        """The ``costmodel.Hardware`` this design describes (the kind's paper design with
        these array, tile and SIC fields)."""
        import costmodel

        fields = dict(
            rows=self.rows,
            cols=self.cols,
            dataflow=self.dataflow,
            m_tile=self.m_tile,
            n_tile=self.n_tile,
            k_tile=self.k_tile,
        )
        if self.kind in ("focus", "sec-only"):
            fields |= dict(scatter_vectors=self.scatter_vectors, gather_block=self.gather_block)
        return costmodel.accelerator(self.kind, **fields)


def _check_json_object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object, got {type(value).__name__}")
    try:  # objective/provenance are free-form but must round-trip as JSON numbers, not NaN
        json.dumps(value, allow_nan=False)
    except ValueError as exc:
        raise InputError(f"{what} holds a non-finite number ({exc})") from None
    return value


@dataclasses.dataclass(frozen=True)
class Design:
    """A design file: Focus configuration + accelerator + what it was tuned for.

    Attributes:
        focus: the ``FocusConfig``.
        hardware: the ``HardwareDesign``.
        objective: free-form JSON object (objective name, lambda, figures reached).
        provenance: free-form JSON object (model, calibration set, steps, seed, version).

    Raises:
        InputError: ``hardware.vector_size`` differs from ``focus.vector_size``.
    """

    focus: FocusConfig = dataclasses.field(default_factory=FocusConfig)
    hardware: HardwareDesign = dataclasses.field(default_factory=HardwareDesign)
    objective: dict = dataclasses.field(default_factory=dict)
    provenance: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.hardware.vector_size != self.focus.vector_size:
            raise InputError(
                f"hardware.vector_size ({self.hardware.vector_size}) must equal focus.vector_size "
                f"({self.focus.vector_size})"
            )
        _check_json_object(self.objective, "objective")
        _check_json_object(self.provenance, "provenance")

    def to_dict(self) -> dict:
        """The file's JSON object."""
        return {
            "format": DESIGN_FORMAT,
            "version": DESIGN_VERSION,
            "focus": self.focus.to_dict(),
            "hardware": self.hardware.to_dict(),
            "objective": self.objective,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, d) -> Design:
        """Inverse of ``to_dict``.

        Raises:
            InputError: wrong format or version, an unknown or malformed part.
        """
        if not isinstance(d, dict):
            raise InputError(f"a design file must hold a JSON object, got {type(d).__name__}")
        if d.get("format") != DESIGN_FORMAT or d.get("version") != DESIGN_VERSION:
            raise InputError(
                f"not a focus-jax design file (format {DESIGN_FORMAT!r}, version {DESIGN_VERSION} expected)"
            )
        unknown = sorted(set(d) - {"format", "version", "focus", "hardware", "objective", "provenance"})
        if unknown:
            raise InputError(f"unknown design-file fields: {', '.join(map(str, unknown))}")
        focus = d.get("focus", {})
        if not isinstance(focus, dict):
            raise InputError(f"focus must be a JSON object, got {type(focus).__name__}")
        try:
            cfg = FocusConfig.from_dict(focus)
        except (TypeError, ValueError) as exc:
            raise InputError(f"focus: {exc}") from None
        return cls(
            cfg, HardwareDesign.from_dict(d.get("hardware", {})), d.get("objective", {}), d.get("provenance", {})
        )

    def save(self, path) -> Path:
        """Write the design file (indented JSON); returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path) -> Design:
        """Read and validate a design file.

        Raises:
            InputError: missing, not a file, larger than ``MAX_DESIGN_BYTES``, not UTF-8
                JSON, or invalid as ``from_dict`` says.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"design file {path} does not exist or is not a file")
        if path.stat().st_size > MAX_DESIGN_BYTES:
            raise InputError(f"design file {path} is larger than {MAX_DESIGN_BYTES} bytes")
        try:
            d = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"design file {path} is not valid UTF-8 JSON ({exc})") from None
        try:
            return cls.from_dict(d)
        except InputError as exc:
            raise InputError(f"design file {path}: {exc}") from None


def _refuse_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)
