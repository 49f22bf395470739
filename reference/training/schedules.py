r"""Learning-rate schedules, as functions of the step number ``t = 0, 1, 2, ...``.

Linear warmup over ``W`` steps (never 0, as in nanoGPT):

.. math::  \eta_t = \eta\,\frac{t + 1}{W} \quad (t < W)

Cosine decay from ``eta`` to ``eta_min`` over ``T`` steps:

.. math::  \eta_t = \eta_{min} + (\eta - \eta_{min})\,\frac{1 + \cos(\pi\, t / T)}{2}

``warmup_cosine`` runs the warmup for ``W`` steps, then the cosine over the remaining
``T - W`` steps, and stays at ``eta_min`` after ``T``.  These equal PyTorch's ``LinearLR``,
``CosineAnnealingLR`` and their ``SequentialLR`` chain.
"""

from __future__ import annotations

import math

from llmref import _checks


def _check_step(where: str, t) -> None:
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise ValueError(f"{where}: argument 't' must be an int >= 0, got {t!r}")


def linear_warmup(t: int, base_lr: float, warmup_steps: int) -> float:
    _check_step("schedules.linear_warmup", t)
    _checks.positive("schedules.linear_warmup", "base_lr", base_lr)
    _checks.positive("schedules.linear_warmup", "warmup_steps", warmup_steps, integer=True)
    return base_lr * min(t + 1, warmup_steps) / warmup_steps


def cosine(t: int, base_lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    _check_step("schedules.cosine", t)
    _checks.positive("schedules.cosine", "base_lr", base_lr)
    _checks.positive("schedules.cosine", "total_steps", total_steps, integer=True)
    if not 0 <= min_lr <= base_lr:
        raise ValueError(f"schedules.cosine: argument 'min_lr' must be in [0, base_lr = "
                         f"{base_lr}], got {min_lr!r}")
    t = min(t, total_steps)
    return min_lr + (base_lr - min_lr) * (1.0 + math.cos(math.pi * t / total_steps)) / 2.0


def warmup_cosine(t: int, base_lr: float, warmup_steps: int, total_steps: int,
                  min_lr: float = 0.0) -> float:
    if not total_steps > warmup_steps:
        raise ValueError(f"schedules.warmup_cosine: argument 'total_steps' must be > "
                         f"warmup_steps = {warmup_steps}, got {total_steps!r}")
    if t < warmup_steps:
        return linear_warmup(t, base_lr, warmup_steps)
    return cosine(t - warmup_steps, base_lr, total_steps - warmup_steps, min_lr)
