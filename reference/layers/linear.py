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

from llmref import _checks


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
    _check_params("linear.forward", params)
    W = params["W"]
    _checks.float_array("linear.forward", "x", x, ndim_min=1)
    if x.shape[-1] != W.shape[0]:
        raise ValueError(f"linear.forward: argument 'x' must have last dimension "
                         f"{W.shape[0]} (rows of params['W']), got shape {x.shape}")
    return _forward(x, params)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (..., C_out) -> ``{"x": (..., C_in), "W": (C_in, C_out), "b": (C_out,)}``."""
    x, W, _ = cache
    return _backward(_checks.dout_like("linear.backward", dout, x.shape[:-1] + (W.shape[1],)),
                     cache)


def _check_params(where: str, params, d_in: int | None = None, d_out: int | None = None,
                  name: str = "params") -> dict:
    """Check ``{"W": (d_in, d_out), "b": (d_out,)}`` (``b`` optional, ``None`` = any size)."""
    _checks.params(where, params, {"W": (d_in, d_out)}, {"b": (d_out,)}, name=name)
    W = params["W"]
    if "b" in params and params["b"].shape[0] != W.shape[1]:
        raise ValueError(f"{where}: argument {name}['b'] must have shape "
                         f"({W.shape[1]},) to match {name}['W'] {W.shape}, "
                         f"got shape {params['b'].shape}")
    return params


# The two functions below do the arithmetic without checking their arguments.  Layers built
# from this one (attention, feed-forward, the GPT) check their own inputs once and then call
# these, so a training step does not re-check every intermediate array.

def _forward(x: np.ndarray, params: dict):
    W = params["W"]
    rows = x.reshape(-1, x.shape[-1])                 # one (N, C_in) @ (C_in, C_out) product
    y = rows @ W
    if "b" in params:
        y += params["b"]
    return y.reshape(x.shape[:-1] + (W.shape[1],)), (x, W, "b" in params)


def _backward(dout: np.ndarray, cache) -> dict:
    x, W, has_bias = cache
    rows_x = x.reshape(-1, x.shape[-1])
    rows_g = dout.reshape(-1, dout.shape[-1])
    grads = {"x": (rows_g @ W.T).reshape(x.shape), "W": rows_x.T @ rows_g}
    if has_bias:
        grads["b"] = rows_g.sum(axis=0)
    return grads
