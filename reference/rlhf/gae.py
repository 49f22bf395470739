r"""Generalized advantage estimation (GAE) and advantage whitening.

.. math::
    \delta_t = r_t + \gamma V_{t+1} (1 - d_t) - V_t, \qquad
    A_t = \delta_t + \gamma\lambda (1 - d_t) A_{t+1}, \qquad R_t = A_t + V_t

``d_t`` is True when the episode ends after step ``t``: nothing from later steps leaks into it.
``lambda = 0`` gives the one-step TD error; ``lambda = 1`` gives the discounted return minus
the value.  ``next_value`` (B,) bootstraps the step after the last one (0 if it is done).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def _unit(where: str, name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: argument '{name}' must be in [0, 1], got {value!r}")


def advantages(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, gamma: float,
               lam: float, next_value: np.ndarray | None = None):
    """``rewards``, ``values``, ``dones`` (B, T) -> ``(advantages, returns)``, each (B, T)."""
    where = "gae.advantages"
    _checks.float_array(where, "rewards", rewards, ndim=2)
    _checks.float_array(where, "values", values, ndim=2)
    _checks.same_shape(where, "values", values, rewards.shape)
    _checks.same_shape(where, "dones", np.asarray(dones), rewards.shape)
    _unit(where, "gamma", gamma)
    _unit(where, "lam", lam)
    B, T = rewards.shape
    nxt = np.zeros(B) if next_value is None else np.asarray(next_value, dtype=float)
    adv = np.zeros((B, T))
    running = np.zeros(B)
    for t in reversed(range(T)):
        keep = 1.0 - np.asarray(dones[:, t], dtype=float)
        v_next = values[:, t + 1] if t + 1 < T else nxt
        delta = rewards[:, t] + gamma * v_next * keep - values[:, t]
        running = delta + gamma * lam * keep * running
        adv[:, t] = running
    return adv, adv + values


def whiten(x: np.ndarray, mask: np.ndarray | None = None, eps: float = 1e-8) -> np.ndarray:
    """Shift and scale ``x`` to mean 0 and variance 1 over the entries where ``mask`` is True."""
    sel = x if mask is None else x[mask]
    if sel.size < 2:
        raise ValueError(f"gae.whiten: argument 'x' needs at least 2 selected entries, got "
                         f"{sel.size}")
    return (x - sel.mean()) / np.sqrt(sel.var() + eps)
