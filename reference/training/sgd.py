r"""Stochastic gradient descent, with optional momentum (heavy ball or Nesterov) and L2
weight decay, step for step as ``torch.optim.SGD``.

$$ g_t = \nabla L(\theta_{t-1}) + \lambda\,\theta_{t-1}, \qquad
   b_t = \mu\, b_{t-1} + (1 - \tau)\, g_t \;(b_1 = g_1), $$

$$ \theta_t = \theta_{t-1} - \eta\,\begin{cases} g_t & \mu = 0 \\ b_t & \text{momentum}
    \\ g_t + \mu\, b_t & \text{Nesterov} \end{cases} $$

``params`` and ``grads`` are trees (dicts and lists) of floating-point arrays of the same
structure, shapes and dtypes; each update runs in its leaf's dtype (float32 parameters stay
float32).  The state is ``{"step": int, "buffer": tree or None}``.  ``step`` returns new trees
and mutates nothing.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.params import map_trees


def _example_tree(rng) -> dict:
    """A small parameter tree for the optimizers' contract examples."""
    return {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4),
            "blocks": [{"g": rng.standard_normal(2)}]}


@contract(example=lambda rng: {"params": _example_tree(rng)},
          lenient={"params": ("missing_key", "extra_key")})     # any tree is a valid one
def init(params) -> dict:
    """The optimizer state before the first step: no momentum buffer yet.

    Parameters
    ----------
    params : dict
        Parameter tree: dicts and lists with finite floating-point arrays as leaves.

    Returns
    -------
    state : dict
        ``{"step": 0, "buffer": None}``.

    Raises
    ------
    TypeError
        If ``params`` is not a dict or a leaf is not a floating-point array.
    ValueError
        If a leaf holds NaN or inf.
    """
    _checks.float_tree("sgd.init", "params", params)
    return {"step": 0, "buffer": None}


def _step_example(rng) -> dict:
    params = _example_tree(rng)
    grads = _example_tree(rng)
    hyper = {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": False,
             "weight_decay": 0.01}
    _, state = step(params, _example_tree(rng), init(params), **hyper)    # buffer in state
    return {"params": params, "grads": grads, "state": state, **hyper}


@contract(example=_step_example)
def step(params, grads, state: dict, lr: float, momentum: float = 0.0,
         dampening: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
    r"""One SGD update.

    $$ g = \nabla L + \lambda\theta, \quad b \leftarrow \mu b + (1 - \tau) g, \quad
       \theta \leftarrow \theta - \eta\,(g,\ b \text{ or } g + \mu b) $$

    Parameters
    ----------
    params : dict
        Parameter tree $\theta$: dicts and lists with finite floating-point arrays as leaves.
    grads : dict
        Gradient tree $\nabla L$, the structure, shapes and dtypes of ``params``; finite.
    state : dict
        ``{"step": int >= 0, "buffer": None or a tree like params}`` from `init` or the
        previous step.
    lr : float
        Learning rate $\eta > 0$.
    momentum : float, default 0.0
        $\mu$ in [0, 1); 0 is plain SGD.
    dampening : float, default 0.0
        $\tau$ in [0, 1]: the share of the gradient left out of the buffer (PyTorch's
        ``dampening``).  Not applied on the first step, where $b_1 = g_1$.
    nesterov : bool, default False
        Nesterov momentum (needs momentum > 0 and dampening 0).
    weight_decay : float, default 0.0
        L2 coefficient $\lambda \ge 0$, added to the gradient.

    Returns
    -------
    params : dict
        New parameter tree (new arrays, same dtypes).
    state : dict
        New state; ``buffer`` is None when momentum is 0.

    Raises
    ------
    TypeError
        If a tree is not a dict of floating-point arrays, a gradient's dtype differs from its
        parameter's, a hyper-parameter is not a number or ``nesterov`` is not a bool.
    ValueError
        If the trees' structures or shapes differ, a leaf holds NaN or inf, the state is
        malformed, or a hyper-parameter is out of its range.
    """
    where = "sgd.step"
    flat = _check_trees(where, params, grads)
    lr, weight_decay = _check_hyper(where, lr, weight_decay)
    momentum = _checks.real(where, "momentum", momentum, 0.0, 1.0, high_open=True)
    dampening = _checks.real(where, "dampening", dampening, 0.0, 1.0)
    nesterov = _checks.boolean(where, "nesterov", nesterov)
    if nesterov and (momentum == 0.0 or dampening != 0.0):
        raise ValueError(f"{where}: argument 'nesterov' needs momentum > 0 and dampening 0, "
                         f"got momentum={momentum!r}, dampening={dampening!r}")
    _checks.keys(where, state, ("step", "buffer"), "state")
    t = _checks.integer(where, "state['step']", state["step"], low=0)
    if state["buffer"] is not None:
        _check_like(where, "state['buffer']", state["buffer"], flat)
    with np.errstate(over="ignore", invalid="ignore"):
        new, new_state = _update(where, params, grads, state, t, lr, momentum, dampening,
                                 nesterov, weight_decay)
    _checks.finite_result(where, "the new params", (new, new_state["buffer"]),
                          _blame(lr, weight_decay))
    return new, new_state


def _blame(lr: float, weight_decay: float) -> str:
    """Which hyper-parameters an overflowing step is blamed on, with their values."""
    return (f"argument 'lr' = {lr!r}" + (f" with 'weight_decay' = {weight_decay!r}"
                                         if weight_decay else "") + " (or a huge gradient)")


def _update(where, params, grads, state, t, lr, momentum, dampening, nesterov, weight_decay):
    g = map_trees(where, lambda p, g: g + weight_decay * p if weight_decay else g, params, grads)
    if momentum == 0.0:
        new = map_trees(where, lambda p, d: p - lr * d, params, g)
        return new, {"step": t + 1, "buffer": None}
    if state["buffer"] is None:
        buffer = map_trees(where, np.copy, g)
    else:
        buffer = map_trees(where, lambda b, d: momentum * b + (1.0 - dampening) * d,
                           state["buffer"], g, names=("buffer", "grads"))
    direction = map_trees(where, lambda d, b: d + momentum * b, g, buffer) if nesterov \
        else buffer
    new = map_trees(where, lambda p, d: p - lr * d, params, direction)
    return new, {"step": t + 1, "buffer": buffer}


def _check_trees(where: str, params, grads) -> dict:
    """``params`` and ``grads`` finite float trees of one structure, shapes and dtypes;
    returns the flat view of ``params`` (shared by every optimizer)."""
    flat = _checks.float_tree(where, "params", params)
    _checks.same_tree(where, "grads", _checks.float_tree(where, "grads", grads), "params", flat)
    return flat


def _check_like(where: str, name: str, tree, flat_params: dict) -> dict:
    """An optimizer-state tree: finite, with the structure, shapes and dtypes of params."""
    flat = _checks.float_tree(where, name, tree)
    _checks.same_tree(where, name, flat, "params", flat_params)
    return flat


def _check_hyper(where: str, lr, weight_decay) -> tuple:
    """``lr > 0`` and ``weight_decay >= 0``, both finite; returned as floats."""
    return (_checks.real(where, "lr", lr, 0.0, low_open=True),
            _checks.real(where, "weight_decay", weight_decay, 0.0))
