r"""Learned positional embedding: one trainable vector per position (GPT-2's ``wpe``).

.. math::  \mathrm{out}[t, :] = P[t, :], \quad t = 0, \dots, T-1

Shapes: ``P`` (T_max, C) -> ``out`` (T, C) for a sequence of length ``T <= T_max``.
The output is added to the token embeddings of every sequence in the batch, so a caller that
broadcasts it over a batch passes the batch-summed gradient to :func:`backward`.
It is a token embedding looked up with the ids ``0, 1, ..., T-1``.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.layers import embedding


def init(max_len: int, d_model: int, rng: np.random.Generator, std: float = 0.02) -> dict:
    """Parameters ``{"W": (T_max, C)}`` drawn from N(0, std^2)."""
    return embedding.init(max_len, d_model, rng, std)


def forward(seq_len: int, params: dict):
    """``seq_len`` T, ``params["W"]`` (T_max, C) -> ``out`` (T, C), cache."""
    _checks.params("positional.forward", params, {"W": (None, None)})
    _checks.positive("positional.forward", "seq_len", seq_len, integer=True)
    max_len = params["W"].shape[0]
    if seq_len > max_len:
        raise ValueError(f"positional.forward: argument 'seq_len' must be <= {max_len} "
                         f"(the number of learned positions), got {seq_len}")
    return embedding.forward(np.arange(seq_len), params)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (T, C) -> ``{"W": dW (T_max, C)}``; rows past T get zero gradient."""
    positions, w_shape, _ = cache
    _checks.dout_like("positional.backward", dout, positions.shape + (w_shape[1],))
    return embedding.backward(dout, cache)
