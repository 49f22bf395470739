r"""Token embedding: a lookup table that turns token ids into vectors.

.. math::  \mathrm{out}[b, t, :] = W[\mathrm{ids}[b, t], :]

Shapes: ``ids`` (B, T) integers (any shape works), ``W`` (V, C) -> ``out`` (B, T, C).

The lookup is the same as multiplying a one-hot matrix by ``W``, so the gradient of row ``v``
of ``W`` is the sum of the upstream gradients at every position where ``ids == v``.  A token
that appears twice gets both contributions: the backward *accumulates*, it never assigns.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def init(vocab_size: int, d_model: int, rng: np.random.Generator, std: float = 0.02) -> dict:
    """Parameters ``{"W": (V, C)}`` drawn from N(0, std^2)."""
    _checks.positive("embedding.init", "vocab_size", vocab_size, integer=True)
    _checks.positive("embedding.init", "d_model", d_model, integer=True)
    return {"W": rng.normal(0.0, std, size=(vocab_size, d_model))}


def forward(ids: np.ndarray, params: dict):
    """``ids`` (B, T) int, ``params["W"]`` (V, C) -> ``out`` (B, T, C), cache."""
    _checks.params("embedding.forward", params, {"W": (None, None)})
    W = params["W"]
    _checks.int_array("embedding.forward", "ids", ids, 0, W.shape[0])
    return W[ids], (ids, W.shape, W.dtype)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (B, T, C) -> ``{"W": dW (V, C)}``; repeated ids add up."""
    ids, w_shape, w_dtype = cache
    dout = _checks.dout_like("embedding.backward", dout, ids.shape + (w_shape[1],))
    dW = np.zeros(w_shape, dtype=np.result_type(w_dtype, dout.dtype))
    # In the forward this was out = W[ids]; every position that read row v sends its
    # gradient back to row v, so the gradients must be summed (np.add.at), not assigned.
    # The sum runs over single elements (index v * C + c of the flattened table), which
    # NumPy does several times faster than whole rows; the result is the same.
    C = w_shape[1]
    elements = (ids.reshape(-1, 1) * C + np.arange(C)).reshape(-1)
    np.add.at(dW.reshape(-1), elements, dout.reshape(-1))
    return {"W": dW}
