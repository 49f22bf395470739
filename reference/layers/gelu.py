r"""GELU, the exact form (BERT; PyTorch's `gelu(x, approximate="none")`).

$$ \mathrm{gelu}(x) = x\,\Phi(x), \qquad \Phi(x) = \tfrac12 \operatorname{erfc}(-x/\sqrt2) $$

$$ \mathrm{gelu}'(x) = \Phi(x) + x\,\varphi(x), \qquad \varphi(x) = e^{-x^2/2}/\sqrt{2\pi} $$

Shapes: any -> same.  `Phi` is written with `erfc` so that it keeps full relative accuracy
for large negative `x` (`1 + erf(z)` would cancel to 0 there).  NumPy has no vectorised
`erfc`, so the standard library's correctly rounded one is mapped over the array; that is
slow for millions of elements but exact, which is what a reference needs.  The tanh
approximation is a different function and lives in `llmref.layers.gelu_tanh`.
At `x = 0` (either sign): `gelu(0) = 0` and `gelu'(0) = Phi(0) = 1/2`.
"""

from __future__ import annotations

import math

import numpy as np

from llmref import _checks
from llmref._contract import contract

_erfc = np.frompyfunc(math.erfc, 1, 1)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    # np.asarray: a ufunc from frompyfunc returns a Python float for a 0-d input
    return np.asarray(0.5 * _erfc(-x.astype(np.float64) / math.sqrt(2.0)), dtype=np.float64)


@contract(example=lambda rng: {"x": rng.standard_normal((2, 3))},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray):
    r"""Elementwise exact GELU, `x` times the standard normal CDF of `x`.

    $$ \mathrm{gelu}(x) = x\,\Phi(x), \quad \Phi(x) = \tfrac12 \operatorname{erfc}(-x/\sqrt2) $$

    `gelu(0) = 0` and `gelu'(0) = 1/2`; the function dips to about -0.17 near `x = -0.75`.

    Parameters
    ----------
    x : ndarray, any shape, floating
        Input. `Phi` is evaluated in float64 and the result cast back to x's dtype (float32
        in, float32 out).

    Returns
    -------
    out : ndarray, the shape of x
        `x * Phi(x)`.
        For a 0-d `x`, a NumPy scalar may stand for the 0-d array (NumPy's ufuncs give one).
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The caller's `x`, by reference, and `Phi(x)` (float64, a new array): do not change `x`
    in place before the backward (`LLMREF_DEBUG_CACHE=1` verifies it).

    Raises
    ------
    TypeError
        If `x` is not a NumPy floating-point array.
    ValueError
        If `x` is empty or holds NaN or inf.
    """
    x = _checks.float_array("gelu.forward", "x", x)
    out, cache = _forward(x)
    return out, _checks.guard("gelu.forward", cache, x=x)


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 3)),
                               "cache": forward(rng.standard_normal((2, 3)))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient of the exact GELU.

    $$ \frac{\partial L}{\partial x} = g\,\big(\Phi(x) + x\,\varphi(x)\big) $$

    Parameters
    ----------
    dout : ndarray, the shape of the output, floating
        Upstream gradient `g` = dL/d out.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": ndarray}` of the input's shape, in the promoted dtype of `dout` and `x`.
        For a 0-d `x`, a NumPy scalar may stand for the 0-d array.

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf, or (debug mode) if
        `x` changed since the forward.
    """
    cache = _checks.unguard("gelu.backward", cache, 2)
    return _backward(_checks.dout_like("gelu.backward", dout, cache[0].shape), cache)


def _forward(x: np.ndarray):                 # unchecked: for callers that checked ``x``
    cdf = _normal_cdf(x)
    return (x * cdf).astype(x.dtype, copy=False), (x, cdf)


def _backward(dout: np.ndarray, cache) -> dict:
    x, cdf = cache
    x64 = x.astype(np.float64)
    pdf = np.exp(-0.5 * x64 * x64) / math.sqrt(2.0 * math.pi)
    return {"x": (dout * (cdf + x64 * pdf)).astype(np.result_type(dout, x), copy=False)}
