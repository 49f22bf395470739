r"""Gradient clipping by global norm (``torch.nn.utils.clip_grad_norm_``).

$$ n = \sqrt{\textstyle\sum_{\text{all leaves}} \sum g^2}, \qquad
   g \leftarrow g \cdot \min\!\Big(1, \frac{c}{n + 10^{-6}}\Big) $$

Every gradient is scaled by the same factor, so the update keeps its direction and only its
length is capped at ``max_norm`` (the 1e-6 guards against a zero norm, as in PyTorch).

``grads`` is a tree (dicts and lists) of finite floating-point arrays.  The norm is summed in
float64 whatever the leaves' dtype (float16 squares overflow above 256 and underflow below
2.4e-4), and rescaled by the largest element if even float64 overflows; the clipped leaves
keep their dtype.
At the edges: all-zero gradients come back unchanged (factor 1, norm 0); a norm equal to
`max_norm` is scaled by `max_norm / (max_norm + 1e-6)`, just under 1, as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.params import map_trees
from llmref.training import sgd


@contract(example=lambda rng: {"grads": sgd._example_tree(rng)},
          lenient={"grads": ("missing_key", "extra_key")})      # any tree is a valid one
def global_norm(grads) -> float:
    r"""The L2 norm of all gradients taken together.

    $$ n = \sqrt{\textstyle\sum_{\text{leaves}} \sum_i g_i^2} $$

    Parameters
    ----------
    grads : dict
        Gradient tree: dicts and lists with finite floating-point arrays as leaves.

    Returns
    -------
    norm : float
        The global norm (0.0 for an empty tree), computed in float64.

    Raises
    ------
    TypeError
        If ``grads`` is not a dict or a leaf is not a floating-point array.
    ValueError
        If a leaf holds NaN or inf.
    """
    return _global_norm(_checks.float_tree("clip.global_norm", "grads", grads))


@contract(example=lambda rng: {"grads": sgd._example_tree(rng), "max_norm": 1.0},
          lenient={"grads": ("missing_key", "extra_key")})      # any tree is a valid one
def clip_by_global_norm(grads, max_norm: float):
    r"""Scale every gradient by one factor so that the global norm is at most ``max_norm``.

    $$ g \leftarrow g \cdot \min\!\Big(1, \frac{c}{n + 10^{-6}}\Big) $$

    Parameters
    ----------
    grads : dict
        Gradient tree: dicts and lists with finite floating-point arrays as leaves.
    max_norm : float
        The cap $c > 0$.

    Returns
    -------
    clipped : dict
        New tree of the same structure (new arrays, each leaf's dtype kept); ``grads`` is
        not changed.
    norm : float
        The global norm before clipping.

    Raises
    ------
    TypeError
        If ``grads`` is not a dict, a leaf is not a floating-point array or ``max_norm`` is
        not a number.
    ValueError
        If a leaf holds NaN or inf or ``max_norm`` is not a finite number > 0.
    """
    where = "clip.clip_by_global_norm"
    flat = _checks.float_tree(where, "grads", grads)
    max_norm = _checks.real(where, "max_norm", max_norm, 0.0, low_open=True)
    norm = _global_norm(flat)
    factor = min(1.0, max_norm / (norm + 1e-6))
    return map_trees(where, lambda g: g * factor, grads), norm


def _global_norm(flat: dict) -> float:
    """Norm of the checked leaves of ``flat``; float64 sums, rescaled on overflow."""
    leaves = list(flat.values())
    with np.errstate(over="ignore"):
        norm = float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in leaves)))
    if np.isfinite(norm):
        return norm
    top = max(float(np.max(np.abs(g), initial=0.0)) for g in leaves)    # > 1e154 here
    return top * float(np.sqrt(sum(np.sum(np.square(g / top, dtype=np.float64))
                                   for g in leaves)))
