r"""Rectified linear unit.

.. math::  \mathrm{relu}(x) = \max(0, x), \qquad \mathrm{relu}'(x) = [x > 0]

Shapes: any -> same.  At exactly ``x = 0`` the derivative is taken as 0 (PyTorch does the same).
"""

from __future__ import annotations

import numpy as np

from reference import _checks


def forward(x: np.ndarray):
    """``x`` (...) -> ``max(0, x)`` (...), cache."""
    _checks.float_array("relu.forward", "x", x)
    return np.maximum(x, 0).astype(x.dtype, copy=False), x


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (...) -> ``{"x": dout * [x > 0]}``."""
    x = cache
    dout = _checks.dout_like("relu.backward", dout, x.shape)
    return {"x": dout * (x > 0)}
