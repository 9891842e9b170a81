"""Vision-language models in JAX with Focus in prefill.

One folder per model family (``siglip``, ``qwen2``, ``llava_onevision``), each with a
``modeling.py`` (pure functions over parameter pytrees, frozen-dataclass configs) and a
``params.py`` (explicit Hugging Face checkpoint-key rules). ``llava_onevision.model``
holds the user-facing ``LlavaOnevision`` class; ``focus_jax.from_pretrained`` loads it.
"""
