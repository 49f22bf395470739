r"""Hyperbolic tangent: squashes any real number into (-1, 1).

$$ \tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}}, \qquad \tanh'(x) = 1 - \tanh^2(x) $$

Shapes: any -> same.  At ``x = 0`` (either sign): ``tanh(0) = 0`` with slope 1.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"x": rng.standard_normal((2, 3))},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray):
    r"""Elementwise hyperbolic tangent.

    $$ \tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}} $$

    Parameters
    ----------
    x : ndarray, any shape, floating
        Input. The computation runs in x's dtype (float32 in, float32 out).

    Returns
    -------
    out : ndarray, the shape of x
        `tanh(x)`, every entry in [-1, 1]; `tanh(0) = 0`.
        For a 0-d `x`, a NumPy scalar may stand for the 0-d array (NumPy's ufuncs give one).
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The local derivative `1 - tanh(x)^2`, a new array (not the returned `out`: editing
    `out` in place does not change the gradient).

    Raises
    ------
    TypeError
        If `x` is not a NumPy floating-point array.
    ValueError
        If `x` is empty or holds NaN or inf.
    """
    _checks.float_array("tanh.forward", "x", x)
    out = np.tanh(x)
    local = np.square(out)
    if isinstance(local, np.ndarray):
        np.subtract(1.0, local, out=local)       # tanh'(x) = 1 - tanh^2, in place
    else:                                        # a 0-d input gives NumPy scalars
        local = 1.0 - local
    return out, local


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 3)),
                               "cache": forward(rng.standard_normal((2, 3)))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient of tanh.

    $$ \frac{\partial L}{\partial x} = g\,\big(1 - \tanh^2(x)\big) $$

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
    local = _checks.unguard("tanh.backward", cache)
    dout = _checks.dout_like("tanh.backward", dout, local.shape)
    return {"x": dout * local}
