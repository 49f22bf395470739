r"""Scaled dot-product attention with an optional causal mask and key padding mask.

.. math::
    S = \frac{Q K^\top}{\sqrt{D}}, \qquad
    A = \mathrm{softmax}_{\text{allowed}}(S), \qquad O = A V

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
from llmref.layers import softmax


def allowed_mask(T: int, S: int, causal: bool = False, key_padding_mask=None, offset: int = 0):
    """Boolean (B or 1, 1, T, S) mask, True where query t may attend to key s; None if all may.
    Causal: key ``s`` is allowed for query ``t`` when ``s <= t + offset``."""
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


def scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``q`` (B, H, T, D), ``k`` (B, H, S, D) -> ``q k^T / sqrt(D)`` (B, H, T, S)."""
    scale = 1.0 / math.sqrt(q.shape[-1])                # a Python float keeps float32 float32
    s = _stack(q * scale) @ _t(_stack(k))
    return s.reshape(q.shape[:-1] + (k.shape[-2],))


def masked_softmax(s: np.ndarray, allowed) -> np.ndarray:
    """Softmax over the last axis restricted to ``allowed``; rows with nothing allowed -> 0."""
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


def weights(q: np.ndarray, k: np.ndarray, causal: bool = False,
            key_padding_mask: np.ndarray | None = None, offset: int = 0) -> np.ndarray:
    """The attention weights ``A`` (B, H, T, S): non-negative, each row summing to 1 (or all 0
    for a fully masked row), exactly 0 on masked entries.  ``k`` has the queries' H heads."""
    return masked_softmax(scores(q, k),
                          allowed_mask(q.shape[2], k.shape[2], causal, key_padding_mask, offset))


def _validate(q, k, v, key_padding_mask, offset):
    where = "attention.forward"
    _checks.float_array(where, "q", q, ndim=4)
    _checks.float_array(where, "k", k, ndim=4)
    _checks.float_array(where, "v", v, ndim=4)
    B, H, _, D = q.shape
    S = k.shape[2]
    if k.shape[0] != B or k.shape[3] != D or H % k.shape[1]:
        raise ValueError(f"{where}: argument 'k' must have shape (B, H, S, D) = "
                         f"({B}, {H}, S, {D}) to match 'q' {q.shape}, or a number of heads "
                         f"that divides H = {H} (grouped-query attention), got shape {k.shape}")
    _checks.same_shape(where, "v", v, k.shape)
    _check_mask(where, key_padding_mask, B, S)
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0:
        raise ValueError(f"{where}: argument 'offset' must be an int >= 0 (the number of "
                         f"cached keys before the first query), got {offset!r}")


def _check_mask(where: str, key_padding_mask, B: int, S: int) -> None:
    """``key_padding_mask`` is None or a boolean (B, S) array."""
    if key_padding_mask is None:
        return
    if not isinstance(key_padding_mask, np.ndarray) or key_padding_mask.dtype != bool:
        got = getattr(key_padding_mask, "dtype", type(key_padding_mask).__name__)
        raise TypeError(f"{where}: argument 'key_padding_mask' must be a boolean array "
                        f"(True = padding), got {got}")
    _checks.same_shape(where, "key_padding_mask", key_padding_mask, (B, S))


def forward(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False,
            key_padding_mask: np.ndarray | None = None, offset: int = 0):
    """``q`` (B, H, T, D), ``k``/``v`` (B, H_kv, S, D) -> ``out`` (B, H, T, D), cache."""
    _validate(q, k, v, key_padding_mask, offset)
    return _forward(q, k, v, causal, key_padding_mask, offset)


def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (B, H, T, D) -> ``{"q": (B, H, T, D), "k": (B, H_kv, S, D),
    "v": (B, H_kv, S, D)}``."""
    q, _, v, _, _ = cache
    return _backward(_checks.dout_like("attention.backward", dout, q.shape[:3] + (v.shape[-1],)),
                     cache)


# Unchecked arithmetic, called by multi-head attention after it checks its own input.

def _forward(q, k, v, causal, key_padding_mask, offset=0):
    group = q.shape[1] // k.shape[1]                    # query heads per key/value head
    if group > 1:                                       # grouped-query: head h uses h // group
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    att = weights(q, k, causal, key_padding_mask, offset)
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
