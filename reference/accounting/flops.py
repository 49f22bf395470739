r"""FLOP counts of the forward and backward passes, computed from shapes.

Convention (the one scaling-law papers use): only matrix products are counted, 2 FLOPs per
multiply-add, so ``(m, k) @ (k, n)`` costs ``2 m k n``.  Element-wise work (activations,
softmax, layer norm, the loss) is ``O(B T C)`` against the products' ``O(B T C^2)`` and is left
out; embedding lookups cost nothing.

Backward: a linear layer ``y = x W`` needs ``dx = g W^T`` and ``dW = x^T g``, two products the
size of the forward one, so its backward is exactly twice its forward.  Attention's backward
needs four products (``dV``, ``dA``, ``dQ``, ``dK``) against the forward's two: twice again.
Every input gradient is counted, the first layer's included, because the embeddings need it.

Attention scores cost ``2 B H T S D`` each way: with ``S = T`` that grows with the square of
the sequence length, while every other term grows linearly in it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cost:
    """FLOPs of one forward and one backward pass."""
    forward: int
    backward: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.forward + other.forward, self.backward + other.backward)

    def __mul__(self, n: int) -> Cost:
        return Cost(self.forward * n, self.backward * n)

    @property
    def total(self) -> int:
        return self.forward + self.backward


def linear(n_rows: int, d_in: int, d_out: int) -> Cost:
    """``(N, C_in) @ (C_in, C_out)``; backward: ``dx`` and ``dW``."""
    f = 2 * n_rows * d_in * d_out
    return Cost(f, 2 * f)


def attention(B: int, H: int, T: int, S: int, D: int) -> Cost:
    """``Q K^T`` and ``A V``; backward: ``dV``, ``dA``, ``dQ``, ``dK``."""
    f = 2 * (2 * B * H * T * S * D)
    return Cost(f, 2 * f)


def mha(B: int, T: int, d_model: int, n_heads: int) -> Cost:
    N = B * T
    return (linear(N, d_model, 3 * d_model)
            + attention(B, n_heads, T, T, d_model // n_heads)
            + linear(N, d_model, d_model))


def ffn(n_rows: int, d_model: int, d_ff: int) -> Cost:
    return linear(n_rows, d_model, d_ff) + linear(n_rows, d_ff, d_model)


def block(B: int, T: int, d_model: int, n_heads: int, d_ff: int) -> Cost:
    return mha(B, T, d_model, n_heads) + ffn(B * T, d_model, d_ff)


def gpt(config, B: int, T: int) -> Cost:
    """The whole model for a batch (B, T): blocks and the LM head."""
    per_block = block(B, T, config.d_model, config.n_heads, config.hidden)
    return per_block * config.n_layers + linear(B * T, config.d_model, config.vocab_size)
