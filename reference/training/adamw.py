r"""AdamW: Adam with decoupled weight decay (``torch.optim.AdamW``).

$$ \theta \leftarrow \theta\,(1 - \eta\lambda) \quad\text{then the Adam update of}\quad
   \nabla L \text{ alone} $$

The decay shrinks the weights directly instead of entering the moments, so every decayed
parameter shrinks by the same factor whatever its gradient history.  Which parameters decay
is an argument: ``decay`` is a predicate ``decay(path, array) -> bool`` on each leaf, its
path written as in `params.flatten` (``"blocks.0.attn.qkv.W"``); ``None`` decays every
parameter.  `matrices_only` is the usual choice (GPT-2, nanoGPT): decay matrices, not
biases, layer-norm gains or other vectors.

Trees, dtypes and state as in `adam`; ``step`` returns new trees and mutates nothing.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.params import map_with_paths
from llmref.training import adam, sgd


@contract(example=lambda rng: {"params": sgd._example_tree(rng)},
          lenient={"params": ("missing_key", "extra_key")})     # any tree is a valid one
def init(params) -> dict:
    """The optimizer state before the first step: both moments zero (as `adam.init`).

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
    return adam._init("adamw.init", params)


@contract(example=lambda rng: {"path": "blocks.0.attn.qkv.W",
                               "leaf": rng.standard_normal((3, 4))},
          # a predicate on the shape: any values, any rank, any size are valid
          lenient={"leaf": ("nan", "inf", "empty", "rank_up", "rank_down")})
def matrices_only(path: str, leaf: np.ndarray) -> bool:
    """Decay predicate: True for leaves with 2 or more dimensions (weight matrices), False
    for vectors (biases, layer-norm gains) and scalars.

    Parameters
    ----------
    path : str
        The leaf's path in the tree (``"blocks.0.attn.qkv.W"``); not used.
    leaf : ndarray, floating
        The parameter.

    Returns
    -------
    decay : bool
        ``leaf.ndim >= 2``.

    Raises
    ------
    TypeError
        If ``path`` is not a string or ``leaf`` is not a floating-point array.
    """
    if not isinstance(path, str):
        raise TypeError(f"adamw.matrices_only: argument 'path' must be a string, "
                        f"got {type(path).__name__} {path!r}")
    if not isinstance(leaf, np.ndarray) or not np.issubdtype(leaf.dtype, np.floating):
        raise TypeError(f"adamw.matrices_only: argument 'leaf' must be a floating-point NumPy "
                        f"array, got {_checks._describe(leaf)}")
    return leaf.ndim >= 2


def _step_example(rng) -> dict:
    params = sgd._example_tree(rng)
    hyper = {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1,
             "decay": matrices_only}
    _, state = step(params, sgd._example_tree(rng), init(params), **hyper)   # moments > 0
    return {"params": params, "grads": sgd._example_tree(rng), "state": state, **hyper}


@contract(example=_step_example, lenient={"decay": ("none",)})     # None: decay everything
def step(params, grads, state: dict, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.01, decay=None):
    r"""One AdamW update.

    $$ \theta' = \begin{cases} \theta\,(1 - \eta\lambda) & \text{decay(path, } \theta) \\
       \theta & \text{otherwise} \end{cases}, \qquad
       \theta \leftarrow \theta' - \eta\,\frac{m / (1-\beta_1^t)}
       {\sqrt{v / (1-\beta_2^t)} + \epsilon} $$

    with $m$ and $v$ the moments of $\nabla L$ alone, as in `adam.step`.

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
        $\epsilon > 0$.
    weight_decay : float, default 0.01
        Decoupled decay $\lambda \ge 0$, with $\eta\lambda \le 1$ (a larger product would flip
        the weights' signs).
    decay : callable or None, default None
        ``decay(path, leaf) -> bool``: which leaves decay (for example `matrices_only`);
        None decays every leaf.

    Returns
    -------
    params : dict
        New parameter tree (new arrays, same dtypes).
    state : dict
        ``{"step": t + 1, "m": new tree, "v": new tree}``.

    Raises
    ------
    TypeError
        If a tree is not a dict of floating-point arrays, a dtype differs from its
        parameter's, a hyper-parameter is not a number, ``decay`` is neither None nor a
        function, or ``decay`` returns something other than a bool.
    ValueError
        If the trees' structures or shapes differ, a leaf holds NaN or inf, ``v`` holds a
        negative value, the state is malformed, or a hyper-parameter is out of its range.
    """
    where = "adamw.step"
    flat = sgd._check_trees(where, params, grads)
    lr, weight_decay = sgd._check_hyper(where, lr, weight_decay)
    if lr * weight_decay > 1.0:
        raise ValueError(f"{where}: arguments 'lr' and 'weight_decay' must have a product "
                         f"lr * weight_decay <= 1 (the decay factor 1 - lr * weight_decay "
                         f"would be negative), got {lr!r} * {weight_decay!r}")
    betas, eps = adam._check_betas(where, betas, eps)
    state = adam._check_state(where, state, flat)
    if decay is not None:
        _checks.function(where, "decay", decay)
    shrink = 1.0 - lr * weight_decay

    def decayed(path, p):
        chosen = True if decay is None else decay(path, p)
        if not isinstance(chosen, (bool, np.bool_)):
            raise TypeError(f"{where}: argument 'decay' must return True or False, got "
                            f"{type(chosen).__name__} {chosen!r} for {path!r}")
        return p * shrink if chosen else p

    return adam._moments_update(where, map_with_paths(decayed, params), grads, state, lr,
                                betas, eps, sgd._blame(lr, 0.0))
