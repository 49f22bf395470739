r"""Position-wise feed-forward network: Linear -> activation -> Linear.

$$ h = x W_1 + b_1, \qquad a = \phi(h), \qquad y = a W_2 + b_2 $$

Backward, layer by layer from the top:

$$
\frac{\partial L}{\partial a} = g W_2^\top, \qquad
\frac{\partial L}{\partial h} = \frac{\partial L}{\partial a} \odot \phi'(h), \qquad
\frac{\partial L}{\partial x} = \frac{\partial L}{\partial h} W_1^\top
$$

(and the weight gradients of the two linear layers, as in `llmref.layers.linear`).
Shapes: `x` (..., C) -> `y` (..., C), hidden width `d_ff` (usually 4C).
Parameters: `{"fc": {"W": (C, d_ff), "b": (d_ff,)}, "proj": {"W": (d_ff, C), "b": (C,)}}`.
`activation` is `"relu"`, `"gelu"` (exact) or `"gelu_tanh"` (GPT-2).  Every position
is transformed on its own: position `t` of the output depends on position `t` of the input
only.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import gelu, gelu_tanh, linear, relu

ACTIVATIONS = {"relu": relu, "gelu": gelu, "gelu_tanh": gelu_tanh}


@contract(example=lambda rng: {"d_model": 4, "d_ff": 8, "rng": rng, "std": 0.02,
                               "proj_std": 0.01},
          lenient={"proj_std": ("none",)})
def init(d_model: int, d_ff: int, rng: np.random.Generator, std: float = 0.02,
         proj_std: float | None = None) -> dict:
    r"""Fresh feed-forward parameters: weights from N(0, std^2), zero biases.

    Parameters
    ----------
    d_model, d_ff : int
        Model width `C` and hidden width (> 0).
    rng : numpy.random.Generator
        Source of the random weights.
    std : float, default 0.02
        Standard deviation of both weight matrices (>= 0, finite).
    proj_std : float or None, default None
        Standard deviation of the output projection `W_2` instead (GPT-2 scales it down
        with depth); None for `std`.

    Returns
    -------
    params : dict
        `{"fc": {"W": (C, d_ff), "b": (d_ff,)}, "proj": {"W": (d_ff, C), "b": (C,)}}`,
        float64.

    Raises
    ------
    TypeError
        If a size is not an int, `rng` not a Generator, a std not a number.
    ValueError
        If a size is <= 0 or a std is negative, NaN or inf.
    """
    where = "ffn.init"
    d_model = _checks.integer(where, "d_model", d_model, low=1)
    d_ff = _checks.integer(where, "d_ff", d_ff, low=1)
    _checks.generator(where, "rng", rng)
    std = _checks.std(where, "std", std)
    proj_std = std if proj_std is None else _checks.std(where, "proj_std", proj_std)
    return {"fc": linear.init(d_model, d_ff, rng, std=std),
            "proj": linear.init(d_ff, d_model, rng, std=proj_std)}


@contract(example=lambda rng: {"where": "ffn.activation_module", "activation": "gelu"})
def activation_module(where: str, activation: str):
    r"""The activation module named `activation`, for a layer that takes the name.

    Parameters
    ----------
    where : str
        The public function to name in an error message (the caller's own name).
    activation : str
        `"relu"`, `"gelu"` or `"gelu_tanh"`.

    Returns
    -------
    module
        `llmref.layers.relu`, `gelu` or `gelu_tanh`.

    Raises
    ------
    TypeError
        If `where` or `activation` is not a str.
    ValueError
        If `activation` is not one of the names (the message is in `where`'s name).
    """
    _checks.string("ffn.activation_module", "where", where)
    return ACTIVATIONS[_checks.string(where, "activation", activation, ACTIVATIONS)]


def _params_example(rng) -> dict:
    return {"fc": {"W": rng.standard_normal((4, 8)), "b": rng.standard_normal(8)},
            "proj": {"W": rng.standard_normal((8, 4)), "b": rng.standard_normal(4)}}


def _example(rng) -> dict:
    return {"x": rng.standard_normal((2, 3, 4)), "params": _params_example(rng),
            "activation": "gelu_tanh"}


@contract(example=_example, lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray, params: dict, activation: str = "gelu_tanh"):
    r"""Transform every position of `x` on its own by two linear layers around `phi`.

    $$ y = \phi(x W_1 + b_1)\, W_2 + b_2 $$

    Parameters
    ----------
    x : ndarray, shape (..., C), floating
        Input, any number of leading axes.
    params : dict
        `{"fc": {"W": (C, d_ff), "b": (d_ff,)}, "proj": {"W": (d_ff, C), "b": (C,)}}`,
        floating arrays; the biases are optional. The result has NumPy's promoted dtype of
        `x` and the parameters (all float32 in, float32 out).
    activation : str, default 'gelu_tanh'
        `"relu"`, `"gelu"` (exact) or `"gelu_tanh"` (GPT-2's, the default).

    Returns
    -------
    y : ndarray, shape (..., C)
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The caller's `x` and the two weight matrices by reference, and the hidden activations
    (new arrays): do not change `x` or the weights in place before the backward
    (`LLMREF_DEBUG_CACHE=1` verifies it).

    Raises
    ------
    TypeError
        If `x` or a parameter is not a floating-point array, `params` or a part of it not
        a dict, `activation` not a str.
    ValueError
        If `x` is 0-dimensional, empty or not finite, a key is missing or unknown, the
        widths do not chain (C -> d_ff -> C), or `activation` is unknown.
    """
    activation_module("ffn.forward", activation)
    _checks.float_array("ffn.forward", "x", x, ndim_min=1)
    _check_params("ffn.forward", params, x.shape[-1])
    y, cache = _forward(x, params, activation)
    return y, _checks.guard("ffn.forward", cache, x=x, params={
        "fc": {"W": params["fc"]["W"]}, "proj": {"W": params["proj"]["W"]}})


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 3, 4)),
                               "cache": forward(**_example(rng))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradients of the feed-forward layer, through `proj`, `phi` and `fc` in turn.

    $$ \frac{\partial L}{\partial h} = (g W_2^\top) \odot \phi'(h), \qquad
       \frac{\partial L}{\partial x} = \frac{\partial L}{\partial h} W_1^\top $$

    Parameters
    ----------
    dout : ndarray, shape (..., C), floating
        Upstream gradient `g` = dL/dy.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": (..., C), "fc": {"W", "b"}, "proj": {"W", "b"}}`, shaped like the input and
        the parameters (no `"b"` for a layer without one).

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf, or (debug mode) if
        `x` or a weight changed since the forward.
    """
    cache = _checks.unguard("ffn.backward", cache, 4)
    x = cache[0][0]                                     # the input, kept by the first layer
    return _backward(_checks.dout_like("ffn.backward", dout, x.shape), cache)


def _check_params(where: str, params, d_model: int, name: str = "params",
                  bias: bool | None = None) -> dict:
    _checks.keys(where, params, ("fc", "proj"), name)
    linear._check_params(where, params["fc"], d_model, None, f"{name}['fc']", bias)
    d_ff = params["fc"]["W"].shape[1]
    linear._check_params(where, params["proj"], d_ff, d_model, f"{name}['proj']", bias)
    return params


# Unchecked arithmetic, called by the transformer block after it checks its input.

def _forward(x, params, activation):
    act = ACTIVATIONS[activation]
    h, fc_cache = linear._forward(x, params["fc"])
    a, act_cache = act._forward(h)
    y, proj_cache = linear._forward(a, params["proj"])
    return y, (fc_cache, act, act_cache, proj_cache)


def _backward(dout, cache) -> dict:
    fc_cache, act, act_cache, proj_cache = cache
    d_proj = linear._backward(dout, proj_cache)
    d_h = act._backward(d_proj.pop("x"), act_cache)["x"]
    d_fc = linear._backward(d_h, fc_cache)
    return {"x": d_fc.pop("x"), "fc": d_fc, "proj": d_proj}
