r"""Adam, with optional L2 weight decay added to the gradient (``torch.optim.Adam``).

$$ g_t = \nabla L + \lambda\,\theta_{t-1}, \quad
   m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
   v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 $$

$$ \theta_t = \theta_{t-1}
    - \eta\,\frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon} $$

The division by $1 - \beta^t$ (bias correction) undoes the pull towards 0 of moments that
start at 0.  L2 decay here goes through $m$ and $v$, so a parameter with large gradients is
decayed less; `adamw` decouples it.

``params`` and ``grads`` are trees (dicts and lists) of floating-point arrays of the same
structure, shapes and dtypes; each update runs in its leaf's dtype.  State:
``{"step": t, "m": tree, "v": tree}``; ``step`` returns new trees and mutates nothing.
"""

from __future__ import annotations

import math

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.params import map_trees
from llmref.training import sgd


@contract(example=lambda rng: {"params": sgd._example_tree(rng)},
          lenient={"params": ("missing_key", "extra_key")})     # any tree is a valid one
def init(params) -> dict:
    """The optimizer state before the first step: both moments zero.

    Parameters
    ----------
    params : dict
        Parameter tree: dicts and lists with finite floating-point arrays as leaves.

    Returns
    -------
    state : dict
        ``{"step": 0, "m": zeros like params, "v": zeros like params}`` (new arrays).

    Raises
    ------
    TypeError
        If ``params`` is not a dict or a leaf is not a floating-point array.
    ValueError
        If a leaf holds NaN or inf.
    """
    return _init("adam.init", params)


def _init(where: str, params) -> dict:
    _checks.float_tree(where, "params", params)
    return {"step": 0, "m": map_trees(where, np.zeros_like, params),
            "v": map_trees(where, np.zeros_like, params)}


def _step_example(rng) -> dict:
    params = sgd._example_tree(rng)
    hyper = {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.01}
    _, state = step(params, sgd._example_tree(rng), init(params), **hyper)   # moments > 0
    return {"params": params, "grads": sgd._example_tree(rng), "state": state, **hyper}


@contract(example=_step_example)
def step(params, grads, state: dict, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.0):
    r"""One Adam update.

    $$ g = \nabla L + \lambda\theta, \quad m \leftarrow \beta_1 m + (1-\beta_1) g, \quad
       v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
       \theta \leftarrow \theta - \eta\,\frac{m / (1-\beta_1^t)}
       {\sqrt{v / (1-\beta_2^t)} + \epsilon} $$

    Parameters
    ----------
    params : dict
        Parameter tree $\theta$: dicts and lists with finite floating-point arrays as leaves.
    grads : dict
        Gradient tree $\nabla L$, the structure, shapes and dtypes of ``params``; finite.
    state : dict
        ``{"step": t >= 0, "m": tree, "v": tree}`` from `init` or the previous step; ``m``
        and ``v`` are finite trees like ``params``, ``v >= 0``.
    lr : float, default 0.001
        Learning rate $\eta > 0$.
    betas : tuple of two floats, default (0.9, 0.999)
        $(\beta_1, \beta_2)$, each in [0, 1).
    eps : float, default 1e-08
        $\epsilon > 0$, added to the root of the second moment.
    weight_decay : float, default 0.0
        L2 coefficient $\lambda \ge 0$, added to the gradient.

    Returns
    -------
    params : dict
        New parameter tree (new arrays, same dtypes).
    state : dict
        ``{"step": t + 1, "m": new tree, "v": new tree}``.

    Raises
    ------
    TypeError
        If a tree is not a dict of floating-point arrays, a gradient's or moment's dtype
        differs from its parameter's, or a hyper-parameter is not a number.
    ValueError
        If the trees' structures or shapes differ, a leaf holds NaN or inf, ``v`` holds a
        negative value, the state is malformed, or a hyper-parameter is out of its range.
    """
    where = "adam.step"
    flat = sgd._check_trees(where, params, grads)
    lr, weight_decay = sgd._check_hyper(where, lr, weight_decay)
    betas, eps = _check_betas(where, betas, eps)
    state = _check_state(where, state, flat)
    with np.errstate(over="ignore"):        # finite g + weight_decay * p: inf at worst, not NaN
        g = map_trees(where, lambda p, g: g + weight_decay * p if weight_decay else g, params,
                      grads)
    return _moments_update(where, params, g, state, lr, betas, eps,
                           sgd._blame(lr, weight_decay))


def _check_betas(where: str, betas, eps) -> tuple:
    """``betas`` a pair in [0, 1), ``eps > 0``; returned as floats."""
    if not isinstance(betas, (tuple, list)):
        raise TypeError(f"{where}: argument 'betas' must be a pair (beta1, beta2), "
                        f"got {type(betas).__name__} {betas!r}")
    if len(betas) != 2:
        raise ValueError(f"{where}: argument 'betas' must be a pair (beta1, beta2), "
                         f"got {len(betas)} value(s)")
    betas = tuple(_checks.real(where, f"betas[{i}]", b, 0.0, 1.0, high_open=True)
                  for i, b in enumerate(betas))
    return betas, _checks.real(where, "eps", eps, 0.0, low_open=True)


def _check_state(where: str, state, flat_params: dict) -> dict:
    """``{"step", "m", "v"}``: a step count, finite moments like params, ``v >= 0``."""
    _checks.keys(where, state, ("step", "m", "v"), "state")
    _checks.integer(where, "state['step']", state["step"], low=0)
    sgd._check_like(where, "state['m']", state["m"], flat_params)
    for path, v in sgd._check_like(where, "state['v']", state["v"], flat_params).items():
        if v.size and v.min() < 0:
            raise ValueError(f"{where}: argument state['v'][{path!r}] must be >= 0 (a mean of "
                             f"squares), got {v.min()!r}")
    return state


def _moments_update(where, params, grads, state, lr, betas, eps, blame):
    """The shared Adam update on already-decayed gradients: ``(new_params, new_state)``,
    checked finite (an overflow is blamed on ``blame``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        new, new_state = _moments(where, params, grads, state, lr, betas, eps)
    _checks.finite_result(where, "the new params", (new, new_state["m"], new_state["v"]), blame)
    return new, new_state


def _moments(where, params, grads, state, lr, betas, eps):
    b1, b2 = betas
    t = int(state["step"]) + 1
    m = map_trees(where, lambda m, g: b1 * m + (1.0 - b1) * g, state["m"], grads,
                  names=("m", "grads"))
    v = map_trees(where, lambda v, g: b2 * v + (1.0 - b2) * g * g, state["v"], grads,
                  names=("v", "grads"))
    step_size = lr / (1.0 - b1**t)
    root_correction = math.sqrt(1.0 - b2**t)
    new = map_trees(where, lambda p, m, v: p - step_size * m / (np.sqrt(v) / root_correction
                                                                + eps), params, m, v)
    return new, {"step": t, "m": m, "v": v}
