r"""Memory of training a GPT, from its configuration: parameters, gradients, optimizer state,
master weights and activations.

Parameter count (``V`` vocabulary, ``P`` context, ``C`` width, ``F`` hidden width, ``L``
layers; biases everywhere but the head, as in GPT-2):

.. math::
    N = V C + P C + L\,(4C^2 + 4C + 2 C F + F + C + 4C) + 2C \;[+\, C V \text{ untied head}]

With ``F = 4C`` a block has ``12 C^2 + 13 C`` parameters.  Activations are counted as the
reference keeps them for the backward pass (see :func:`activation_bytes`), so the formula
can be checked against a measurement of the caches.
"""

from __future__ import annotations

from llmref.transformer.gpt import GPTConfig

OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}


def block_param_count(d_model: int, d_ff: int) -> int:
    C, F = d_model, d_ff
    attention = (C * 3 * C + 3 * C) + (C * C + C)
    feed_forward = (C * F + F) + (F * C + C)
    norms = 2 * (2 * C)
    return attention + feed_forward + norms


def param_count(config: GPTConfig) -> int:
    C = config.d_model
    n = config.vocab_size * C + config.context_len * C + 2 * C
    n += config.n_layers * block_param_count(C, config.hidden)
    if not config.tie_weights:
        n += C * config.vocab_size
    return n


def block_activation_elements(B: int, T: int, d_model: int, n_heads: int, d_ff: int) -> int:
    """Elements one pre-norm block caches: for each of its two layer norms the normalised
    input x_hat, the reciprocal standard deviation of each row and the output; Q/K/V; the
    attention weights (B, H, T, T); the merged heads; the FFN's hidden pre-activation, its
    sigmoid factor and its activation."""
    N = B * T
    return 8 * N * d_model + 2 * N + B * n_heads * T * T + 3 * N * d_ff


def activation_bytes(config: GPTConfig, B: int, T: int, itemsize: int = 8) -> int:
    """Bytes the reference forward pass plus loss keep for the backward pass (pre-norm
    blocks with ``gelu_tanh``, the default).  Matches ``checkpoint.plain_activation_bytes``."""
    N = B * T
    blocks = config.n_layers * block_activation_elements(B, T, config.d_model, config.n_heads,
                                                         config.hidden)
    top = 2 * N * config.d_model + N + N * config.vocab_size   # ln_f and the probabilities
    return itemsize * (blocks + top) + N + 8 * T       # + the "kept" mask, position ids


def training_bytes(config: GPTConfig, B: int, T: int, optimizer: str = "adamw",
                   param_bytes: int = 4, activation_itemsize: int | None = None,
                   master_weights: bool = False) -> dict:
    """Bytes for one training step, by kind.  ``param_bytes``: bytes per parameter in the
    compute copy (2 for float16/bfloat16); gradients have the same size; optimizer states and
    master weights are float32 (4 bytes per parameter per tensor)."""
    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"memory.training_bytes: argument 'optimizer' must be one of "
                         f"{sorted(OPTIMIZER_STATES)}, got {optimizer!r}")
    n = param_count(config)
    out = {"params": n * param_bytes, "grads": n * param_bytes,
           "optimizer_state": n * 4 * OPTIMIZER_STATES[optimizer],
           "master_weights": n * 4 if master_weights else 0,
           "activations": activation_bytes(config, B, T, activation_itemsize or param_bytes)}
    out["total"] = sum(out.values())
    return out
