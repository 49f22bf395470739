r"""Learned positional embedding: one trainable vector per position (GPT-2's `wpe`).

$$ \mathrm{out}[t, :] = P[t, :], \qquad t = 0, \dots, T-1 $$

$$ \frac{\partial L}{\partial P_t} = g_t \ (t < T), \qquad 0 \ (t \ge T) $$

Shapes: `P` (T_max, C) -> `out` (T, C) for a sequence of length `T <= T_max`.
The output is added to the token embeddings of every sequence in the batch, so a caller that
broadcasts it over a batch passes the batch-summed gradient to `backward`.
It is a token embedding looked up with the ids `0, 1, ..., T-1`.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import embedding


@contract(example=lambda rng: {"max_len": 6, "d_model": 3, "rng": rng, "std": 0.02})
def init(max_len: int, d_model: int, rng: np.random.Generator, std: float = 0.02) -> dict:
    r"""A fresh table of position vectors, entries drawn from N(0, std^2).

    Parameters
    ----------
    max_len, d_model : int
        Number of learned positions `T_max` and width `C` (> 0).
    rng : numpy.random.Generator
        Source of the random entries.
    std : float, default 0.02
        Standard deviation (>= 0, finite).

    Returns
    -------
    params : dict
        `{"W": ndarray (T_max, C)}`, float64.

    Raises
    ------
    TypeError
        If a size is not an int, `rng` not a Generator, `std` not a number.
    ValueError
        If a size is <= 0 or `std` is negative, NaN or inf.
    """
    return embedding._init("positional.init", max_len, d_model, rng, std, "max_len")


def _example(rng) -> dict:
    return {"seq_len": 3, "params": {"W": rng.standard_normal((5, 4))}}


@contract(example=_example)
def forward(seq_len: int, params: dict):
    r"""The first `seq_len` rows of the table.

    $$ \mathrm{out}[t, :] = P[t, :], \quad t = 0, \dots, T-1 $$

    Parameters
    ----------
    seq_len : int
        Sequence length `T`, 1 <= T <= T_max.
    params : dict
        `{"W": ndarray (T_max, C)}`, floating; the output has its dtype.

    Returns
    -------
    out : ndarray, shape (T, C)
        A copy of the rows (editing it does not touch `W`).
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The ids `0 .. T-1` and the table's shape and dtype: nothing the caller holds.

    Raises
    ------
    TypeError
        If `seq_len` is not an int, `params` not a dict, `W` not a floating array.
    ValueError
        If `seq_len` is < 1 or > T_max, or `params` is not `{"W": 2-D finite array}`.
    """
    _checks.params("positional.forward", params, {"W": (None, None)})
    seq_len = _checks.integer("positional.forward", "seq_len", seq_len, low=1)
    max_len = params["W"].shape[0]
    if seq_len > max_len:
        raise ValueError(f"positional.forward: argument 'seq_len' must be <= {max_len} "
                         f"(the number of learned positions), got {seq_len}")
    return embedding._forward(np.arange(seq_len), params["W"])


@contract(example=lambda rng: {"dout": rng.standard_normal((3, 4)),
                               "cache": forward(**_example(rng))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient of the table: row `t` gets `dout[t]` for `t < T`, the rest zero.

    Parameters
    ----------
    dout : ndarray, shape (T, C), floating
        Upstream gradient (summed over the batch by the caller).
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"W": ndarray (T_max, C)}`.

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf.
    """
    cache = _checks.unguard("positional.backward", cache, 3)
    ids, w_shape, _ = cache
    dout = _checks.dout_like("positional.backward", dout, ids.shape + (w_shape[1],))
    return embedding._backward(dout, cache)
