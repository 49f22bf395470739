r"""Hyperbolic tangent.

.. math::  \tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}}, \qquad \tanh'(x) = 1 - \tanh^2(x)

Shapes: any -> same.  At ``x = 0`` (either sign): ``tanh(0) = 0`` with slope 1.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def forward(x: np.ndarray):
    """``x`` (...) -> ``tanh(x)`` (...), cache."""
    _checks.float_array("tanh.forward", "x", x)
    out = np.tanh(x)
    return out, out


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (...) -> ``{"x": dout * (1 - tanh(x)^2)}``."""
    y = cache
    dout = _checks.dout_like("tanh.backward", dout, y.shape)
    return {"x": dout * (1.0 - y * y)}
