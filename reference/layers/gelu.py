r"""GELU, the exact form (BERT; PyTorch's ``gelu(x, approximate="none")``).

.. math::
    \mathrm{gelu}(x) = x\,\Phi(x), \qquad \Phi(x) = \tfrac12 \operatorname{erfc}(-x/\sqrt2),
    \qquad \mathrm{gelu}'(x) = \Phi(x) + x\,\varphi(x), \quad
    \varphi(x) = e^{-x^2/2}/\sqrt{2\pi}

Shapes: any -> same.  ``Phi`` is written with ``erfc`` so that it keeps full relative accuracy
for large negative ``x`` (``1 + erf(z)`` would cancel to 0 there).  NumPy has no vectorised
``erfc``, so the standard library's correctly rounded one is mapped over the array; that is
slow for millions of elements but exact, which is what a reference needs.  The tanh
approximation is a different function and lives in :mod:`reference.gelu_tanh`.
At ``x = 0`` (either sign): ``gelu(0) = 0`` and ``gelu'(0) = Phi(0) = 1/2``.
"""

from __future__ import annotations

import math

import numpy as np

from llmref import _checks

_erfc = np.frompyfunc(math.erfc, 1, 1)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return (0.5 * _erfc(-x.astype(np.float64) / math.sqrt(2.0))).astype(np.float64)


def forward(x: np.ndarray):
    """``x`` (...) -> ``x * Phi(x)`` (...), cache."""
    return _forward(_checks.float_array("gelu.forward", "x", x))


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (...) -> ``{"x": dout * (Phi(x) + x phi(x))}``."""
    return _backward(_checks.dout_like("gelu.backward", dout, cache[0].shape), cache)


def _forward(x: np.ndarray):                 # unchecked: for callers that checked ``x``
    cdf = _normal_cdf(x)
    return (x * cdf).astype(x.dtype, copy=False), (x, cdf)


def _backward(dout: np.ndarray, cache) -> dict:
    x, cdf = cache
    x64 = x.astype(np.float64)
    pdf = np.exp(-0.5 * x64 * x64) / math.sqrt(2.0 * math.pi)
    return {"x": (dout * (cdf + x64 * pdf)).astype(np.result_type(dout, x), copy=False)}
