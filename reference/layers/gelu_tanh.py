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
At ``x = 0`` (either sign): ``gelu_tanh(0) = 0`` and ``gelu_tanh'(0) = sigma(0) = 1/2``.
"""

from __future__ import annotations

import math

import numpy as np

from llmref import _checks

_K = math.sqrt(2.0 / math.pi)
_A = 0.044715


def forward(x: np.ndarray):
    """``x`` (...) -> ``x * sigma(2u)`` (...), cache."""
    return _forward(_checks.float_array("gelu_tanh.forward", "x", x))


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (...) -> ``{"x": dout * gelu_tanh'(x)}``."""
    return _backward(_checks.dout_like("gelu_tanh.backward", dout, cache[0].shape), cache)


# Unchecked arithmetic (the feed-forward layer calls these after checking its input).  Each
# line is one pass over the array, done in place where it can be: activations are large.

def _forward(x: np.ndarray):
    s = x * x
    s *= -2.0 * _K * _A
    s -= 2.0 * _K                            # -2K (1 + A x^2)
    s *= x                                   # -2u
    with np.errstate(over="ignore"):         # exp(-2u) = inf gives s = 0, the right limit
        np.exp(s, out=s)
    s += 1.0
    np.reciprocal(s, out=s)                  # sigma(2u)
    out = x * s
    return out, (x, s, out)


def _backward(dout: np.ndarray, cache) -> dict:
    x, s, out = cache
    # local = s + 2K (1 + 3A x^2) * x s (1 - s), and x s (1 - s) = out - out * s
    local = x * x
    local *= 6.0 * _K * _A
    local += 2.0 * _K
    x_s_1_s = out * s
    np.subtract(out, x_s_1_s, out=x_s_1_s)
    local *= x_s_1_s
    local += s
    local *= dout
    return {"x": local}
