"""Small veriloggen helpers shared by the generators."""

from __future__ import annotations

from veriloggen import If

__all__ = ["if_"]


def if_(cond, then, other=()):
    """``If(cond)(*then).Else(*other)``, the ``Else`` omitted when ``other`` is empty."""
    stmt = If(cond)(*then)
    return stmt.Else(*other) if other else stmt
