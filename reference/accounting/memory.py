r"""Memory of training a GPT, from its configuration: parameters, gradients, optimizer state,
master weights and activations.

The parameter count is read off the parameter tree's shapes (`gpt.shapes`, which allocates
nothing), so it covers every option of the configuration (a Llama's grouped-query attention,
SwiGLU, untied head, missing biases).  For GPT-2's options ($V$ vocabulary, $P$ context, $C$
width, $F$ hidden width, $L$ layers; biases everywhere but the head) it is

$$ N = V C + P C + L\,(4C^2 + 4C + 2 C F + F + C + 4C) + 2C \;[+\, C V \text{ untied head}] $$

With $F = 4C$ a block has $12 C^2 + 13 C$ parameters.  Activations are counted as the
reference keeps them for the backward pass (see `activation_bytes`), so the formula can be
checked against a measurement of the caches.

Every size is a positive int (Python or NumPy); results are exact Python ints.
"""

from __future__ import annotations

import math

from llmref import _checks
from llmref._contract import contract
from llmref.accounting.flops import _check_config, _kv_heads, _sizes
from llmref.transformer import gpt
from llmref.transformer.gpt import GPTConfig

#: optimizer state tensors per parameter (float32 each)
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}

#: elements (in units of N x d_ff) the feed-forward keeps: the hidden pre-activation and the
#: activation (relu); plus the GELUs' factor (Phi or the sigmoid); SwiGLU keeps the gate's
#: pre-activation, its sigmoid, silu(gate), the up projection and their product
FFN_ELEMENTS = {"relu": 2, "gelu": 3, "gelu_tanh": 3, "swiglu": 5}


def _example_config() -> GPTConfig:
    """The configuration the contract examples use."""
    return GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=2, n_layers=2)


@contract(example=lambda rng: {"d_model": 8, "d_ff": 32})
def block_param_count(d_model: int, d_ff: int) -> int:
    r"""Parameters of one GPT-2 transformer block (`param_count` counts any configuration).

    $$ \underbrace{(3C^2 + 3C) + (C^2 + C)}_{\text{attention}}
       + \underbrace{(C F + F) + (F C + C)}_{\text{feed-forward}}
       + \underbrace{2 \cdot 2C}_{\text{two layer norms}} $$

    Parameters
    ----------
    d_model : int
        Width $C$, > 0.
    d_ff : int
        Hidden width $F$ of the feed-forward network, > 0.

    Returns
    -------
    n : int
        Parameter count.

    Raises
    ------
    TypeError
        If a size is not an int (Python or NumPy).
    ValueError
        If a size is < 1.
    """
    return _block_param_count(*_sizes("memory.block_param_count", d_model=d_model, d_ff=d_ff))


@contract(example=lambda rng: {"config": _example_config()})
def param_count(config: GPTConfig) -> int:
    r"""Parameters of the whole GPT, counted from its parameter tree's shapes
    (`gpt.shapes`): embeddings, blocks, final norm and, when untied, the head; for GPT-2's
    options the formula above.

    Parameters
    ----------
    config : GPTConfig
        The model's sizes.

    Returns
    -------
    n : int
        Parameter count; equals the number of scalars in ``gpt.init(config, rng)``.

    Raises
    ------
    TypeError
        If ``config`` is not a ``GPTConfig``.
    """
    _check_config("memory.param_count", config, 1)
    return _param_count(config)


@contract(example=lambda rng: {"B": 2, "T": 4, "d_model": 8, "n_heads": 2, "d_ff": 32,
                               "n_kv_heads": 1, "activation": "swiglu"},
          lenient={"n_kv_heads": ("none",)})
def block_activation_elements(B: int, T: int, d_model: int, n_heads: int, d_ff: int,
                              n_kv_heads: int | None = None,
                              activation: str = "gelu_tanh") -> int:
    r"""Elements one block caches for its backward pass.

    For each of its two norms the normalised input $\hat x$ and the reciprocal root of each
    row; the inputs of the attention and of the feed-forward; the queries, keys and values
    (with grouped-query attention, $H_{kv} < H$, also the keys and values repeated to every
    query head); the attention weights (B, H, T, T); the merged heads; the feed-forward's own
    (`FFN_ELEMENTS`: 3 for GPT-2's, 5 for SwiGLU).  With $N = B T$ and $D = C / H$, for the
    default (full heads, ``gelu_tanh``):

    $$ 8 N C + 2 N + B H T^2 + 3 N F $$

    Parameters
    ----------
    B : int
        Batch size, > 0.
    T : int
        Sequence length, > 0.
    d_model : int
        Width $C$, > 0.
    n_heads : int
        Heads $H$, > 0, dividing ``d_model``.
    d_ff : int
        Hidden width $F$, > 0.
    n_kv_heads : int, default None
        Key/value heads, > 0, dividing ``n_heads`` (default: ``n_heads``).
    activation : str, default 'gelu_tanh'
        The feed-forward's activation: ``"relu"``, ``"gelu"``, ``"gelu_tanh"`` or
        ``"swiglu"``.

    Returns
    -------
    n : int
        Number of cached elements.

    Raises
    ------
    TypeError
        If a size is not an int (Python or NumPy) or ``activation`` not a str.
    ValueError
        If a size is < 1, ``n_heads`` does not divide ``d_model``, ``n_kv_heads`` does not
        divide ``n_heads``, or the activation is unknown.
    """
    where = "memory.block_activation_elements"
    sizes = _sizes(where, B=B, T=T, d_model=d_model, n_heads=n_heads, d_ff=d_ff)
    n_kv = _kv_heads(where, sizes[2], sizes[3], n_kv_heads)
    _checks.choice(where, "activation", activation, tuple(FFN_ELEMENTS))
    return _block_activation_elements(*sizes, n_kv, activation)


@contract(example=lambda rng: {"config": _example_config(), "B": 2, "T": 8, "itemsize": 8})
def activation_bytes(config: GPTConfig, B: int, T: int, itemsize: int = 8) -> int:
    r"""Bytes the reference forward pass plus loss keep for the backward pass (any
    configuration, no padding mask).

    $$ \text{itemsize} \cdot \big(L \cdot \text{block} + 2 N C + N + N V\big) + N + 8T $$

    the blocks' caches, the final norm and the probabilities (in the compute format), plus
    the boolean "kept" mask of the loss ($N$ bytes) and the int64 position ids (with rotary
    positions instead: the cos and sin tables, $2 T D$ elements, shared by every layer; the
    exact GELU's factor is float64 whatever the format).  Equals
    `checkpoint.plain_activation_bytes` measured on float64 arrays with ``itemsize=8``.

    Parameters
    ----------
    config : GPTConfig
        The model's sizes.
    B : int
        Batch size, > 0.
    T : int
        Sequence length, 1 to ``config.context_len``.
    itemsize : int, default 8
        Bytes per activation element (8 for float64, 4 for float32, 2 for float16), > 0.

    Returns
    -------
    n : int
        Bytes.

    Raises
    ------
    TypeError
        If ``config`` is not a ``GPTConfig`` or a size is not an int (Python or NumPy).
    ValueError
        If a size is < 1 or ``T`` exceeds the context length.
    """
    B, T, itemsize = _sizes("memory.activation_bytes", B=B, T=T, itemsize=itemsize)
    _check_config("memory.activation_bytes", config, T)
    return _activation_bytes(config, B, T, itemsize)


@contract(example=lambda rng: {"config": _example_config(), "B": 2, "T": 8, "optimizer": "adam",
                               "param_bytes": 2, "activation_itemsize": 4,
                               "master_weights": True},
          lenient={"activation_itemsize": ("none",)})
def training_bytes(config: GPTConfig, B: int, T: int, optimizer: str = "adamw",
                   param_bytes: int = 4, activation_itemsize: int | None = None,
                   master_weights: bool = False) -> dict:
    r"""Bytes for one training step, by kind.

    With $N$ parameters and $p$ bytes per parameter in the compute copy:

    $$ \underbrace{N p}_{\text{params}} + \underbrace{N p}_{\text{grads}}
       + \underbrace{4 N s}_{\text{optimizer}} + \underbrace{4 N\,[\text{master}]}_{\text{master}}
       + \text{activations} $$

    where $s$ is the number of state tensors of the optimizer (`OPTIMIZER_STATES`: 0 for
    SGD, 1 with momentum, 2 for Adam and AdamW); optimizer states and master weights are
    float32.

    Parameters
    ----------
    config : GPTConfig
        The model's sizes.
    B : int
        Batch size, > 0.
    T : int
        Sequence length, 1 to ``config.context_len``.
    optimizer : str, default 'adamw'
        One of ``"sgd"``, ``"momentum"``, ``"adam"``, ``"adamw"``.
    param_bytes : int, default 4
        Bytes per parameter in the compute copy (2 for float16/bfloat16), > 0; gradients have
        the same size.
    activation_itemsize : int or None, default None
        Bytes per activation element, > 0; None: ``param_bytes``.
    master_weights : bool, default False
        Whether a float32 master copy of the weights is kept (mixed precision).

    Returns
    -------
    bytes : dict
        ``{"params", "grads", "optimizer_state", "master_weights", "activations", "total"}``,
        each an int.

    Raises
    ------
    TypeError
        If ``config`` is not a ``GPTConfig``, a size is not an int, ``optimizer`` is not a
        string or ``master_weights`` is not a bool.
    ValueError
        If a size is < 1, ``T`` exceeds the context length or ``optimizer`` is unknown.
    """
    where = "memory.training_bytes"
    B, T, param_bytes = _sizes(where, B=B, T=T, param_bytes=param_bytes)
    _check_config(where, config, T)
    _checks.choice(where, "optimizer", optimizer, tuple(OPTIMIZER_STATES))
    activation_itemsize = param_bytes if activation_itemsize is None else _sizes(
        where, activation_itemsize=activation_itemsize)[0]
    master_weights = _checks.boolean(where, "master_weights", master_weights)
    n = _param_count(config)
    out = {"params": n * param_bytes, "grads": n * param_bytes,
           "optimizer_state": n * 4 * OPTIMIZER_STATES[optimizer],
           "master_weights": n * 4 if master_weights else 0,
           "activations": _activation_bytes(config, B, T, activation_itemsize)}
    out["total"] = sum(out.values())
    return out


# Unchecked cores: sizes already checked (positive Python ints).

def _block_param_count(C: int, F: int) -> int:
    attention = (C * 3 * C + 3 * C) + (C * C + C)
    feed_forward = (C * F + F) + (F * C + C)
    norms = 2 * (2 * C)
    return attention + feed_forward + norms


def _param_count(config: GPTConfig) -> int:
    return sum(math.prod(shape) for shape in gpt.shapes(config, flat=True).values())


def _block_activation_elements(B: int, T: int, C: int, H: int, F: int, H_kv: int,
                               activation: str) -> int:
    N = B * T
    kv = 2 * N * H_kv * (C // H)                        # keys and values
    repeated = 2 * N * C if H_kv != H else 0            # grouped-query: repeated to H heads
    return (6 * N * C + 2 * N + kv + repeated + B * H * T * T
            + FFN_ELEMENTS[activation] * N * F)


def _activation_bytes(config: GPTConfig, B: int, T: int, itemsize: int) -> int:
    N, C, V, F = B * T, int(config.d_model), int(config.vocab_size), int(config.hidden)
    L = int(config.n_layers)
    blocks = L * _block_activation_elements(B, T, C, int(config.n_heads), F,
                                            int(config.kv_heads), config.activation)
    top = 2 * N * C + N + N * V                         # ln_f and the probabilities
    total = itemsize * (blocks + top) + N               # + the loss's "kept" mask
    if config.activation == "gelu":                     # its Phi is float64 in any format
        total += L * N * F * (8 - itemsize)
    if config.position == "rope":                       # cos and sin, shared by the layers
        return total + 2 * T * int(config.head_dim) * itemsize
    return total + 8 * T                                # the position ids 0 .. T-1
