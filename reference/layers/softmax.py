r"""Softmax over the last axis.

.. math::
    s_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \quad m = \max_j x_j
    \qquad\qquad
    \frac{\partial L}{\partial x_i} = s_i \Big(g_i - \sum_j g_j s_j\Big)

Shapes: ``x`` (..., V) -> ``s`` (..., V), each row non-negative and summing to 1.
Subtracting the row maximum changes nothing mathematically (it cancels between numerator and
denominator) but keeps every exponent <= 0, so logits of any magnitude stay finite.
The backward is the Jacobian-vector product of the full (V, V) Jacobian
``diag(s) - s s^T``, written without forming the matrix.
Ties: equal logits in a row get exactly equal probabilities, so a row of ``V`` equal logits
(of any size, +-1e4 included) is uniform, ``1/V`` each.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"x": rng.standard_normal((2, 5))},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray):
    """``x`` (..., V) -> ``s`` (..., V), cache."""
    return _forward(_checks.float_array("softmax.forward", "x", x, ndim_min=1))


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 5)),
                               "cache": forward(rng.standard_normal((2, 5)))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (..., V) -> ``{"x": s * (dout - sum(dout * s))}``."""
    return _backward(_checks.dout_like("softmax.backward", dout, cache.shape), cache)


def _forward(x: np.ndarray):                 # unchecked: for callers that checked ``x``
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    return s, s


def _backward(dout: np.ndarray, s) -> dict:
    dx = dout - np.vecdot(dout, s)[..., None]        # g - sum_j g_j s_j, one new array
    dx *= s
    return {"x": dx}
