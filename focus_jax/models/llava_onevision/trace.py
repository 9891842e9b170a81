"""Focus traces of a batched prefill, convertible to ``focus_jax.trace.FocusTrace``.

``LlavaOnevision.forward(..., return_trace=True)`` returns a ``ModelTrace``: for every
decoder layer and GEMM input (``focus_jax.trace.GEMM_NAMES``) the SIC masks and group
indices of every prompt of the batch, on the original visual grid, plus the visual
tokens kept entering each layer's attention and MLP blocks. ``to_focus_trace(i)`` gives
prompt ``i`` in the file format ``costmodel`` reads; ``save(path, i)`` writes it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from focus_jax.concentration import vector_layout
from focus_jax.models.focus_hooks import FocusPlan
from focus_jax.models.qwen2.modeling import Qwen2Config
from focus_jax.trace import GEMM_NAMES, FocusTrace, GemmTrace, RelaxedFocusTrace

__all__ = ["ModelTrace", "RelaxedModelTrace"]


def _model_dims(text: Qwen2Config) -> dict:
    """The decoder dimensions a trace records (``FocusTrace.model``)."""
    fields = ("num_layers", "hidden_size", "intermediate_size", "num_heads", "num_kv_heads", "head_dim")
    return {f: getattr(text, f) for f in fields}


@dataclasses.dataclass(frozen=True)
class ModelTrace:
    """SIC/SEC trace of one batched prefill.

    Attributes:
        plan: the static Focus plan (config, grid, SEC schedule).
        model: decoder dimensions (``FocusTrace.model``).
        gemms: ``{(layer, gemm): (mask_zero, mask_similar, group_index)}``, each a
            ``(B, N, V)`` numpy array (bool, bool, int32).
        text_tokens: ``(B,)`` non-visual valid tokens of each prompt.
        rows: ``(B, S_out)`` index into the input sequence of each returned logits row.
    """

    plan: FocusPlan
    model: dict
    gemms: dict
    text_tokens: np.ndarray
    rows: np.ndarray

    @classmethod
    def from_records(cls, records: dict, plan: FocusPlan, text: Qwen2Config, text_tokens, rows) -> ModelTrace:
        host = jax.device_get(records)
        gemms = {key: tuple(np.asarray(a) for a in rec) for key, rec in host.items()}
        return cls(plan, _model_dims(text), gemms, np.asarray(text_tokens), np.asarray(rows))

    @property
    def batch_size(self) -> int:
        return int(self.text_tokens.shape[0])

    def without_padding(self, batch: int, left_pad: int) -> ModelTrace:
        """The trace of the first ``batch`` prompts of a prefill that ``generate`` padded:
        prompts beyond ``batch`` dropped, ``rows`` shifted back by the ``left_pad`` columns
        added on the left so that they index the caller's ``input_ids`` (those padding rows
        come first in every prompt's ``rows``: SEC never prunes text before the visual span).
        """
        gemms = {key: tuple(a[:batch] for a in rec) for key, rec in self.gemms.items()}
        rows = self.rows[:batch, left_pad:] - left_pad
        return dataclasses.replace(self, gemms=gemms, text_tokens=self.text_tokens[:batch], rows=rows)

    def kept_tokens(self) -> np.ndarray:
        """``(num_layers, 2)``: visual tokens entering attention and MLP of each layer."""
        return self.plan.kept_tokens()

    def to_focus_trace(self, example: int = 0) -> FocusTrace:
        """The trace of prompt ``example`` as a ``FocusTrace``.

        Raises:
            IndexError: ``example`` is outside the batch.
        """
        if not 0 <= example < self.batch_size:
            raise IndexError(f"example {example} is outside the batch of {self.batch_size}")
        gemms = {key: GemmTrace(z[example], s[example], g[example]) for key, (z, s, g) in self.gemms.items()}
        return FocusTrace(
            geometry=self.plan.geometry,
            config=self.plan.config,
            model=dict(self.model),
            text_tokens=int(self.text_tokens[example]),
            kept_tokens=self.kept_tokens(),
            gemms=gemms,
        )

    def save(self, path: str | Path, example: int = 0) -> Path:
        """Write prompt ``example``'s trace in the ``focus_jax.trace`` ``.npz`` format."""
        return self.to_focus_trace(example).save(path)

    def sparsity(self, example: int = 0) -> dict:
        """``{(layer, gemm): sparsity}`` of prompt ``example`` (spec, SIC step 9)."""
        return self.to_focus_trace(example).sparsity()


@dataclasses.dataclass(frozen=True)
class RelaxedModelTrace:
    """Expected-count trace of one batched relaxed prefill (``forward(..., relaxed=True)``).

    Attributes:
        plan: the static Focus plan; model: decoder dimensions.
        kept_tokens, zero_vectors, similar_vectors: ``(B, num_layers, 5)`` JAX arrays
            (traced under ``jax.grad``), columns in ``GEMM_NAMES`` order; see
            ``focus_jax.trace.RelaxedFocusTrace``.
        vectors_per_token: ``V`` of each GEMM input.
        text_tokens: ``(B,)`` non-visual valid tokens of each prompt.
    """

    plan: FocusPlan
    model: dict
    kept_tokens: object
    zero_vectors: object
    similar_vectors: object
    vectors_per_token: tuple
    text_tokens: np.ndarray

    @classmethod
    def from_records(cls, records: dict, plan: FocusPlan, text: Qwen2Config, text_tokens) -> RelaxedModelTrace:
        """From ``{(layer, gemm): RelaxedRecord}`` of every layer and GEMM input (stays in JAX)."""
        stack = lambda field: jnp.stack(
            [
                jnp.stack([getattr(records[(layer, g)], field) for g in GEMM_NAMES], axis=-1)
                for layer in range(text.num_layers)
            ],
            axis=1,
        )
        widths = (text.hidden_size, text.q_size, text.q_size, text.hidden_size, text.intermediate_size)
        vpt = tuple(vector_layout(w, plan.config.vector_size)[0] for w in widths)
        return cls(
            plan,
            _model_dims(text),
            stack("kept_tokens"),
            stack("zero_vectors"),
            stack("similar_vectors"),
            vpt,
            np.asarray(text_tokens),
        )

    @property
    def batch_size(self) -> int:
        return int(self.text_tokens.shape[0])

    def to_focus_trace(self, example: int = 0) -> RelaxedFocusTrace:
        """Prompt ``example``'s expected counts, for ``costmodel.Workload.from_trace``.

        Raises:
            IndexError: ``example`` is outside the batch.
        """
        if not 0 <= example < self.batch_size:
            raise IndexError(f"example {example} is outside the batch of {self.batch_size}")
        return RelaxedFocusTrace(
            geometry=self.plan.geometry,
            config=self.plan.config,
            model=dict(self.model),
            text_tokens=int(self.text_tokens[example]),
            kept_tokens=self.kept_tokens[example],
            zero_vectors=self.zero_vectors[example],
            similar_vectors=self.similar_vectors[example],
            vectors_per_token=self.vectors_per_token,
        )
