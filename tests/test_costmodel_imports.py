"""Import structure of ``costmodel``: independent of ``focus_jax``; ``cacti`` a leaf."""

import ast
import subprocess
import sys
from pathlib import Path

import costmodel

PACKAGE = Path(costmodel.__file__).parent


def test_costmodel_imports_nothing_from_focus_jax():
    code = (
        "import sys, costmodel, costmodel.paper, costmodel.scalesim_ref\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('focus_jax', 'rtlgen'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)
    for path in PACKAGE.glob("*.py"):  # lazy imports inside functions count too
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "focus_jax" for n in names), path.name


def test_cacti_is_a_leaf():
    tree = ast.parse((PACKAGE / "cacti.py").read_text())
    modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in modules if m and m.split(".")[0] == "costmodel"]


def test_one_gemm_names():
    from focus_jax import trace

    assert trace.GEMM_NAMES is costmodel.GEMM_NAMES
