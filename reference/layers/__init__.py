"""The building blocks of a network: linear maps, activations, softmax, normalisation, embeddings,
positions and the feed-forward layer.
"""

from llmref.layers import (
    linear,
    relu,
    gelu,
    gelu_tanh,
    sigmoid,
    tanh,
    softmax,
    log_softmax,
    layer_norm,
    rms_norm,
    embedding,
    positional,
    sinusoidal,
    ffn,
    silu,
    swiglu,
    rope,
)

__all__ = [
    "linear", "relu", "gelu", "gelu_tanh", "sigmoid", "tanh", "softmax", "log_softmax",
    "layer_norm", "rms_norm", "embedding", "positional", "sinusoidal", "ffn",
    "silu", "swiglu", "rope",       # a Llama's layers
]
