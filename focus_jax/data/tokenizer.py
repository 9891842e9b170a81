"""Word-level tokenizer of the synthetic task, in Hugging Face format, with a chat template.

Built with ``tokenizers`` (``WordLevel`` model) and wrapped in transformers'
``PreTrainedTokenizerFast``; ``save_tokenizer`` writes ``tokenizer.json``,
``tokenizer_config.json`` and ``chat_template.jinja``, which ``AutoTokenizer`` loads offline.

Special tokens follow LLaVA-OneVision (Qwen2): ``<|endoftext|>`` (id 0) pads and is the
model's ``bos_token_id``; ``<|im_end|>`` ends a turn and is the tokenizer's ``eos_token``
(as in ``llava-hf/llava-onevision-qwen2-*-ov-hf``); ``<image>`` / ``<video>`` are the
visual placeholders. Text is lower-cased, British "colour" is read as "color", and every
word, punctuation mark and newline is one token; unknown words map to ``<unk>``.

Prompt format (the original LLaVA-OneVision ``qwen_1_5`` conversation)::

    <|im_start|>user\\n<video>\\n{question}<|im_end|>\\n<|im_start|>assistant\\n
"""

from __future__ import annotations

from pathlib import Path

from focus_jax.data.scene import COLORS, SHAPES
from focus_jax.data.task import ANSWERS, QUESTION_TEMPLATES

__all__ = [
    "PAD_TOKEN", "IM_START", "IM_END", "IMAGE_TOKEN", "VIDEO_TOKEN", "UNK_TOKEN", "SPECIAL_TOKENS",
    "VOCABULARY", "CHAT_TEMPLATE", "build_tokenizer", "save_tokenizer", "prompt_text", "special_token_ids",
]

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"
UNK_TOKEN = "<unk>"
#: Special tokens, ids 0..5 in this order.
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, IM_START, IM_END, IMAGE_TOKEN, VIDEO_TOKEN, UNK_TOKEN)

# Words, punctuation marks or a newline: the pre-tokenizer keeps exactly these pieces.
_PIECE_PATTERN = r"\n|\w+|[^\s\w]"
_ROLES = ("system", "user", "assistant")


def _task_words() -> list[str]:
    import re

    words: set[str] = set()
    for template in QUESTION_TEMPLATES.values():
        words.update(re.findall(_PIECE_PATTERN, template.replace("{shape}", "").replace("{color}", "")))
    for answers in ANSWERS.values():
        words.update(answers)
    words.update(COLORS)
    words.update(SHAPES)
    return sorted(words)


#: The vocabulary in id order: special tokens, newline, roles, then the task's words and
#: punctuation sorted. Frozen by the shipped model: changing the task's wording changes it.
VOCABULARY: tuple[str, ...] = (*SPECIAL_TOKENS, "\n", *_ROLES, *[w for w in _task_words() if w not in _ROLES])

#: Jinja chat template: messages with string content or a list of ``{"type": "video"}``,
#: ``{"type": "image"}`` and ``{"type": "text", "text": ...}`` items (media first, as
#: LLaVA-OneVision's template renders them).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<image>\\n' }}{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'video' %}{{ '<video>\\n' }}{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def prompt_text(question: str, answer: str | None = None) -> str:
    """The chat-formatted prompt for one video and ``question``, as ``CHAT_TEMPLATE`` renders it.

    With ``answer``, the assistant turn is appended as the model must produce it:
    ``{answer}<|im_end|>`` (nothing after it: the model stops there).
    """
    text = f"{IM_START}user\n{VIDEO_TOKEN}\n{question}{IM_END}\n{IM_START}assistant\n"
    return text if answer is None else f"{text}{answer}{IM_END}"


def build_tokenizer():
    """The task's tokenizer: ``transformers.PreTrainedTokenizerFast`` (vocabulary
    ``VOCABULARY``, ``len() == len(VOCABULARY)``), built deterministically."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({word: i for i, word in enumerate(VOCABULARY)}, unk_token=UNK_TOKEN))
    core.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace("colour", "color")])
    core.pre_tokenizer = pre_tokenizers.Split(Regex(_PIECE_PATTERN), behavior="removed", invert=True)
    # Joins tokens with spaces and removes the space before punctuation ("circle ?" -> "circle?").
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        extra_special_tokens={"image_token": IMAGE_TOKEN, "video_token": VIDEO_TOKEN},
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )


def save_tokenizer(directory: str | Path):
    """Write the tokenizer to ``directory`` (created if needed) and return it.

    Files: ``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``.
    """
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(str(directory))
    return tokenizer


def special_token_ids() -> dict[str, int]:
    """Ids a model config needs: ``pad_token_id``, ``bos_token_id`` (both ``<|endoftext|>``,
    as Qwen2), ``eos_token_id`` (``<|im_end|>``), ``image_token_id``, ``video_token_id``,
    ``im_start_id`` and ``vocab_size`` (``len(VOCABULARY)``)."""
    index = VOCABULARY.index
    return {
        "pad_token_id": index(PAD_TOKEN),
        "bos_token_id": index(PAD_TOKEN),
        "eos_token_id": index(IM_END),
        "im_start_id": index(IM_START),
        "image_token_id": index(IMAGE_TOKEN),
        "video_token_id": index(VIDEO_TOKEN),
        "vocab_size": len(VOCABULARY),
    }
