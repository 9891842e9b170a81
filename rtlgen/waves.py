"""Reading a VCD written by ``rtlgen.sim.simulate(..., waves=True)`` (for plots)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_vcd"]


def read_vcd(path, signals) -> dict[str, list[tuple[int, int]]]:
    """Value changes of the named signals of the top scope.

    Args:
        path: the ``.vcd`` file.
        signals: signal names (as declared in the module, e.g. ``"out_similar"``).

    Returns:
        ``{name: [(time, value), ...]}``, times in the VCD's timescale unit, X/Z bits as 0.

    Raises:
        KeyError: a signal is not in the file.
    """
    wanted = set(signals)
    ids: dict[str, str] = {}
    changes: dict[str, list[tuple[int, int]]] = {name: [] for name in signals}
    time = 0
    depth = 0
    with Path(path).open() as fh:
        for line in fh:
            tok = line.split()
            if not tok:
                continue
            if tok[0] == "$scope":
                depth += 1
            elif tok[0] == "$upscope":
                depth -= 1
            elif tok[0] == "$var" and depth == 1 and tok[4] in wanted:
                ids.setdefault(tok[3], tok[4])
            elif tok[0].startswith("#"):
                time = int(tok[0][1:])
            elif tok[0][0] in "bB" and len(tok) == 2 and tok[1] in ids:
                changes[ids[tok[1]]].append((time, int(tok[0][1:].lower().replace("x", "0").replace("z", "0"), 2)))
            elif tok[0][0] in "01xzXZ" and tok[0][1:] in ids:
                changes[ids[tok[0][1:]]].append((time, 1 if tok[0][0] == "1" else 0))
    missing = wanted - set(ids.values())
    if missing:
        raise KeyError(f"signals not in {path}: {', '.join(sorted(missing))}")
    return changes
