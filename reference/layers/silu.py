r"""SiLU ("swish"): the input times its own sigmoid.  Llama uses it inside SwiGLU
(:mod:`reference.swiglu`).

$$
\mathrm{silu}(x) = x\,\sigma(x), \qquad
\mathrm{silu}'(x) = \sigma(x) + x\,\sigma(x)\,\big(1 - \sigma(x)\big)
                  = \sigma(x)\,\big(1 + x\,(1 - \sigma(x))\big)
$$

Shapes: any -> same.  The sigmoid is the overflow-free one of :mod:`reference.sigmoid`, so
large negative inputs give ``-0.0``-sized outputs, never NaN.  PyTorch: ``F.silu``.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import sigmoid


@contract(example=lambda rng: {"x": rng.standard_normal((2, 5))},
          lenient={"x": ("rank_up", "rank_down")})
def forward(x: np.ndarray):
    """``x`` (...) -> ``x * sigma(x)`` (...), cache.

    Cache
    -----
    The input `x` (held by reference: do not change it before `backward`; the cache debug
    mode detects such a change) and the sigmoid of `x` (a private array).
    """
    x = _checks.float_array("silu.forward", "x", x)
    out, cache = _forward(x)
    return out, _checks.guard("silu.forward", cache, x=x)


@contract(example=lambda rng: {"dout": rng.standard_normal((2, 5)),
                               "cache": forward(rng.standard_normal((2, 5)))[1]})
def backward(dout: np.ndarray, cache) -> dict:
    """``dout`` (...) -> ``{"x": dout * sigma(x) (1 + x (1 - sigma(x)))}``."""
    cache = _checks.unguard("silu.backward", cache, 2)
    return _backward(_checks.dout_like("silu.backward", dout, cache[0].shape), cache)


# Unchecked arithmetic, called by SwiGLU after it checks its input.

def _forward(x: np.ndarray):
    s = sigmoid._forward(x)[0]
    return x * s, (x, s)


def _backward(dout: np.ndarray, cache) -> dict:
    x, s = cache
    # forward: out = x * s(x); d out / dx = s + x s (1 - s)
    local = 1.0 - s
    local *= x
    local += 1.0
    local *= s
    local *= dout
    return {"x": local}
