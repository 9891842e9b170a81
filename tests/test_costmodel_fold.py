"""The fold model against SCALE-Sim 3.0.0: analytic cycles == SCALE-Sim compute cycles, exactly."""

import numpy as np
import pytest

from costmodel.fold import DATAFLOWS, gemm_cycles

pytest.importorskip("scalesim")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
from costmodel.scalesim_ref import scalesim_cycles  # noqa: E402

ARRAYS = ((8, 8), (16, 16), (32, 32), (64, 64), (8, 64), (64, 16), (16, 32), (40, 24))


def _sweep():
    """Per dataflow: every array shape with random GEMM sizes, plus fold-boundary cases."""
    rng = np.random.default_rng(5)
    cases = []
    for df in DATAFLOWS:
        for rows, cols in ARRAYS:
            m, n, k = (int(x) for x in rng.integers(1, 129, size=3))
            cases.append((df, rows, cols, m, n, k))
        # exactly one fold, one element past a fold, and a single streamed row
        cases += [(df, 32, 32, 32, 32, 32), (df, 16, 16, 17, 33, 16), (df, 8, 8, 1, 128, 128)]
    return cases


SWEEP = _sweep()


@pytest.mark.parametrize("dataflow,rows,cols,m,n,k", SWEEP)
def test_gemm_cycles_equal_scalesim(dataflow, rows, cols, m, n, k):
    expected = scalesim_cycles(m, n, k, rows, cols, dataflow)
    assert int(gemm_cycles(m, n, k, rows, cols, dataflow)) == expected


def test_sweep_covers_every_dataflow_and_array():
    assert len(SWEEP) == 33
    assert {c[0] for c in SWEEP} == set(DATAFLOWS)
    assert {(c[1], c[2]) for c in SWEEP} >= set(ARRAYS)


@pytest.mark.parametrize("m,rows,cols,expected", [(1, 32, 32, 94), (32, 32, 32, 125), (971, 32, 32, 1064),
                                                  (1024, 32, 32, 1117), (2000, 32, 32, 2093), (100, 8, 128, 241),
                                                  (100, 16, 64, 193)])
def test_single_fold_matches_spec_check_values(m, rows, cols, expected):
    # the paper's unit: one weight-stationary fold, N = cols, K = rows (spec "One fold of the array")
    assert int(gemm_cycles(m, cols, rows, rows, cols, "ws")) == expected


def test_unknown_dataflow_is_rejected():
    with pytest.raises(ValueError, match="unknown dataflow"):
        gemm_cycles(4, 4, 4, 4, 4, "rs")
