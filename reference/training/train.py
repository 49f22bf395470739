r"""The training loop: epochs, seeded shuffling, micro-batches, clipping, a schedule, logging.

One epoch visits every example exactly once, in an order drawn from a seeded generator, in
batches of ``batch_size`` (the last one may be smaller).  Each batch is split into
``micro_batches`` parts whose gradients are accumulated (`accumulate`), then optionally
clipped (`clip`), then handed to the optimizer with the learning rate of the schedule at
that step:

$$ \theta_{s+1} = \mathrm{opt}\Big(\theta_s,\ \mathrm{clip}\Big(\sum_j
   \frac{\nabla L_j}{k}\Big),\ \eta(s)\Big) $$

At the edges: parts differ in size by at most one example when `micro_batches` does not
divide a batch, and each part weighs the same in the mean (as in `accumulate`);
a last batch with fewer examples than `micro_batches` is split into one-example parts (no
part is ever empty).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.params import flatten
from llmref.training import accumulate, clip, sgd


@contract(example=lambda rng: {"n_examples": 10, "batch_size": 4,
                               "rng": np.random.default_rng(0)})
def epoch_batches(n_examples: int, batch_size: int, rng: np.random.Generator) -> list:
    """Index arrays of one epoch: a permutation of ``range(n_examples)`` cut into batches.

    Parameters
    ----------
    n_examples : int
        Number of examples, >= 1.
    batch_size : int
        Examples per batch, >= 1; the last batch holds the remainder.
    rng : numpy.random.Generator
        Draws the permutation (advanced by the call).

    Returns
    -------
    batches : list of ndarray, int64
        ``ceil(n_examples / batch_size)`` index arrays that together hold every index once.

    Raises
    ------
    TypeError
        If a size is not an int or ``rng`` is not a ``numpy.random.Generator``.
    ValueError
        If a size is < 1.
    """
    where = "train.epoch_batches"
    n_examples = _checks.integer(where, "n_examples", n_examples, low=1)
    batch_size = _checks.integer(where, "batch_size", batch_size, low=1)
    _check_rng(where, rng)
    return _epoch_batches(n_examples, batch_size, rng)


def _example_loss_and_grads(inputs, targets, params):
    """Mean cross-entropy of a bigram table ``W[inputs]`` against ``targets`` (the contract
    example's model)."""
    logits = params["W"][inputs]                                        # (n, V)
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(targets))
    loss = -np.mean(np.log(p[rows, targets]))
    p[rows, targets] -= 1.0
    grad = np.zeros_like(params["W"])
    np.add.at(grad, inputs, p / len(targets))
    return loss, {"W": grad}


def _train_example(rng) -> dict:
    inputs = rng.integers(0, 5, size=8)
    return {"params": {"W": 0.1 * rng.standard_normal((5, 5))},
            "loss_and_grads": _example_loss_and_grads, "inputs": inputs,
            "targets": (inputs + 1) % 5, "epochs": 2, "batch_size": 4, "optimizer": sgd,
            "lr": 0.5, "micro_batches": 2, "max_grad_norm": 1.0, "seed": 3, "log_every": 1,
            "log": lambda line: None}


@contract(example=_train_example,
          # the loop only selects examples by index: what they hold is loss_and_grads' concern
          lenient={"params": ("missing_key", "extra_key"),      # any tree: the model's concern
                   "inputs": ("float_dtype", "negative", "too_large"),
                   "targets": ("float_dtype", "negative", "too_large"),
                   "max_grad_norm": ("none",),                  # None: no clipping
                   "seed": ("zero",), "log_every": ("zero",)})   # 0: a seed; 0: never log
def train(params, loss_and_grads: Callable, inputs: np.ndarray, targets: np.ndarray, *,
          epochs: int, batch_size: int, optimizer, lr: float | Callable[[int], float],
          micro_batches: int = 1, max_grad_norm: float | None = None, seed: int = 0,
          log_every: int = 0, log: Callable[[str], None] = print, **optimizer_kwargs):
    r"""Train and return the final parameters and the history of every step.

    $$ \text{for each batch: } (L, g) = \frac{1}{k}\sum_j \mathrm{loss\_and\_grads}(j), \quad
       g \leftarrow \mathrm{clip}(g), \quad \theta \leftarrow \mathrm{optimizer.step}(\theta,
       g, \eta(s)) $$

    Parameters
    ----------
    params : dict
        Parameter tree: dicts and lists with finite floating-point arrays as leaves.
    loss_and_grads : callable
        ``loss_and_grads(inputs[idx], targets[idx], params) -> (loss, grads)`` for one
        (micro-)batch: a finite loss and finite gradients with the tree of ``params``.
    inputs : ndarray, shape (N, ...)
        The examples (first axis); any dtype, passed to ``loss_and_grads`` by index.
    targets : ndarray, shape (N, ...)
        One target per example.
    epochs : int
        Passes over the data, >= 1.
    batch_size : int
        Examples per step, >= ``micro_batches``.
    optimizer : module or object
        With ``init(params)`` and ``step(params, grads, state, lr=..., **optimizer_kwargs)``
        (for example `adamw`).
    lr : float or callable
        A rate > 0, or a schedule ``lr(step) -> rate`` (for example a closure over
        `schedules.warmup_cosine`) whose every rate is a finite number > 0.
    micro_batches : int, default 1
        Parts each batch is split into for gradient accumulation, >= 1.
    max_grad_norm : float or None, default None
        Clip the accumulated gradient to this global norm (> 0); None: no clipping.
    seed : int, default 0
        Seed of the shuffling, >= 0.
    log_every : int, default 0
        Every this many steps a line with the loss and the speed goes to ``log``; 0: never.
    log : callable, default print
        Receives each log line (a string).
    **optimizer_kwargs
        Passed to ``optimizer.step`` (checked there, under its own name).

    Returns
    -------
    params : dict
        The trained parameter tree (new arrays).
    history : list of dict
        One per step: ``epoch``, ``step``, ``loss``, ``lr``, ``grad_norm`` (before
        clipping) and ``examples`` (the indices the batch used).

    Raises
    ------
    TypeError
        If an argument has the wrong type (a count not an int, ``lr`` neither a number nor a
        function, ``optimizer`` without ``init`` and ``step``...), or ``loss_and_grads``
        returns the wrong kind of value.
    ValueError
        If a count or rate is out of its range, ``inputs`` and ``targets`` hold different
        numbers of examples or none, ``params`` holds NaN or inf, or ``loss_and_grads``
        returns a NaN or infinite loss or gradient.
    """
    where = "train.train"
    _checks.float_tree(where, "params", params)
    _checks.function(where, "loss_and_grads", loss_and_grads)
    for name, data in (("inputs", inputs), ("targets", targets)):
        if not isinstance(data, np.ndarray) or data.ndim == 0:
            raise TypeError(f"{where}: argument {name!r} must be a NumPy array with one "
                            f"example per row, got {_checks._describe(data)}")
        if len(data) == 0:
            raise ValueError(f"{where}: argument {name!r} must hold at least one example, "
                             f"got shape {data.shape}")
    if len(inputs) != len(targets):
        raise ValueError(f"{where}: arguments 'inputs' and 'targets' must have the same "
                         f"number of examples, got {len(inputs)} and {len(targets)}")
    epochs = _checks.integer(where, "epochs", epochs, low=1)
    micro_batches = _checks.integer(where, "micro_batches", micro_batches, low=1)
    batch_size = _checks.integer(where, "batch_size", batch_size, low=1)
    if batch_size < micro_batches:
        raise ValueError(f"{where}: argument 'batch_size' must be >= micro_batches = "
                         f"{micro_batches}, got {batch_size}")
    for method in ("init", "step"):
        if not callable(getattr(optimizer, method, None)):
            raise TypeError(f"{where}: argument 'optimizer' must have a function {method}() "
                            f"(a module such as llmref.adamw), got {optimizer!r}")
    if not callable(lr):
        _checks.real(where, "lr", lr, 0.0, low_open=True)
    if max_grad_norm is not None:
        max_grad_norm = _checks.real(where, "max_grad_norm", max_grad_norm, 0.0,
                                     low_open=True)
    seed = _checks.integer(where, "seed", seed, low=0)
    log_every = _checks.integer(where, "log_every", log_every, low=0)
    _checks.function(where, "log", log)

    rng = np.random.default_rng(seed)
    state = optimizer.init(params)
    history, step, start = [], 0, time.perf_counter()
    for epoch in range(epochs):
        for batch in _epoch_batches(len(inputs), batch_size, rng):
            parts = np.array_split(batch, min(micro_batches, len(batch)))
            loss, grads = accumulate._accumulate(
                where, "loss_and_grads",
                lambda idx, p=params: loss_and_grads(inputs[idx], targets[idx], p), parts)
            flat = flatten(grads)                  # checked, part by part, by _accumulate
            try:
                _checks.same_tree(where, "grads", flat, "params", flatten(params))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{where}: argument 'loss_and_grads' returned bad gradients "
                                f"at step {step}: "
                                f"{str(exc).removeprefix(f'{where}: argument ')}") from None
            if max_grad_norm is None:
                norm = clip._global_norm(flat)
            else:
                grads, norm = clip.clip_by_global_norm(grads, max_grad_norm)
            rate = _rate(where, lr, step)
            params, state = optimizer.step(params, grads, state, lr=rate, **optimizer_kwargs)
            history.append({"epoch": epoch, "step": step, "loss": loss, "lr": rate,
                            "grad_norm": norm, "examples": batch})
            step += 1
            if log_every and step % log_every == 0:
                elapsed = time.perf_counter() - start
                log(f"epoch {epoch + 1}/{epochs}  step {step}  loss {loss:.4f}  "
                    f"lr {rate:.2e}  |g| {norm:.3f}  {step / elapsed:.1f} steps/s")
    return params, history


def _check_rng(where: str, rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{where}: argument 'rng' must be a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {_checks._describe(rng)}")


def _rate(where: str, lr, step: int) -> float:
    """The learning rate at ``step``: ``lr`` itself, or what the schedule ``lr`` returns."""
    if not callable(lr):
        return float(lr)
    rate = lr(step)
    if isinstance(rate, (bool, np.bool_)) or not isinstance(
            rate, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: argument 'lr' (a schedule) must return a number, got "
                        f"{_checks._describe(rate)} at step {step}")
    if not (np.isfinite(rate) and rate > 0):
        raise ValueError(f"{where}: argument 'lr' (a schedule) must return a finite number "
                         f"> 0 at every step, got {rate!r} at step {step}")
    return float(rate)


def _epoch_batches(n_examples: int, batch_size: int, rng: np.random.Generator) -> list:
    order = rng.permutation(n_examples)
    return [order[i:i + batch_size] for i in range(0, n_examples, batch_size)]
