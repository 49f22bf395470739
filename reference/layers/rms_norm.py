r"""RMSNorm: layer norm without the mean subtraction and without a bias (LLaMA, T5).

.. math::
    r = \Big(\tfrac1C \sum_i x_i^2 + \epsilon\Big)^{-1/2}, \quad \hat x = x\,r, \quad
    y = \gamma \odot \hat x

Backward, with ``h = g * gamma``:

.. math::
    \frac{\partial L}{\partial x} = r\,\big(h - \hat x\,\overline{h \hat x}\big), \qquad
    \frac{\partial L}{\partial \gamma} = \sum g\,\hat x

Shapes: ``x`` (..., C), ``gamma`` (C,) -> ``y`` (..., C).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def init(d_model: int) -> dict:
    """``{"gamma": ones (C,)}``."""
    _checks.positive("rms_norm.init", "d_model", d_model, integer=True)
    return {"gamma": np.ones(d_model)}


def forward(x: np.ndarray, params: dict, eps: float = 1e-6):
    """``x`` (..., C) -> ``y`` (..., C), cache of (x, r, gamma)."""
    _checks.float_array("rms_norm.forward", "x", x, ndim_min=1)
    _checks.params("rms_norm.forward", params, {"gamma": (x.shape[-1],)})
    _checks.positive("rms_norm.forward", "eps", eps)
    r = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    return x * r * params["gamma"], (x, r, params["gamma"])


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (..., C) -> ``{"x": (..., C), "gamma": (C,)}``."""
    x, r, gamma = cache
    dout = _checks.dout_like("rms_norm.backward", dout, x.shape)
    x_hat = x * r
    h = dout * gamma
    dx = r * (h - x_hat * (h * x_hat).mean(axis=-1, keepdims=True))
    return {"x": dx, "gamma": (dout * x_hat).reshape(-1, x.shape[-1]).sum(axis=0)}
