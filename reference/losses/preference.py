r"""Preferences: from rankings to pairs, and the pairwise (Bradley-Terry) reward-model loss.

A ranking of K responses, best first, implies K(K-1)/2 preferences: every response is
preferred to every response ranked below it.  The Bradley-Terry model says response `a` is
preferred to `b` with probability `sigma(r_a - r_b)`; its negative log-likelihood is

$$
L = \frac1N \sum_n -\log\sigma(r^{c}_n - r^{r}_n) = \frac1N \sum_n
    \operatorname{softplus}(-(r^{c}_n - r^{r}_n))
$$

$$
\frac{\partial L}{\partial r^{c}_n} = -\frac{\sigma(-(r^{c}_n - r^{r}_n))}{N}
    = -\frac{\partial L}{\partial r^{r}_n}
$$

It depends on reward differences only: adding a constant to every reward changes nothing,
and a tie costs `log 2`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import sigmoid


@contract(example=lambda rng: {"ranking": ["b", "a", "c"]}, lenient={"ranking": ("empty",)})
def pairs_from_ranking(ranking) -> list:
    r"""Every (chosen, rejected) pair implied by a ranking, best first.

    Parameters
    ----------
    ranking : list, tuple, range or 1-D ndarray
        K distinct hashable items, best first (K = 0 or 1 gives no pair). Any other
        ordered iterable works too; a set, dict or str does not (no order, or not items).

    Returns
    -------
    pairs : list of tuple
        `[(ranking[i], ranking[j]) for i < j]`, all K(K-1)/2 of them, in that order.

    Raises
    ------
    TypeError
        If `ranking` is not an ordered sequence of items, or holds an unhashable item.
    ValueError
        If an item repeats, or an array ranking is not 1-D.
    """
    where = "preference.pairs_from_ranking"
    if isinstance(ranking, np.ndarray):
        if ranking.ndim != 1:
            raise ValueError(f"{where}: argument 'ranking' must be 1-D, "
                             f"got shape {ranking.shape}")
        ranking = ranking.tolist()
    if isinstance(ranking, (str, bytes, set, frozenset, dict)) or not isinstance(ranking,
                                                                                 Iterable):
        raise TypeError(f"{where}: argument 'ranking' must be an ordered sequence (a list, "
                        f"tuple, range or 1-D array), got {_checks._describe(ranking)}")
    ranking = list(ranking)
    try:
        distinct = len(set(ranking))
    except TypeError:
        raise TypeError(f"{where}: argument 'ranking' must hold hashable items (ids, "
                        f"strings), got {ranking!r}") from None
    if distinct != len(ranking):
        raise ValueError(f"{where}: argument 'ranking' must not repeat an item, got {ranking}")
    return [(ranking[i], ranking[j]) for i in range(len(ranking))
            for j in range(i + 1, len(ranking))]


def _softplus(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _example(rng) -> dict:
    return {"r_chosen": rng.standard_normal(4), "r_rejected": rng.standard_normal(4)}


@contract(example=_example)
def forward(r_chosen: np.ndarray, r_rejected: np.ndarray):
    r"""Mean Bradley-Terry negative log-likelihood of preferring each chosen response.

    $$ L = \frac1N \sum_n \operatorname{softplus}\big(-(r^{c}_n - r^{r}_n)\big) $$

    Parameters
    ----------
    r_chosen : ndarray, shape (N,), floating
        Rewards of the preferred responses.
    r_rejected : ndarray, shape (N,), floating
        Rewards of the other responses, pair by pair.

    Returns
    -------
    loss : float
        The mean; `log 2` when every pair is a tie, near 0 when every chosen reward is much
        larger.
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The margins `r_chosen - r_rejected` (a new array): nothing the caller holds.

    Raises
    ------
    TypeError
        If either argument is not a NumPy floating-point array.
    ValueError
        If either is not 1-D, is empty or not finite, or their lengths differ.
    """
    _checks.float_array("preference.forward", "r_chosen", r_chosen, ndim=1)
    _checks.float_array("preference.forward", "r_rejected", r_rejected, ndim=1)
    if r_rejected.shape != r_chosen.shape:
        raise ValueError(f"preference.forward: argument 'r_rejected' must have shape "
                         f"{r_chosen.shape} (the shape of 'r_chosen'), "
                         f"got shape {r_rejected.shape}")
    return _forward(r_chosen, r_rejected)


def _forward(r_chosen, r_rejected):             # unchecked: DPO calls it with its own checks
    margin = r_chosen - r_rejected
    return float(np.mean(_softplus(-margin))), margin


@contract(example=lambda rng: {"dloss": 1.0, "cache": forward(**_example(rng))[1]},
          lenient={"dloss": ("negative",)})
def backward(dloss, cache) -> dict:
    r"""Gradients of the pairwise loss.

    $$ \frac{\partial L}{\partial r^{c}_n} = -\mathrm{d}L\,\frac{\sigma(-(r^{c}_n - r^{r}_n))}{N}
       = -\frac{\partial L}{\partial r^{r}_n} $$

    Parameters
    ----------
    dloss : float or 0-d ndarray
        Upstream gradient of the scalar loss.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"r_chosen": ndarray (N,), "r_rejected": ndarray (N,)}`; they sum to zero pair by
        pair.

    Raises
    ------
    TypeError
        If `dloss` is not a number or a floating-point array.
    ValueError
        If `dloss` is not a scalar or is NaN or inf.
    """
    margin = _checks.unguard("preference.backward", cache)
    return _backward(_checks.dout_like("preference.backward", dloss, (), name="dloss"), margin)


def _backward(dloss, margin) -> dict:            # unchecked: DPO calls it with its own checks
    d_chosen = -float(dloss) * sigmoid._forward(-margin)[0] / margin.size
    return {"r_chosen": d_chosen, "r_rejected": -d_chosen}
