r"""Rotary position embedding (RoPE, Su et al. 2021), as Llama uses it: queries and keys are
rotated by an angle proportional to their position, so that the score of query `i` and key
`j` depends on their positions only through `i - j`.

Head dimension `D` (even) is split into `D/2` pairs; pair `j` turns at the frequency
`f_j = theta^{-2j/D}` (`theta = 10000` in Llama 2), so position `p` rotates it by the
angle `p f_j`:

$$
\mathrm{rope}(x)_p = x_p \odot \cos_p + \mathrm{rotate\_half}(x_p) \odot \sin_p, \qquad
\cos_p = \cos([p f, p f]), \quad \sin_p = \sin([p f, p f])
$$

with `rotate_half([x_1, x_2]) = [-x_2, x_1]` on the two halves of the last axis.

Layout: this is Hugging Face's **split-half** layout: dimension `j` is paired with
`j + D/2` (the two halves), not with its neighbour `2j + 1` as in the paper and Meta's
original code.  Hugging Face's Llama checkpoints already have their query and key weights
permuted for this layout, so `convert_llama` copies them unchanged.

Backward: a rotation's transpose rotates the other way.  As a matrix, `rotate_half` is
`R` with `R^T = -R`, so

$$
\frac{\partial L}{\partial x} = g \odot \cos + R^\top (g \odot \sin)
                              = g \odot \cos - \mathrm{rotate\_half}(g \odot \sin)
$$

Shapes: `x` (B, H, T, D), `positions` (T,) or (B, T) non-negative ints -> (B, H, T, D).
Each row of a batch can have its own positions (left-padded prompts start later).  The angles
are computed in float64 and the result has the input's dtype.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"positions": rng.integers(0, 50, size=(2, 3)), "head_dim": 4,
                               "theta": 10000.0}, lenient={"positions": ("empty",)})
def angles(positions: np.ndarray, head_dim: int, theta: float = 10000.0):
    r"""The rotation of every position: cosines and sines of its angles, split-half layout.

    $$ f_j = \theta^{-2j/D}, \qquad \cos_p = \cos([p f, p f]), \qquad
       \sin_p = \sin([p f, p f]), \qquad j = 0 \dots D/2 - 1 $$

    Parameters
    ----------
    positions : ndarray of ints >= 0, any shape
        Positions `p`.
    head_dim : int
        Head dimension `D`, even and > 0.
    theta : float, default 10000.0
        The base of the frequencies (> 0, finite; 10000 in Llama 2).

    Returns
    -------
    cos, sin : ndarray, shape positions.shape + (D,), float64
        The two halves of the last axis are equal.

    Raises
    ------
    TypeError
        If `positions` is not an integer array, `head_dim` not an int, `theta` not a number.
    ValueError
        If a position is negative, `head_dim` is not even and > 0, or `theta` is not > 0 and
        finite.
    """
    where = "rope.angles"
    _checks.int_array(where, "positions", positions, 0, np.iinfo(np.int64).max)
    _checks.positive(where, "head_dim", head_dim, integer=True)
    if head_dim % 2:
        raise ValueError(f"{where}: argument 'head_dim' must be even (coordinates turn in "
                         f"pairs), got {head_dim}")
    _checks.positive(where, "theta", theta)
    return _angles(positions, head_dim, theta)


def _angles(positions, head_dim, theta):
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    a = positions[..., None].astype(np.float64) * inv_freq            # (..., D/2)
    a = np.concatenate([a, a], axis=-1)                                # (..., D)
    return np.cos(a), np.sin(a)


@contract(example=lambda rng: {"x": rng.standard_normal((2, 4))},
          lenient={"x": ("rank_up", "rank_down", "empty")})
def rotate_half(x: np.ndarray) -> np.ndarray:
    r"""Swap the two halves of the last axis and negate the new first half.

    $$ \mathrm{rotate\_half}([x_1, x_2]) = [-x_2, x_1] $$

    Parameters
    ----------
    x : ndarray, shape (..., D), floating, D even

    Returns
    -------
    out : ndarray, the shape of x
        A new array.

    Raises
    ------
    TypeError
        If `x` is not a NumPy floating-point array.
    ValueError
        If `x` is 0-dimensional, holds NaN or inf, or has an odd last dimension.
    """
    _checks.float_array("rope.rotate_half", "x", x, ndim_min=1, allow_empty=True)
    if x.shape[-1] % 2:
        raise ValueError(f"rope.rotate_half: argument 'x' must have an even last dimension, "
                         f"got shape {x.shape}")
    return _rotate_half(x)


def _rotate_half(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


@contract(example=lambda rng: {"x": rng.standard_normal((2, 1, 3, 4)),
                               "positions": rng.integers(0, 50, size=3), "theta": 10000.0},
          lenient={"positions": ("too_large",)})
def forward(x: np.ndarray, positions: np.ndarray, theta: float = 10000.0):
    r"""Rotate the queries or keys `x` by their positions.

    $$ \mathrm{rope}(x)_p = x_p \odot \cos_p + \mathrm{rotate\_half}(x_p) \odot \sin_p $$

    Parameters
    ----------
    x : ndarray, shape (B, H, T, D), floating, D even
        One vector per batch row, head and position.
    positions : ndarray of ints >= 0, shape (T,) or (B, T)
        The position of each of the T vectors (shared by the batch, or per row).
    theta : float, default 10000.0
        The base of the frequencies (> 0, finite).

    Returns
    -------
    out : ndarray, shape (B, H, T, D), x's dtype
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The cosine and sine tables (new arrays) and x's shape; nothing of the caller's.

    Raises
    ------
    TypeError
        If `x` is not a floating-point array, `positions` not an integer array, `theta` not a
        number.
    ValueError
        If `x` is not 4-dimensional, empty, not finite or has an odd last dimension, a
        position is negative, `positions` has another shape, or `theta` is not > 0 and
        finite.
    """
    where = "rope.forward"
    _checks.float_array(where, "x", x, ndim=4)
    B, _, T, D = x.shape
    if D % 2:
        raise ValueError(f"{where}: argument 'x' must have an even last dimension (pairs of "
                         f"coordinates are rotated), got shape {x.shape}")
    _checks.int_array(where, "positions", positions, 0, np.iinfo(np.int64).max)
    if positions.shape not in ((T,), (B, T)):
        raise ValueError(f"{where}: argument 'positions' must have shape (T,) = ({T},) or "
                         f"(B, T) = ({B}, {T}), got shape {positions.shape}")
    _checks.positive(where, "theta", theta)
    cos, sin = _tables(positions, D, theta, x.dtype)
    out, cache = _forward(x, cos, sin)
    return out, _checks.guard(where, cache)


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 1, 3, 4)),
                               "cache": forward(rng.standard_normal((2, 1, 3, 4)),
                                                np.arange(3))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    r"""Gradient of the rotation: the transposed rotation of the upstream gradient.

    $$ \frac{\partial L}{\partial x} = g \odot \cos - \mathrm{rotate\_half}(g \odot \sin) $$

    Parameters
    ----------
    dout : ndarray, shape (B, H, T, D), floating
        Upstream gradient `g`.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"x": (B, H, T, D)}`.

    Raises
    ------
    TypeError
        If `dout` is not a NumPy floating-point array.
    ValueError
        If `dout` does not have the output's shape or holds NaN or inf.
    """
    cache = _checks.unguard("rope.backward", cache, 3)
    return _backward(_checks.dout_like("rope.backward", dout, cache[2]), cache)


def _tables(positions: np.ndarray, head_dim: int, theta: float, dtype=np.float64):
    """``cos`` and ``sin`` of :func:`angles` shaped (B or 1, 1, T, D) to broadcast over the
    heads of a (B, H, T, D) array, in ``dtype``."""
    cos, sin = _angles(positions if positions.ndim == 2 else positions[None], head_dim, theta)
    return cos[:, None].astype(dtype, copy=False), sin[:, None].astype(dtype, copy=False)


# Unchecked arithmetic, called by multi-head attention with tables computed once per model
# forward pass and shared by every layer.

def _forward(x: np.ndarray, cos: np.ndarray, sin: np.ndarray):
    out = x * cos
    out += _rotate_half(x) * sin
    return out, (cos, sin, x.shape)


def _backward(dout: np.ndarray, cache) -> dict:
    cos, sin, _ = cache
    dx = dout * cos
    dx -= _rotate_half(dout * sin)
    return {"x": dx}
