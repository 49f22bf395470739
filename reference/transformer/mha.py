r"""Multi-head causal self-attention with a fused Q, K, V projection and an output projection.

.. math::
    [Q\;K\;V] = x W_{qkv} + b_{qkv}, \qquad
    \mathrm{head}_h = \mathrm{attention}(Q_h, K_h, V_h), \qquad
    y = [\mathrm{head}_1 \dots \mathrm{head}_H]\, W_o + b_o

Shapes: ``x`` (B, T, C) -> ``y`` (B, T, C); ``C = H * D``.  Parameters (GPT-2's ``c_attn`` and
``c_proj``): ``{"qkv": {"W": (C, 3C), "b": (3C,)}, "proj": {"W": (C, C), "b": (C,)}}``.
Columns ``[0, C)`` of ``W_qkv`` make the queries, ``[C, 2C)`` the keys, ``[2C, 3C)`` the values;
within each, head ``h`` owns columns ``[h D, (h + 1) D)``.

The backward runs the same steps in reverse: output projection, merge of the heads, attention,
split into heads, Q/K/V projection (whose input gradient is the gradient of ``x``).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.layers import linear
from llmref.transformer import attention


def init(d_model: int, n_heads: int, rng: np.random.Generator, std: float = 0.02,
         proj_std: float | None = None) -> dict:
    """Parameters for ``d_model`` C and ``n_heads`` H (weights ~ N(0, std^2), biases 0)."""
    check_heads("mha.init", d_model, n_heads)
    return {"qkv": linear.init(d_model, 3 * d_model, rng, std=std),
            "proj": linear.init(d_model, d_model, rng, std=std if proj_std is None else proj_std)}


def check_heads(where: str, d_model: int, n_heads: int) -> None:
    _checks.positive(where, "n_heads", n_heads, integer=True)
    if d_model % n_heads:
        raise ValueError(f"{where}: argument 'n_heads' must divide d_model = {d_model}, "
                         f"got n_heads = {n_heads}")


def _split_qkv(qkv: np.ndarray, n_heads: int):
    """(B, T, 3C) -> three contiguous (B, H, T, D) arrays, in one copy."""
    B, T, C3 = qkv.shape
    D = C3 // (3 * n_heads)
    q, k, v = np.ascontiguousarray(qkv.reshape(B, T, 3, n_heads, D).transpose(2, 0, 3, 1, 4))
    return q, k, v


def _merge_qkv(dq: np.ndarray, dk: np.ndarray, dv: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_split_qkv`: three (B, H, T, D) -> (B, T, 3C), in one copy."""
    B, H, T, D = dq.shape
    out = np.empty((B, T, 3, H, D), dtype=np.result_type(dq, dk, dv))
    for i, part in enumerate((dq, dk, dv)):
        out[:, :, i] = part.transpose(0, 2, 1, 3)
    return out.reshape(B, T, 3 * H * D)


def _merge(t: np.ndarray) -> np.ndarray:
    B, H, T, D = t.shape                                # (B, H, T, D) -> (B, T, C)
    return t.transpose(0, 2, 1, 3).reshape(B, T, H * D)


def _split(t: np.ndarray, n_heads: int) -> np.ndarray:
    B, T, C = t.shape                                   # (B, T, C) -> (B, H, T, D)
    return np.ascontiguousarray(t.reshape(B, T, n_heads, C // n_heads).transpose(0, 2, 1, 3))


def forward(x: np.ndarray, params: dict, n_heads: int, causal: bool = True,
            key_padding_mask: np.ndarray | None = None):
    """``x`` (B, T, C) -> ``y`` (B, T, C), cache."""
    _checks.float_array("mha.forward", "x", x, ndim=3)
    check_heads("mha.forward", x.shape[-1], n_heads)
    _check_params("mha.forward", params, x.shape[-1], n_heads)
    attention._check_mask("mha.forward", key_padding_mask, x.shape[0], x.shape[1])
    return _forward(x, params, n_heads, causal, key_padding_mask)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (B, T, C) -> ``{"x": (B, T, C), "qkv": {"W", "b"}, "proj": {"W", "b"}}``."""
    x, w_proj = cache[0][0], cache[2][1]                # the input and the output projection
    return _backward(_checks.dout_like("mha.backward", dout, x.shape[:-1] + w_proj.shape[1:]),
                     cache)


def _check_params(where: str, params, d_model: int, n_heads: int,
                  name: str = "params") -> dict:
    """Q/K/V projection (C, 3 C_inner) with C_inner a multiple of ``n_heads`` (usually
    C_inner = C), output projection (C_inner, C_out)."""
    _checks.keys(where, params, ("qkv", "proj"), name)
    linear._check_params(where, params["qkv"], d_model, None, f"{name}['qkv']")
    width = params["qkv"]["W"].shape[1]
    if width % (3 * n_heads):
        raise ValueError(f"{where}: argument {name}['qkv']['W'] must have a number of columns "
                         f"divisible by 3 * n_heads = {3 * n_heads}, got shape "
                         f"{params['qkv']['W'].shape}")
    linear._check_params(where, params["proj"], width // 3, None, f"{name}['proj']")
    return params


# Unchecked arithmetic, called by the transformer block after it checks its input.

def _forward(x, params, n_heads, causal=True, key_padding_mask=None):
    qkv, qkv_cache = linear._forward(x, params["qkv"])
    q, k, v = _split_qkv(qkv, n_heads)
    heads, att_cache = attention._forward(q, k, v, causal, key_padding_mask)
    y, proj_cache = linear._forward(_merge(heads), params["proj"])
    return y, (qkv_cache, att_cache, proj_cache, n_heads)


def _backward(dout, cache) -> dict:
    qkv_cache, att_cache, proj_cache, n_heads = cache
    d_proj = linear._backward(dout, proj_cache)
    d_att = attention._backward(_split(d_proj.pop("x"), n_heads), att_cache)
    d_qkv = linear._backward(_merge_qkv(d_att["q"], d_att["k"], d_att["v"]), qkv_cache)
    return {"x": d_qkv.pop("x"), "qkv": d_qkv, "proj": d_proj}
