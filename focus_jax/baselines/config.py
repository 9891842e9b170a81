"""Configurations of the paper's baseline token-reduction methods (frozen dataclasses).

One config type per method; ``method_from_dict`` / ``to_dict`` round-trip them through the
JSON a ``--method-config`` file holds (``{"method": "cmc", ...fields}``). Defaults are the
reference implementations' defaults:

- ``CMCConfig``: ``algorithm/focus/configs/cmc.csv`` (row ``default``) and the interval /
  I-frame position of ``algorithm/focus/interface.py`` and ``baseline_CMC.py`` of
  github.com/dubcyfor3/Focus (commit 1842719).
- ``AdaptivConfig``: ``configs/adaptiv.csv`` (row ``default``) of the same repository.
- ``FrameFusionConfig``: ``FrameFusion.__init__`` / ``apply_framefusion`` of
  github.com/thu-nics/FrameFusion (commit fbec1d2, ``framefusion/main.py``).
- ``FastVConfig``: ``K=2, R=50%`` of github.com/pkunlp-icler/FastV (commit d165972,
  README; ``fastv_forward`` in its ``modeling_llama.py``).

``paper_method_config(method, model, dataset)`` reads the per-model rows the paper used.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from importlib import resources
from typing import ClassVar

from focus_jax.errors import InputError

__all__ = [
    "METHODS",
    "AdaptivConfig",
    "BaselineConfig",
    "CMCConfig",
    "FastVConfig",
    "FrameFusionConfig",
    "default_method_config",
    "method_from_dict",
    "paper_method_config",
]

#: Methods the model can run: Focus and the four baselines.
METHODS = ("focus", "cmc", "adaptiv", "framefusion", "fastv")


def _number(name: str, value, low: float, high: float, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{name} must be a number, got {value!r}")
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise InputError(f"{name} must lie in {bracket}{low}, {high}], got {value!r}")
    return float(value)


def _integer(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


class _Base:
    method: ClassVar[str]

    def replace(self, **changes):
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """``{"method": name, **fields}``; ``method_from_dict`` inverts it."""
        return {"method": self.method, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class CMCConfig(_Base):
    """CMC (ASPLOS 2024) as ``baseline_CMC.CMC`` implements it.

    Frames are cut into intervals of ``interval`` frames; frame ``i_frame_position`` of each
    interval is its I-frame. A token of any frame of the interval is *non-informative*
    (replaced by its best-matching I-frame token, searched over all patches of the I-frame)
    when the L1 distance is below ``threshold * width`` of the input.

    Attributes:
        threshold: linear-layer inputs (mask taken once from the decoder's input embeddings,
            applied to the inputs of q/k/v, o, gate/up, down of every layer); reference
            ``CMC_threshold``.
        query_threshold: the rotated queries of every layer, per head (``CMC_query_threshold``).
        score_threshold: the softmax attention rows of every layer, per head
            (``CMC_attn_threshold``; the width is the key count).
        interval: frames per codec interval (reference: 8).
        i_frame_position: index of the I-frame inside its interval (reference: 3).

    Raises:
        InputError: a negative threshold, ``interval`` < 1 or an I-frame outside the interval.
    """

    method: ClassVar[str] = "cmc"
    threshold: float = 0.4
    query_threshold: float = 0.8
    score_threshold: float = 5e-5
    interval: int = 8
    i_frame_position: int = 3

    def __post_init__(self):
        for name in ("threshold", "query_threshold", "score_threshold"):
            object.__setattr__(self, name, _number(f"CMC {name}", getattr(self, name), 0.0, math.inf))
        _integer("CMC interval", self.interval, 1)
        _integer("CMC i_frame_position", self.i_frame_position, 0)
        if self.i_frame_position >= self.interval:
            raise InputError(f"CMC i_frame_position must be < interval ({self.interval}), got {self.i_frame_position}")


@dataclasses.dataclass(frozen=True)
class AdaptivConfig(_Base):
    """Adaptiv (MICRO 2024) as ``baseline_adaptiv.Adaptiv`` implements it: before the first
    decoder layer, a visual token whose sign agreement with its upper or left neighbour
    (``sum(sign(a) * sign(b)) / D``) reaches ``threshold`` is merged into it (dropped).

    Raises:
        InputError: ``threshold`` outside [-1, 1].
    """

    method: ClassVar[str] = "adaptiv"
    threshold: float = 0.6

    def __post_init__(self):
        object.__setattr__(self, "threshold", _number("Adaptiv threshold", self.threshold, -1.0, 1.0))


@dataclasses.dataclass(frozen=True)
class FrameFusionConfig(_Base):
    """FrameFusion (Fu et al. 2024) as ``framefusion/main.py`` implements it.

    Attributes:
        cost: compute budget, the fraction of the dense token-layers the prefill may spend.
        similarity_lower_bound: cosine similarity with the same patch of the previous
            (remaining) frame at or above which a token is merged (``S_th``).
        ratio_lower_bound: merging stops after a layer that merged fewer than this fraction.
        num_layers: decoder layers of the cost budget; None: the model's (the reference
            hard-codes 28, LLaVA-Video-7B's).

    Raises:
        InputError: ``cost`` outside (0, 1], a bound outside [-1, 1] / [0, 1], ``num_layers`` < 1.
    """

    method: ClassVar[str] = "framefusion"
    cost: float = 0.3
    similarity_lower_bound: float = 0.6
    ratio_lower_bound: float = 0.1
    num_layers: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "cost", _number("FrameFusion cost", self.cost, 0.0, 1.0, low_open=True))
        object.__setattr__(
            self,
            "similarity_lower_bound",
            _number("FrameFusion similarity_lower_bound", self.similarity_lower_bound, -1.0, 1.0),
        )
        object.__setattr__(
            self, "ratio_lower_bound", _number("FrameFusion ratio_lower_bound", self.ratio_lower_bound, 0.0, 1.0)
        )
        if self.num_layers is not None:
            _integer("FrameFusion num_layers", self.num_layers, 1)


@dataclasses.dataclass(frozen=True)
class FastVConfig(_Base):
    """FastV (Chen et al. 2024): after layer ``k - 1``, keep the ``round(N * (1 - r))`` visual
    tokens the last prompt token attends to most (mean over heads); layers ``k..`` see only them.

    Raises:
        InputError: ``k`` < 1 or ``r`` outside [0, 1).
    """

    method: ClassVar[str] = "fastv"
    k: int = 2
    r: float = 0.5

    def __post_init__(self):
        _integer("FastV k", self.k, 1)
        object.__setattr__(self, "r", _number("FastV r", self.r, 0.0, 1.0))
        if self.r >= 1.0:
            raise InputError(f"FastV r must be < 1 (at least one visual token kept), got {self.r}")


BaselineConfig = CMCConfig | AdaptivConfig | FrameFusionConfig | FastVConfig
_TYPES = {c.method: c for c in (CMCConfig, AdaptivConfig, FrameFusionConfig, FastVConfig)}


def default_method_config(method: str) -> BaselineConfig:
    """The reference default config of baseline ``method`` (``cmc``, ``adaptiv``, ``framefusion``, ``fastv``).

    Raises:
        InputError: unknown method.
    """
    if method not in _TYPES:
        raise InputError(f"unknown baseline method {method!r}; expected one of {', '.join(_TYPES)}")
    return _TYPES[method]()


def method_from_dict(d: dict) -> BaselineConfig:
    """A baseline config from ``{"method": name, **fields}`` (``to_dict``'s output).

    Raises:
        InputError: not an object, unknown method or field, or an invalid value.
    """
    if not isinstance(d, dict):
        raise InputError(f"a method config must be a JSON object, got {type(d).__name__}")
    fields = dict(d)
    method = fields.pop("method", None)
    cls = _TYPES.get(method)
    if cls is None:
        raise InputError(f'method config needs "method": one of {", ".join(_TYPES)}, got {method!r}')
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise InputError(f"unknown {method} config fields: {', '.join(map(str, unknown))}")
    try:
        return cls(**fields)
    except TypeError as e:  # e.g. a list where a number belongs
        raise InputError(f"bad {method} config: {e}") from None


def paper_method_config(method: str, model: str = "default", dataset: str = "") -> BaselineConfig:
    """The paper's CMC or Adaptiv thresholds for ``model``/``dataset`` (``configs/cmc.csv``,
    ``configs/adaptiv.csv``); an unknown model or dataset falls back as the reference does
    (the ``default`` row). FrameFusion and FastV have one default (``default_method_config``).

    Raises:
        InputError: ``method`` is not ``cmc`` or ``adaptiv``.
    """
    if method not in ("cmc", "adaptiv"):
        raise InputError(f"the paper's per-model configs exist for cmc and adaptiv, not {method!r}")
    rows = list(csv.DictReader(resources.files("focus_jax.resources").joinpath(f"{method}.csv").open()))
    row = next((r for r in rows if r["model"] == model and r["dataset"] == dataset), None)
    row = (
        row or next((r for r in rows if r["model"] == model), None) or next(r for r in rows if r["model"] == "default")
    )
    if method == "adaptiv":
        return AdaptivConfig(threshold=float(row["adaptiv_threshold"]))
    return CMCConfig(
        threshold=float(row["CMC_threshold"]),
        query_threshold=float(row["CMC_query_threshold"]),
        score_threshold=float(row["CMC_attn_threshold"]),
    )
