"""Attention, multi-head attention, the transformer block, the GPT built from them, and text
generation.
"""

from llmref.transformer import (
    attention,
    mha,
    block,
    gpt,
    generate,
)

__all__ = [
    "attention", "mha", "block", "gpt", "generate",
]
