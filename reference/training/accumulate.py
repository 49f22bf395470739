r"""Gradient accumulation: the gradient of a large batch from k smaller micro-batches.

$$ \nabla \frac{1}{k}\sum_{j=1}^{k} L_j = \frac{1}{k}\sum_{j=1}^{k} \nabla L_j $$

so summing the micro-batch gradients of $L_j / k$ gives the gradient of the mean of the
micro-batch losses.  That equals the large batch's gradient when the large-batch loss is the
mean of the micro-batch losses, which for a mean over tokens requires every micro-batch to
count the same number of tokens (with ``ignore_index`` padding it may not).

Gradients are trees (dicts and lists) of floating-point arrays; the sum runs in their dtype.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.params import map_trees


def _example_fn(batch):
    """Loss ``sum(batch)^2 / 2`` of a one-weight model, for the contract example."""
    s = float(np.sum(batch))
    return 0.5 * s * s, {"w": np.array([s])}


@contract(example=lambda rng: {"fn": _example_fn,
                               "micro_batches": [rng.standard_normal(3) for _ in range(2)]})
def loss_and_grads(fn, micro_batches):
    r"""The mean loss over micro-batches and its gradient, one micro-batch at a time.

    $$ L = \frac{1}{k}\sum_j L_j, \qquad \nabla L = \sum_j \frac{\nabla L_j}{k} $$

    Parameters
    ----------
    fn : callable
        ``fn(batch) -> (loss, grads)`` for one micro-batch: ``loss`` a finite number,
        ``grads`` a tree of finite floating-point arrays, the same structure, shapes and
        dtypes for every micro-batch.
    micro_batches : iterable
        The $k \ge 1$ micro-batches, each passed to ``fn`` as it is (index arrays, for
        example).

    Returns
    -------
    loss : float
        The mean of the micro-batch losses.
    grads : dict
        New tree: the gradient of the mean loss.

    Raises
    ------
    TypeError
        If ``fn`` is not a function, ``micro_batches`` is not iterable, or ``fn`` returns
        something other than a (number, tree of floating-point arrays) pair.
    ValueError
        If there is no micro-batch, or ``fn`` returns a NaN or infinite loss or gradient or
        gradients of different structures or shapes.
    """
    return _loss_and_grads("accumulate.loss_and_grads", "fn", fn, "micro_batches",
                           micro_batches)


def _loss_and_grads(where: str, fn_name: str, fn, batches_name: str, micro_batches):
    """The checked accumulation; messages name the caller ``where`` and its arguments."""
    _checks.function(where, fn_name, fn)
    if isinstance(micro_batches, (str, bytes, dict)) or not hasattr(micro_batches, "__iter__"):
        raise TypeError(f"{where}: argument {batches_name!r} must be a list (or another "
                        f"iterable) of micro-batches, got {_checks._describe(micro_batches)}")
    micro_batches = list(micro_batches)
    if not micro_batches:
        raise ValueError(f"{where}: argument {batches_name!r} must hold at least one "
                         f"micro-batch, got none")
    return _accumulate(where, fn_name, fn, micro_batches)


def _accumulate(where: str, fn_name: str, fn, micro_batches: list):
    """The accumulation over a non-empty list, each result checked (messages name the caller
    ``where`` and its function argument ``fn_name``)."""
    k = len(micro_batches)
    total_loss, total, first = 0.0, None, None
    for j, batch in enumerate(micro_batches):
        loss, grads, flat = _result(where, fn_name, fn(batch), j, first)
        first = flat if first is None else first
        total_loss += loss / k
        scaled = map_trees(where, lambda g: g / k, grads)
        total = scaled if total is None else map_trees(where, lambda a, b: a + b, total, scaled)
    return total_loss, total


def _result(where: str, fn_name: str, result, j: int, first: dict | None):
    """``(loss as a float, grads, flat grads)`` from one call of ``fn``, checked: a finite
    loss, finite floating-point gradients shaped like the first micro-batch's (``first``)."""
    loss, grads = _checks.loss_and_grads_result(where, fn_name, result,
                                                f" for micro-batch {j}")
    if not np.isfinite(loss):
        raise ValueError(f"{where}: argument {fn_name!r} returned the loss {float(loss)!r} "
                         f"for micro-batch {j}; it must be finite")
    try:
        flat = _checks.float_tree(where, "grads", grads)
        if first is not None:
            _checks.same_tree(where, "grads", flat, "the first micro-batch's", first)
    except (TypeError, ValueError) as exc:
        detail = str(exc).removeprefix(f"{where}: argument ")
        raise type(exc)(f"{where}: argument {fn_name!r} returned bad gradients for "
                        f"micro-batch {j}: {detail}") from None
    return float(loss), grads, flat
