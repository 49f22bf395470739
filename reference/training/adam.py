r"""Adam, with optional L2 weight decay added to the gradient (``torch.optim.Adam``).

.. math::
    g_t = \nabla L + \lambda\,\theta, \quad
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2

.. math::
    \theta_t = \theta_{t-1}
        - \eta\,\frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}

The division by ``1 - beta^t`` (bias correction) undoes the pull towards 0 of moments that
start at 0.  L2 decay here goes through ``m`` and ``v``, so a parameter with large gradients is
decayed less; :mod:`reference.adamw` decouples it.  State:
``{"step": t, "m": tree, "v": tree}``; ``step`` returns new trees and mutates nothing.
"""

from __future__ import annotations

import math

import numpy as np

from llmref.params import check_finite, map_trees
from llmref.training import sgd


def init(params) -> dict:
    zeros = map_trees("adam.init", np.zeros_like, params)
    return {"step": 0, "m": zeros, "v": map_trees("adam.init", np.zeros_like, params)}


def check_betas(where: str, betas, eps: float) -> None:
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"{where}: argument 'betas[{i}]' must be in [0, 1), got {beta!r}")
    if not eps > 0:
        raise ValueError(f"{where}: argument 'eps' must be > 0, got {eps!r}")


def moments_update(where, params, grads, state, lr, betas, eps):
    """The shared Adam update on already-decayed gradients: ``(new_params, new_state)``."""
    b1, b2 = betas
    t = state["step"] + 1
    m = map_trees(where, lambda m, g: b1 * m + (1.0 - b1) * g, state["m"], grads,
                  names=("m", "grads"))
    v = map_trees(where, lambda v, g: b2 * v + (1.0 - b2) * g * g, state["v"], grads,
                  names=("v", "grads"))
    step_size = lr / (1.0 - b1**t)
    root_correction = math.sqrt(1.0 - b2**t)
    new = map_trees(where, lambda p, m, v: p - step_size * m / (np.sqrt(v) / root_correction
                                                                + eps), params, m, v)
    return new, {"step": t, "m": m, "v": v}


def step(params, grads, state: dict, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.0):
    """One Adam update; returns ``(new_params, new_state)``."""
    where = "adam.step"
    sgd.check_hyper(where, lr, weight_decay)
    check_betas(where, betas, eps)
    check_finite(where, "grads", grads)
    g = map_trees(where, lambda p, g: g + weight_decay * p if weight_decay else g, params, grads)
    return moments_update(where, params, g, state, lr, betas, eps)
