r"""GELU, the tanh approximation (GPT-2; PyTorch's ``gelu(x, approximate="tanh")``).

.. math::
    \mathrm{gelu}_{\tanh}(x) = \tfrac12 x \left(1 + \tanh u\right) = x\,\sigma(2u), \qquad
    u = \sqrt{2/\pi}\,\left(x + 0.044715\,x^3\right)

.. math::
    \mathrm{gelu}_{\tanh}'(x) = \sigma(2u) + 2x\,\sigma(2u)\,\big(1 - \sigma(2u)\big)\,
        \sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2)

Shapes: any -> same.  The two forms are equal because ``1 + tanh(u) = 2 sigma(2u)``; the
sigmoid form is used because ``1 + tanh(u)`` cancels to nothing for large negative ``u``,
while ``sigma(z) = 1 / (1 + e^{-z})`` keeps full relative accuracy there (``e^{-z}`` may
overflow to inf, which gives the correct limit 0).
It differs from the exact GELU by up to about 5e-4 in absolute value (largest near |x| = 2),
so the two are separate functions with separate tests.
"""

from __future__ import annotations

import math

import numpy as np

from reference import _checks

_K = math.sqrt(2.0 / math.pi)
_A = 0.044715


def forward(x: np.ndarray):
    """``x`` (...) -> ``x * sigma(2u)`` (...), cache."""
    _checks.float_array("gelu_tanh.forward", "x", x)
    # s = 1 / (1 + exp(-2u)), computed in place in one buffer (large activations).
    s = x * x
    s *= _A
    s += 1.0
    s *= x                                   # x + A x^3
    s *= -2.0 * _K                           # -2u
    with np.errstate(over="ignore"):         # exp(-2u) = inf gives s = 0, the right limit
        np.exp(s, out=s)
    s += 1.0
    np.reciprocal(s, out=s)                  # sigma(2u)
    return x * s, (x, s)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (...) -> ``{"x": dout * gelu_tanh'(x)}``."""
    x, s = cache
    dout = _checks.dout_like("gelu_tanh.backward", dout, x.shape)
    # local = s + 2K x (1 + 3A x^2) s (1 - s), in place in one buffer
    local = x * x
    local *= 3.0 * _A
    local += 1.0
    local *= x
    local *= 2.0 * _K
    local *= s
    local *= 1.0 - s
    local += s
    return {"x": dout * local}
