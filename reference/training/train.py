"""The training loop: epochs, seeded shuffling, micro-batches, clipping, a schedule, logging.

One epoch visits every example exactly once, in an order drawn from a seeded generator, in
batches of ``batch_size`` (the last one may be smaller).  Each batch is split into
``micro_batches`` parts whose gradients are accumulated (:mod:`reference.accumulate`), then
optionally clipped (:mod:`reference.clip`), then handed to the optimizer with the learning
rate of the schedule at that step.

At the edges: parts differ in size by at most one example when ``micro_batches`` does not
divide a batch, and each part weighs the same in the mean (as in :mod:`reference.accumulate`);
a last batch with fewer examples than ``micro_batches`` is split into one-example parts (no
part is ever empty).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from llmref import _checks
from llmref.training import accumulate, clip


def epoch_batches(n_examples: int, batch_size: int, rng: np.random.Generator) -> list:
    """Index arrays of one epoch: a permutation of ``range(n_examples)`` cut into batches."""
    _checks.positive("train.epoch_batches", "n_examples", n_examples, integer=True)
    _checks.positive("train.epoch_batches", "batch_size", batch_size, integer=True)
    order = rng.permutation(n_examples)
    return [order[i:i + batch_size] for i in range(0, n_examples, batch_size)]


def train(params, loss_and_grads: Callable, inputs: np.ndarray, targets: np.ndarray, *,
          epochs: int, batch_size: int, optimizer, lr: float | Callable[[int], float],
          micro_batches: int = 1, max_grad_norm: float | None = None, seed: int = 0,
          log_every: int = 0, log: Callable[[str], None] = print, **optimizer_kwargs):
    """Train and return ``(params, history)``.

    ``loss_and_grads(inputs, targets, params) -> (loss, grads)`` for one (micro-)batch;
    ``optimizer`` is a module with ``init(params)`` and ``step(params, grads, state, lr=...,
    **optimizer_kwargs)`` (for example :mod:`reference.adamw`); ``lr`` is a number or a
    function of the step.  ``history`` has one dict per step: epoch, step, loss, lr,
    grad_norm, and the example indices the batch used.  Every ``log_every`` steps (0: never)
    a line with the loss and the speed goes to ``log``.
    """
    _checks.positive("train.train", "epochs", epochs, integer=True)
    _checks.positive("train.train", "micro_batches", micro_batches, integer=True)
    if len(inputs) != len(targets):
        raise ValueError(f"train.train: arguments 'inputs' and 'targets' must have the same "
                         f"number of examples, got {len(inputs)} and {len(targets)}")
    if batch_size < micro_batches:
        raise ValueError(f"train.train: argument 'batch_size' must be >= micro_batches = "
                         f"{micro_batches}, got {batch_size}")
    rng = np.random.default_rng(seed)
    state = optimizer.init(params)
    history, step, start = [], 0, time.perf_counter()
    for epoch in range(epochs):
        for batch in epoch_batches(len(inputs), batch_size, rng):
            parts = np.array_split(batch, min(micro_batches, len(batch)))
            loss, grads = accumulate.loss_and_grads(
                lambda idx, p=params: loss_and_grads(inputs[idx], targets[idx], p), parts)
            if max_grad_norm is None:
                norm = clip.global_norm(grads)
            else:
                grads, norm = clip.clip_by_global_norm(grads, max_grad_norm)
            rate = lr(step) if callable(lr) else lr
            params, state = optimizer.step(params, grads, state, lr=rate, **optimizer_kwargs)
            history.append({"epoch": epoch, "step": step, "loss": loss, "lr": rate,
                            "grad_norm": norm, "examples": batch})
            step += 1
            if log_every and step % log_every == 0:
                elapsed = time.perf_counter() - start
                log(f"epoch {epoch + 1}/{epochs}  step {step}  loss {loss:.4f}  "
                    f"lr {rate:.2e}  |g| {norm:.3f}  {step / elapsed:.1f} steps/s")
    return params, history
