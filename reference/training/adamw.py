r"""AdamW: Adam with decoupled weight decay (``torch.optim.AdamW``).

.. math::
    \theta \leftarrow \theta\,(1 - \eta\lambda) \quad\text{then the Adam update of}\quad
    \nabla L \text{ alone}

The decay shrinks the weights directly instead of entering the moments, so every decayed
parameter shrinks by the same factor whatever its gradient history.  Which parameters decay
is an argument: ``decay`` is a predicate ``decay(path, array) -> bool`` on each leaf, its
path written as in :func:`reference.params.flatten` (``"blocks.0.attn.qkv.W"``); ``None``
decays every parameter.  :func:`matrices_only` is the usual choice (GPT-2, nanoGPT): decay
matrices, not biases, layer-norm gains or other vectors.
"""

from __future__ import annotations

import numpy as np

from llmref.params import check_finite, map_trees, map_with_paths
from llmref.training import adam, sgd

init = adam.init


def matrices_only(path: str, leaf: np.ndarray) -> bool:
    """Decay predicate: True for leaves with 2 or more dimensions."""
    return leaf.ndim >= 2


def step(params, grads, state: dict, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.01, decay=None):
    """One AdamW update; returns ``(new_params, new_state)``."""
    where = "adamw.step"
    sgd.check_hyper(where, lr, weight_decay)
    adam.check_betas(where, betas, eps)
    check_finite(where, "grads", grads)
    map_trees(where, lambda p, g: None, params, grads)          # same structure and shapes
    shrink = 1.0 - lr * weight_decay
    decayed = map_with_paths(
        lambda path, p: p * shrink if decay is None or decay(path, p) else p, params)
    return adam.moments_update(where, decayed, grads, state, lr, betas, eps)
