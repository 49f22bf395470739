r"""Memory of training a GPT, from its configuration: parameters, gradients, optimizer state,
master weights and activations.

Parameter count ($V$ vocabulary, $P$ context, $C$ width, $F$ hidden width, $L$ layers;
biases everywhere but the head, as in GPT-2):

$$ N = V C + P C + L\,(4C^2 + 4C + 2 C F + F + C + 4C) + 2C \;[+\, C V \text{ untied head}] $$

With $F = 4C$ a block has $12 C^2 + 13 C$ parameters.  Activations are counted as the
reference keeps them for the backward pass (see `activation_bytes`), so the formula can be
checked against a measurement of the caches.

Every size is a positive int (Python or NumPy); results are exact Python ints.
"""

from __future__ import annotations

from llmref import _checks
from llmref._contract import contract
from llmref.accounting.flops import _check_config, _check_heads, _sizes
from llmref.transformer.gpt import GPTConfig

#: optimizer state tensors per parameter (float32 each)
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}


def _tiny() -> GPTConfig:
    """The configuration the contract examples use."""
    return GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=2, n_layers=2)


@contract(example=lambda rng: {"d_model": 8, "d_ff": 32})
def block_param_count(d_model: int, d_ff: int) -> int:
    r"""Parameters of one transformer block.

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


@contract(example=lambda rng: {"config": _tiny()})
def param_count(config: GPTConfig) -> int:
    r"""Parameters of the whole GPT (the formula above): embeddings, blocks, final layer norm
    and, when untied, the head.

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


@contract(example=lambda rng: {"B": 2, "T": 4, "d_model": 8, "n_heads": 2, "d_ff": 32})
def block_activation_elements(B: int, T: int, d_model: int, n_heads: int, d_ff: int) -> int:
    r"""Elements one pre-norm block caches for its backward pass.

    For each of its two layer norms the normalised input $\hat x$, the reciprocal standard
    deviation of each row and the output; Q, K and V; the attention weights (B, H, T, T); the
    merged heads; the feed-forward network's hidden pre-activation, its sigmoid factor and its
    activation.  With $N = B T$:

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

    Returns
    -------
    n : int
        Number of cached elements.

    Raises
    ------
    TypeError
        If a size is not an int (Python or NumPy).
    ValueError
        If a size is < 1 or ``n_heads`` does not divide ``d_model``.
    """
    sizes = _sizes("memory.block_activation_elements", B=B, T=T, d_model=d_model,
                   n_heads=n_heads, d_ff=d_ff)
    _check_heads("memory.block_activation_elements", sizes[2], sizes[3])
    return _block_activation_elements(*sizes)


@contract(example=lambda rng: {"config": _tiny(), "B": 2, "T": 8, "itemsize": 8})
def activation_bytes(config: GPTConfig, B: int, T: int, itemsize: int = 8) -> int:
    r"""Bytes the reference forward pass plus loss keep for the backward pass (pre-norm
    blocks with ``gelu_tanh``, the default).

    $$ \text{itemsize} \cdot \big(L \cdot \text{block} + 2 N C + N + N V\big) + N + 8T $$

    the blocks' caches, the final layer norm and the probabilities (in the compute format),
    plus the boolean "kept" mask of the loss ($N$ bytes) and the int64 position ids.  Equals
    `checkpoint.plain_activation_bytes` measured on float64 arrays with ``itemsize=8``.

    Parameters
    ----------
    config : GPTConfig
        The model's sizes.
    B : int
        Batch size, > 0.
    T : int
        Sequence length, 1 to ``config.context_len``.
    itemsize : int
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


@contract(example=lambda rng: {"config": _tiny(), "B": 2, "T": 8, "optimizer": "adam",
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
    optimizer : str
        One of ``"sgd"``, ``"momentum"``, ``"adam"``, ``"adamw"``.
    param_bytes : int
        Bytes per parameter in the compute copy (2 for float16/bfloat16), > 0; gradients have
        the same size.
    activation_itemsize : int or None
        Bytes per activation element, > 0; None: ``param_bytes``.
    master_weights : bool
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
    C, V, P, L = (int(n) for n in (config.d_model, config.vocab_size, config.context_len,
                                   config.n_layers))
    n = V * C + P * C + 2 * C + L * _block_param_count(C, int(config.hidden))
    if not config.tie_weights:
        n += C * V
    return n


def _block_activation_elements(B: int, T: int, C: int, H: int, F: int) -> int:
    N = B * T
    return 8 * N * C + 2 * N + B * H * T * T + 3 * N * F


def _activation_bytes(config: GPTConfig, B: int, T: int, itemsize: int) -> int:
    N, C, V = B * T, int(config.d_model), int(config.vocab_size)
    blocks = int(config.n_layers) * _block_activation_elements(
        B, T, C, int(config.n_heads), int(config.hidden))
    top = 2 * N * C + N + N * V                         # ln_f and the probabilities
    return itemsize * (blocks + top) + N + 8 * T        # + the "kept" mask, position ids
