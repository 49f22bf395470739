r"""Rectified linear unit.

.. math::  \mathrm{relu}(x) = \max(0, x), \qquad \mathrm{relu}'(x) = [x > 0]

Shapes: any -> same.  At exactly ``x = 0`` the derivative is taken as 0 (PyTorch does the same).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def forward(x: np.ndarray):
    """``x`` (...) -> ``max(0, x)`` (...), cache."""
    return _forward(_checks.float_array("relu.forward", "x", x))


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (...) -> ``{"x": dout * [x > 0]}``."""
    return _backward(_checks.dout_like("relu.backward", dout, cache.shape), cache)


def _forward(x: np.ndarray):                 # unchecked: for callers that checked ``x``
    return np.maximum(x, 0).astype(x.dtype, copy=False), x


def _backward(dout: np.ndarray, cache) -> dict:
    return {"x": dout * (cache > 0)}
