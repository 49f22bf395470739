r"""Position-wise feed-forward network: Linear -> activation -> Linear.

.. math::  y = \phi(x W_1 + b_1)\, W_2 + b_2

Shapes: ``x`` (B, T, C) -> ``y`` (B, T, C), hidden width ``d_ff`` (usually 4C).
Parameters: ``{"fc": {"W": (C, d_ff), "b": (d_ff,)}, "proj": {"W": (d_ff, C), "b": (C,)}}``.
``activation`` is ``"relu"``, ``"gelu"`` (exact) or ``"gelu_tanh"`` (GPT-2).  Every position
is transformed on its own: position ``t`` of the output depends on position ``t`` of the input
only.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.layers import gelu, gelu_tanh, linear, relu

ACTIVATIONS = {"relu": relu, "gelu": gelu, "gelu_tanh": gelu_tanh}


def init(d_model: int, d_ff: int, rng: np.random.Generator, std: float = 0.02,
         proj_std: float | None = None) -> dict:
    return {"fc": linear.init(d_model, d_ff, rng, std=std),
            "proj": linear.init(d_ff, d_model, rng, std=std if proj_std is None else proj_std)}


def activation_module(where: str, activation: str):
    if activation not in ACTIVATIONS:
        raise ValueError(f"{where}: argument 'activation' must be one of "
                         f"{sorted(ACTIVATIONS)}, got {activation!r}")
    return ACTIVATIONS[activation]


def forward(x: np.ndarray, params: dict, activation: str = "gelu_tanh"):
    """``x`` (..., C) -> ``y`` (..., C), cache."""
    activation_module("ffn.forward", activation)
    _checks.float_array("ffn.forward", "x", x, ndim_min=1)
    _check_params("ffn.forward", params, x.shape[-1])
    return _forward(x, params, activation)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (..., C) -> ``{"x": (..., C), "fc": {"W", "b"}, "proj": {"W", "b"}}``."""
    x = cache[0][0]                                     # the input, kept by the first layer
    return _backward(_checks.dout_like("ffn.backward", dout, x.shape), cache)


def _check_params(where: str, params, d_model: int, name: str = "params") -> dict:
    _checks.keys(where, params, ("fc", "proj"), name)
    linear._check_params(where, params["fc"], d_model, None, f"{name}['fc']")
    d_ff = params["fc"]["W"].shape[1]
    linear._check_params(where, params["proj"], d_ff, d_model, f"{name}['proj']")
    return params


# Unchecked arithmetic, called by the transformer block after it checks its input.

def _forward(x, params, activation="gelu_tanh"):
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
