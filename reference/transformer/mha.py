r"""Multi-head causal self-attention: Q, K, V projections, attention per head, an output
projection.

$$ [Q\;K\;V] = x W_{qkv} + b_{qkv}, \qquad
   \mathrm{head}_h = \mathrm{attention}(Q_h, K_h, V_h), \qquad
   y = [\mathrm{head}_1 \dots \mathrm{head}_H]\, W_o + b_o $$

Shapes: ``x`` (B, T, C) -> ``y`` (B, T, C); ``C = H * D``.  Parameters (GPT-2's ``c_attn`` and
``c_proj``): ``{"qkv": {"W": (C, 3C), "b": (3C,)}, "proj": {"W": (C, C), "b": (C,)}}``.
Columns ``[0, C)`` of ``W_qkv`` make the queries, ``[C, 2C)`` the keys, ``[2C, 3C)`` the values;
within each, head ``h`` owns columns ``[h D, (h + 1) D)``.

The backward runs the same steps in reverse: output projection, merge of the heads, attention,
split into heads, Q/K/V projection (whose input gradient is the gradient of ``x``).

Options a Llama-style model uses (each can be skipped on a first reading):

- separate projections ``{"q": {"W": (C, H D)}, "k": {"W": (C, H_kv D)},
  "v": {"W": (C, H_kv D)}, "proj": {"W": (H D, C)}}`` instead of the fused ``"qkv"``; then
  ``x`` feeds three layers and its gradient is the sum of their three input gradients;
- ``n_kv_heads`` (``H_kv``, dividing ``H``): grouped-query attention, fewer key/value heads
  than query heads (with a fused ``"qkv"`` its columns are ``H D`` queries, ``H_kv D`` keys,
  ``H_kv D`` values);
- ``rope_theta``: queries and keys are rotated by `llmref.rope` at their ``positions``
  (default ``0 .. T-1``) before the scores; the backward rotates their gradients back;
- no ``"b"`` in a projection: no bias.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import linear, rope
from llmref.transformer import attention


def _example(rng):
    return {"x": rng.standard_normal((2, 3, 8)), "params": init(8, 2, rng, std=0.5),
            "n_heads": 2, "causal": True,
            "key_padding_mask": np.array([[False] * 3, [False, False, True]]),
            "n_kv_heads": 2, "rope_theta": 100.0, "positions": rng.integers(0, 9, (2, 3))}


@contract(example=lambda rng: {"d_model": 8, "n_heads": 2, "rng": rng, "std": 0.02,
                               "proj_std": 0.01},
          lenient={"std": ("zero",), "proj_std": ("none",)})
def init(d_model: int, n_heads: int, rng: np.random.Generator, std: float = 0.02,
         proj_std: float | None = None) -> dict:
    r"""Parameters of multi-head attention (fused Q/K/V projection).

    $$ W \sim \mathcal{N}(0, \sigma^2), \qquad b = 0 $$

    Parameters
    ----------
    d_model : int
        Width C (>= 1), divisible by `n_heads`.
    n_heads : int
        Number of heads H (>= 1).
    rng : numpy.random.Generator
        Source of the random weights.
    std : float, default 0.02
        Standard deviation of the weights (>= 0).
    proj_std : float, default None
        Standard deviation of the output projection (default: `std`).

    Returns
    -------
    params : dict
        `{"qkv": {"W": (C, 3C), "b": (3C,)}, "proj": {"W": (C, C), "b": (C,)}}`.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If `d_model` or `n_heads` < 1, `n_heads` does not divide `d_model`, or a standard
        deviation is negative or not finite.
    """
    where = "mha.init"
    check_heads(where, d_model, n_heads)              # d_model too: an int >= 1
    _checks.generator(where, "rng", rng)
    std = _checks.std(where, "std", std)
    if proj_std is not None:
        proj_std = _checks.std(where, "proj_std", proj_std)
    return {"qkv": linear.init(d_model, 3 * d_model, rng, std=std),
            "proj": linear.init(d_model, d_model, rng, std=std if proj_std is None else proj_std)}


@contract(example=lambda rng: {"where": "mha.check_heads", "d_model": 8, "n_heads": 4,
                               "n_kv_heads": 2},
          lenient={"n_kv_heads": ("none",)})
def check_heads(where: str, d_model: int, n_heads: int, n_kv_heads: int | None = None) -> None:
    """Check a number of heads (and of key/value heads) against a width.

    Parameters
    ----------
    where : str
        The name of the calling function, for the error messages.
    d_model : int
        Width C (>= 1).
    n_heads : int
        Number of query heads H (>= 1), dividing C.
    n_kv_heads : int, default None
        Number of key/value heads (>= 1), dividing H.

    Raises
    ------
    TypeError
        If an argument is not an int (`where` not a str).
    ValueError
        If a number is < 1 or does not divide what it must.
    """
    if not isinstance(where, str):
        raise TypeError(f"mha.check_heads: argument 'where' must be a str, "
                        f"got {_checks._describe(where)}")
    _checks.integer(where, "d_model", d_model, low=1)
    _checks.positive(where, "n_heads", n_heads, integer=True)
    if d_model % n_heads:
        raise ValueError(f"{where}: argument 'n_heads' must divide d_model = {d_model}, "
                         f"got n_heads = {n_heads}")
    if n_kv_heads is not None:
        _checks.positive(where, "n_kv_heads", n_kv_heads, integer=True)
        if n_heads % n_kv_heads:
            raise ValueError(f"{where}: argument 'n_kv_heads' must divide n_heads = {n_heads}, "
                             f"got n_kv_heads = {n_kv_heads}")


@contract(example=_example, lenient={"key_padding_mask": ("none",), "n_kv_heads": ("none",),
                                     "rope_theta": ("none",), "positions": ("none",)})
def forward(x: np.ndarray, params: dict, n_heads: int, causal: bool = True,
            key_padding_mask: np.ndarray | None = None, *, n_kv_heads: int | None = None,
            rope_theta: float | None = None, positions: np.ndarray | None = None):
    r"""Multi-head self-attention.

    $$ y = [\mathrm{head}_1 \dots \mathrm{head}_H]\, W_o + b_o, \qquad
       \mathrm{head}_h = \mathrm{attention}(Q_h, K_h, V_h) $$

    Parameters
    ----------
    x : ndarray, shape (B, T, C), floating
        Input.
    params : dict
        Fused `{"qkv", "proj"}` or separate `{"q", "k", "v", "proj"}` projections.
    n_heads : int
        Number of query heads H (>= 1, dividing C).
    causal : bool, default True
        Causal mask.
    key_padding_mask : ndarray of bool, shape (B, T), default None
        True marks a padding position. Must be boolean.
    n_kv_heads : int, default None
        Number of key/value heads (grouped-query attention), dividing H.
    rope_theta : float, default None
        Base of the rotary embedding (> 0); None: no rotation.
    positions : ndarray of int, shape (T,) or (B, T), default None
        Rotary positions (default 0 .. T-1); used only with `rope_theta`.

    Returns
    -------
    y : ndarray, shape (B, T, C)
        Output.
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The input, the projections' and attention's caches, the rotary tables and the keys and
    values of every position (what a KV cache keeps).  `x` and the weights are held by
    reference: do not change them in place before the backward (`LLMREF_DEBUG_CACHE=1`
    verifies it).  The output is a new array the cache does not hold.

    Raises
    ------
    TypeError
        If an argument has the wrong type or dtype.
    ValueError
        If a shape, a number of heads or a value is invalid.
    """
    where = "mha.forward"
    _checks.float_array(where, "x", x, ndim=3)
    check_heads(where, x.shape[-1], n_heads, n_kv_heads)
    _checks.boolean(where, "causal", causal)
    _check_params(where, params, x.shape[-1], n_heads, n_kv_heads=n_kv_heads)
    attention._check_mask(where, key_padding_mask, x.shape[0], x.shape[1])
    tables = None
    if rope_theta is not None:
        _checks.positive(where, "rope_theta", rope_theta)
        head_dim = _inner_width(params, n_heads, n_kv_heads) // n_heads
        positions = np.arange(x.shape[1]) if positions is None else positions
        tables = _check_positions(where, positions, x.shape[0], x.shape[1], head_dim,
                                 rope_theta, x.dtype)
    y, cache = _forward(x, params, n_heads, causal, key_padding_mask, n_kv_heads, tables)
    return y, _checks.guard("mha.forward", cache, x=x, params=params)


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 3, 8)),
                               "cache": forward(**_example(rng))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    """Gradients of multi-head attention.

    Parameters
    ----------
    dout : ndarray, shape (B, T, C), floating
        Upstream gradient.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": (B, T, C), "qkv": {"W", "b"}, "proj": {"W", "b"}}` (or `"q"`, `"k"`, `"v"`
        for separate projections).

    Raises
    ------
    TypeError
        If `dout` is not a floating-point array.
    ValueError
        If `dout` has the wrong shape or holds NaN or inf.
    """
    cache = _checks.unguard("mha.backward", cache, 8)
    x, w_proj = cache[0], cache[4][1]                  # the input and the output projection
    return _backward(_checks.dout_like("mha.backward", dout, x.shape[:-1] + w_proj.shape[1:]),
                     cache)


def _check_positions(where: str, positions, B: int, T: int, head_dim: int, theta: float,
                    dtype):
    """Check rotary ``positions`` ((T,) or (B, T) ints >= 0, an even head dimension) and
    return the cos/sin tables of the rotary embedding."""
    _checks.int_array(where, "positions", positions, 0, np.iinfo(np.int64).max)
    if positions.shape not in ((T,), (B, T)):
        raise ValueError(f"{where}: argument 'positions' must have shape (T,) = ({T},) or "
                         f"(B, T) = ({B}, {T}), got shape {positions.shape}")
    if head_dim % 2:
        raise ValueError(f"{where}: rotary embeddings need an even head dimension, got "
                         f"{head_dim}")
    return rope._tables(positions, head_dim, theta, dtype)


def _inner_width(params: dict, n_heads: int, n_kv_heads: int | None) -> int:
    """``H D``: the width of the queries (and of the merged heads)."""
    if "qkv" in params:
        n_kv = n_heads if n_kv_heads is None else n_kv_heads
        return params["qkv"]["W"].shape[1] // (n_heads + 2 * n_kv) * n_heads
    return params["q"]["W"].shape[1]


def _check_params(where: str, params, d_model: int, n_heads: int, name: str = "params", *,
                  n_kv_heads: int | None = None, bias: bool | None = None,
                  fused: bool | None = None) -> dict:
    """Fused Q/K/V projection (C, (H + 2 H_kv) D) or separate ones (C, H D), (C, H_kv D),
    (C, H_kv D); output projection (H D, C_out) (usually C_inner = H D = C).  ``fused``: True
    or False requires that layout, None accepts either; ``bias`` as in
    `llmref.linear._check_params`."""
    n_kv = n_heads if n_kv_heads is None else n_kv_heads
    if fused is None:
        fused = isinstance(params, dict) and "qkv" in params
    if fused:
        _checks.keys(where, params, ("qkv", "proj"), name)
        linear._check_params(where, params["qkv"], d_model, None, f"{name}['qkv']", bias)
        width = params["qkv"]["W"].shape[1]
        parts = n_heads + 2 * n_kv
        if width % parts:
            what = f"3 * n_heads = {3 * n_heads}" if n_kv == n_heads else \
                f"n_heads + 2 * n_kv_heads = {parts}"
            raise ValueError(f"{where}: argument {name}['qkv']['W'] must have a number of "
                             f"columns divisible by {what}, got shape "
                             f"{params['qkv']['W'].shape}")
        inner = width // parts * n_heads
    else:
        _checks.keys(where, params, ("q", "k", "v", "proj"), name)
        linear._check_params(where, params["q"], d_model, None, f"{name}['q']", bias)
        inner = params["q"]["W"].shape[1]
        if inner % n_heads:
            raise ValueError(f"{where}: argument {name}['q']['W'] must have a number of "
                             f"columns divisible by n_heads = {n_heads}, got shape "
                             f"{params['q']['W'].shape}")
        kv_width = inner // n_heads * n_kv
        linear._check_params(where, params["k"], d_model, kv_width, f"{name}['k']", bias)
        linear._check_params(where, params["v"], d_model, kv_width, f"{name}['v']", bias)
    linear._check_params(where, params["proj"], inner, None, f"{name}['proj']", bias)
    return params


def _split(t: np.ndarray, n_heads: int) -> np.ndarray:
    """(B, T, C) -> (B, H, T, D), always a fresh array (never a view that would keep the
    whole fused projection alive)."""
    B, T, C = t.shape
    return t.reshape(B, T, n_heads, C // n_heads).transpose(0, 2, 1, 3).copy()


def _merge(t: np.ndarray) -> np.ndarray:
    B, H, T, D = t.shape                                # (B, H, T, D) -> (B, T, C)
    return t.transpose(0, 2, 1, 3).reshape(B, T, H * D)


def _split_qkv(qkv: np.ndarray, n_heads: int, n_kv: int):
    """(B, T, (H + 2 H_kv) D) -> q (B, H, T, D), k and v (B, H_kv, T, D), contiguous."""
    D = qkv.shape[-1] // (n_heads + 2 * n_kv)
    q_end, k_end = n_heads * D, (n_heads + n_kv) * D
    return (_split(qkv[..., :q_end], n_heads), _split(qkv[..., q_end:k_end], n_kv),
            _split(qkv[..., k_end:], n_kv))


def _merge_qkv(dq: np.ndarray, dk: np.ndarray, dv: np.ndarray) -> np.ndarray:
    """The inverse of `_split_qkv`, written into one new (B, T, (H + 2 H_kv) D) array."""
    B, H, T, D = dq.shape
    n_kv = dk.shape[1]
    out = np.empty((B, T, (H + 2 * n_kv) * D), dtype=np.result_type(dq, dk, dv))
    start = 0
    for part in (dq, dk, dv):
        width = part.shape[1] * D
        out[..., start:start + width] = _merge(part)
        start += width
    return out


# Unchecked arithmetic, called by the transformer block after it checks its input.
# ``tables``: the rotary (cos, sin) or None; ``past``: cached (k, v) of earlier positions
# (B, H_kv, P, D) each, or None.  The cache ends with the keys and values of every position
# so far (after rotation): what a KV cache keeps, see `_present`.

def _forward(x, params, n_heads, causal, key_padding_mask, n_kv_heads, tables, past=None):
    n_kv = n_heads if n_kv_heads is None else n_kv_heads
    if "qkv" in params:
        qkv, qkv_cache = linear._forward(x, params["qkv"])
        q, k, v = _split_qkv(qkv, n_heads, n_kv)
        in_caches = {"qkv": qkv_cache}
    else:
        (q, q_cache), (k, k_cache), (v, v_cache) = (linear._forward(x, params[n])
                                                    for n in ("q", "k", "v"))
        q, k, v = _split(q, n_heads), _split(k, n_kv), _split(v, n_kv)
        in_caches = {"q": q_cache, "k": k_cache, "v": v_cache}
    if tables is not None:                              # rotate queries and keys (RoPE)
        q = rope._forward(q, *tables)[0]
        k = rope._forward(k, *tables)[0]
    n_past = 0
    if past is not None:                                # keys/values of earlier positions
        n_past = past[0].shape[2]
        k = np.concatenate([past[0], k], axis=2)
        v = np.concatenate([past[1], v], axis=2)
    # with n_past cached keys, query t sits at position n_past + t: bottom-right alignment
    heads, att_cache = attention._forward(q, k, v, causal, key_padding_mask, offset=n_past)
    y, proj_cache = linear._forward(_merge(heads), params["proj"])
    return y, (x, in_caches, tables, att_cache, proj_cache, n_heads, n_past, (k, v))


def _backward(dout, cache) -> dict:
    _, in_caches, tables, att_cache, proj_cache, n_heads, n_past, _ = cache
    d_proj = linear._backward(dout, proj_cache)
    d_att = attention._backward(_split(d_proj.pop("x"), n_heads), att_cache)
    dq, dk, dv = d_att["q"], d_att["k"][:, :, n_past:], d_att["v"][:, :, n_past:]
    if tables is not None:                              # rotate the gradients back
        dq = rope._backward(dq, (*tables, None))["x"]
        dk = rope._backward(dk, (*tables, None))["x"]
    if "qkv" in in_caches:
        d_qkv = linear._backward(_merge_qkv(dq, dk, dv), in_caches["qkv"])
        return {"x": d_qkv.pop("x"), "qkv": d_qkv, "proj": d_proj}
    grads = {name: linear._backward(_merge(d), in_caches[name])
             for name, d in (("q", dq), ("k", dk), ("v", dv))}
    dx = grads["q"].pop("x")                            # x fed all three projections
    dx += grads["k"].pop("x")
    dx += grads["v"].pop("x")
    return {"x": dx, **grads, "proj": d_proj}


def _present(cache) -> tuple:
    """The keys and values (B, H_kv, S, D) of every position so far, from a forward cache:
    the next step's ``past``."""
    return cache[-1]
