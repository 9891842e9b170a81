"""Hugging Face ``config.json`` files of the full-size Qwen2.5-VL checkpoints (no weights), see ``sizes``."""
