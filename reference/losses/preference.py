r"""Preferences: from rankings to pairs, and the pairwise (Bradley-Terry) reward-model loss.

A ranking of K responses, best first, implies K(K-1)/2 preferences: every response is
preferred to every response ranked below it.  The Bradley-Terry model says response ``a`` is
preferred to ``b`` with probability ``sigma(r_a - r_b)``; its negative log-likelihood is

.. math::
    L = \frac1N \sum_n -\log\sigma(r^{c}_n - r^{r}_n) = \frac1N \sum_n
        \operatorname{softplus}(-(r^{c}_n - r^{r}_n)), \qquad
    \frac{\partial L}{\partial r^{c}_n} = -\frac{\sigma(-(r^{c}_n - r^{r}_n))}{N}
        = -\frac{\partial L}{\partial r^{r}_n}

It depends on reward differences only: adding a constant to every reward changes nothing,
and a tie costs ``log 2``.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.layers import sigmoid


def pairs_from_ranking(ranking) -> list:
    """``[best, ..., worst]`` -> ``[(chosen, rejected), ...]``, all K(K-1)/2 of them."""
    ranking = list(ranking)
    if len(set(ranking)) != len(ranking):
        raise ValueError(f"preference.pairs_from_ranking: argument 'ranking' must not repeat "
                         f"an item, got {ranking}")
    return [(ranking[i], ranking[j]) for i in range(len(ranking))
            for j in range(i + 1, len(ranking))]


def _softplus(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def forward(r_chosen: np.ndarray, r_rejected: np.ndarray):
    """``r_chosen``, ``r_rejected`` (N,) -> mean ``-log sigma(r_chosen - r_rejected)``."""
    _checks.float_array("preference.forward", "r_chosen", r_chosen, ndim=1)
    _checks.float_array("preference.forward", "r_rejected", r_rejected, ndim=1)
    _checks.same_shape("preference.forward", "r_rejected", r_rejected, r_chosen.shape)
    margin = r_chosen - r_rejected
    return float(np.mean(_softplus(-margin))), margin


def backward(dloss, cache) -> dict:
    """scalar ``dloss`` -> ``{"r_chosen": (N,), "r_rejected": (N,)}``."""
    margin = cache
    dloss = _checks.dout_like("preference.backward", dloss, (), name="dloss")
    d_chosen = -float(dloss) * sigmoid.forward(-margin)[0] / margin.size
    return {"r_chosen": d_chosen, "r_rejected": -d_chosen}
