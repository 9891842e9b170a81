"""The task tokenizer: Hugging Face format, offline loading, special tokens, chat template,
vocabulary coverage and encode/decode round trips."""

import types

import numpy as np
import pytest

from focus_jax.data import ANSWERS, FAMILIES, VOCABULARY, TaskConfig, prompt_text, sample_spec, save_tokenizer
from focus_jax.data.batching import encode_prompt
from focus_jax.data.task import QUESTION_TEMPLATES
from focus_jax.data.tokenizer import SPECIAL_TOKENS, build_tokenizer, special_token_ids


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(directory)
    return directory


@pytest.fixture(scope="module")
def tok(saved):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(saved))


def _all_questions():
    cfg = TaskConfig()
    return sorted({sample_spec(cfg, 0, i).question for i in range(600)})


def test_files_and_loaders(saved):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    assert {p.name for p in saved.iterdir()} >= {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
    for loaded in (AutoTokenizer.from_pretrained(str(saved)), PreTrainedTokenizerFast.from_pretrained(str(saved))):
        assert isinstance(loaded, PreTrainedTokenizerFast)
        assert len(loaded) == len(VOCABULARY) == 48
        assert loaded.get_vocab() == {w: i for i, w in enumerate(VOCABULARY)}


def test_build_is_deterministic(tmp_path):
    save_tokenizer(tmp_path / "a")
    save_tokenizer(tmp_path / "b")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_special_tokens(tok):
    ids = special_token_ids()
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id == ids["pad_token_id"] == ids["bos_token_id"] == 0
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == ids["eos_token_id"]
    # LlavaOnevisionProcessor reads these attributes from the tokenizer
    assert tok.image_token == "<image>" and tok.image_token_id == ids["image_token_id"]
    assert tok.video_token == "<video>" and tok.video_token_id == ids["video_token_id"]
    assert ids["vocab_size"] == len(tok) and all(0 <= v < len(tok) for k, v in ids.items() if k != "vocab_size")
    assert tok.bos_token is None and tok("what")["input_ids"] == [VOCABULARY.index("what")], "no BOS added (Qwen2)"


def test_every_question_and_answer_is_in_the_vocabulary(tok):
    unk = tok.unk_token_id
    questions = _all_questions()
    assert len(questions) > 30
    for text in questions + [a for f in FAMILIES for a in ANSWERS[f]]:
        ids = tok(text)["input_ids"]
        assert unk not in ids, text
    for family in FAMILIES:
        for answer in ANSWERS[family]:
            assert len(tok(answer)["input_ids"]) == 1, f"answer {answer!r} must be one token"


def test_encode_decode_round_trip(tok):
    for question in _all_questions():
        ids = tok(question)["input_ids"]
        words = question.replace("?", " ?").split()
        assert tok.convert_ids_to_tokens(ids) == words
        assert tok.decode(ids) == question
    assert tok.decode(tok("What COLOUR is the Circle?")["input_ids"]) == "what color is the circle?"
    assert tok("a purple unicorn")["input_ids"] == [tok.unk_token_id, VOCABULARY.index("purple"), tok.unk_token_id]


def test_chat_template_matches_prompt_builder(tok):
    question = "which way does the red star move?"
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert (
        text
        == prompt_text(question)
        == "<|im_start|>user\n<video>\nwhich way does the red star move?<|im_end|>\n<|im_start|>assistant\n"
    )
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    expected = [
        VOCABULARY.index(t)
        for t in [
            "<|im_start|>",
            "user",
            "\n",
            "<video>",
            "\n",
            "which",
            "way",
            "does",
            "the",
            "red",
            "star",
            "move",
            "?",
            "<|im_end|>",
            "\n",
            "<|im_start|>",
            "assistant",
            "\n",
        ]
    ]
    assert list(ids) == expected == encode_prompt(tok, question, 1)
    # a full conversation with the answer: the template renders what prompt_text(q, answer) + "\n" is
    messages.append({"role": "assistant", "content": "up"})
    full = tok.apply_chat_template(messages, tokenize=False)
    assert full == prompt_text(question, "up") + "\n"
    # string content works too (text-only prompts)
    assert (
        tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
        == "<|im_start|>user\nhi<|im_end|>\n"
    )


@pytest.mark.parametrize("frames, image_size, patch_size", [(8, 64, 8), (4, 32, 8), (3, 384, 14), (16, 56, 8)])
def test_video_placeholder_expansion_matches_transformers(tok, frames, image_size, patch_size):
    """encode_prompt expands <video> to the count transformers' processor computes, and the ids equal
    tokenising the processor's expanded text."""
    from transformers import LlavaOnevisionProcessor

    from focus_jax.data import video_token_count

    # The processor cannot be constructed without torchvision (its video processor needs it);
    # its expansion methods only read these attributes.
    fake = types.SimpleNamespace(num_image_tokens=(image_size // patch_size) ** 2, video_token="<video>")
    video = {"pixel_values_videos": [np.zeros((frames, 3, image_size, image_size), np.float32)]}
    expanded = LlavaOnevisionProcessor.replace_video_token(fake, video, 0)
    count = LlavaOnevisionProcessor._get_num_multimodal_tokens(fake, video_sizes=[(frames, image_size, image_size)])
    n = video_token_count(frames, image_size, patch_size)
    assert expanded == "<video>" * n and count["num_video_tokens"] == [n]
    question = "how many shapes are there?"
    processor_ids = tok(prompt_text(question).replace("<video>", expanded))["input_ids"]
    assert encode_prompt(tok, question, n) == processor_ids


def test_vocabulary_is_stable():
    """The shipped model depends on these ids: changing the task's wording must be deliberate."""
    assert VOCABULARY[:10] == ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>", "<unk>", "\n",
                               "system", "user", "assistant")
    assert set(QUESTION_TEMPLATES) == set(FAMILIES)
    assert build_tokenizer().get_vocab() == {w: i for i, w in enumerate(VOCABULARY)}
