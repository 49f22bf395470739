r"""Log-softmax over the last axis: the logarithm of softmax, computed without taking a log of
a probability.

$$ y_i = x_i - m - \log \sum_j e^{x_j - m}, \qquad m = \max_j x_j $$

$$ \frac{\partial L}{\partial x_i} = g_i - s_i \sum_j g_j, \qquad s = e^{y} = \mathrm{softmax}(x) $$

Shapes: `x` (..., V) -> `y` (..., V).  Computing `log(softmax(x))` in two steps loses
everything once a probability underflows to 0 (`log 0 = -inf`); this form does not.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"x": rng.standard_normal((2, 5))},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray):
    r"""Log-probabilities over the last axis.

    $$ y_i = x_i - m - \log \sum_j e^{x_j - m}, \quad m = \max_j x_j $$

    Parameters
    ----------
    x : ndarray, shape (..., V), floating
        Logits, any number of leading axes. The computation runs in x's dtype (float32 in,
        float32 out).

    Returns
    -------
    y : ndarray, shape (..., V)
        Log-probabilities: every entry <= 0 and `exp(y)` sums to 1 along the last axis.
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The probabilities `s = exp(y)`, computed in the forward from the same exponentials (a
    new array, not the returned `y`: editing `y` in place does not change the gradient).

    Raises
    ------
    TypeError
        If `x` is not a NumPy floating-point array.
    ValueError
        If `x` is 0-dimensional, empty, or holds NaN or inf.
    """
    _checks.float_array("log_softmax.forward", "x", x, ndim_min=1)
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=-1, keepdims=True)
    y = shifted - np.log(total)
    e /= total                                       # softmax(x), all the backward needs
    return y, e


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 5)),
                               "cache": forward(rng.standard_normal((2, 5)))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient of log-softmax.

    $$ \frac{\partial L}{\partial x_i} = g_i - s_i \sum_j g_j $$

    Parameters
    ----------
    dout : ndarray, shape (..., V), floating
        Upstream gradient `g` = dL/dy, the shape of the forward's output.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": ndarray (..., V)}`; each row sums to 0.

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf.
    """
    s = _checks.unguard("log_softmax.backward", cache)
    dout = _checks.dout_like("log_softmax.backward", dout, s.shape)
    return {"x": dout - s * dout.sum(axis=-1, keepdims=True)}
