r"""GELU, the tanh approximation (GPT-2; PyTorch's ``gelu(x, approximate="tanh")``).

.. math::
    \mathrm{gelu}_{\tanh}(x) = \tfrac12 x \left(1 + \tanh u\right) = x\,\sigma(2u), \qquad
    u = \sqrt{2/\pi}\,\left(x + 0.044715\,x^3\right)

.. math::
    \mathrm{gelu}_{\tanh}'(x) = \sigma(2u) + 2x\,\sigma(2u)\,\sigma(-2u)\,
        \sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2)

Shapes: any -> same.  The two forms are equal because ``1 + tanh(u) = 2 sigma(2u)``; the
sigmoid form is used because ``1 + tanh(u)`` cancels to nothing for large negative ``u``.
It differs from the exact GELU by up to about 5e-4 in absolute value (largest near |x| = 2),
so the two are separate functions with separate tests.
"""

from __future__ import annotations

import math

import numpy as np

from reference import _checks

_K = math.sqrt(2.0 / math.pi)
_A = 0.044715


def _sigmoid(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def forward(x: np.ndarray):
    """``x`` (...) -> ``x * sigma(2u)`` (...), cache."""
    _checks.float_array("gelu_tanh.forward", "x", x)
    two_u = 2.0 * _K * (x + _A * x**3)
    return (x * _sigmoid(two_u)).astype(x.dtype, copy=False), (x, two_u)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (...) -> ``{"x": dout * gelu_tanh'(x)}``."""
    x, two_u = cache
    dout = _checks.dout_like("gelu_tanh.backward", dout, x.shape)
    s, s_neg = _sigmoid(two_u), _sigmoid(-two_u)
    local = s + 2.0 * x * s * s_neg * _K * (1.0 + 3.0 * _A * x * x)
    return {"x": dout * local}
