r"""Linear (fully connected) layer.

.. math::  y = x W + b

Shapes: ``x`` (..., C_in), ``W`` (C_in, C_out), ``b`` (C_out,) -> ``y`` (..., C_out).
``W`` is stored input-major as in GPT-2 (PyTorch's ``nn.Linear.weight`` is its transpose).
The bias is optional: leave ``"b"`` out of ``params`` for a layer without one.

Backward, with ``X`` and ``G`` the inputs and upstream gradients flattened to rows:
``dx = G W^T``, ``dW = X^T G``, ``db = sum of G over rows``.
"""

from __future__ import annotations

import numpy as np

from reference import _checks


def init(d_in: int, d_out: int, rng: np.random.Generator, bias: bool = True,
         std: float | None = None) -> dict:
    """``{"W": (C_in, C_out), "b": (C_out,)}``; W ~ N(0, std^2) with std = 1/sqrt(C_in) by
    default, b = 0."""
    _checks.positive("linear.init", "d_in", d_in, integer=True)
    _checks.positive("linear.init", "d_out", d_out, integer=True)
    std = 1.0 / np.sqrt(d_in) if std is None else std
    params = {"W": rng.normal(0.0, std, size=(d_in, d_out))}
    if bias:
        params["b"] = np.zeros(d_out)
    return params


def forward(x: np.ndarray, params: dict):
    """``x`` (..., C_in) -> ``y`` (..., C_out), cache."""
    _checks.params("linear.forward", params, {"W": (None, None)}, {"b": (None,)})
    W = params["W"]
    if "b" in params and params["b"].shape[0] != W.shape[1]:
        raise ValueError(f"linear.forward: argument params['b'] must have shape "
                         f"({W.shape[1]},) to match params['W'] {W.shape}, "
                         f"got shape {params['b'].shape}")
    _checks.float_array("linear.forward", "x", x, ndim_min=1)
    if x.shape[-1] != W.shape[0]:
        raise ValueError(f"linear.forward: argument 'x' must have last dimension "
                         f"{W.shape[0]} (rows of params['W']), got shape {x.shape}")
    rows = x.reshape(-1, x.shape[-1])                 # one (N, C_in) @ (C_in, C_out) product
    y = rows @ W
    if "b" in params:
        y += params["b"]
    return y.reshape(x.shape[:-1] + (W.shape[1],)), (x, W, "b" in params)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (..., C_out) -> ``{"x": (..., C_in), "W": (C_in, C_out), "b": (C_out,)}``."""
    x, W, has_bias = cache
    dout = _checks.dout_like("linear.backward", dout, x.shape[:-1] + (W.shape[1],))
    rows_x = x.reshape(-1, x.shape[-1])
    rows_g = dout.reshape(-1, dout.shape[-1])
    grads = {"x": (rows_g @ W.T).reshape(x.shape), "W": rows_x.T @ rows_g}
    if has_bias:
        grads["b"] = rows_g.sum(axis=0)
    return grads
