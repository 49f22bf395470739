r"""Gradient accumulation: the gradient of a large batch from k smaller micro-batches.

.. math::
    \nabla \frac{1}{k}\sum_{j=1}^{k} L_j = \frac{1}{k}\sum_{j=1}^{k} \nabla L_j

so summing the micro-batch gradients of ``loss / k`` gives the gradient of the mean of the
micro-batch losses.  That equals the large batch's gradient when the large-batch loss is the
mean of the micro-batch losses, which for a mean over tokens requires every micro-batch to
count the same number of tokens (with ``ignore_index`` padding it may not).
"""

from __future__ import annotations

from llmref.params import map_trees


def loss_and_grads(fn, micro_batches):
    """``fn(batch) -> (loss, grads)`` over each micro-batch; returns ``(mean loss, grads of
    the mean loss)``."""
    micro_batches = list(micro_batches)
    if not micro_batches:
        raise ValueError("accumulate.loss_and_grads: argument 'micro_batches' must not be empty")
    k = len(micro_batches)
    total_loss, total = 0.0, None
    for batch in micro_batches:
        loss, grads = fn(batch)
        total_loss += float(loss) / k
        scaled = map_trees("accumulate.loss_and_grads", lambda g: g / k, grads)
        total = scaled if total is None else map_trees(
            "accumulate.loss_and_grads", lambda a, b: a + b, total, scaled)
    return total_loss, total
