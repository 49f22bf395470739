r"""Transformer block: self-attention and feed-forward, each with a residual connection and a
layer norm, in either order.

Pre-norm (GPT-2 and most modern models, ``norm_first=True``):

.. math::  h = x + \mathrm{MHA}(\mathrm{LN}_1(x)), \qquad y = h + \mathrm{FFN}(\mathrm{LN}_2(h))

Post-norm (the original transformer, as lesson 003 draws it, ``norm_first=False``):

.. math::  h = \mathrm{LN}_1(x + \mathrm{MHA}(x)), \qquad y = \mathrm{LN}_2(h + \mathrm{FFN}(h))

Shapes: ``x`` (B, T, C) -> ``y`` (B, T, C).  Parameters:
``{"ln1": {"gamma", "beta"}, "attn": mha params, "ln2": {"gamma", "beta"}, "ffn": ffn params}``.
``residual=False`` drops the two ``x +`` / ``h +`` terms; it exists only to measure what the
residual connections do to gradients in deep stacks.

Backward: a residual sum sends its upstream gradient unchanged down both branches, so the
gradient of a block's input is the upstream gradient *plus* what comes back through the branch.
"""

from __future__ import annotations

import numpy as np

from reference import ffn, layer_norm, mha


def init(d_model: int, n_heads: int, d_ff: int, rng: np.random.Generator, std: float = 0.02,
         proj_std: float | None = None) -> dict:
    return {"ln1": layer_norm.init(d_model),
            "attn": mha.init(d_model, n_heads, rng, std, proj_std),
            "ln2": layer_norm.init(d_model),
            "ffn": ffn.init(d_model, d_ff, rng, std, proj_std)}


def forward(x: np.ndarray, params: dict, n_heads: int, norm_first: bool = True,
            activation: str = "gelu_tanh", causal: bool = True,
            key_padding_mask: np.ndarray | None = None, eps: float = 1e-5,
            residual: bool = True):
    """``x`` (B, T, C) -> ``y`` (B, T, C), cache."""
    keep = 1.0 if residual else 0.0
    if norm_first:
        a_in, ln1_c = layer_norm.forward(x, params["ln1"], eps)
        a, attn_c = mha.forward(a_in, params["attn"], n_heads, causal, key_padding_mask)
        h = keep * x + a
        f_in, ln2_c = layer_norm.forward(h, params["ln2"], eps)
        f, ffn_c = ffn.forward(f_in, params["ffn"], activation)
        y = keep * h + f
    else:
        a, attn_c = mha.forward(x, params["attn"], n_heads, causal, key_padding_mask)
        h, ln1_c = layer_norm.forward(keep * x + a, params["ln1"], eps)
        f, ffn_c = ffn.forward(h, params["ffn"], activation)
        y, ln2_c = layer_norm.forward(keep * h + f, params["ln2"], eps)
    return y, (norm_first, keep, ln1_c, attn_c, ln2_c, ffn_c)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (B, T, C) -> ``{"x": (B, T, C), "ln1", "attn", "ln2", "ffn": their grads}``."""
    norm_first, keep, ln1_c, attn_c, ln2_c, ffn_c = cache
    if norm_first:
        # y = keep*h + ffn(ln2(h))
        d_ffn = ffn.backward(dout, ffn_c)
        d_ln2 = layer_norm.backward(d_ffn.pop("x"), ln2_c)
        dh = keep * dout + d_ln2.pop("x")
        # h = keep*x + mha(ln1(x))
        d_attn = mha.backward(dh, attn_c)
        d_ln1 = layer_norm.backward(d_attn.pop("x"), ln1_c)
        dx = keep * dh + d_ln1.pop("x")
    else:
        # y = ln2(keep*h + ffn(h))
        d_ln2 = layer_norm.backward(dout, ln2_c)
        d_sum2 = d_ln2.pop("x")
        d_ffn = ffn.backward(d_sum2, ffn_c)
        dh = keep * d_sum2 + d_ffn.pop("x")
        # h = ln1(keep*x + mha(x))
        d_ln1 = layer_norm.backward(dh, ln1_c)
        d_sum1 = d_ln1.pop("x")
        d_attn = mha.backward(d_sum1, attn_c)
        dx = keep * d_sum1 + d_attn.pop("x")
    return {"x": dx, "ln1": d_ln1, "attn": d_attn, "ln2": d_ln2, "ffn": d_ffn}
