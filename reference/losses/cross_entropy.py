r"""Cross-entropy loss from logits, mean over the targets that are not ignored.

.. math::
    L = -\frac{1}{N} \sum_{n:\,t_n \ne \mathrm{ignore}} \log \mathrm{softmax}(z_n)_{t_n},
    \qquad
    \frac{\partial L}{\partial z_n} = \frac{\mathrm{softmax}(z_n) - \mathrm{onehot}(t_n)}{N}

where ``N`` counts the targets that are not ``ignore_index``; ignored rows get zero gradient.
Shapes: ``logits`` (..., V) float, ``targets`` (...) int -> scalar loss.  For next-token
prediction that is ``logits`` (B, T, V) and ``targets`` (B, T).
The log-probability of the target is computed the stable way of :mod:`reference.log_softmax`
(row maximum subtracted first), so logits of any magnitude give a finite loss; the forward
keeps the probabilities, which are all the backward needs.
A batch where every target is ignored has no mean and raises ``ValueError``
(PyTorch returns NaN there).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def forward(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100):
    """``logits`` (..., V), ``targets`` (...) -> scalar ``loss``, cache."""
    _checks.float_array("cross_entropy.forward", "logits", logits, ndim_min=1)
    V = logits.shape[-1]
    _checks.int_array("cross_entropy.forward", "targets", targets, 0, V, allowed=(ignore_index,))
    _checks.same_shape("cross_entropy.forward", "targets", targets, logits.shape[:-1])
    keep = (targets != ignore_index).reshape(-1)
    n = int(keep.sum())
    if n == 0:
        raise ValueError(f"cross_entropy.forward: argument 'targets' has no target to average: "
                         f"all {targets.size} equal ignore_index={ignore_index}")
    rows = logits.reshape(-1, V)                                # (N, V)
    picked = np.where(keep, targets.reshape(-1), 0)            # a valid column for every row
    every = np.arange(rows.shape[0])
    # log softmax(z)_t = (z_t - m) - log sum_j exp(z_j - m), m the row maximum (as in
    # reference.log_softmax); the exponentials are kept, as probabilities, for the backward.
    probs = rows - rows.max(axis=1, keepdims=True)
    shifted_target = probs[every, picked]
    np.exp(probs, out=probs)
    total = probs @ np.ones(V, dtype=probs.dtype)              # row sums, one BLAS call
    log_p_target = shifted_target - np.log(total)
    loss = -log_p_target[keep].sum() / n
    probs *= (1.0 / total)[:, None]                            # softmax(z)
    return loss, (probs, targets, keep, n, logits.shape)


def backward(dloss, cache) -> dict:
    """scalar ``dloss`` -> ``{"logits": (..., V)}``."""
    probs, targets, keep, n, shape = cache
    dloss = _checks.dout_like("cross_entropy.backward", dloss, (), name="dloss")
    scale = float(dloss) / n
    grad = probs * scale                                       # (softmax(z) - onehot) / N
    grad[np.arange(grad.shape[0]), np.where(keep, targets.reshape(-1), 0)] -= scale
    if not keep.all():
        grad[~keep] = 0.0                                      # ignored rows: no gradient
    return {"logits": grad.reshape(shape)}
