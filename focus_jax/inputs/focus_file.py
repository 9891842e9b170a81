"""Whether a Focus configuration fits a model.

Focus configuration files themselves are read by ``FocusConfig.load`` (the one reader).
"""

from __future__ import annotations

from focus_jax.config import FocusConfig
from focus_jax.errors import InputError

__all__ = ["check_focus_fits"]


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
        hint = (
            "; these are FocusConfig's default sec_layers (the configuration does not set them): "
            "set sec_layers and sec_alphas"
        )
    raise InputError(
        f"SEC layers {list(focus.sec_layers)} do not fit the model's {num_layers} decoder layers "
        f"(0 to {num_layers - 1}){hint}"
    )
