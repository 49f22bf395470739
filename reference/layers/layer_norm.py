r"""Layer normalisation over the last axis (biased variance, as in PyTorch and GPT-2).

.. math::
    \mu = \tfrac1C \sum_i x_i, \quad \sigma^2 = \tfrac1C \sum_i (x_i - \mu)^2, \quad
    \hat x = (x - \mu) / \sqrt{\sigma^2 + \epsilon}, \quad y = \gamma \odot \hat x + \beta

Backward, with ``g`` the upstream gradient and ``h = g * gamma``:

.. math::
    \frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2+\epsilon}}
        \Big(h - \overline{h} - \hat x\,\overline{h \hat x}\Big), \quad
    \frac{\partial L}{\partial \gamma} = \sum g\,\hat x, \quad
    \frac{\partial L}{\partial \beta} = \sum g

(bars are means over the last axis; the sums for gamma and beta run over every other axis).
Shapes: ``x`` (..., C), ``gamma`` and ``beta`` (C,) -> ``y`` (..., C).  The variance divides by
``C``, not ``C - 1``.  A constant row has ``x_hat = 0`` and maps to ``beta``.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def init(d_model: int) -> dict:
    """``{"gamma": ones (C,), "beta": zeros (C,)}``."""
    _checks.positive("layer_norm.init", "d_model", d_model, integer=True)
    return {"gamma": np.ones(d_model), "beta": np.zeros(d_model)}


def forward(x: np.ndarray, params: dict, eps: float = 1e-5):
    """``x`` (..., C) -> ``y`` (..., C), cache of (x_hat, rstd, gamma)."""
    _checks.float_array("layer_norm.forward", "x", x, ndim_min=1)
    C = x.shape[-1]
    _check_params("layer_norm.forward", params, C)
    _checks.positive("layer_norm.forward", "eps", eps)
    return _forward(x, params, eps)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (..., C) -> ``{"x": (..., C), "gamma": (C,), "beta": (C,)}``."""
    x_hat = cache[0]
    return _backward(_checks.dout_like("layer_norm.backward", dout, x_hat.shape), cache)


def _check_params(where: str, params, d_model: int, name: str = "params") -> dict:
    return _checks.params(where, params, {"gamma": (d_model,), "beta": (d_model,)}, name=name)


# Unchecked arithmetic, called by the blocks and the GPT after they check their inputs.
# Every row is reduced over its C entries; a row mean is written as a matrix-vector product
# with the vector (1/C, ..., 1/C), one BLAS call that is several times faster than
# ``mean(axis=-1)`` on the (N, C) arrays of a transformer.

def _forward(x: np.ndarray, params: dict, eps: float):
    C = x.shape[-1]
    rows = x.reshape(-1, C)                                      # (N, C)
    mean_of = np.full(C, 1.0 / C, dtype=x.dtype)
    x_hat = rows - (rows @ mean_of)[:, None]                     # x - mu
    var = np.square(x_hat) @ mean_of                             # biased: divide by C
    rstd = 1.0 / np.sqrt(var + eps)                              # (N,)
    x_hat *= rstd[:, None]                                       # in place: big arrays
    y = x_hat * params["gamma"]
    y += params["beta"]
    return y.reshape(x.shape), (x_hat.reshape(x.shape), rstd, params["gamma"])


def _backward(dout: np.ndarray, cache) -> dict:
    x_hat, rstd, gamma = cache
    C = x_hat.shape[-1]
    g, x_hat = dout.reshape(-1, C), x_hat.reshape(-1, C)         # (N, C)
    g_x_hat = g * x_hat
    d_gamma, d_beta = g_x_hat.sum(axis=0), g.sum(axis=0)
    # dx = rstd * (h - mean(h) - x_hat * mean(h * x_hat)) with h = g * gamma; both row
    # means are matrix-vector products with gamma / C.
    gamma_over_c = gamma / C
    mean_h = g @ gamma_over_c                                    # (N,)
    mean_h_x_hat = g_x_hat @ gamma_over_c                        # (N,)
    dx = g * gamma
    dx -= mean_h[:, None]
    dx -= np.multiply(x_hat, mean_h_x_hat[:, None], out=g_x_hat)
    dx *= rstd[:, None]
    return {"x": dx.reshape(dout.shape), "gamma": d_gamma, "beta": d_beta}
