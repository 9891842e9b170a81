"""Focus configuration files (``focus_config.json`` in a model directory, ``--focus-config``)
and whether a configuration fits a model.

A file holds the ``FocusConfig`` fields (``FocusConfig.to_dict``) or is a design file
(``focus_jax.design``, whose ``focus`` part is used). Fields a file omits take
``FocusConfig``'s defaults.
"""

from __future__ import annotations

from pathlib import Path

from focus_jax.config import FocusConfig
from focus_jax.errors import InputError
from focus_jax.inputs.jsonfile import read_json_object

__all__ = ["check_focus_fits", "read_focus_file"]


def read_focus_file(path: str | Path, what: str | None = None) -> FocusConfig:
    """The ``FocusConfig`` in ``path``.

    Args:
        path: a JSON file of ``FocusConfig`` fields, or a design file.
        what: what the file is, for messages (e.g. ``"--focus-config"``).

    Raises:
        InputError: missing, not UTF-8 JSON of an object, an unknown field or an invalid
            value (named, with the file).
    """
    from focus_jax.design import DESIGN_FORMAT, Design

    path = Path(path)
    if not path.exists():
        raise InputError(f"{what or 'Focus configuration'} file not found: {path}")
    name = f"{what} {path}" if what else str(path)
    try:
        d = read_json_object(path, "the file")
        if d.get("format") == DESIGN_FORMAT:
            return Design.from_dict(d).focus
        return FocusConfig.from_dict(d)
    except (TypeError, ValueError) as exc:  # InputError included
        raise InputError(f"{name} is not a valid Focus configuration: {exc}") from None


def check_focus_fits(focus: FocusConfig | None, num_layers: int) -> None:
    """Refuse a Focus configuration with an SEC layer the ``num_layers``-layer decoder lacks.

    Raises:
        InputError: an SEC layer >= ``num_layers``; the message says when the layers are
            ``FocusConfig``'s defaults (a file that does not set ``sec_layers``).
    """
    if focus is None or not focus.sec_layers or max(focus.sec_layers) < num_layers:
        return
    hint = ""
    if focus.sec_layers == FocusConfig().sec_layers:
        hint = "; these are FocusConfig's default sec_layers (the configuration does not set them): set sec_layers and sec_alphas"
    raise InputError(
        f"SEC layers {list(focus.sec_layers)} do not fit the model's {num_layers} decoder layers (0 to {num_layers - 1}){hint}"
    )
