r"""Stochastic gradient descent, with optional momentum (heavy ball or Nesterov) and L2
weight decay, step for step as ``torch.optim.SGD``.

.. math::
    g_t = \nabla L(\theta_{t-1}) + \lambda\,\theta_{t-1}, \qquad
    b_t = \mu\, b_{t-1} + (1 - \tau)\, g_t \;(b_1 = g_1), \qquad
    \theta_t = \theta_{t-1} - \eta\,\begin{cases} g_t & \mu = 0 \\ b_t & \text{momentum}
        \\ g_t + \mu\, b_t & \text{Nesterov} \end{cases}

``params`` and ``grads`` are trees of arrays of the same structure.  The state is
``{"step": int, "buffer": tree or None}``.  ``step`` returns new trees; nothing is mutated.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.params import check_finite, map_trees


def init(params) -> dict:
    return {"step": 0, "buffer": None}


def check_hyper(where: str, lr: float, weight_decay: float = 0.0) -> None:
    _checks.positive(where, "lr", lr)
    if not weight_decay >= 0:
        raise ValueError(f"{where}: argument 'weight_decay' must be >= 0, got {weight_decay!r}")


def step(params, grads, state: dict, lr: float, momentum: float = 0.0,
         dampening: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
    """One update; returns ``(new_params, new_state)``."""
    where = "sgd.step"
    check_hyper(where, lr, weight_decay)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"{where}: argument 'momentum' must be in [0, 1), got {momentum!r}")
    if nesterov and (momentum == 0.0 or dampening != 0.0):
        raise ValueError(f"{where}: argument 'nesterov' needs momentum > 0 and dampening 0, "
                         f"got momentum={momentum!r}, dampening={dampening!r}")
    check_finite(where, "grads", grads)
    g = map_trees(where, lambda p, g: g + weight_decay * p if weight_decay else g, params, grads)
    if momentum == 0.0:
        new = map_trees(where, lambda p, d: p - lr * d, params, g)
        return new, {"step": state["step"] + 1, "buffer": None}
    if state["buffer"] is None:
        buffer = map_trees(where, np.copy, g)
    else:
        buffer = map_trees(where, lambda b, d: momentum * b + (1.0 - dampening) * d,
                           state["buffer"], g, names=("buffer", "grads"))
    direction = map_trees(where, lambda d, b: d + momentum * b, g, buffer) if nesterov \
        else buffer
    new = map_trees(where, lambda p, d: p - lr * d, params, direction)
    return new, {"step": state["step"] + 1, "buffer": buffer}
