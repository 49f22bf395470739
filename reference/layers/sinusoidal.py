r"""Sinusoidal positional encoding (the fixed one of "Attention Is All You Need").

$$
PE[p, 2i] = \sin\!\left(p / \mathrm{base}^{2i/C}\right), \qquad
PE[p, 2i+1] = \cos\!\left(p / \mathrm{base}^{2i/C}\right)
$$

`forward` adds the table to its input: `x` (B, T, C) -> `x + PE[:T]` (B, T, C).
The table has no parameters, so the only gradient is the one that flows through the sum:
`dx = dout`.  Because `sin` and `cos` of a sum expand into products, `PE[p + k]` is a
fixed rotation of `PE[p]`; the dot product `PE[p] . PE[p + k]` depends on `k` only.
An odd `C` drops the last cosine column.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"seq_len": 4, "d_model": 6, "base": 10000.0,
                               "dtype": np.float64})
def table(seq_len: int, d_model: int, base: float = 10000.0, dtype=np.float64) -> np.ndarray:
    r"""The encoding table `PE`.

    $$ PE[p, 2i] = \sin\!\left(p / \mathrm{base}^{2i/C}\right), \quad
       PE[p, 2i+1] = \cos\!\left(p / \mathrm{base}^{2i/C}\right) $$

    Parameters
    ----------
    seq_len, d_model : int
        Number of positions `T` and width `C` (> 0); an odd `C` drops the last cosine.
    base : float, default 10000.0
        Base of the geometric sequence of wavelengths (> 0, finite; 10000 in the paper).
    dtype : floating dtype, default float64
        Dtype of the result; the angles are computed in float64 either way.

    Returns
    -------
    pe : ndarray, shape (T, C)
        Row `p` encodes position `p`; every entry is in [-1, 1] and row 0 is
        `[0, 1, 0, 1, ...]`.

    Raises
    ------
    TypeError
        If a size is not an int, `base` not a number, `dtype` not a floating dtype.
    ValueError
        If a size is <= 0 or `base` is not > 0 and finite.
    """
    where = "sinusoidal.table"
    seq_len = _checks.integer(where, "seq_len", seq_len, low=1)
    d_model = _checks.integer(where, "d_model", d_model, low=1)
    base = _checks.number(where, "base", base, low=0.0, strict=True)
    return _table(seq_len, d_model, base, _checks.float_dtype(where, "dtype", dtype))


def _table(seq_len: int, d_model: int, base: float, dtype) -> np.ndarray:
    positions = np.arange(seq_len, dtype=np.float64)[:, None]               # (T, 1)
    even = np.arange(0, d_model, 2, dtype=np.float64)                       # 2i
    angles = positions / base ** (even / d_model)                           # (T, ceil(C/2))
    pe = np.empty((seq_len, d_model), dtype=np.float64)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return pe.astype(dtype, copy=False)


@contract(example=lambda rng: {"x": rng.standard_normal((2, 3, 4)), "base": 10000.0},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray, base: float = 10000.0):
    r"""Add the encoding of each position to `x`.

    $$ y[\dots, p, :] = x[\dots, p, :] + PE[p, :] $$

    Parameters
    ----------
    x : ndarray, shape (..., T, C), floating
        Input with positions on the second-to-last axis (B, T, C usually; (T, C) works).
        The table is made in x's dtype (float32 in, float32 out).
    base : float, default 10000.0
        As in `table` (> 0, finite).

    Returns
    -------
    y : ndarray, the shape of x
        `x + PE[:T]`, a new array.
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The shape of `x` only.

    Raises
    ------
    TypeError
        If `x` is not a NumPy floating-point array or `base` not a number.
    ValueError
        If `x` has fewer than 2 dimensions, is empty or not finite, or `base` is not > 0 and
        finite.
    """
    _checks.float_array("sinusoidal.forward", "x", x, ndim_min=2)
    base = _checks.number("sinusoidal.forward", "base", base, low=0.0, strict=True)
    seq_len, d_model = x.shape[-2:]
    return x + _table(seq_len, d_model, base, x.dtype), (x.shape,)


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 3, 4)),
                               "cache": forward(rng.standard_normal((2, 3, 4)))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient through the sum: the table is a constant, so `dx = dout`.

    Parameters
    ----------
    dout : ndarray, the shape of x, floating
        Upstream gradient.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": ndarray}`, a copy of `dout`.

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the input's shape or holds NaN or inf.
    """
    (shape,) = _checks.unguard("sinusoidal.backward", cache, 1)
    if not isinstance(shape, tuple):
        raise TypeError(f"sinusoidal.backward: argument 'cache' must be the cache "
                        f"sinusoidal.forward returned (the input's shape), got {cache!r}")
    dout = _checks.dout_like("sinusoidal.backward", dout, shape)
    return {"x": dout.copy()}
