"""Run a test module in a fresh interpreter.

XLA's CPU compiler crashed the pytest process (SIGSEGV, once SIGABRT, inside
``backend_compile_and_load``) when it compiled the relaxed Focus model's value-and-grad
late in the full suite; the same modules pass on their own. Modules that compile that
program mark their tests ``in_child`` and add one ``in_parent`` test that runs the module
in a child pytest (``run_module``), so a crash there fails one test instead of the suite.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ISOLATED = os.environ.get("FOCUS_JAX_ISOLATED") == "1"
#: Tests that run only inside the child interpreter.
in_child = pytest.mark.skipif(not ISOLATED, reason="runs in a fresh interpreter (the module's in_parent test)")
#: The test that starts the child interpreter.
in_parent = pytest.mark.skipif(ISOLATED, reason="already in the fresh interpreter")


def run_module(path: str, timeout: int = 1800) -> None:
    """Run the test module ``path`` in a child pytest; fail with its output unless every test passed."""
    root = Path(path).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(path), "-q", "-rA", "-p", "no:cacheprovider"],
        env=dict(os.environ, FOCUS_JAX_ISOLATED="1"),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=root,
    )
    print(done.stdout[-8000:])
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, f"child pytest exited {done.returncode}:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, summary
