r"""GELU, the tanh approximation (GPT-2; PyTorch's `gelu(x, approximate="tanh")`).

$$
\mathrm{gelu}_{\tanh}(x) = \tfrac12 x \left(1 + \tanh u\right) = x\,\sigma(2u), \qquad
u = \sqrt{2/\pi}\,\left(x + 0.044715\,x^3\right)
$$

$$
\mathrm{gelu}_{\tanh}'(x) = \sigma(2u) + 2x\,\sigma(2u)\,\big(1 - \sigma(2u)\big)\,
    \sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2)
$$

Shapes: any -> same.  The two forms are equal because `1 + tanh(u) = 2 sigma(2u)`; the
sigmoid form is used because `1 + tanh(u)` cancels to nothing for large negative `u`,
while `sigma(z) = 1 / (1 + e^{-z})` keeps full relative accuracy there (`e^{-z}` may
overflow to inf, which gives the correct limit 0).
It differs from the exact GELU by up to about 5e-4 in absolute value (largest near |x| = 2),
so the two are separate functions with separate tests.
At ``x = 0`` (either sign): ``gelu_tanh(0) = 0`` and ``gelu_tanh'(0) = sigma(0) = 1/2``.
"""

from __future__ import annotations

import math

import numpy as np

from llmref import _checks
from llmref._contract import contract

_K = math.sqrt(2.0 / math.pi)
_A = 0.044715


@contract(example=lambda rng: {"x": rng.standard_normal((2, 3))},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray):
    r"""Elementwise GELU, tanh approximation, written with a sigmoid.

    $$ \mathrm{gelu}_{\tanh}(x) = x\,\sigma(2u), \quad
       u = \sqrt{2/\pi}\,\left(x + 0.044715\,x^3\right) $$

    `gelu_tanh(0) = 0` and its derivative at 0 is exactly 1/2.

    Parameters
    ----------
    x : ndarray, any shape, floating
        Input. The computation runs in x's dtype (float32 in, float32 out).

    Returns
    -------
    out : ndarray, the shape of x
        `x * sigma(2u)`.
        For a 0-d `x`, a NumPy scalar may stand for the 0-d array (NumPy's ufuncs give one).
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The caller's `x` by reference, `sigma(2u)`, and a private copy of `out` (editing the
    returned `out` in place does not change the gradient). Do not change `x` in place
    before the backward (`LLMREF_DEBUG_CACHE=1` verifies it).

    Raises
    ------
    TypeError
        If `x` is not a NumPy floating-point array.
    ValueError
        If `x` is empty or holds NaN or inf.
    """
    x = _checks.float_array("gelu_tanh.forward", "x", x)
    out, (_, s, _) = _forward(x)
    return out, _checks.guard("gelu_tanh.forward", (x, s, out.copy()), x=x)


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 3)),
                               "cache": forward(rng.standard_normal((2, 3)))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient of the tanh-approximate GELU.

    $$ \frac{\partial L}{\partial x} = g\,\Big(\sigma(2u) + 2x\,\sigma(2u)\big(1 - \sigma(2u)\big)
       \sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2)\Big) $$

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
    cache = _checks.unguard("gelu_tanh.backward", cache, 3)
    return _backward(_checks.dout_like("gelu_tanh.backward", dout, cache[0].shape), cache)


# Unchecked arithmetic (the feed-forward layer calls these after checking its input).  Each
# line is one pass over the array, done in place where it can be: activations are large.

def _forward(x: np.ndarray):
    s = np.multiply(x, x, out=np.empty_like(x))     # (out=: an array even for 0-d x)
    s *= -2.0 * _K * _A
    s -= 2.0 * _K                            # -2K (1 + A x^2)
    s *= x                                   # -2u
    with np.errstate(over="ignore"):         # exp(-2u) = inf gives s = 0, the right limit
        np.exp(s, out=s)
    s += 1.0
    np.reciprocal(s, out=s)                  # sigma(2u)
    out = np.multiply(x, s, out=np.empty_like(s))
    return out, (x, s, out)


def _backward(dout: np.ndarray, cache) -> dict:
    x, s, out = cache
    # local = s + 2K (1 + 3A x^2) * x s (1 - s), and x s (1 - s) = out - out * s
    local = np.multiply(x, x, out=np.empty_like(x))
    local *= 6.0 * _K * _A
    local += 2.0 * _K
    x_s_1_s = np.multiply(out, s, out=np.empty_like(s))
    np.subtract(out, x_s_1_s, out=x_s_1_s)
    local *= x_s_1_s
    local += s
    local *= dout
    return {"x": local}
