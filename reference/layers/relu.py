r"""Rectified linear unit: keeps positive values, zeroes the rest.

$$ \mathrm{relu}(x) = \max(0, x), \qquad \mathrm{relu}'(x) = [x > 0] $$

Shapes: any -> same.  At exactly `x = 0` the derivative is taken as 0 (PyTorch does the same).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"x": rng.standard_normal((2, 3))},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray):
    r"""Elementwise `max(0, x)`.

    $$ \mathrm{relu}(x) = \max(0, x) $$

    Parameters
    ----------
    x : ndarray, any shape, floating
        Input. The computation runs in x's dtype (float32 in, float32 out).

    Returns
    -------
    out : ndarray, the shape of x
        `max(0, x)`, a new array.
        For a 0-d `x`, a NumPy scalar may stand for the 0-d array (NumPy's ufuncs give one).
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The caller's `x`, by reference: do not change `x` in place before the backward (the
    rule of `llmref._checks`; `LLMREF_DEBUG_CACHE=1` verifies it).

    Raises
    ------
    TypeError
        If `x` is not a NumPy floating-point array.
    ValueError
        If `x` is empty or holds NaN or inf.
    """
    x = _checks.float_array("relu.forward", "x", x)
    out, cache = _forward(x)
    return out, _checks.guard("relu.forward", cache, x=x)


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 3)),
                               "cache": forward(rng.standard_normal((2, 3)))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient of relu: the upstream gradient where `x > 0`, zero elsewhere.

    $$ \frac{\partial L}{\partial x} = g\,[x > 0] $$

    At `x = 0` exactly the derivative is 0, as in PyTorch.

    Parameters
    ----------
    dout : ndarray, the shape of the output, floating
        Upstream gradient `g` = dL/d out.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": ndarray}` of the input's shape.
        For a 0-d `x`, a NumPy scalar may stand for the 0-d array.

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf, or (debug mode) if
        `x` changed since the forward.
    """
    x = _checks.unguard("relu.backward", cache)
    return _backward(_checks.dout_like("relu.backward", dout, x.shape), x)


def _forward(x: np.ndarray):                 # unchecked: for callers that checked ``x``
    return np.maximum(x, 0).astype(x.dtype, copy=False), x


def _backward(dout: np.ndarray, cache) -> dict:
    return {"x": dout * (cache > 0)}
