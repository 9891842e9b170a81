"""Switches for the corrections of the paper's model (``costmodel/CORRECTIONS.md``).

``mode="corrected"`` turns them all on; passing a ``Corrections`` with some of them off
isolates the effect of each one (``costmodel.paper.correction_effects``). Text tokens and
the decode phase are workload inputs (``Workload.text_tokens``, ``decode_tokens``) that
the corrected mode accepts and the paper mode rejects.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Corrections", "PAPER", "ALL"]


@dataclasses.dataclass(frozen=True)
class Corrections:
    """Which of the paper's defects to fix (spec "Known defects").

    Attributes:
        attention_traffic: Focus attention traffic uses the kept tokens ``r`` where the
            paper uses ``V - (T - r)``, counts Q.K^T traffic for every head, scatters
            attention scores over the ``r`` kept keys instead of all ``T``, and writes
            the causal half of the concentrated scores (defect 1).
        roofline: DRAM bandwidth is enforced per GEMM with compute and transfer
            overlapped: ``cycles = max(compute + on-chip stalls, bytes / (bytes per cycle))``
            (defect 2).
        cacti_sram: SRAM energy is always accesses x CACTI energy + leakage x time, for
            every accelerator (defect 3; the paper uses peak power x time in its main runs).
        array_scaling: the array's power and area scale with ``rows * cols`` (defect 4).
        gemm_cycles: each m-partition is priced as one GEMM with SCALE-Sim's cycles for
            its real shape and the configured dataflow (the paper prices one fold and
            multiplies, which drops one cycle per extra fold and only knows
            weight-stationary), and Adaptiv's A.V uses its own shape (the paper reuses
            Q.K^T's, doubling attention time at long contexts).
        tile_rows: an m-tile never holds more rows than the GEMM has: SIC's gather of a
            buffer tile takes ``bs * min(m_tile, rows)`` cycles per n-subtile (the paper
            charges a full ``m_tile`` rows even for a 145-token prompt), and the buffers
            are priced (CACTI energy per access and leakage) at the size the largest tile
            fills, ``min(m_tile, T)`` rows; banks beyond it are never addressed. With it,
            a workload of ``T`` tokens costs the same on every m-tile ``>= T``.
    """

    attention_traffic: bool = True
    roofline: bool = True
    cacti_sram: bool = True
    array_scaling: bool = True
    gemm_cycles: bool = True
    tile_rows: bool = True


#: The paper's model: nothing corrected.
PAPER = Corrections(False, False, False, False, False, False)
#: Everything corrected (``mode="corrected"``).
ALL = Corrections()
