r"""Cross-entropy loss from logits, mean over the targets that are not ignored.

.. math::
    L = -\frac{1}{N} \sum_{n:\,t_n \ne \mathrm{ignore}} \log \mathrm{softmax}(z_n)_{t_n},
    \qquad
    \frac{\partial L}{\partial z_n} = \frac{\mathrm{softmax}(z_n) - \mathrm{onehot}(t_n)}{N}

where ``N`` counts the targets that are not ``ignore_index``; ignored rows get zero gradient.
Shapes: ``logits`` (..., V) float, ``targets`` (...) int -> scalar loss.  For next-token
prediction that is ``logits`` (B, T, V) and ``targets`` (B, T).
Uses :mod:`reference.log_softmax`, so logits of any magnitude give a finite loss.
A batch where every target is ignored has no mean and raises ``ValueError``
(PyTorch returns NaN there).
"""

from __future__ import annotations

import numpy as np

from reference import _checks, log_softmax


def forward(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100):
    """``logits`` (..., V), ``targets`` (...) -> scalar ``loss``, cache."""
    _checks.float_array("cross_entropy.forward", "logits", logits, ndim_min=1)
    V = logits.shape[-1]
    _checks.int_array("cross_entropy.forward", "targets", targets, 0, V, allowed=(ignore_index,))
    _checks.same_shape("cross_entropy.forward", "targets", targets, logits.shape[:-1])
    keep = targets != ignore_index
    n = int(keep.sum())
    if n == 0:
        raise ValueError(f"cross_entropy.forward: argument 'targets' has no target to average: "
                         f"all {targets.size} equal ignore_index={ignore_index}")
    logp, _ = log_softmax.forward(logits)
    picked = np.take_along_axis(logp, np.where(keep, targets, 0)[..., None], axis=-1)[..., 0]
    loss = -picked[keep].sum() / n
    return loss, (logp, targets, keep, n)


def backward(dloss, cache) -> dict:
    """scalar ``dloss`` -> ``{"logits": (..., V)}``."""
    logp, targets, keep, n = cache
    dloss = _checks.dout_like("cross_entropy.backward", dloss, (), name="dloss")
    grad = np.exp(logp)                                        # softmax(z)
    rows = np.where(keep, targets, 0)[..., None]
    np.put_along_axis(grad, rows, np.take_along_axis(grad, rows, axis=-1) - 1.0, axis=-1)
    grad *= keep[..., None] * (float(dloss) / n)
    return {"logits": grad}
