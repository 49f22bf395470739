r"""Sinusoidal positional encoding (the fixed one of "Attention Is All You Need").

.. math::
    PE[p, 2i] = \sin\!\left(p / \mathrm{base}^{2i/C}\right), \qquad
    PE[p, 2i+1] = \cos\!\left(p / \mathrm{base}^{2i/C}\right)

``forward`` adds the table to its input: ``x`` (B, T, C) -> ``x + PE[:T]`` (B, T, C).
The table has no parameters, so the only gradient is the one that flows through the sum:
``dx = dout``.  Because ``sin`` and ``cos`` of a sum expand into products, ``PE[p + k]`` is a
fixed rotation of ``PE[p]``; the dot product ``PE[p] . PE[p + k]`` depends on ``k`` only.
An odd ``C`` drops the last cosine column.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def table(seq_len: int, d_model: int, base: float = 10000.0, dtype=np.float64) -> np.ndarray:
    """The encoding ``PE`` of shape (T, C)."""
    _checks.positive("sinusoidal.table", "seq_len", seq_len, integer=True)
    _checks.positive("sinusoidal.table", "d_model", d_model, integer=True)
    _checks.positive("sinusoidal.table", "base", base)
    positions = np.arange(seq_len, dtype=np.float64)[:, None]               # (T, 1)
    even = np.arange(0, d_model, 2, dtype=np.float64)                       # 2i
    angles = positions / base ** (even / d_model)                           # (T, ceil(C/2))
    pe = np.empty((seq_len, d_model), dtype=np.float64)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return pe.astype(dtype, copy=False)


def forward(x: np.ndarray, base: float = 10000.0):
    """``x`` (B, T, C) -> ``x + PE[:T]`` (B, T, C), cache."""
    _checks.float_array("sinusoidal.forward", "x", x, ndim_min=2)
    seq_len, d_model = x.shape[-2:]
    return x + table(seq_len, d_model, base, x.dtype), x.shape


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (B, T, C) -> ``{"x": dout}``: the table is a constant."""
    dout = _checks.dout_like("sinusoidal.backward", dout, cache)
    return {"x": dout.copy()}
