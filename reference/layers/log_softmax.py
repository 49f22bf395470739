r"""Log-softmax over the last axis.

.. math::
    y_i = x_i - m - \log \sum_j e^{x_j - m}, \quad m = \max_j x_j
    \qquad\qquad
    \frac{\partial L}{\partial x_i} = g_i - s_i \sum_j g_j, \quad s = e^{y}

Shapes: ``x`` (..., V) -> ``y`` (..., V).  Computing ``log(softmax(x))`` in two steps loses
everything once a probability underflows to 0 (``log 0 = -inf``); this form does not.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def forward(x: np.ndarray):
    """``x`` (..., V) -> ``y`` (..., V), cache."""
    _checks.float_array("log_softmax.forward", "x", x, ndim_min=1)
    shifted = x - x.max(axis=-1, keepdims=True)
    y = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return y, y


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (..., V) -> ``{"x": dout - exp(y) * sum(dout)}``."""
    y = cache
    dout = _checks.dout_like("log_softmax.backward", dout, y.shape)
    return {"x": dout - np.exp(y) * dout.sum(axis=-1, keepdims=True)}
