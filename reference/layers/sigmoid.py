r"""Logistic sigmoid.

.. math::  \sigma(x) = \frac{1}{1 + e^{-x}}, \qquad \sigma'(x) = \sigma(x)\,(1 - \sigma(x))

Shapes: any -> same.  Written in two branches so that ``exp`` never overflows:
``1 / (1 + e^{-x})`` for ``x >= 0`` and ``e^{x} / (1 + e^{x})`` for ``x < 0``.
At the edges: ``sigma(0) = 1/2`` with slope ``1/4``; far out (``|x| > 745`` in float64) the
result is exactly 1 or 0, with slope 0.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def forward(x: np.ndarray):
    """``x`` (...) -> ``sigma(x)`` (...), cache."""
    _checks.float_array("sigmoid.forward", "x", x)
    e = np.exp(-np.abs(x))                       # in (0, 1], never overflows
    out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)
    return out, out


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (...) -> ``{"x": dout * s (1 - s)}``."""
    s = cache
    dout = _checks.dout_like("sigmoid.backward", dout, s.shape)
    return {"x": dout * s * (1.0 - s)}
