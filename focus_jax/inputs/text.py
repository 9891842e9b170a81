"""Prompts: non-empty UTF-8 text, and prompt + video + generated tokens within the
model's context length."""

from __future__ import annotations

from focus_jax.errors import InputError

__all__ = ["check_context_length", "check_prompt"]


def check_prompt(prompt: str) -> str:
    """``prompt`` stripped, if it is non-empty text that encodes as UTF-8.

    A command-line argument that is not UTF-8 reaches Python as lone surrogates
    (``surrogateescape``), which a tokenizer cannot encode.

    Raises:
        InputError: empty or blank, or not valid UTF-8.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("the prompt is empty: give --prompt TEXT")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"the prompt is not valid UTF-8 text (byte at position {exc.start})") from None
    return prompt.strip()


def check_context_length(prompt_tokens: int, new_tokens: int, context: int, video_tokens: int | None = None) -> None:
    """Refuse a generation that cannot fit the model's positions.

    Args:
        prompt_tokens: tokens of the prompt (video placeholders included).
        new_tokens: tokens to generate at most.
        context: the model's ``max_position_embeddings``.
        video_tokens: of ``prompt_tokens``, how many are video tokens (for the message).

    Raises:
        InputError: ``prompt_tokens + new_tokens > context``, with the numbers.
    """
    total = int(prompt_tokens) + int(new_tokens)
    if total > context:
        video = f", {video_tokens:,} of them video tokens" if video_tokens else ""
        raise InputError(
            f"the prompt ({int(prompt_tokens):,} tokens{video}) plus {int(new_tokens):,} new tokens "
            f"is {total:,} tokens, "
            f"more than the model's context length of {int(context):,} (max_position_embeddings): "
            "use fewer --frames, a shorter prompt or fewer --max-new-tokens"
        )
