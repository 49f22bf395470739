r"""RMSNorm: layer norm without the mean subtraction and without a bias (LLaMA, T5).

$$
r = \Big(\tfrac1C \sum_i x_i^2 + \epsilon\Big)^{-1/2}, \qquad \hat x = x\,r, \qquad
y = \gamma \odot \hat x
$$

Backward, with `g` the upstream gradient, `h = g * gamma` and the bar a mean over the last
axis:

$$
\frac{\partial L}{\partial x} = r\,\big(h - \hat x\,\overline{h \hat x}\big), \qquad
\frac{\partial L}{\partial \gamma} = \sum g\,\hat x
$$

Shapes: `x` (..., C), `gamma` (C,) -> `y` (..., C).  A transformer block uses it in place
of layer norm when its configuration says `norm="rms"` (Llama).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"d_model": 4})
def init(d_model: int) -> dict:
    r"""Fresh RMSNorm parameters: unit gain.

    Parameters
    ----------
    d_model : int
        Width `C` of the normalised axis (> 0).

    Returns
    -------
    params : dict
        `{"gamma": ones (C,)}`, float64.

    Raises
    ------
    TypeError
        If `d_model` is not an int.
    ValueError
        If `d_model` <= 0.
    """
    d_model = _checks.integer("rms_norm.init", "d_model", d_model, low=1)
    return {"gamma": np.ones(d_model)}


def _example(rng) -> dict:
    return {"x": rng.standard_normal((2, 4)),
            "params": {"gamma": 1 + 0.1 * rng.standard_normal(4)}, "eps": 1e-6}


@contract(example=_example, lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray, params: dict, eps: float = 1e-6):
    r"""Scale each row of `x` to unit root-mean-square, then by `gamma`.

    $$ r = \Big(\tfrac1C \sum_i x_i^2 + \epsilon\Big)^{-1/2}, \qquad y = \gamma \odot x\,r $$

    Parameters
    ----------
    x : ndarray, shape (..., C), floating
        Input; each row along the last axis is scaled on its own.
    params : dict
        `{"gamma": ndarray (C,)}`, floating. The result has NumPy's promoted dtype of `x`
        and `gamma` (both float32 in, float32 out).
    eps : float, default 1e-06
        Added to the mean square (> 0, finite); an all-zero row maps to zeros.

    Returns
    -------
    y : ndarray, shape (..., C)
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    `x_hat = x r` and `r` (new arrays) and the caller's `params["gamma"]` by reference: do
    not change `gamma` in place before the backward (`LLMREF_DEBUG_CACHE=1` verifies it).

    Raises
    ------
    TypeError
        If `x` or `gamma` is not a floating-point array, `params` not a dict, `eps` not a
        number.
    ValueError
        If `x` is 0-dimensional, empty or not finite, a key is missing or unknown, `gamma`
        is not of shape (C,), or `eps` is not > 0 and finite.
    """
    _checks.float_array("rms_norm.forward", "x", x, ndim_min=1)
    _check_params("rms_norm.forward", params, x.shape[-1])
    eps = _checks.number("rms_norm.forward", "eps", eps, low=0.0, strict=True)
    y, cache = _forward(x, params, eps)
    return y, _checks.guard("rms_norm.forward", cache, params={"gamma": params["gamma"]})


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 4)),
                               "cache": forward(**_example(rng))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradients of RMSNorm, with `h = g * gamma`.

    $$ \frac{\partial L}{\partial x} = r\,\big(h - \hat x\,\overline{h \hat x}\big), \qquad
       \frac{\partial L}{\partial \gamma} = \sum g\,\hat x $$

    Parameters
    ----------
    dout : ndarray, shape (..., C), floating
        Upstream gradient `g` = dL/dy.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": (..., C), "gamma": (C,)}`.

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf, or (debug mode) if
        `gamma` changed since the forward.
    """
    cache = _checks.unguard("rms_norm.backward", cache, 3)
    return _backward(_checks.dout_like("rms_norm.backward", dout, cache[0].shape), cache)


def _check_params(where: str, params, d_model: int, name: str = "params",
                  bias: bool | None = None) -> dict:
    """``{"gamma": (C,)}``.  ``bias`` is accepted for symmetry with layer norm and ignored:
    RMSNorm has no bias."""
    return _checks.params(where, params, {"gamma": (d_model,)}, name=name)


# Unchecked arithmetic.  A row mean is a matrix-vector product with (1/C, ..., 1/C), as in
# layer norm.

def _forward(x: np.ndarray, params: dict, eps: float):
    C = x.shape[-1]
    rows = x.reshape(-1, C)                                      # (N, C)
    mean_of = np.full(C, 1.0 / C, dtype=x.dtype)
    r = 1.0 / np.sqrt(np.square(rows) @ mean_of + eps)           # (N,)
    x_hat = rows * r[:, None]
    y = x_hat * params["gamma"]
    return y.reshape(x.shape), (x_hat.reshape(x.shape), r, params["gamma"])


def _backward(dout: np.ndarray, cache) -> dict:
    x_hat, r, gamma = cache
    C = x_hat.shape[-1]
    g, x_hat = dout.reshape(-1, C), x_hat.reshape(-1, C)         # (N, C)
    g_x_hat = g * x_hat
    d_gamma = g_x_hat.sum(axis=0)
    # dx = r * (h - x_hat * mean(h * x_hat)) with h = g * gamma
    mean_h_x_hat = g_x_hat @ (gamma / C)                         # (N,)
    dx = g * gamma
    dx -= x_hat * mean_h_x_hat[:, None]                          # in dx's dtype
    dx *= r[:, None]
    return {"x": dx.reshape(dout.shape), "gamma": d_gamma}
