"""Implementations of the ``focus-jax`` sub-commands (registered in ``focus_jax.cli``)."""
