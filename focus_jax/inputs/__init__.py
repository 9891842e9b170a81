"""Input validation: one layer per kind of file or flag a user hands to focus-jax.

Every reader here raises ``focus_jax.errors.InputError`` with a one-line message naming
the file or field and the problem; the CLI prints it as ``error: ...`` and exits 1.

- ``limits``: size limits (frames, tokens, layers, file and array sizes), each raisable
  with an environment variable.
- ``jsonfile``: bounded, UTF-8, finite JSON objects and typed field access.
- ``model_dir``: a model directory is a directory and ships no custom code (``auto_map``,
  ``*.py``); its tokenizer loads with ``trust_remote_code=False`` and its chat template
  renders in Jinja's sandbox.
- ``focus_file``: whether a Focus configuration fits a model (files are read by ``FocusConfig.load``).
- ``outputs``: an output directory is usable before any work is done.
- ``text``: prompts (UTF-8, within the model's context length).

The package imports nothing at import time, so ``focus_jax.config`` can use ``limits``.
"""
