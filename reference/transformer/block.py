r"""Transformer block: self-attention and feed-forward, each with a residual connection and a
layer norm, in either order.

Pre-norm (GPT-2 and most modern models, ``norm_first=True``):

$$ h = x + \mathrm{MHA}(\mathrm{LN}_1(x)), \qquad y = h + \mathrm{FFN}(\mathrm{LN}_2(h)) $$

Post-norm (the original transformer, as lesson 003 draws it, ``norm_first=False``):

$$ h = \mathrm{LN}_1(x + \mathrm{MHA}(x)), \qquad y = \mathrm{LN}_2(h + \mathrm{FFN}(h)) $$

Shapes: ``x`` (B, T, C) -> ``y`` (B, T, C).  Parameters:
``{"ln1": {"gamma", "beta"}, "attn": mha params, "ln2": {"gamma", "beta"}, "ffn": ffn params}``.
``residual=False`` drops the two ``x +`` / ``h +`` terms; it exists only to measure what the
residual connections do to gradients in deep stacks.

Backward: a residual sum sends its upstream gradient unchanged down both branches, so the
gradient of a block's input is the upstream gradient *plus* what comes back through the branch.

The same block is a Llama block with these options (skip them on a first reading):
``norm="rms"`` (`llmref.rms_norm`, whose parameters are ``{"gamma"}`` only),
``activation="swiglu"`` (`llmref.swiglu` as the feed-forward), and the attention
options of `llmref.mha`: ``n_kv_heads``, ``rope_theta`` and ``positions``, separate
q/k/v projections, no biases.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import ffn, layer_norm, linear, rms_norm, swiglu
from llmref.transformer import attention, mha

NORMS = {"layer": layer_norm, "rms": rms_norm}


def _example(rng):
    return {"x": rng.standard_normal((2, 3, 8)), "params": init(8, 2, 16, rng, std=0.5),
            "n_heads": 2, "norm_first": True, "activation": "gelu_tanh", "causal": True,
            "key_padding_mask": np.array([[False] * 3, [False, False, True]]), "eps": 1e-5,
            "residual": True, "norm": "layer", "n_kv_heads": 2, "rope_theta": 100.0,
            "positions": rng.integers(0, 9, (2, 3))}


@contract(example=lambda rng: {"d_model": 8, "n_heads": 2, "d_ff": 16, "rng": rng,
                               "std": 0.02, "proj_std": 0.01},
          lenient={"std": ("zero",), "proj_std": ("none",)})
def init(d_model: int, n_heads: int, d_ff: int, rng: np.random.Generator, std: float = 0.02,
         proj_std: float | None = None) -> dict:
    r"""A GPT-2 block's parameters (the GPT's `gpt.init` makes every kind).

    $$ W \sim \mathcal{N}(0, \sigma^2), \qquad b = 0, \qquad \gamma = 1, \qquad \beta = 0 $$

    Parameters
    ----------
    d_model : int
        Width C (>= 1), divisible by `n_heads`.
    n_heads : int
        Number of heads (>= 1).
    d_ff : int
        Hidden width of the feed-forward (>= 1).
    rng : numpy.random.Generator
        Source of the random weights.
    std : float, default 0.02
        Standard deviation of the weights (>= 0).
    proj_std : float, default None
        Standard deviation of the output projections (default: `std`).

    Returns
    -------
    params : dict
        `{"ln1", "attn", "ln2", "ffn"}`.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If a width or number of heads is invalid or a standard deviation negative.
    """
    where = "block.init"
    mha.check_heads(where, d_model, n_heads)              # d_model too: an int >= 1
    _checks.integer(where, "d_ff", d_ff, low=1)
    _checks.generator(where, "rng", rng)
    std = _checks.std(where, "std", std)
    if proj_std is not None:
        proj_std = _checks.std(where, "proj_std", proj_std)
    return {"ln1": layer_norm.init(d_model),
            "attn": mha.init(d_model, n_heads, rng, std, proj_std),
            "ln2": layer_norm.init(d_model),
            "ffn": ffn.init(d_model, d_ff, rng, std, proj_std)}


def _norm_module(where: str, norm: str):
    if norm not in NORMS:
        raise ValueError(f"{where}: argument 'norm' must be one of {sorted(NORMS)}, "
                         f"got {norm!r}")
    return NORMS[norm]


def _feed_forward_module(where: str, activation: str):
    """`llmref.swiglu` for ``"swiglu"``, else `llmref.ffn` (checking the
    activation's name: a message lists swiglu with the feed-forward's activations)."""
    _checks.string(where, "activation", activation, [*ffn.ACTIVATIONS, "swiglu"])
    return swiglu if activation == "swiglu" else ffn


@contract(example=_example, lenient={"key_padding_mask": ("none",), "n_kv_heads": ("none",),
                                     "rope_theta": ("none",), "positions": ("none",)})
def forward(x: np.ndarray, params: dict, n_heads: int, norm_first: bool = True,
            activation: str = "gelu_tanh", causal: bool = True,
            key_padding_mask: np.ndarray | None = None, eps: float = 1e-5,
            residual: bool = True, *, norm: str = "layer", n_kv_heads: int | None = None,
            rope_theta: float | None = None, positions: np.ndarray | None = None):
    r"""One transformer block (pre-norm shown; post-norm with `norm_first=False`).

    $$ h = x + \mathrm{MHA}(\mathrm{LN}_1(x)), \qquad y = h + \mathrm{FFN}(\mathrm{LN}_2(h)) $$

    Parameters
    ----------
    x : ndarray, shape (B, T, C), floating
        Input.
    params : dict
        `{"ln1", "attn", "ln2", "ffn"}`.
    n_heads : int
        Number of query heads (>= 1, dividing C).
    norm_first : bool, default True
        Pre-norm (True) or post-norm (False).
    activation : str, default 'gelu_tanh'
        The feed-forward's activation (`"gelu_tanh"`, `"gelu"`, `"relu"`, ...) or
        `"swiglu"`.
    causal : bool, default True
        Causal mask.
    key_padding_mask : ndarray of bool, shape (B, T), default None
        True marks a padding position. Must be boolean.
    eps : float, default 1e-05
        The norms' epsilon (> 0).
    residual : bool, default True
        Whether to add the residual connections.
    norm : str, default 'layer'
        `"layer"` or `"rms"`.
    n_kv_heads : int, default None
        Number of key/value heads, dividing `n_heads`.
    rope_theta : float, default None
        Base of the rotary embedding (> 0); None: none.
    positions : ndarray of int, shape (T,) or (B, T), default None
        Rotary positions (default 0 .. T-1).

    Returns
    -------
    y : ndarray, shape (B, T, C)
        Output.
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The order flags, the norm and feed-forward modules and every sub-layer's cache, which
    hold `x` and the weights by reference: do not change them in place before the backward
    (`LLMREF_DEBUG_CACHE=1` verifies it).  The output is a new array the cache does not
    hold.

    Raises
    ------
    TypeError
        If an argument has the wrong type or dtype.
    ValueError
        If a shape, a name or a value is invalid.
    """
    where = "block.forward"
    _checks.float_array(where, "x", x, ndim=3)
    mha.check_heads(where, x.shape[-1], n_heads, n_kv_heads)
    for name, flag in (("norm_first", norm_first), ("causal", causal), ("residual", residual)):
        _checks.boolean(where, name, flag)
    _checks.string(where, "activation", activation)
    _checks.string(where, "norm", norm)
    _feed_forward_module(where, activation)
    _norm_module(where, norm)
    _check_params(where, params, x.shape[-1], n_heads, norm=norm, activation=activation,
                  n_kv_heads=n_kv_heads)
    attention._check_mask(where, key_padding_mask, x.shape[0], x.shape[1])
    _checks.positive(where, "eps", eps)
    tables = None
    if rope_theta is not None:
        _checks.positive(where, "rope_theta", rope_theta)
        head_dim = mha._inner_width(params["attn"], n_heads, n_kv_heads) // n_heads
        positions = np.arange(x.shape[1]) if positions is None else positions
        tables = mha._check_positions(where, positions, x.shape[0], x.shape[1], head_dim,
                                     rope_theta, x.dtype)
    y, cache = _forward(x, params, n_heads, norm_first, activation, causal, key_padding_mask,
                        eps, residual, norm, n_kv_heads, tables)
    return y, _checks.guard("block.forward", cache, x=x, params=params)


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 3, 8)),
                               "cache": forward(**_example(rng))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    """Gradients of a transformer block.

    Parameters
    ----------
    dout : ndarray, shape (B, T, C), floating
        Upstream gradient.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": (B, T, C), "ln1", "attn", "ln2", "ffn": their gradients}`.

    Raises
    ------
    TypeError
        If `dout` is not a floating-point array.
    ValueError
        If `dout` has the wrong shape or holds NaN or inf.
    """
    cache = _checks.unguard("block.backward", cache, 8)
    shape = cache[-1][0].shape                          # the attention's input: (B, T, C)
    return _backward(_checks.dout_like("block.backward", dout, shape), cache)


def _check_params(where: str, params, d_model: int, n_heads: int, name: str = "params", *,
                  norm: str, activation: str, n_kv_heads: int | None,
                  bias: bool | None = None, fused: bool | None = None) -> dict:
    """``activation``: ``"swiglu"`` expects SwiGLU parameters, anything else the plain
    feed-forward's; ``bias`` and ``fused`` as in `llmref.mha._check_params`."""
    _checks.keys(where, params, ("ln1", "attn", "ln2", "ffn"), name)
    norm_mod = NORMS[norm]
    norm_mod._check_params(where, params["ln1"], d_model, f"{name}['ln1']", bias)
    mha._check_params(where, params["attn"], d_model, n_heads, f"{name}['attn']",
                      n_kv_heads=n_kv_heads, bias=bias, fused=fused)
    linear._check_params(where, params["attn"]["proj"], None, d_model,      # residual width
                         f"{name}['attn']['proj']")        # (mha checked its bias)
    norm_mod._check_params(where, params["ln2"], d_model, f"{name}['ln2']", bias)
    ff = _feed_forward_module(where, activation)
    ff._check_params(where, params["ffn"], d_model, f"{name}['ffn']", bias)
    return params


# Unchecked arithmetic, called by the GPT after it checks its input.  The residual sums are
# done in place on the branch outputs, which are fresh arrays nothing else holds.  ``tables``
# (rotary cos/sin) and ``past`` (cached keys and values) go to the attention, see
# `llmref.mha._forward`.

def _forward(x, params, n_heads, norm_first, activation, causal, key_padding_mask, eps,
             residual, norm, n_kv_heads, tables, past=None):
    nm = NORMS[norm]
    ff = swiglu if activation == "swiglu" else ffn
    ff_args = () if activation == "swiglu" else (activation,)

    def attend(a):
        return mha._forward(a, params["attn"], n_heads, causal, key_padding_mask, n_kv_heads,
                            tables, past)

    if norm_first:
        a_in, ln1_c = nm._forward(x, params["ln1"], eps)
        h, attn_c = attend(a_in)
        if residual:
            h += x                                      # h = x + mha(ln1(x))
        f_in, ln2_c = nm._forward(h, params["ln2"], eps)
        y, ffn_c = ff._forward(f_in, params["ffn"], *ff_args)
        if residual:
            y += h                                      # y = h + ffn(ln2(h))
    else:
        a, attn_c = attend(x)
        if residual:
            a += x
        h, ln1_c = nm._forward(a, params["ln1"], eps)    # h = ln1(x + mha(x))
        f, ffn_c = ff._forward(h, params["ffn"], *ff_args)
        if residual:
            f += h
        y, ln2_c = nm._forward(f, params["ln2"], eps)    # y = ln2(h + ffn(h))
    return y, (norm_first, residual, nm, ff, ln1_c, ln2_c, ffn_c, attn_c)


def _backward(dout, cache) -> dict:
    norm_first, residual, nm, ff, ln1_c, ln2_c, ffn_c, attn_c = cache
    if norm_first:
        # y = h + ffn(ln2(h)): dh = dout + what comes back through the branch
        d_ffn = ff._backward(dout, ffn_c)
        d_ln2 = nm._backward(d_ffn.pop("x"), ln2_c)
        dh = d_ln2.pop("x")
        if residual:
            dh += dout
        # h = x + mha(ln1(x))
        d_attn = mha._backward(dh, attn_c)
        d_ln1 = nm._backward(d_attn.pop("x"), ln1_c)
        dx = d_ln1.pop("x")
        if residual:
            dx += dh
    else:
        # y = ln2(h + ffn(h))
        d_ln2 = nm._backward(dout, ln2_c)
        d_sum2 = d_ln2.pop("x")
        d_ffn = ff._backward(d_sum2, ffn_c)
        dh = d_ffn.pop("x")
        if residual:
            dh += d_sum2
        # h = ln1(x + mha(x))
        d_ln1 = nm._backward(dh, ln1_c)
        d_sum1 = d_ln1.pop("x")
        d_attn = mha._backward(d_sum1, attn_c)
        dx = d_attn.pop("x")
        if residual:
            dx += d_sum1
    return {"x": dx, "ln1": d_ln1, "attn": d_attn, "ln2": d_ln2, "ffn": d_ffn}


def _present(cache) -> tuple:
    """The attention's keys and values of every position so far (for a KV cache)."""
    return mha._present(cache[-1])
