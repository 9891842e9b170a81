"""Hugging Face ``config.json`` files of the full-size checkpoints (no weights), see ``sizes``."""
