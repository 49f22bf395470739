r"""FLOP counts of the forward and backward passes, computed from shapes.

Convention (the one scaling-law papers use): only matrix products are counted, 2 FLOPs per
multiply-add, so a product of shapes (m, k) and (k, n) costs

$$ \mathrm{FLOPs}\big((m, k) \cdot (k, n)\big) = 2\,m\,k\,n $$

Element-wise work (activations, softmax, layer norm, the loss) is $O(BTC)$ against the
products' $O(BTC^2)$ and is left out; embedding lookups cost nothing.

Backward: a linear layer $y = xW$ needs $dx = g W^\top$ and $dW = x^\top g$, two products
the size of the forward one, so its backward is exactly twice its forward.  Attention's
backward needs four products ($dV$, $dA$, $dQ$, $dK$) against the forward's two: twice
again.  Every input gradient is counted, the first layer's included, because the embeddings
need it.

$$ \mathrm{attention}: \quad F_{fwd} = 2 \cdot 2\,B H T S D, \qquad F_{bwd} = 2 F_{fwd} $$

With $S = T$ that grows with the square of the sequence length, while every other term grows
linearly in it.

Every size is a positive int (Python or NumPy); counts are exact Python ints, so no size is
too large (no int64 overflow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.transformer.gpt import GPTConfig


def _sizes(where: str, **sizes) -> list:
    """Every size a positive int, as Python ints (exact however large the product)."""
    return [_checks.integer(where, name, value, low=1) for name, value in sizes.items()]


@contract(example=lambda rng: {"forward": 6, "backward": 12},
          lenient={"forward": ("zero", "huge"), "backward": ("zero", "huge")})
@dataclass(frozen=True)
class Cost:
    """FLOPs of one forward and one backward pass.

    Costs add (``a + b``: both passes of two parts) and scale by an int (``cost * n``: n
    copies of a part, such as n identical blocks).

    Parameters
    ----------
    forward : int
        FLOPs of the forward pass, >= 0.
    backward : int
        FLOPs of the backward pass, >= 0.

    Raises
    ------
    TypeError
        If a count is not an int (Python or NumPy; a bool is not a count).
    ValueError
        If a count is negative.
    """
    forward: int
    backward: int

    def __post_init__(self):
        for name in ("forward", "backward"):
            object.__setattr__(self, name,
                               _checks.integer("flops.Cost", name, getattr(self, name), low=0,
                                               int64=False))

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(self.forward + other.forward, self.backward + other.backward)

    def __mul__(self, n: int) -> Cost:
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
            return NotImplemented
        return Cost(self.forward * int(n), self.backward * int(n))

    __rmul__ = __mul__

    @property
    def total(self) -> int:
        """Forward plus backward FLOPs."""
        return self.forward + self.backward


@contract(example=lambda rng: {"n_rows": 6, "d_in": 4, "d_out": 5})
def linear(n_rows: int, d_in: int, d_out: int) -> Cost:
    r"""FLOPs of a linear layer on ``n_rows`` rows: $(N, C_{in}) \cdot (C_{in}, C_{out})$.

    $$ F_{fwd} = 2\,N C_{in} C_{out}, \qquad F_{bwd} = 2 F_{fwd} \quad (dx \text{ and } dW) $$

    The bias adds element-wise work only, which is not counted.

    Parameters
    ----------
    n_rows : int
        Rows $N$ (for a batch of sequences, $B \cdot T$), > 0.
    d_in : int
        Input width $C_{in}$, > 0.
    d_out : int
        Output width $C_{out}$, > 0.

    Returns
    -------
    cost : Cost
        Forward and backward FLOPs.

    Raises
    ------
    TypeError
        If a size is not an int (Python or NumPy).
    ValueError
        If a size is < 1.
    """
    return _linear(*_sizes("flops.linear", n_rows=n_rows, d_in=d_in, d_out=d_out))


@contract(example=lambda rng: {"B": 2, "H": 3, "T": 4, "S": 5, "D": 6})
def attention(B: int, H: int, T: int, S: int, D: int) -> Cost:
    r"""FLOPs of scaled dot-product attention: $Q K^\top$ and $A V$.

    $$ F_{fwd} = 2 \cdot 2\,B H T S D, \qquad
       F_{bwd} = 2 F_{fwd} \quad (dV,\ dA,\ dQ,\ dK) $$

    Parameters
    ----------
    B : int
        Batch size, > 0.
    H : int
        Heads, > 0.
    T : int
        Query positions, > 0.
    S : int
        Key positions, > 0 (``S = T`` in self-attention).
    D : int
        Head width, > 0.

    Returns
    -------
    cost : Cost
        Forward and backward FLOPs.

    Raises
    ------
    TypeError
        If a size is not an int (Python or NumPy).
    ValueError
        If a size is < 1.
    """
    return _attention(*_sizes("flops.attention", B=B, H=H, T=T, S=S, D=D))


@contract(example=lambda rng: {"B": 2, "T": 4, "d_model": 6, "n_heads": 3, "n_kv_heads": 1},
          lenient={"n_kv_heads": ("none",)})
def mha(B: int, T: int, d_model: int, n_heads: int, n_kv_heads: int | None = None) -> Cost:
    r"""FLOPs of causal multi-head self-attention: the Q/K/V projections, attention over
    ``n_heads`` heads of width $D = C / H$, and the output projection.

    $$ F = \mathrm{linear}(BT, C, (H + 2 H_{kv}) D) + \mathrm{attention}(B, H, T, T, D)
         + \mathrm{linear}(BT, C, C) $$

    With grouped-query attention ($H_{kv} < H$ key/value heads) the key and value
    projections are narrower; the attention products are not (every query head attends).

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
    n_kv_heads : int, default None
        Key/value heads $H_{kv}$, > 0, dividing ``n_heads`` (default: ``n_heads``).

    Returns
    -------
    cost : Cost
        Forward and backward FLOPs.

    Raises
    ------
    TypeError
        If a size is not an int (Python or NumPy).
    ValueError
        If a size is < 1, ``n_heads`` does not divide ``d_model`` or ``n_kv_heads`` does not
        divide ``n_heads``.
    """
    sizes = _sizes("flops.mha", B=B, T=T, d_model=d_model, n_heads=n_heads)
    n_kv = _kv_heads("flops.mha", sizes[2], sizes[3], n_kv_heads)
    return _mha(*sizes, n_kv)


@contract(example=lambda rng: {"n_rows": 6, "d_model": 4, "d_ff": 16, "gated": True})
def ffn(n_rows: int, d_model: int, d_ff: int, gated: bool = False) -> Cost:
    r"""FLOPs of the position-wise feed-forward network: two linear layers, or three for a
    gated unit (SwiGLU's gate, up and down).

    $$ F = (2 \text{ or } 3)\ \mathrm{linear}(N, C, F_{ff}) $$

    Parameters
    ----------
    n_rows : int
        Rows $N = B T$, > 0.
    d_model : int
        Width $C$, > 0.
    d_ff : int
        Hidden width $F_{ff}$, > 0.
    gated : bool, default False
        A gated unit with three matrices (SwiGLU) instead of two.

    Returns
    -------
    cost : Cost
        Forward and backward FLOPs.

    Raises
    ------
    TypeError
        If a size is not an int (Python or NumPy) or ``gated`` not a bool.
    ValueError
        If a size is < 1.
    """
    sizes = _sizes("flops.ffn", n_rows=n_rows, d_model=d_model, d_ff=d_ff)
    return _ffn(*sizes, _checks.boolean("flops.ffn", "gated", gated))


@contract(example=lambda rng: {"B": 2, "T": 4, "d_model": 6, "n_heads": 3, "d_ff": 24,
                               "n_kv_heads": 3, "gated": False},
          lenient={"n_kv_heads": ("none",)})
def block(B: int, T: int, d_model: int, n_heads: int, d_ff: int,
          n_kv_heads: int | None = None, gated: bool = False) -> Cost:
    r"""FLOPs of one transformer block: multi-head attention plus the feed-forward network.

    $$ F = \mathrm{mha}(B, T, C, H, H_{kv}) + \mathrm{ffn}(BT, C, F_{ff}) $$

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
        Hidden width of the feed-forward network, > 0.
    n_kv_heads : int, default None
        Key/value heads, > 0, dividing ``n_heads`` (default: ``n_heads``).
    gated : bool, default False
        A gated feed-forward with three matrices (SwiGLU).

    Returns
    -------
    cost : Cost
        Forward and backward FLOPs.

    Raises
    ------
    TypeError
        If a size is not an int (Python or NumPy) or ``gated`` not a bool.
    ValueError
        If a size is < 1, ``n_heads`` does not divide ``d_model`` or ``n_kv_heads`` does not
        divide ``n_heads``.
    """
    sizes = _sizes("flops.block", B=B, T=T, d_model=d_model, n_heads=n_heads, d_ff=d_ff)
    n_kv = _kv_heads("flops.block", sizes[2], sizes[3], n_kv_heads)
    return _block(*sizes, n_kv, _checks.boolean("flops.block", "gated", gated))


@contract(example=lambda rng: {"config": GPTConfig(vocab_size=11, context_len=8, d_model=8,
                                                   n_heads=2, n_layers=2),
                               "B": 3, "T": 8})
def gpt(config: GPTConfig, B: int, T: int) -> Cost:
    r"""FLOPs of the whole GPT for a batch of shape (B, T): the blocks and the LM head.

    $$ F = L \cdot \mathrm{block}(B, T, C, H, F_{ff}) + \mathrm{linear}(BT, C, V) $$

    The configuration's grouped-query attention and SwiGLU feed-forward are counted too.

    Parameters
    ----------
    config : GPTConfig
        The model's sizes.
    B : int
        Batch size, > 0.
    T : int
        Sequence length, 1 to ``config.context_len``.

    Returns
    -------
    cost : Cost
        Forward and backward FLOPs of one training step's passes.

    Raises
    ------
    TypeError
        If ``config`` is not a ``GPTConfig`` or a size is not an int (Python or NumPy).
    ValueError
        If a size is < 1 or ``T`` exceeds the context length.
    """
    B, T = _sizes("flops.gpt", B=B, T=T)
    _check_config("flops.gpt", config, T)
    C, V, L = int(config.d_model), int(config.vocab_size), int(config.n_layers)
    return _gpt_block(config, B, T) * L + _linear(B * T, C, V)


def _gpt_block(config: GPTConfig, B: int, T: int) -> Cost:
    """One block of the model ``config`` describes (unchecked)."""
    return _block(B, T, int(config.d_model), int(config.n_heads), int(config.hidden),
                  int(config.kv_heads), config.activation == "swiglu")


def _check_heads(where: str, d_model: int, n_heads: int) -> None:
    if d_model % n_heads:
        raise ValueError(f"{where}: argument 'n_heads' must divide d_model = {d_model}, "
                         f"got n_heads = {n_heads}")


def _kv_heads(where: str, d_model: int, n_heads: int, n_kv_heads) -> int:
    """Check the heads; return the key/value heads (``n_heads`` when None)."""
    _check_heads(where, d_model, n_heads)
    if n_kv_heads is None:
        return n_heads
    n_kv = _checks.integer(where, "n_kv_heads", n_kv_heads, low=1)
    if n_heads % n_kv:
        raise ValueError(f"{where}: argument 'n_kv_heads' must divide n_heads = {n_heads}, "
                         f"got n_kv_heads = {n_kv}")
    return n_kv


def _check_config(where: str, config, T: int) -> None:
    """``config`` a GPTConfig whose context holds ``T`` positions (shared with memory)."""
    if not isinstance(config, GPTConfig):
        raise TypeError(f"{where}: argument 'config' must be a GPTConfig, "
                        f"got {type(config).__name__} {config!r}")
    if T > config.context_len:
        raise ValueError(f"{where}: argument 'T' must be at most the context length "
                         f"{config.context_len}, got {T}")


# Unchecked cores: sizes already checked (positive Python ints).

def _linear(n_rows: int, d_in: int, d_out: int) -> Cost:
    f = 2 * n_rows * d_in * d_out
    return Cost(f, 2 * f)


def _attention(B: int, H: int, T: int, S: int, D: int) -> Cost:
    f = 2 * (2 * B * H * T * S * D)
    return Cost(f, 2 * f)


def _mha(B: int, T: int, d_model: int, n_heads: int, n_kv_heads: int) -> Cost:
    N, D = B * T, d_model // n_heads
    return (_linear(N, d_model, (n_heads + 2 * n_kv_heads) * D)
            + _attention(B, n_heads, T, T, D)
            + _linear(N, n_heads * D, d_model))


def _ffn(n_rows: int, d_model: int, d_ff: int, gated: bool) -> Cost:
    cost = _linear(n_rows, d_model, d_ff) + _linear(n_rows, d_ff, d_model)
    return cost + _linear(n_rows, d_model, d_ff) if gated else cost


def _block(B: int, T: int, d_model: int, n_heads: int, d_ff: int, n_kv_heads: int,
           gated: bool) -> Cost:
    return _mha(B, T, d_model, n_heads, n_kv_heads) + _ffn(B * T, d_model, d_ff, gated)
