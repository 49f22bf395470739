r"""Layer normalisation over the last axis (biased variance, as in PyTorch and GPT-2).

$$
\mu = \tfrac1C \sum_i x_i, \quad \sigma^2 = \tfrac1C \sum_i (x_i - \mu)^2, \quad
\hat x = (x - \mu) / \sqrt{\sigma^2 + \epsilon}, \quad y = \gamma \odot \hat x + \beta
$$

Backward, with `g` the upstream gradient and `h = g * gamma`:

$$
\frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2+\epsilon}}
    \Big(h - \overline{h} - \hat x\,\overline{h \hat x}\Big), \qquad
\frac{\partial L}{\partial \gamma} = \sum g\,\hat x, \qquad
\frac{\partial L}{\partial \beta} = \sum g
$$

(bars are means over the last axis; the sums for gamma and beta run over every other axis).
Shapes: `x` (..., C), `gamma` and `beta` (C,) -> `y` (..., C).  The variance divides by
`C`, not `C - 1`.  A constant row has `x_hat = 0` and maps to `beta`.  `beta` may be left
out of `params` (a model without biases, `GPTConfig(bias=False)`): then `y = gamma * x_hat`
and there is no `beta` gradient.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"d_model": 4})
def init(d_model: int) -> dict:
    r"""Fresh layer-norm parameters: unit gain, zero shift (the identity on normalised rows).

    Parameters
    ----------
    d_model : int
        Width `C` of the normalised axis (> 0).

    Returns
    -------
    params : dict
        `{"gamma": ones (C,), "beta": zeros (C,)}`, float64.

    Raises
    ------
    TypeError
        If `d_model` is not an int.
    ValueError
        If `d_model` <= 0.
    """
    d_model = _checks.integer("layer_norm.init", "d_model", d_model, low=1)
    return {"gamma": np.ones(d_model), "beta": np.zeros(d_model)}


def _example(rng) -> dict:
    return {"x": rng.standard_normal((2, 4)),
            "params": {"gamma": 1 + 0.1 * rng.standard_normal(4),
                       "beta": rng.standard_normal(4)},
            "eps": 1e-5}


@contract(example=_example, lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray, params: dict, eps: float = 1e-5):
    r"""Normalise each row of `x` to zero mean and unit variance, then scale and shift.

    $$ \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
       y = \gamma \odot \hat x + \beta $$

    Parameters
    ----------
    x : ndarray, shape (..., C), floating
        Input; each row along the last axis is normalised on its own.
    params : dict
        `{"gamma": ndarray (C,), "beta": ndarray (C,)}`, floating (`beta` may be left out:
        no shift). The result has NumPy's promoted dtype of `x` and the parameters (all
        float32 in, float32 out).
    eps : float, default 1e-05
        Added to the variance (> 0, finite); keeps a constant row finite.

    Returns
    -------
    y : ndarray, shape (..., C)
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    `x_hat` and `1/sqrt(var + eps)` (new arrays) and the caller's `params["gamma"]` by
    reference: do not change `gamma` in place before the backward (`LLMREF_DEBUG_CACHE=1`
    verifies it).

    Raises
    ------
    TypeError
        If `x` or a parameter is not a floating-point array, `params` not a dict, `eps` not
        a number.
    ValueError
        If `x` is 0-dimensional, empty or not finite, a key is missing or unknown, a
        parameter is not of shape (C,), or `eps` is not > 0 and finite.
    """
    _checks.float_array("layer_norm.forward", "x", x, ndim_min=1)
    C = x.shape[-1]
    _check_params("layer_norm.forward", params, C)
    eps = _checks.number("layer_norm.forward", "eps", eps, low=0.0, strict=True)
    y, cache = _forward(x, params, eps)
    return y, _checks.guard("layer_norm.forward", cache, params={"gamma": params["gamma"]})


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 4)),
                               "cache": forward(**_example(rng))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradients of layer norm, with `h = g * gamma` and bars for row means.

    $$ \frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2+\epsilon}}
        \Big(h - \overline{h} - \hat x\,\overline{h \hat x}\Big), \quad
       \frac{\partial L}{\partial \gamma} = \sum g\,\hat x, \quad
       \frac{\partial L}{\partial \beta} = \sum g $$

    Parameters
    ----------
    dout : ndarray, shape (..., C), floating
        Upstream gradient `g` = dL/dy.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": (..., C), "gamma": (C,), "beta": (C,)}` (no `"beta"` when the forward had
        none); each row of `grads["x"]` sums to 0.

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf, or (debug mode) if
        `gamma` changed since the forward.
    """
    cache = _checks.unguard("layer_norm.backward", cache, 4)
    x_hat = cache[0]
    return _backward(_checks.dout_like("layer_norm.backward", dout, x_hat.shape), cache)


def _check_params(where: str, params, d_model: int, name: str = "params",
                  bias: bool | None = None) -> dict:
    """``{"gamma": (C,), "beta": (C,)}``; ``bias``: True requires ``beta``, False forbids it,
    None accepts either."""
    required = {"gamma": (d_model,), "beta": (d_model,)} if bias else {"gamma": (d_model,)}
    optional = {"beta": (d_model,)} if bias is None else {}
    return _checks.params(where, params, required, optional, name=name)


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
    if "beta" in params:
        y += params["beta"]
    return y.reshape(x.shape), (x_hat.reshape(x.shape), rstd, params["gamma"], "beta" in params)


def _backward(dout: np.ndarray, cache) -> dict:
    x_hat, rstd, gamma, has_beta = cache
    C = x_hat.shape[-1]
    g, x_hat = dout.reshape(-1, C), x_hat.reshape(-1, C)         # (N, C)
    g_x_hat = g * x_hat
    grads = {"gamma": g_x_hat.sum(axis=0)}
    if has_beta:
        grads["beta"] = g.sum(axis=0)
    # dx = rstd * (h - mean(h) - x_hat * mean(h * x_hat)) with h = g * gamma; both row
    # means are matrix-vector products with gamma / C.
    gamma_over_c = gamma / C
    mean_h = g @ gamma_over_c                                    # (N,)
    mean_h_x_hat = g_x_hat @ gamma_over_c                        # (N,)
    dx = g * gamma
    dx -= mean_h[:, None]
    dx -= x_hat * mean_h_x_hat[:, None]                          # in dx's dtype
    dx *= rstd[:, None]
    return {"x": dx.reshape(dout.shape), **grads}
