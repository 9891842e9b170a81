"""Shared test settings: offline Hugging Face hub, float32 matmuls, golden-case loading."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import jax  # noqa: E402
from hypothesis import settings  # noqa: E402

# CI runs derandomised property tests (reproducible); set HYPOTHESIS_PROFILE=explore
# locally to search with fresh random examples.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

jax.config.update("jax_default_matmul_precision", "highest")

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden"


def golden_cases(kind: str):
    """The cases of ``tests/data/golden/cases.json`` of ``kind`` ('sic' or 'semantic')."""
    cases = json.loads((GOLDEN / "cases.json").read_text())
    return [c for c in cases if (c.get("kind") == "semantic") == (kind == "semantic")]


def load_golden(name: str) -> dict:
    with np.load(GOLDEN / f"{name}.npz") as data:
        return dict(data)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs():
    """Drop every compiled XLA program after each test module.

    Each compiled CPU program holds memory maps of its JIT code; one pytest process that keeps
    all of the suite's programs passes Linux's default ``vm.max_map_count`` (65530) and XLA's
    compiler then dies on a failed mmap (SIGSEGV or SIGABRT inside
    ``backend_compile_and_load``, seen late in the full suite; 14,000 maps after three
    concentration modules, 1,500 after ``jax.clear_caches()``).
    """
    yield
    jax.clear_caches()
