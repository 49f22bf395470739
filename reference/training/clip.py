r"""Gradient clipping by global norm (``torch.nn.utils.clip_grad_norm_``).

.. math::
    n = \sqrt{\textstyle\sum_{\text{all leaves}} \sum g^2}, \qquad
    g \leftarrow g \cdot \min\!\Big(1, \frac{c}{n + 10^{-6}}\Big)

Every gradient is scaled by the same factor, so the update keeps its direction and only its
length is capped at ``max_norm`` (the 1e-6 guards against a zero norm, as in PyTorch).
At the edges: all-zero gradients come back unchanged (factor 1, norm 0); a norm equal to
``max_norm`` is scaled by ``max_norm / (max_norm + 1e-6)``, just under 1, as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.params import check_finite, flatten, map_trees


def global_norm(grads) -> float:
    """The L2 norm of all gradients taken together."""
    return float(np.sqrt(sum(np.sum(np.square(g)) for g in flatten(grads).values())))


def clip_by_global_norm(grads, max_norm: float):
    """``(clipped_grads, norm_before)``; the input tree is not changed."""
    _checks.positive("clip.clip_by_global_norm", "max_norm", max_norm)
    check_finite("clip.clip_by_global_norm", "grads", grads)
    norm = global_norm(grads)
    factor = min(1.0, max_norm / (norm + 1e-6))
    return map_trees("clip.clip_by_global_norm", lambda g: g * factor, grads), norm
