r"""Scaled dot-product attention with an optional causal mask and key padding mask.

$$ S = \frac{Q K^\top}{\sqrt{D}}, \qquad
   A = \mathrm{softmax}_{\text{allowed}}(S), \qquad O = A V $$

Shapes: ``q`` (B, H, T, D), ``k`` and ``v`` (B, H, S, D) -> ``out`` (B, H, T, D); the weights
``A`` are (B, H, T, S).  ``causal=True`` lets query ``i`` see keys ``j <= i + offset`` only.
``offset=0`` is PyTorch's top-left alignment (right for T == S, a whole sequence at once).
When the keys include ``P`` cached ones before the ``T`` new queries (decoding with a KV
cache, ``S = P + T``), query ``i`` sits at position ``P + i`` and needs ``offset = P``: the
bottom-right alignment.  With ``offset=0`` there, one new query against 6 cached keys would
see key 0 only.  ``key_padding_mask`` (B, S) is boolean, ``True`` marking a padding key that
no query may see (PyTorch's ``nn.MultiheadAttention`` convention).

Grouped-query attention (Llama 2 70B): ``k`` and ``v`` may have fewer heads ``H_kv`` than
``q``, with ``H_kv`` dividing ``H``; query head ``h`` then uses key/value head
``h // (H / H_kv)`` (Hugging Face's ``repeat_kv``).  The key/value heads are repeated for the
product, and the backward sums the gradients of each group of repeats.

Softmax runs over the allowed keys only.  A query with *no* allowed key (a fully masked row)
is defined to attend to nothing: its weights are all 0, its output is 0 and no gradient flows
through it.  (PyTorch returns NaN there.)

Backward, with ``G`` the upstream gradient:
``dV = A^T G``, ``dA = G V^T``, ``dS = A * (dA - rowsum(dA * A))`` (the softmax backward,
zero on masked entries because ``A`` is zero there), ``dQ = dS K / sqrt(D)``,
``dK = dS^T Q / sqrt(D)``.
"""

from __future__ import annotations

import math

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import softmax


def _qkv_example(rng, causal=True):
    return {"q": rng.standard_normal((2, 2, 3, 4)), "k": rng.standard_normal((2, 2, 5, 4)),
            "v": rng.standard_normal((2, 2, 5, 4)), "causal": causal,
            "key_padding_mask": np.array([[False] * 5, [False, False, False, True, True]]),
            "offset": 2}


@contract(example=lambda rng: {"T": 3, "S": 5, "causal": True,
                               "key_padding_mask": np.array([[False] * 5,
                                                             [False, False, True, True, True]]),
                               "offset": 2},
          lenient={"offset": ("zero",), "key_padding_mask": ("none",)})
def allowed_mask(T: int, S: int, causal: bool = False, key_padding_mask=None, offset: int = 0):
    r"""Which keys each query may attend to.

    $$ \mathrm{allowed}_{ts} = [\text{not causal or } s \le t + \mathrm{offset}]
       \wedge \neg\,\mathrm{pad}_{bs} $$

    Parameters
    ----------
    T, S : int
        Numbers of queries and keys (>= 1).
    causal : bool, default False
        Whether key `s` is allowed for query `t` only when `s <= t + offset`.
    key_padding_mask : ndarray of bool, shape (B, S), default None
        True marks a padding key that no query may see. An int mask is refused (`~1` is -2,
        which is truthy).
    offset : int, default 0
        Number of cached keys before the first query (>= 0).

    Returns
    -------
    allowed : ndarray of bool, shape (B or 1, 1, T or 1, S), or None
        True where query `t` may attend to key `s` (B: with a padding mask; T: when causal);
        None when every key is allowed.

    Raises
    ------
    TypeError
        If an argument has the wrong type (a mask that is not a boolean array).
    ValueError
        If `T` or `S` is < 1, `offset` < 0, or the mask is not (B, S).
    """
    where = "attention.allowed_mask"
    T = _checks.integer(where, "T", T, low=1)
    S = _checks.integer(where, "S", S, low=1)
    causal = _checks.boolean(where, "causal", causal)
    offset = _checks.integer(where, "offset", offset, low=0)
    if key_padding_mask is not None:
        _check_mask(where, key_padding_mask, None, S)
    return _allowed_mask(T, S, causal, key_padding_mask, offset)


def _allowed_mask(T, S, causal, key_padding_mask, offset):
    allowed = None
    if causal:
        allowed = np.tril(np.ones((T, S), dtype=bool), k=offset)[None, None]
    if key_padding_mask is not None:
        keep = ~key_padding_mask[:, None, None, :]
        allowed = keep if allowed is None else allowed & keep
    return allowed


def _stack(t: np.ndarray) -> np.ndarray:
    """(B, H, T, D) -> (B*H, T, D), contiguous: one batched matrix product per call."""
    return np.ascontiguousarray(t).reshape((-1,) + t.shape[-2:])


def _t(t: np.ndarray) -> np.ndarray:
    return t.transpose(0, 2, 1)                         # swap the last two axes of a stack


@contract(example=lambda rng: {"q": rng.standard_normal((2, 2, 3, 4)),
                               "k": rng.standard_normal((2, 2, 5, 4))})
def scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    r"""The scaled attention scores.

    $$ S = \frac{Q K^\top}{\sqrt{D}} $$

    Parameters
    ----------
    q : ndarray, shape (B, H, T, D), floating
        Queries.
    k : ndarray, shape (B, H, S, D), floating
        Keys, with the queries' H heads.

    Returns
    -------
    s : ndarray, shape (B, H, T, S)
        The scores.

    Raises
    ------
    TypeError
        If `q` or `k` is not a floating-point array.
    ValueError
        If a rank or shape is wrong, an array is empty or holds NaN or inf.
    """
    where = "attention.scores"
    _checks.float_array(where, "q", q, ndim=4)
    _checks.float_array(where, "k", k, ndim=4)
    if k.shape[:2] != q.shape[:2] or k.shape[3] != q.shape[3]:
        raise ValueError(f"{where}: argument 'k' must have shape (B, H, S, D) = "
                         f"({q.shape[0]}, {q.shape[1]}, S, {q.shape[3]}), got {k.shape}")
    return _scores(q, k)


def _scores(q, k):
    scale = 1.0 / math.sqrt(q.shape[-1])                # a Python float keeps float32 float32
    s = _stack(q * scale) @ _t(_stack(k))
    return s.reshape(q.shape[:-1] + (k.shape[-2],))


@contract(example=lambda rng: {"s": rng.standard_normal((2, 2, 3, 5)),
                               "allowed": rng.random((2, 1, 3, 5)) < 0.7},
          lenient={"s": ("rank_up",), "allowed": ("none",)})
def masked_softmax(s: np.ndarray, allowed) -> np.ndarray:
    r"""Softmax over the last axis restricted to the allowed entries.

    $$ A_{ts} = \frac{[\mathrm{allowed}_{ts}]\, e^{S_{ts} - m_t}}
       {\sum_{s'} [\mathrm{allowed}_{ts'}]\, e^{S_{ts'} - m_t}} $$

    A row with nothing allowed is all zeros.

    Parameters
    ----------
    s : ndarray, shape (..., T, S), floating
        Scores.
    allowed : ndarray of bool, broadcastable to `s`, or None
        True where an entry takes part; None: every entry does.

    Returns
    -------
    a : ndarray, shape of `s`
        Weights, each row summing to 1 (or all 0).

    Raises
    ------
    TypeError
        If `s` is not a floating-point array or `allowed` not a boolean array.
    ValueError
        If `s` is empty or not finite, or `allowed` does not broadcast to `s`.
    """
    where = "attention.masked_softmax"
    _checks.float_array(where, "s", s, ndim_min=1)
    if allowed is not None:
        if not isinstance(allowed, np.ndarray) or allowed.dtype != bool:
            raise TypeError(f"{where}: argument 'allowed' must be a boolean array or None, "
                            f"got {_checks._describe(allowed)}")
        try:
            if np.broadcast_shapes(allowed.shape, s.shape) != s.shape:
                raise ValueError
        except ValueError:
            raise ValueError(f"{where}: argument 'allowed' must broadcast to the shape of "
                             f"'s' {s.shape}, got shape {allowed.shape}") from None
    return _masked_softmax(s, allowed)


def _masked_softmax(s, allowed):
    if allowed is None:
        return softmax._forward(s)[0]
    z = s + np.where(allowed, 0.0, -np.inf).astype(s.dtype)   # masked scores become -inf
    row_max = z.max(axis=-1, keepdims=True)
    row_max[~np.isfinite(row_max)] = 0.0                # fully masked row: avoid -inf - -inf
    z -= row_max
    np.exp(z, out=z)                                    # exp(-inf) = 0 on masked entries
    total = _row_sums(z)
    total[total == 0] = 1.0                             # fully masked row stays all zeros
    z *= 1.0 / total
    return z


def _row_sums(z: np.ndarray) -> np.ndarray:
    """Sums over the last axis, kept as a (..., 1) column.  A product with a vector of ones
    is one BLAS call, several times faster than ``z.sum(axis=-1)`` on short rows."""
    return (z @ np.ones(z.shape[-1], dtype=z.dtype))[..., None]


@contract(example=lambda rng: {k: v for k, v in _qkv_example(rng).items() if k != "v"},
          lenient={"offset": ("zero",), "key_padding_mask": ("none",)})
def weights(q: np.ndarray, k: np.ndarray, causal: bool = False,
            key_padding_mask: np.ndarray | None = None, offset: int = 0) -> np.ndarray:
    r"""The attention weights.

    $$ A = \mathrm{softmax}_{\text{allowed}}\Big(\frac{Q K^\top}{\sqrt{D}}\Big) $$

    Parameters
    ----------
    q : ndarray, shape (B, H, T, D), floating
        Queries.
    k : ndarray, shape (B, H, S, D), floating
        Keys, with the queries' H heads.
    causal : bool, default False
        Causal mask: query `t` sees keys `s <= t + offset`.
    key_padding_mask : ndarray of bool, shape (B, S), default None
        True marks a padding key. Must be boolean (an int mask is refused).
    offset : int, default 0
        Number of cached keys before the first query (>= 0).

    Returns
    -------
    a : ndarray, shape (B, H, T, S)
        Non-negative, each row summing to 1 (or all 0 for a fully masked row), exactly 0 on
        masked entries.

    Raises
    ------
    TypeError
        If an array has the wrong dtype or an argument the wrong type.
    ValueError
        If a shape is wrong, an array is empty or not finite, or `offset` < 0.
    """
    where = "attention.weights"
    _validate(q, k, k, key_padding_mask, offset, causal, where=where, same_heads=True)
    return _weights(q, k, causal, key_padding_mask, offset)


def _weights(q, k, causal, key_padding_mask, offset):
    return _masked_softmax(_scores(q, k),
                           _allowed_mask(q.shape[2], k.shape[2], causal, key_padding_mask,
                                         offset))


def _validate(q, k, v, key_padding_mask, offset, causal, where="attention.forward",
              same_heads=False):
    _checks.float_array(where, "q", q, ndim=4)
    _checks.float_array(where, "k", k, ndim=4)
    _checks.float_array(where, "v", v, ndim=4)
    B, H, _, D = q.shape
    S = k.shape[2]
    if k.shape[0] != B or k.shape[3] != D or H % k.shape[1] or (same_heads and k.shape[1] != H):
        raise ValueError(f"{where}: argument 'k' must have shape (B, H, S, D) = "
                         f"({B}, {H}, S, {D}) to match 'q' {q.shape}, or a number of heads "
                         f"that divides H = {H} (grouped-query attention), got shape {k.shape}")
    _checks.same_shape(where, "v", v, k.shape)
    _checks.boolean(where, "causal", causal)
    _check_mask(where, key_padding_mask, B, S)
    _checks.integer(where, "offset", offset, low=0)


def _check_mask(where: str, key_padding_mask, B: int, S: int) -> None:
    """``key_padding_mask`` is None or a boolean (B, S) array."""
    if key_padding_mask is None:
        return
    if not isinstance(key_padding_mask, np.ndarray) or key_padding_mask.dtype != bool:
        got = getattr(key_padding_mask, "dtype", type(key_padding_mask).__name__)
        raise TypeError(f"{where}: argument 'key_padding_mask' must be a boolean array "
                        f"(True = padding), got {got}")
    if B is None:
        if key_padding_mask.ndim != 2 or key_padding_mask.shape[1] != S:
            raise ValueError(f"{where}: argument 'key_padding_mask' must have shape (B, S) = "
                             f"(B, {S}), got shape {key_padding_mask.shape}")
        return
    _checks.same_shape(where, "key_padding_mask", key_padding_mask, (B, S))


@contract(example=_qkv_example, lenient={"offset": ("zero",), "key_padding_mask": ("none",)})
def forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False,
            key_padding_mask: np.ndarray | None = None, offset: int = 0):
    r"""Scaled dot-product attention.

    $$ O = \mathrm{softmax}_{\text{allowed}}\Big(\frac{Q K^\top}{\sqrt{D}}\Big) V $$

    Parameters
    ----------
    q : ndarray, shape (B, H, T, D), floating
        Queries.
    k, v : ndarray, shape (B, H_kv, S, D), floating
        Keys and values; `H_kv` divides `H` (grouped-query attention when smaller).
    causal : bool, default False
        Causal mask: query `t` sees keys `s <= t + offset`.
    key_padding_mask : ndarray of bool, shape (B, S), default None
        True marks a padding key no query may see. Must be boolean.
    offset : int, default 0
        Number of cached keys before the first query (>= 0).

    Returns
    -------
    out : ndarray, shape (B, H, T, D)
        The attention output.
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The inputs (keys and values repeated to H heads), the weights `A` (a new array) and
    the group size.  `q`, and `k`, `v` without grouping, are the caller's arrays, held by
    reference: do not change them in place before the backward (`LLMREF_DEBUG_CACHE=1`
    verifies it).

    Raises
    ------
    TypeError
        If an array has the wrong dtype or an argument the wrong type.
    ValueError
        If a shape is wrong, an array is empty or not finite, or `offset` < 0.
    """
    _validate(q, k, v, key_padding_mask, offset, causal)
    out, cache = _forward(q, k, v, causal, key_padding_mask, offset)
    return out, _checks.guard("attention.forward", cache, q=q, k=k, v=v)


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 2, 3, 4)),
                               "cache": forward(**_qkv_example(rng))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradients of attention.

    $$ dV = A^\top G,\quad dS = A \odot (G V^\top - \mathrm{rowsum}(G V^\top \odot A)),
       \quad dQ = \frac{dS\,K}{\sqrt{D}},\quad dK = \frac{dS^\top Q}{\sqrt{D}} $$

    Parameters
    ----------
    dout : ndarray, shape (B, H, T, D), floating
        Upstream gradient `G`.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"q": (B, H, T, D), "k": (B, H_kv, S, D), "v": (B, H_kv, S, D)}`.

    Raises
    ------
    TypeError
        If `dout` is not a floating-point array.
    ValueError
        If `dout` has the wrong shape or holds NaN or inf.
    """
    cache = _checks.unguard("attention.backward", cache, 5)
    q, _, v, _, _ = cache
    return _backward(_checks.dout_like("attention.backward", dout, q.shape[:3] + (v.shape[-1],)),
                     cache)


# Unchecked arithmetic, called by multi-head attention after it checks its own input.

def _forward(q, k, v, causal, key_padding_mask, offset):
    group = q.shape[1] // k.shape[1]                    # query heads per key/value head
    if group > 1:                                       # grouped-query: head h uses h // group
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    att = _weights(q, k, causal, key_padding_mask, offset)
    out = _stack(att) @ _stack(v)
    return out.reshape(q.shape[:-1] + (v.shape[-1],)), (q, k, v, att, group)


def _backward(dout, cache) -> dict:
    q, k, v, att, group = cache
    scale = 1.0 / math.sqrt(q.shape[-1])
    att3, g3 = _stack(att), _stack(dout)
    # forward: out = att @ v
    dv = _t(att3) @ g3
    datt = g3 @ _t(_stack(v))
    # forward: att = softmax(s) on allowed entries; the softmax backward gives
    # ds = att * (datt - rowsum(datt * att)), which is 0 on masked entries where att = 0
    ds = softmax._backward(datt, att3)["x"]
    # forward: s = (q * scale) k^T
    dq = ds @ _stack(k)
    dq *= scale
    dk = _t(ds) @ _stack(q)
    dk *= scale
    dk, dv = dk.reshape(k.shape), dv.reshape(v.shape)
    if group > 1:                                       # every repeat of a head adds its share
        B, H, S, _ = k.shape
        dk = dk.reshape(B, H // group, group, S, -1).sum(axis=2)
        dv = dv.reshape(B, H // group, group, S, -1).sum(axis=2)
    return {"q": dq.reshape(q.shape), "k": dk, "v": dv}
