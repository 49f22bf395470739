"""llm-reference-spec: plain NumPy reference implementations of the pieces of a language model.

Every component is a module with ``forward(...) -> (out, cache)`` and
``backward(dout, cache) -> grads``, where ``grads`` is a dict with one entry per
differentiable input (named as the forward's argument) and one per parameter (named as its
key in ``params``).  Runtime dependency: NumPy only.
"""

from types import ModuleType

from reference import (
    accumulate,
    adam,
    adamw,
    attention,
    bigram_policy,
    block,
    bpe,
    checkpoint,
    clip,
    cross_entropy,
    dpo,
    embedding,
    ffn,
    flops,
    gae,
    gelu,
    gelu_tanh,
    generate,
    gpt,
    kl,
    layer_norm,
    linear,
    log_softmax,
    memory,
    mha,
    mixed_precision,
    mse,
    params,
    positional,
    ppo,
    preference,
    relu,
    reward_model,
    rlhf,
    rms_norm,
    schedules,
    sgd,
    sigmoid,
    sinusoidal,
    softmax,
    tanh,
    train,
    word_tokenizer,
)

__version__ = "0.1.0"

#: every component module, by name
__all__ = sorted(name for name, value in globals().items()
                 if isinstance(value, ModuleType) and value.__name__.startswith("reference.")
                 and not name.startswith("_"))
