"""Configuration of Focus concentration and of the visual-token geometry.

Both classes are frozen dataclasses validated at construction, so an invalid value fails
where it is written, with the field named, instead of deep inside a jitted function.
Source: ../shared/spec/focus-algorithm.md ("Token geometry", "SIC", "SEC") and the
per-model defaults of the reference implementation (``configs/focus.csv``).
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["FocusConfig", "VisualGeometry", "paper_config"]


def _require_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class VisualGeometry:
    """Patch grid of the visual tokens of one prompt: ``N = frames * height * width``.

    Tokens are laid out frame-major, row-major: ``index(f, i, j) = f*H*W + i*W + j``
    (spec, "Token geometry"). For a single image ``frames = 1``.

    Raises:
        ValueError: a dimension is not a positive integer.
    """

    frames: int
    height: int
    width: int

    def __post_init__(self):
        for name in ("frames", "height", "width"):
            _require_int(f"VisualGeometry.{name}", getattr(self, name))

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

    Raises:
        ValueError: naming the field, for any out-of-range value.
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
        if (
            isinstance(thr, bool)
            or not isinstance(thr, (int, float))
            or not math.isfinite(thr)
            or not -1.0 <= thr <= 1.0
        ):
            raise ValueError(f"similarity_threshold must be a number in [-1, 1], got {thr!r}")
        object.__setattr__(self, "similarity_threshold", float(thr))
        _require_int("vector_size", self.vector_size)
        _require_int("block_size", self.block_size)
        _require_int("frame_block_size", self.frame_block_size)
        if self.gemm_m_size is not None:
            _require_int("gemm_m_size", self.gemm_m_size)
        layers = tuple(self.sec_layers)
        alphas = tuple(self.sec_alphas)
        object.__setattr__(self, "sec_layers", layers)
        object.__setattr__(self, "sec_alphas", tuple(float(a) if isinstance(a, (int, float)) else a for a in alphas))
        for layer in layers:
            _require_int("sec_layers", layer, minimum=0)
        if any(b <= a for a, b in zip(layers, layers[1:])):
            raise ValueError(f"sec_layers must be strictly increasing, got {layers}")
        if len(layers) != len(alphas):
            raise ValueError(
                f"sec_layers and sec_alphas must have the same length, got {len(layers)} and {len(alphas)}"
            )
        for a in self.sec_alphas:
            if isinstance(a, bool) or not isinstance(a, float) or not 0.0 < a <= 1.0:
                raise ValueError(f"sec_alphas must lie in (0, 1], got {alphas}")
        if not isinstance(self.sic, bool):
            raise ValueError(f"sic must be a bool, got {self.sic!r}")

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
            ValueError: an unknown field, or as the constructor.
        """
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown FocusConfig fields: {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def load(cls, path, label: str = "Focus configuration") -> "FocusConfig":
        """Read a Focus configuration file: a JSON object of ``to_dict``'s fields, or a design
        file (``focus_jax.design``, ``"format": "focus-design"``), whose ``focus`` part is taken.

        Args:
            path: the file.
            label: what the file is to the caller, starting each error message (a command
                passes its option name, e.g. ``"--focus-config"``).

        Raises:
            InputError: no such file, not UTF-8 JSON, not an object, an unknown field, a bad
                value (named), or a design file that ``Design.from_dict`` refuses.
        """
        import json
        from pathlib import Path

        from focus_jax.errors import InputError

        path = Path(path)
        if not path.is_file():
            raise InputError(f"{label} file not found: {path}")
        try:
            d = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(d, dict):
                raise InputError("expected a JSON object of FocusConfig fields")
            if d.get("format") == "focus-design":
                from focus_jax.design import Design

                return Design.from_dict(d).focus
            return cls.from_dict(d)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as exc:
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
