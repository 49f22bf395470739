"""llm-reference-spec: plain NumPy reference implementations of the pieces of a language model.

Every component is a module with ``forward(...) -> (out, cache)`` and
``backward(dout, cache) -> grads``, where ``grads`` is a dict with one entry per
differentiable input (named as the forward's argument) and one per parameter (named as its
key in ``params``).  Runtime dependency: NumPy only.
"""

from reference import (
    attention,
    block,
    cross_entropy,
    embedding,
    ffn,
    flops,
    gelu,
    gelu_tanh,
    gpt,
    layer_norm,
    linear,
    log_softmax,
    mha,
    mse,
    params,
    positional,
    relu,
    rms_norm,
    sigmoid,
    sinusoidal,
    softmax,
    tanh,
)

__version__ = "0.1.0"

__all__ = [
    "attention", "block", "cross_entropy", "embedding", "ffn", "flops", "gelu", "gelu_tanh", "gpt",
    "layer_norm", "linear", "log_softmax", "mha", "mse", "params", "positional", "relu",
    "rms_norm", "sigmoid", "sinusoidal", "softmax", "tanh",
]
