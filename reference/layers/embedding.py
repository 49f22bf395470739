r"""Token embedding: a lookup table that turns token ids into vectors.

$$ \mathrm{out}[b, t, :] = W[\mathrm{ids}[b, t], :] $$

$$ \frac{\partial L}{\partial W_v} = \sum_{(b, t):\ \mathrm{ids}[b, t] = v} g[b, t, :] $$

Shapes: `ids` (B, T) integers (any shape works), `W` (V, C) -> `out` (B, T, C).

The lookup is the same as multiplying a one-hot matrix by `W`, so the gradient of row `v`
of `W` is the sum of the upstream gradients at every position where `ids == v`.  A token
that appears twice gets both contributions: the backward *accumulates*, it never assigns.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"vocab_size": 5, "d_model": 3, "rng": rng, "std": 0.02})
def init(vocab_size: int, d_model: int, rng: np.random.Generator, std: float = 0.02) -> dict:
    r"""A fresh embedding table, entries drawn from N(0, std^2) (GPT-2 uses std = 0.02).

    Parameters
    ----------
    vocab_size, d_model : int
        Rows `V` (one per token id) and width `C` of the table (> 0).
    rng : numpy.random.Generator
        Source of the random entries.
    std : float, default 0.02
        Standard deviation (>= 0, finite).

    Returns
    -------
    params : dict
        `{"W": ndarray (V, C)}`, float64.

    Raises
    ------
    TypeError
        If a size is not an int, `rng` not a Generator, `std` not a number.
    ValueError
        If a size is <= 0 or `std` is negative, NaN or inf.
    """
    return _init("embedding.init", vocab_size, d_model, rng, std, "vocab_size")


def _init(where, rows, d_model, rng, std, rows_name) -> dict:
    rows = _checks.integer(where, rows_name, rows, low=1)
    d_model = _checks.integer(where, "d_model", d_model, low=1)
    _checks.generator(where, "rng", rng)
    std = _checks.std(where, "std", std)
    return {"W": rng.normal(0.0, std, size=(rows, d_model))}


def _example(rng) -> dict:
    return {"ids": rng.integers(0, 5, size=(2, 3)), "params": {"W": rng.standard_normal((5, 4))}}


@contract(example=_example)
def forward(ids: np.ndarray, params: dict):
    r"""Look up one row of the table per token id.

    $$ \mathrm{out}[b, t, :] = W[\mathrm{ids}[b, t], :] $$

    Parameters
    ----------
    ids : ndarray, shape (B, T) (any shape), integer
        Token ids, each in [0, V).
    params : dict
        `{"W": ndarray (V, C)}`, floating. The output has W's dtype (float32 table,
        float32 out).

    Returns
    -------
    out : ndarray, shape ids.shape + (C,)
        Copies of the rows (editing `out` does not touch `W`).
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The caller's `ids` by reference, and the table's shape and dtype: do not change `ids`
    in place before the backward (`LLMREF_DEBUG_CACHE=1` verifies it).

    Raises
    ------
    TypeError
        If `ids` is not an integer array, `params` not a dict, `W` not a floating array.
    ValueError
        If `ids` is empty or has an id outside [0, V), or `params` lacks `"W"`, has another
        key, or `W` is not 2-D, empty or not finite.
    """
    _checks.params("embedding.forward", params, {"W": (None, None)})
    W = params["W"]
    _checks.int_array("embedding.forward", "ids", ids, 0, W.shape[0])
    out, cache = _forward(ids, W)
    return out, _checks.guard("embedding.forward", cache, ids=ids)


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 3, 4)),
                               "cache": forward(**_example(rng))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient of the table: each position's upstream gradient added to its id's row.

    $$ \frac{\partial L}{\partial W_v} = \sum_{(b, t):\ \mathrm{ids}[b, t] = v} g[b, t, :] $$

    Repeated ids add up; rows of ids that never occur get zero.

    Parameters
    ----------
    dout : ndarray, shape ids.shape + (C,), floating
        Upstream gradient `g` = dL/d out.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"W": ndarray (V, C)}` (integer ids get no gradient), in the promoted dtype of
        `W` and `dout`.

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf, or (debug mode) if
        `ids` changed since the forward.
    """
    cache = _checks.unguard("embedding.backward", cache, 3)
    ids, w_shape, _ = cache
    return _backward(_checks.dout_like("embedding.backward", dout, ids.shape + (w_shape[1],)),
                     cache)


# Unchecked arithmetic (the learned positional embedding uses it with ids 0 .. T-1).

def _forward(ids: np.ndarray, W: np.ndarray):
    return W[ids], (ids, W.shape, W.dtype)


def _backward(dout: np.ndarray, cache) -> dict:
    ids, w_shape, w_dtype = cache
    dW = np.zeros(w_shape, dtype=np.result_type(w_dtype, dout.dtype))
    # In the forward this was out = W[ids]; every position that read row v sends its
    # gradient back to row v, so the gradients must be summed (np.add.at), not assigned.
    # The sum runs over single elements (index v * C + c of the flattened table), which
    # NumPy does several times faster than whole rows; the result is the same.
    C = w_shape[1]
    elements = (ids.reshape(-1, 1) * C + np.arange(C)).reshape(-1)
    np.add.at(dW.reshape(-1), elements, dout.reshape(-1))
    return {"W": dW}
