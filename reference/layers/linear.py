r"""Linear (fully connected) layer: an affine map of the last axis.

$$ y = x W + b $$

Backward, with `X` and `G` the inputs and upstream gradients flattened to rows (N, C_in) and
(N, C_out):

$$ \frac{\partial L}{\partial x} = G W^\top, \qquad \frac{\partial L}{\partial W} = X^\top G,
   \qquad \frac{\partial L}{\partial b} = \sum_{n} G_n $$

Shapes: `x` (..., C_in), `W` (C_in, C_out), `b` (C_out,) -> `y` (..., C_out).
`W` is stored input-major as in GPT-2 (PyTorch's `nn.Linear.weight` is its transpose).
The bias is optional: leave `"b"` out of `params` for a layer without one.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"d_in": 3, "d_out": 4, "rng": rng, "bias": True, "std": 0.5},
          lenient={"std": ("none",)})
def init(d_in: int, d_out: int, rng: np.random.Generator, bias: bool = True,
         std: float | None = None) -> dict:
    r"""Fresh parameters for a linear layer.

    $$ W_{ij} \sim \mathcal N(0, \mathrm{std}^2), \quad \mathrm{std} = 1/\sqrt{C_{in}}
       \text{ by default}, \qquad b = 0 $$

    Parameters
    ----------
    d_in, d_out : int
        Input and output widths `C_in`, `C_out` (> 0).
    rng : numpy.random.Generator
        Source of the random weights.
    bias : bool, default True
        Whether to include `"b"`.
    std : float or None, default None
        Standard deviation of the weights (>= 0); None for `1/sqrt(d_in)`.

    Returns
    -------
    params : dict
        `{"W": ndarray (C_in, C_out), "b": ndarray (C_out,)}` in float64 (no `"b"` when
        `bias` is False).

    Raises
    ------
    TypeError
        If a size is not an int, `rng` not a Generator, `bias` not a bool, `std` not a number.
    ValueError
        If a size is <= 0 or `std` is negative, NaN or inf.
    """
    where = "linear.init"
    d_in = _checks.integer(where, "d_in", d_in, low=1)
    d_out = _checks.integer(where, "d_out", d_out, low=1)
    _checks.generator(where, "rng", rng)
    bias = _checks.boolean(where, "bias", bias)
    std = 1.0 / np.sqrt(d_in) if std is None else _checks.std(where, "std", std)
    params = {"W": rng.normal(0.0, std, size=(d_in, d_out))}
    if bias:
        params["b"] = np.zeros(d_out)
    return params


def _example(rng) -> dict:
    return {"x": rng.standard_normal((2, 3)),
            "params": {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}}


@contract(example=_example, lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray, params: dict):
    r"""Apply the layer to the last axis of `x`.

    $$ y = x W + b $$

    Parameters
    ----------
    x : ndarray, shape (..., C_in), floating
        Input, any number of leading axes.
    params : dict
        `{"W": ndarray (C_in, C_out), "b": ndarray (C_out,)}`, floating; `"b"` optional.
        The result has NumPy's promoted dtype of `x` and the parameters (all float32 in,
        float32 out).

    Returns
    -------
    y : ndarray, shape (..., C_out)
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The caller's `x` and `params["W"]`, by reference: do not change them in place before
    the backward (update weights after it, as optimizers do; `LLMREF_DEBUG_CACHE=1`
    verifies it).

    Raises
    ------
    TypeError
        If `x` or a parameter is not a floating-point array, or `params` is not a dict.
    ValueError
        If `x` is 0-dimensional, empty or not finite, a key is missing or unknown, or the
        widths of `x`, `W` and `b` do not match.
    """
    _check_params("linear.forward", params)
    W = params["W"]
    _checks.float_array("linear.forward", "x", x, ndim_min=1)
    if x.shape[-1] != W.shape[0]:
        raise ValueError(f"linear.forward: argument 'x' must have last dimension "
                         f"{W.shape[0]} (rows of params['W']), got shape {x.shape}")
    y, cache = _forward(x, params)
    return y, _checks.guard("linear.forward", cache, x=x, params={"W": W})


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 4)),
                               "cache": forward(**_example(rng))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradients of the linear layer.

    $$ \frac{\partial L}{\partial x} = G W^\top, \quad \frac{\partial L}{\partial W} = X^\top G,
       \quad \frac{\partial L}{\partial b} = \sum_n G_n $$

    Parameters
    ----------
    dout : ndarray, shape (..., C_out), floating
        Upstream gradient `G` = dL/dy.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": (..., C_in), "W": (C_in, C_out), "b": (C_out,)}` (no `"b"` for a layer
        without a bias).

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf, or (debug mode) if
        `x` or `W` changed since the forward.
    """
    cache = _checks.unguard("linear.backward", cache, 3)
    x, W, _ = cache
    return _backward(_checks.dout_like("linear.backward", dout, x.shape[:-1] + (W.shape[1],)),
                     cache)


def _check_params(where: str, params, d_in: int | None = None, d_out: int | None = None,
                  name: str = "params", bias: bool | None = None) -> dict:
    """Check ``{"W": (d_in, d_out), "b": (d_out,)}`` (``None`` = any size).  ``bias``: True
    requires ``b``, False forbids it, None (a layer on its own) accepts either."""
    required = {"W": (d_in, d_out), "b": (d_out,)} if bias else {"W": (d_in, d_out)}
    optional = {"b": (d_out,)} if bias is None else {}
    _checks.params(where, params, required, optional, name=name)
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
