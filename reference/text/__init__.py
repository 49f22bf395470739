"""From text to token ids and back: a word-level tokenizer, byte-pair encoding, and GPT-2's
byte-level BPE tokenizer.
"""

from llmref.text import (
    word_tokenizer,
    bpe,
    gpt2_tokenizer,
)

__all__ = [
    "word_tokenizer", "bpe", "gpt2_tokenizer",
]
