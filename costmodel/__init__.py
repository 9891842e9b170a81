"""costmodel: a differentiable analytic latency / energy / area model of Focus and its baselines.

The tiled systolic-array dataflow of the paper's simulator (Wei et al., arXiv 2512.14661,
``../shared/spec/cost-model.md``) written in ``jax.numpy``: one code path, three modes.

- ``"paper"`` reproduces the published simulator bit for bit (its defects included);
- ``"corrected"`` fixes them and adds a DRAM roofline, text tokens and the decode phase;
- ``"relaxed"`` smooths every step function so ``jax.grad`` is finite.

Quick start::

    import costmodel as cm
    wl = cm.Workload(cm.ModelShape.load("llava_vid"), visual_tokens=11648,
                     focus=cm.FocusStats.from_schedule(cm.ModelShape.load("llava_vid"), 11648,
                                                      (3, 6, 9, 18, 26), (.4, .3, .2, .15, .1),
                                                      similar_fraction=0.45))
    cm.simulate(cm.focus(), wl, mode="corrected").time_s

Public API: hardware (``Hardware``, ``dense``, ``focus``, ``sec_only``, ``adaptiv``,
``cmc``, ``accelerator``), workloads (``ModelShape``, ``Workload``, ``FocusStats``,
``SparsityCurve``), evaluation (``evaluate``, ``simulate``, ``Report``), the fold model
(``gemm_cycles``) and rounding (``Ops``). ``costmodel.paper`` holds the paper's points
and published results.
"""

from costmodel.fold import DATAFLOWS, gemm_cycles
from costmodel.hardware import KINDS, Hardware, accelerator, adaptiv, cmc, dense, focus, sec_only
from costmodel.ops import Ops
from costmodel.simulate import MODES, Report, evaluate, simulate
from costmodel.workload import GEMM_NAMES, KNOWN_MODELS, FocusStats, ModelShape, SparsityCurve, Workload

__all__ = [
    "DATAFLOWS",
    "GEMM_NAMES",
    "KINDS",
    "KNOWN_MODELS",
    "MODES",
    "FocusStats",
    "Hardware",
    "ModelShape",
    "Ops",
    "Report",
    "SparsityCurve",
    "Workload",
    "accelerator",
    "adaptiv",
    "cmc",
    "dense",
    "evaluate",
    "focus",
    "gemm_cycles",
    "sec_only",
    "simulate",
]
