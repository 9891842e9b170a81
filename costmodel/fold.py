"""Compute cycles of one GEMM on a ``rows x cols`` systolic array (SCALE-Sim's model).

A GEMM ``(M x K) . (K x N)`` is cut into folds that fit the array; each fold streams its
operands through the array with a fill and drain skew. The closed forms below equal the
"Total Cycles" column of SCALE-Sim 3.0.0's ``COMPUTE_REPORT.csv`` (CALC bandwidth mode,
no stalls) exactly; ``tests/test_costmodel_fold.py`` checks them against SCALE-Sim for
every dataflow on a sweep of array and GEMM sizes:

- weight-stationary (``ws``): K on the rows, N on the columns, M streamed:
  ``ceil(K/R) ceil(N/C) (M + 2R + C - 2) - 1``;
- output-stationary (``os``): M on the rows, N on the columns, K streamed:
  ``ceil(M/R) ceil(N/C) (K + R + C - 2) - 1``;
- input-stationary (``is``): K on the rows, M on the columns, N streamed:
  ``ceil(K/R) ceil(M/C) (N + 2R + C - 2) - 1``.

The paper's simulator asks SCALE-Sim for one weight-stationary fold (``N = C``,
``K = R``), ``f(M) = gemm_cycles(M, C, R) = M + 2R + C - 3`` (``M + 93`` on 32x32), and
multiplies by the number of folds (spec "One fold of the array").
"""

from __future__ import annotations

from costmodel.ops import EXACT, Ops

__all__ = ["DATAFLOWS", "gemm_cycles"]

#: Supported dataflows: weight-, output- and input-stationary.
DATAFLOWS = ("ws", "os", "is")


def gemm_cycles(m, n, k, rows, cols, dataflow: str = "ws", ops: Ops = EXACT):
    """Cycles (at the array clock) of an ``(m x k) . (k x n)`` GEMM.

    Args:
        m, n, k: GEMM sizes in elements (arrays or numbers, >= 1).
        rows, cols: systolic array height and width in processing elements.
        dataflow: ``"ws"``, ``"os"`` or ``"is"``.
        ops: exact or relaxed rounding (``costmodel.ops``).

    Returns:
        Compute cycles, same shape as the broadcast inputs.

    Raises:
        ValueError: unknown dataflow.
    """
    if dataflow == "ws":
        return ops.cdiv(k, rows) * ops.cdiv(n, cols) * (m + 2 * rows + cols - 2) - 1
    if dataflow == "os":
        return ops.cdiv(m, rows) * ops.cdiv(n, cols) * (k + rows + cols - 2) - 1
    if dataflow == "is":
        return ops.cdiv(k, rows) * ops.cdiv(m, cols) * (n + 2 * rows + cols - 2) - 1
    raise ValueError(f"unknown dataflow {dataflow!r}; choose one of {DATAFLOWS}")

