"""From text to token ids and back: a word-level tokenizer and byte-pair encoding.
"""

from llmref.text import (
    word_tokenizer,
    bpe,
)

__all__ = [
    "word_tokenizer", "bpe",
]
