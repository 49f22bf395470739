r"""SwiGLU feed-forward (Shazeer 2020; Llama): a SiLU-gated linear unit, then a projection
back to the model width.

$$
y = \big(\mathrm{silu}(x W_{gate}) \odot x W_{up}\big)\, W_{down}
$$

Shapes: `x` (..., C) -> `y` (..., C), hidden width `d_ff` (Llama 2 7B: C = 4096,
d_ff = 11008).  Parameters (Hugging Face's `gate_proj`, `up_proj`, `down_proj`):
`{"gate": {"W": (C, d_ff)}, "up": {"W": (C, d_ff)}, "down": {"W": (d_ff, C)}}`.

Llama has no biases; a `"b"` in a part is used if present.  Three matrices instead of the
two of `ffn`, so at the same `d_ff` it has 1.5 times the weights.  Like the plain
feed-forward it acts on every position on its own.

Backward, with `g` the upstream gradient, `a = x W_gate`, `u = x W_up` and
`m = silu(a) * u`: `dm = g W_down^T`, `du = dm * silu(a)`, `da = silu'(a) * (dm * u)`, and
`dx = da W_gate^T + du W_up^T` (`x` feeds two layers, so its gradient is the sum of both).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import linear, silu


def _example_params(rng, C=4, F=6):
    return {"gate": {"W": rng.standard_normal((C, F))}, "up": {"W": rng.standard_normal((C, F))},
            "down": {"W": rng.standard_normal((F, C))}}


@contract(example=lambda rng: {"d_model": 4, "d_ff": 6, "rng": rng}, opaque=("rng",))
def init(d_model: int, d_ff: int, rng: np.random.Generator, std: float = 0.02,
         proj_std: float | None = None, bias: bool = False) -> dict:
    r"""Fresh SwiGLU parameters.

    Parameters
    ----------
    d_model : int
        Width `C` (> 0).
    d_ff : int
        Hidden width (> 0).
    rng : numpy.random.Generator
        Source of the random weights.
    std : float, default 0.02
        Standard deviation of the `gate` and `up` weights, N(0, std^2).
    proj_std : float, default None
        Standard deviation of the `down` weights (default: `std`).
    bias : bool, default False
        Give each part a zero bias (Llama has none).

    Returns
    -------
    params : dict
        `{"gate": {"W": (C, d_ff)}, "up": {"W": (C, d_ff)}, "down": {"W": (d_ff, C)}}`,
        float64 (each with a `"b"` when `bias`).

    Raises
    ------
    TypeError
        If a size is not an int.
    ValueError
        If a size is <= 0.
    """
    _checks.positive("swiglu.init", "d_model", d_model, integer=True)
    _checks.positive("swiglu.init", "d_ff", d_ff, integer=True)
    return {"gate": linear.init(d_model, d_ff, rng, bias, std),
            "up": linear.init(d_model, d_ff, rng, bias, std),
            "down": linear.init(d_ff, d_model, rng, bias, std if proj_std is None else proj_std)}


@contract(example=lambda rng: {"x": rng.standard_normal((2, 3, 4)),
                               "params": _example_params(rng)},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray, params: dict):
    r"""A SiLU-gated linear unit on every position of `x`, projected back to width C.

    $$ y = \big(\mathrm{silu}(x W_{gate}) \odot x W_{up}\big)\, W_{down} $$

    Parameters
    ----------
    x : ndarray, shape (..., C), floating
        Input, any number of leading axes.
    params : dict
        `{"gate": {"W": (C, d_ff)}, "up": {"W": (C, d_ff)}, "down": {"W": (d_ff, C)}}`,
        floating arrays, each part with an optional `"b"`.

    Returns
    -------
    y : ndarray, shape (..., C)
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The caller's `x` and the three weight matrices by reference, and the hidden activations
    (new arrays): do not change them in place before the backward (`LLMREF_DEBUG_CACHE=1`
    verifies it).

    Raises
    ------
    TypeError
        If `x` or a parameter is not a floating-point array, `params` or a part not a dict.
    ValueError
        If `x` is 0-dimensional, empty or not finite, a key is missing or unknown, or the
        widths do not chain (C -> d_ff -> C).
    """
    _checks.float_array("swiglu.forward", "x", x, ndim_min=1)
    _check_params("swiglu.forward", params, x.shape[-1])
    y, cache = _forward(x, params)
    return y, _checks.guard("swiglu.forward", cache, x=x, params={
        part: {"W": params[part]["W"]} for part in ("gate", "up", "down")})


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 3, 4)),
                               "cache": forward(rng.standard_normal((2, 3, 4)),
                                                _example_params(rng))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradients of SwiGLU, with `a = x W_gate`, `u = x W_up`, `m = silu(a) * u`.

    $$ \frac{\partial L}{\partial m} = g W_{down}^\top, \quad
       \frac{\partial L}{\partial u} = \frac{\partial L}{\partial m} \odot \mathrm{silu}(a),
       \quad \frac{\partial L}{\partial a} = \frac{\partial L}{\partial m} \odot u \odot
       \mathrm{silu}'(a) $$

    Parameters
    ----------
    dout : ndarray, shape (..., C), floating
        Upstream gradient `g` = dL/dy.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": (..., C), "gate": {"W"}, "up": {"W"}, "down": {"W"}}` (with `"b"` where the
        forward had biases).

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf, or (debug mode) if
        `x` or a weight changed since the forward.
    """
    cache = _checks.unguard("swiglu.backward", cache, 6)
    x = cache[0][0]                                     # the input, kept by the gate layer
    return _backward(_checks.dout_like("swiglu.backward", dout, x.shape), cache)


def _check_params(where: str, params, d_model: int, name: str = "params",
                  bias: bool | None = None) -> dict:
    _checks.keys(where, params, ("gate", "up", "down"), name)
    linear._check_params(where, params["gate"], d_model, None, f"{name}['gate']", bias)
    d_ff = params["gate"]["W"].shape[1]
    linear._check_params(where, params["up"], d_model, d_ff, f"{name}['up']", bias)
    linear._check_params(where, params["down"], d_ff, d_model, f"{name}['down']", bias)
    return params


# Unchecked arithmetic, called by the transformer block after it checks its input.

def _forward(x, params):
    a, gate_c = linear._forward(x, params["gate"])
    u, up_c = linear._forward(x, params["up"])
    h, silu_c = silu._forward(a)
    y, down_c = linear._forward(h * u, params["down"])
    return y, (gate_c, up_c, silu_c, h, u, down_c)


def _backward(dout, cache) -> dict:
    gate_c, up_c, silu_c, h, u, down_c = cache
    d_down = linear._backward(dout, down_c)
    dm = d_down.pop("x")
    # forward: m = h * u with h = silu(a)
    d_up = linear._backward(dm * h, up_c)
    d_gate = linear._backward(silu._backward(dm * u, silu_c)["x"], gate_c)
    dx = d_gate.pop("x")
    dx += d_up.pop("x")
    return {"x": dx, "gate": d_gate, "up": d_up, "down": d_down}
