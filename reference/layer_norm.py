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

from reference import _checks


def init(d_model: int) -> dict:
    """``{"gamma": ones (C,), "beta": zeros (C,)}``."""
    _checks.positive("layer_norm.init", "d_model", d_model, integer=True)
    return {"gamma": np.ones(d_model), "beta": np.zeros(d_model)}


def forward(x: np.ndarray, params: dict, eps: float = 1e-5):
    """``x`` (..., C) -> ``y`` (..., C), cache of (x, mean, rstd, gamma)."""
    _checks.float_array("layer_norm.forward", "x", x, ndim_min=1)
    C = x.shape[-1]
    _checks.params("layer_norm.forward", params, {"gamma": (C,), "beta": (C,)})
    _checks.positive("layer_norm.forward", "eps", eps)
    mean = x.mean(axis=-1, keepdims=True)
    x_hat = x - mean
    var = np.mean(np.square(x_hat), axis=-1, keepdims=True)     # biased: divide by C
    rstd = 1.0 / np.sqrt(var + eps)
    x_hat *= rstd                                               # in place: big arrays
    y = x_hat
    y *= params["gamma"]
    y += params["beta"]
    return y, (x, mean, rstd, params["gamma"])


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (..., C) -> ``{"x": (..., C), "gamma": (C,), "beta": (C,)}``."""
    x, mean, rstd, gamma = cache
    dout = _checks.dout_like("layer_norm.backward", dout, x.shape)
    x_hat = x - mean                             # recomputed instead of cached
    x_hat *= rstd
    h = dout * gamma
    # dx = rstd * (h - mean(h) - x_hat * mean(h * x_hat)), built in place in h
    proj = np.mean(h * x_hat, axis=-1, keepdims=True)
    dgamma = (dout * x_hat).reshape(-1, x.shape[-1]).sum(axis=0)
    x_hat *= proj
    h -= h.mean(axis=-1, keepdims=True)
    h -= x_hat
    h *= rstd
    return {"x": h, "gamma": dgamma, "beta": dout.reshape(-1, x.shape[-1]).sum(axis=0)}
