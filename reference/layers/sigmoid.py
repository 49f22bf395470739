r"""Logistic sigmoid: squashes any real number into (0, 1).

$$ \sigma(x) = \frac{1}{1 + e^{-x}}, \qquad \sigma'(x) = \sigma(x)\,\big(1 - \sigma(x)\big) $$

Shapes: any -> same.  Written in two branches so that `exp` never overflows:
`1 / (1 + e^{-x})` for `x >= 0` and `e^{x} / (1 + e^{x})` for `x < 0`.
At the edges: `sigma(0) = 1/2` with slope `1/4`; far out (`|x| > 745` in float64) the
result is exactly 1 or 0, with slope 0.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"x": rng.standard_normal((2, 3))},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray):
    r"""Elementwise logistic sigmoid.

    $$ \sigma(x) = \frac{1}{1 + e^{-x}} $$

    Parameters
    ----------
    x : ndarray, any shape, floating
        Input. The computation runs in x's dtype (float32 in, float32 out).

    Returns
    -------
    out : ndarray, the shape of x
        `sigma(x)`, every entry in [0, 1] (exactly 0 or 1 only where the float type rounds
        it there; `sigma(0) = 1/2`).
        For a 0-d `x`, a NumPy scalar may stand for the 0-d array (NumPy's ufuncs give one).
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The local derivative `sigma(x) (1 - sigma(x))`, a new array (not the returned `out`:
    editing `out` in place does not change the gradient).

    Raises
    ------
    TypeError
        If `x` is not a NumPy floating-point array.
    ValueError
        If `x` is empty or holds NaN or inf.
    """
    return _forward(_checks.float_array("sigmoid.forward", "x", x))


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 3)),
                               "cache": forward(rng.standard_normal((2, 3)))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient of the sigmoid.

    $$ \frac{\partial L}{\partial x} = g\,\sigma(x)\,\big(1 - \sigma(x)\big) $$

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
        If `dout` does not have the output's shape or holds NaN or inf.
    """
    local = _checks.unguard("sigmoid.backward", cache)
    dout = _checks.dout_like("sigmoid.backward", dout, local.shape)
    return {"x": dout * local}


def _forward(x: np.ndarray):                 # unchecked: for callers that checked ``x``
    e = np.exp(-np.abs(x))                       # in (0, 1], never overflows
    out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)
    local = 1.0 - out
    local *= out                                 # sigma (1 - sigma)
    return out, local
