r"""Mean squared error.

.. math::
    L = \frac1N \sum_i (p_i - y_i)^2, \qquad
    \frac{\partial L}{\partial p} = \frac{2}{N}(p - y), \qquad
    \frac{\partial L}{\partial y} = -\frac{2}{N}(p - y)

Shapes: ``pred`` and ``target`` of the same shape (...) -> scalar loss; ``N`` is their size.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def forward(pred: np.ndarray, target: np.ndarray):
    """``pred`` (...), ``target`` (...) -> scalar ``loss``, cache."""
    _checks.float_array("mse.forward", "pred", pred)
    _checks.float_array("mse.forward", "target", target)
    _checks.same_shape("mse.forward", "target", target, pred.shape)
    diff = pred - target
    return np.mean(diff * diff), diff


def backward(dloss, cache) -> dict:
    """scalar ``dloss`` -> ``{"pred": (...), "target": (...)}``."""
    diff = cache
    dloss = _checks.dout_like("mse.backward", dloss, (), name="dloss")
    dpred = (2.0 * float(dloss) / diff.size) * diff
    return {"pred": dpred, "target": -dpred}
