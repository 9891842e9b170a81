"""Input validation: one layer per kind of file or flag a user hands to focus-jax.

Every reader here raises ``focus_jax.errors.InputError`` with a one-line message naming
the file or field and the problem; the CLI prints it as ``error: ...`` and exits 1.

- ``limits``: size limits (frames, tokens, layers, file and array sizes), each raisable
  with an environment variable.
- ``jsonfile``: bounded, UTF-8, finite JSON objects and typed field access.
- ``model_dir``: a model directory is a directory and ships no custom code (``auto_map``,
  ``*.py``); its tokenizer loads with ``trust_remote_code=False`` and its chat template
  renders in Jinja's sandbox.
- ``outputs``: an output directory is usable before any work is done.
"""

from focus_jax.inputs.jsonfile import read_json_object
from focus_jax.inputs.limits import LIMITS, check_limit
from focus_jax.inputs.model_dir import check_model_dir, load_tokenizer, render_chat_template
from focus_jax.inputs.outputs import check_output_dir

__all__ = [
    "LIMITS",
    "check_limit",
    "check_model_dir",
    "check_output_dir",
    "load_tokenizer",
    "read_json_object",
    "render_chat_template",
]
