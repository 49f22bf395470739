r"""Softmax over the last axis: turns a row of scores (logits) into probabilities.

$$ s_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \qquad m = \max_j x_j $$

$$ \frac{\partial L}{\partial x_i} = s_i \Big(g_i - \sum_j g_j s_j\Big) $$

Shapes: `x` (..., V) -> `s` (..., V), each row non-negative and summing to 1.
Subtracting the row maximum changes nothing mathematically (it cancels between numerator and
denominator) but keeps every exponent <= 0, so logits of any magnitude stay finite.
The backward is the Jacobian-vector product of the full (V, V) Jacobian
`diag(s) - s s^T`, written without forming the matrix.
Ties: equal logits in a row get exactly equal probabilities, so a row of `V` equal logits
(of any size, +-1e4 included) is uniform, `1/V` each.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"x": rng.standard_normal((2, 5))},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray):
    r"""Softmax over the last axis.

    $$ s_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \quad m = \max_j x_j $$

    Parameters
    ----------
    x : ndarray, shape (..., V), floating
        Logits, any number of leading axes. The computation runs in x's dtype (float32 in,
        float32 out).

    Returns
    -------
    s : ndarray, shape (..., V)
        Probabilities; each row is non-negative and sums to 1.
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    A private copy of `s`: editing the returned `s` in place does not change the gradient.

    Raises
    ------
    TypeError
        If `x` is not a NumPy floating-point array.
    ValueError
        If `x` is 0-dimensional, empty, or holds NaN or inf.
    """
    s, _ = _forward(_checks.float_array("softmax.forward", "x", x, ndim_min=1))
    return s, s.copy()


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 5)),
                               "cache": forward(rng.standard_normal((2, 5)))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient of softmax: the Jacobian-vector product with the upstream gradient.

    $$ \frac{\partial L}{\partial x_i} = s_i \Big(g_i - \sum_j g_j s_j\Big) $$

    Parameters
    ----------
    dout : ndarray, shape (..., V), floating
        Upstream gradient `g` = dL/ds, the shape of the forward's output.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": ndarray (..., V)}`; each row of `grads["x"]` sums to 0 (adding a constant to
        a row of logits does not change the probabilities).

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf.
    """
    s = _checks.unguard("softmax.backward", cache)
    return _backward(_checks.dout_like("softmax.backward", dout, s.shape), s)


def _forward(x: np.ndarray):                 # unchecked: for callers that checked ``x``
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    return s, s


def _backward(dout: np.ndarray, s) -> dict:
    dx = dout - np.vecdot(dout, s)[..., None]        # g - sum_j g_j s_j, one new array
    dx *= s
    return {"x": dx}
