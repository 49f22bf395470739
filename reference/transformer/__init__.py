"""Attention, multi-head attention, the transformer block, the GPT built from them, text
generation, and the GPT's weights on disk (``weights``: ``.npz`` and safetensors files;
``convert``: Hugging Face GPT-2 and nanoGPT checkpoints).
"""

from llmref.transformer import (
    attention,
    mha,
    block,
    gpt,
    generate,
    weights,
    convert,
    convert_llama,
)

__all__ = [
    "attention", "mha", "block", "gpt", "generate", "weights", "convert", "convert_llama",
]
