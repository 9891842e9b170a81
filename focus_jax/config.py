"""Configuration of Focus concentration and of the visual-token geometry.

Both classes are frozen dataclasses validated at construction, so an invalid value fails
where it is written, with the field named, instead of deep inside a jitted function.
Source: ../shared/spec/focus-algorithm.md ("Token geometry", "SIC", "SEC") and the
per-model defaults of the reference implementation (``configs/focus.csv``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from focus_jax.errors import InputError
from focus_jax.inputs.limits import check_limit

__all__ = ["FocusConfig", "VisualGeometry", "paper_config"]


def _require_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer (Python or numpy, not bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _is_real(value) -> bool:
    """A Python or numpy real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class VisualGeometry:
    """Patch grid of the visual tokens of one prompt: ``N = frames * height * width``.

    Tokens are laid out frame-major, row-major: ``index(f, i, j) = f*H*W + i*W + j``
    (spec, "Token geometry"). For a single image ``frames = 1``.

    Raises:
        InputError: a dimension is not a positive integer (Python or numpy), or ``N``
            exceeds ``focus_jax.inputs.limits`` ``VISUAL_TOKENS``.
    """

    frames: int
    height: int
    width: int

    def __post_init__(self):
        for name in ("frames", "height", "width"):
            object.__setattr__(self, name, _require_int(f"VisualGeometry.{name}", getattr(self, name)))
        check_limit(f"the visual-token grid {self.frames}x{self.height}x{self.width}", self.num_tokens, "VISUAL_TOKENS")

    @property
    def num_tokens(self) -> int:
        """``N = F * H * W``."""
        return self.frames * self.height * self.width

    @property
    def frame_stride(self) -> int:
        """Distance between the same patch in consecutive frames: ``H * W``."""
        return self.height * self.width

    def check_tokens(self, n: int, what: str = "x") -> None:
        """Raise ``ValueError`` unless ``n`` equals ``num_tokens``."""
        if n != self.num_tokens:
            raise ValueError(
                f"{what} has {n} visual tokens but the geometry {self.frames}x{self.height}x{self.width} "
                f"(frames x height x width) needs {self.num_tokens}"
            )


@dataclasses.dataclass(frozen=True)
class FocusConfig:
    """Parameters of Focus' semantic (SEC) and similarity (SIC) concentration.

    Attributes:
        similarity_threshold: a vector is *similar* when its best cosine similarity is
            strictly greater than this. In [-1, 1]; cosine similarities are clipped to
            [-1, 1], so 1.0 turns merging off.
        vector_size: channels per vector (the K-slice width of the GEMM), >= 1.
        block_size: spatial window (rows and columns) of the block-level search, >= 1.
        frame_block_size: temporal window (frames) of the block-level search, >= 1.
        gemm_m_size: GEMM m-tile size in tokens (candidates may not cross m-tiles), or
            None for no tiling.
        sec_layers: decoder layers after whose attention block SEC prunes tokens,
            strictly increasing, >= 0.
        sec_alphas: retention ratio of each SEC layer, in (0, 1], relative to the
            original number of visual tokens.
        sic: apply similarity concentration (False gives the paper's "SEC only").

    Numbers may be Python or numpy scalars (``np.float32(0.9)``, ``np.int64(32)``); they
    are stored as Python ``float``/``int``.

    Raises:
        InputError: naming the field, for any out-of-range or mistyped value.
    """

    similarity_threshold: float = 0.9
    vector_size: int = 32
    block_size: int = 2
    frame_block_size: int = 2
    gemm_m_size: int | None = None
    sec_layers: tuple[int, ...] = (2, 5, 8, 16, 25)
    sec_alphas: tuple[float, ...] = (0.4, 0.3, 0.2, 0.15, 0.1)
    sic: bool = True

    def __post_init__(self):
        thr = self.similarity_threshold
        if not _is_real(thr) or not math.isfinite(thr) or not -1.0 <= thr <= 1.0:
            raise InputError(f"similarity_threshold must be a number in [-1, 1], got {thr!r}")
        object.__setattr__(self, "similarity_threshold", float(thr))
        for name in ("vector_size", "block_size", "frame_block_size"):
            object.__setattr__(self, name, _require_int(name, getattr(self, name)))
        if self.gemm_m_size is not None:
            object.__setattr__(self, "gemm_m_size", _require_int("gemm_m_size", self.gemm_m_size))
        for name in ("sec_layers", "sec_alphas"):
            if not isinstance(getattr(self, name), (list, tuple)):
                raise InputError(f"{name} must be a list, got {getattr(self, name)!r}")
        layers = tuple(_require_int("sec_layers", layer, minimum=0) for layer in self.sec_layers)
        alphas = tuple(self.sec_alphas)
        if any(b <= a for a, b in zip(layers, layers[1:])):
            raise InputError(f"sec_layers must be strictly increasing, got {list(layers)}")
        if len(layers) != len(alphas):
            raise InputError(
                f"sec_layers and sec_alphas must have the same length, got {len(layers)} and {len(alphas)}"
            )
        if not all(_is_real(a) and 0.0 < a <= 1.0 for a in alphas):
            raise InputError(f"sec_alphas must lie in (0, 1], got {list(alphas)}")
        object.__setattr__(self, "sec_layers", layers)
        object.__setattr__(self, "sec_alphas", tuple(float(a) for a in alphas))
        if not isinstance(self.sic, bool):
            raise InputError(f"sic must be true or false, got {self.sic!r}")

    def replace(self, **changes) -> "FocusConfig":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready dict of every field (tuples as lists); ``from_dict`` inverts it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "FocusConfig":
        """A config from ``to_dict``'s output.

        Raises:
            InputError: ``d`` is not a dict, an unknown field, or as the constructor.
        """
        if not isinstance(d, dict):
            raise InputError(
                f"a Focus configuration must be a JSON object of FocusConfig fields, got {type(d).__name__}"
            )
        unknown = sorted(map(str, set(d) - {f.name for f in dataclasses.fields(cls)}))
        if unknown:
            raise InputError(f"unknown FocusConfig fields: {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def load(cls, path, label: str = "Focus configuration") -> "FocusConfig":
        """Read a Focus configuration file: a JSON object of ``to_dict``'s fields, or a design
        file (``focus_jax.design``, ``"format": "focus-design"``), whose ``focus`` part is taken.

        The one reader of Focus files (``--focus-config``, a model's ``focus_config.json``).
        The file is read with ``focus_jax.inputs.jsonfile.read_json_object`` (bounded size,
        UTF-8, finite numbers, an object at the top); fields it omits take the defaults.

        Args:
            path: the file.
            label: what the file is to the caller, starting each error message (a command
                passes its option name, e.g. ``"--focus-config"``).

        Raises:
            InputError: no such file, too large, not UTF-8 JSON, not an object, an unknown
                field, a bad value (named), or a design file that ``Design.from_dict`` refuses;
                the message names ``label`` and the file.
        """
        from pathlib import Path

        from focus_jax.design import DESIGN_FORMAT, Design
        from focus_jax.inputs.jsonfile import read_json_object

        path = Path(path)
        if not path.exists():
            raise InputError(f"{label} file not found: {path}")
        try:
            d = read_json_object(path, "the file")
            if d.get("format") == DESIGN_FORMAT:
                return Design.from_dict(d).focus
            return cls.from_dict(d)
        except (TypeError, ValueError) as exc:  # InputError included
            raise InputError(f"{label} {path} is not a valid Focus configuration: {exc}") from None

    def sec_alpha(self, layer: int) -> float | None:
        """Retention ratio of ``layer`` if it is an SEC layer, else None."""
        return dict(zip(self.sec_layers, self.sec_alphas)).get(layer)

    def kept_visual_tokens(self, num_visual: int, layer: int, kept_before: int) -> int:
        """SEC's ``k`` at ``layer``: ``int(N_original * alpha)`` clipped to ``[1, kept_before]``.

        Spec, "SEC" step 3. Returns ``kept_before`` for a layer that is not an SEC layer.
        """
        alpha = self.sec_alpha(layer)
        if alpha is None:
            return kept_before
        return max(1, min(int(num_visual * alpha), kept_before))


def paper_config(model: str = "default", dataset: str = "") -> FocusConfig:
    """The paper's Focus configuration for ``model``/``dataset`` (``configs/focus.csv``,
    shipped as ``costmodel/data/focus.csv``: ``costmodel.paper.focus_settings``).

    ``model`` is one of ``llava_vid``, ``llava_onevision``, ``minicpm_v``, ``qwen2_5_vl``
    or ``default``; an empty or unknown dataset falls back to the model's first row.

    Raises:
        ValueError: unknown model name.
    """
    from costmodel.paper import focus_settings

    return FocusConfig(**focus_settings(model, dataset))
