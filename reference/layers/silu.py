r"""SiLU ("swish"): the input times its own sigmoid.  Llama uses it inside SwiGLU
(`swiglu`).

$$
\mathrm{silu}(x) = x\,\sigma(x), \qquad
\mathrm{silu}'(x) = \sigma(x) + x\,\sigma(x)\,\big(1 - \sigma(x)\big)
                  = \sigma(x)\,\big(1 + x\,(1 - \sigma(x))\big)
$$

Shapes: any -> same.  The sigmoid is the overflow-free one of `sigmoid`, so large negative
inputs give outputs near -0, never NaN.  PyTorch: `F.silu`.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import sigmoid


@contract(example=lambda rng: {"x": rng.standard_normal((2, 5))},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray):
    r"""Elementwise `x * sigmoid(x)`.

    $$ \mathrm{silu}(x) = x\,\sigma(x) $$

    Parameters
    ----------
    x : ndarray, any shape, floating
        Input. The computation runs in x's dtype (float32 in, float32 out).

    Returns
    -------
    out : ndarray, the shape of x
        A new array.
        For a 0-d `x`, a NumPy scalar may stand for the 0-d array (NumPy's ufuncs give one).
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The caller's `x` by reference and `sigmoid(x)` (a new array): do not change `x` in place
    before the backward (`LLMREF_DEBUG_CACHE=1` verifies it).

    Raises
    ------
    TypeError
        If `x` is not a NumPy floating-point array.
    ValueError
        If `x` is empty or holds NaN or inf.
    """
    x = _checks.float_array("silu.forward", "x", x)
    out, cache = _forward(x)
    return out, _checks.guard("silu.forward", cache, x=x)


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 5)),
                               "cache": forward(rng.standard_normal((2, 5)))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient of SiLU.

    $$ \frac{\partial L}{\partial x} = g\,\sigma(x)\,\big(1 + x\,(1 - \sigma(x))\big) $$

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
    cache = _checks.unguard("silu.backward", cache, 2)
    return _backward(_checks.dout_like("silu.backward", dout, cache[0].shape), cache)


# Unchecked arithmetic, called by SwiGLU after it checks its input.

def _forward(x: np.ndarray):
    s = sigmoid._forward(x)[0]
    return x * s, (x, s)


def _backward(dout: np.ndarray, cache) -> dict:
    x, s = cache
    # forward: out = x * s(x); d out / dx = s + x s (1 - s)
    local = 1.0 - s
    local *= x
    local += 1.0
    local *= s
    local *= dout
    return {"x": local}
