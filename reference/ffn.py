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

from reference import gelu, gelu_tanh, linear, relu

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
    act = activation_module("ffn.forward", activation)
    h, fc_cache = linear.forward(x, params["fc"])
    a, act_cache = act.forward(h)
    y, proj_cache = linear.forward(a, params["proj"])
    return y, (fc_cache, act, act_cache, proj_cache)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (..., C) -> ``{"x": (..., C), "fc": {"W", "b"}, "proj": {"W", "b"}}``."""
    fc_cache, act, act_cache, proj_cache = cache
    d_proj = linear.backward(dout, proj_cache)
    d_h = act.backward(d_proj.pop("x"), act_cache)["x"]
    d_fc = linear.backward(d_h, fc_cache)
    return {"x": d_fc.pop("x"), "fc": d_fc, "proj": d_proj}
