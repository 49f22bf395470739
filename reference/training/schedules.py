r"""Learning-rate schedules, as functions of the step number $t = 0, 1, 2, \dots$

Linear warmup over $W$ steps (never 0, as in nanoGPT):

$$ \eta_t = \eta\,\frac{\min(t + 1, W)}{W} $$

Cosine decay from $\eta$ to $\eta_{min}$ over $T$ steps:

$$ \eta_t = \eta_{min} + (\eta - \eta_{min})\,\frac{1 + \cos(\pi \min(t, T) / T)}{2} $$

`warmup_cosine` runs the warmup for $W$ steps, then the cosine over the remaining $T - W$
steps, and stays at $\eta_{min}$ after $T$.  These equal PyTorch's ``LinearLR``,
``CosineAnnealingLR`` and their ``SequentialLR`` chain.

Step numbers and step counts are ints (Python or NumPy); rates are finite numbers; every
schedule returns a Python float.
"""

from __future__ import annotations

import math

from llmref import _checks
from llmref._contract import contract


@contract(example=lambda rng: {"t": 3, "base_lr": 0.1, "warmup_steps": 10},
          lenient={"t": ("zero",)})                             # t = 0 is the first step
def linear_warmup(t: int, base_lr: float, warmup_steps: int) -> float:
    r"""Linear warmup to ``base_lr`` over ``warmup_steps`` steps, then constant.

    $$ \eta_t = \eta\,\frac{\min(t + 1, W)}{W} $$

    Parameters
    ----------
    t : int
        Step number, >= 0.
    base_lr : float
        The rate $\eta > 0$ reached at the end of the warmup.
    warmup_steps : int
        $W > 0$.

    Returns
    -------
    lr : float
        $\eta_t$, in (0, base_lr].

    Raises
    ------
    TypeError
        If ``t`` or ``warmup_steps`` is not an int, or ``base_lr`` is not a number.
    ValueError
        If ``t < 0``, ``warmup_steps < 1`` or ``base_lr`` is not a finite number > 0.
    """
    where = "schedules.linear_warmup"
    t = _checks.integer(where, "t", t, low=0)
    base_lr = _checks.real(where, "base_lr", base_lr, 0.0, low_open=True)
    warmup_steps = _checks.integer(where, "warmup_steps", warmup_steps, low=1)
    return _linear_warmup(t, base_lr, warmup_steps)


@contract(example=lambda rng: {"t": 3, "base_lr": 0.1, "total_steps": 10, "min_lr": 0.01},
          lenient={"t": ("zero",)})                             # t = 0 is the first step
def cosine(t: int, base_lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    r"""Cosine decay from ``base_lr`` to ``min_lr`` over ``total_steps`` steps, then
    constant.

    $$ \eta_t = \eta_{min} + (\eta - \eta_{min})\,\frac{1 + \cos(\pi \min(t, T) / T)}{2} $$

    Parameters
    ----------
    t : int
        Step number, >= 0.
    base_lr : float
        The starting rate $\eta > 0$.
    total_steps : int
        $T > 0$.
    min_lr : float, default 0.0
        The final rate $\eta_{min}$, in [0, base_lr].

    Returns
    -------
    lr : float
        $\eta_t$, in [min_lr, base_lr].

    Raises
    ------
    TypeError
        If ``t`` or ``total_steps`` is not an int, or a rate is not a number.
    ValueError
        If ``t < 0``, ``total_steps < 1`` or a rate is not finite or out of its range.
    """
    where = "schedules.cosine"
    t = _checks.integer(where, "t", t, low=0)
    base_lr = _checks.real(where, "base_lr", base_lr, 0.0, low_open=True)
    total_steps = _checks.integer(where, "total_steps", total_steps, low=1)
    min_lr = _checks.real(where, "min_lr", min_lr, 0.0, base_lr)
    return _cosine(t, base_lr, total_steps, min_lr)


@contract(example=lambda rng: {"t": 3, "base_lr": 0.1, "warmup_steps": 2, "total_steps": 10,
                               "min_lr": 0.01},
          lenient={"t": ("zero",),                              # t = 0 is the first step
                   "warmup_steps": ("zero",)})                  # no warmup: plain cosine
def warmup_cosine(t: int, base_lr: float, warmup_steps: int, total_steps: int,
                  min_lr: float = 0.0) -> float:
    r"""Linear warmup for ``warmup_steps`` steps, then cosine decay to ``min_lr`` at
    ``total_steps``.

    $$ \eta_t = \begin{cases} \mathrm{linear\_warmup}(t, \eta, W) & t < W \\
       \mathrm{cosine}(t - W, \eta, T - W, \eta_{min}) & t \ge W \end{cases} $$

    Parameters
    ----------
    t : int
        Step number, >= 0.
    base_lr : float
        The peak rate $\eta > 0$.
    warmup_steps : int
        $W \ge 0$ (0: no warmup).
    total_steps : int
        $T > W$.
    min_lr : float, default 0.0
        The final rate $\eta_{min}$, in [0, base_lr].

    Returns
    -------
    lr : float
        $\eta_t$.

    Raises
    ------
    TypeError
        If a step number or count is not an int, or a rate is not a number.
    ValueError
        If ``t < 0``, ``warmup_steps < 0``, ``total_steps <= warmup_steps`` or a rate is not
        finite or out of its range.
    """
    where = "schedules.warmup_cosine"
    t = _checks.integer(where, "t", t, low=0)
    base_lr = _checks.real(where, "base_lr", base_lr, 0.0, low_open=True)
    warmup_steps = _checks.integer(where, "warmup_steps", warmup_steps, low=0)
    total_steps = _checks.integer(where, "total_steps", total_steps, low=1)
    if total_steps <= warmup_steps:
        raise ValueError(f"{where}: argument 'total_steps' must be > warmup_steps = "
                         f"{warmup_steps}, got {total_steps!r}")
    min_lr = _checks.real(where, "min_lr", min_lr, 0.0, base_lr)
    if t < warmup_steps:
        return _linear_warmup(t, base_lr, warmup_steps)
    return _cosine(t - warmup_steps, base_lr, total_steps - warmup_steps, min_lr)


# Unchecked cores: arguments already checked (Python ints and floats).

def _linear_warmup(t: int, base_lr: float, warmup_steps: int) -> float:
    return base_lr * (min(t + 1, warmup_steps) / warmup_steps)       # <= base_lr: no overflow


def _cosine(t: int, base_lr: float, total_steps: int, min_lr: float) -> float:
    t = min(t, total_steps)
    if t == 0:                   # exactly base_lr at the start (the formula rounds: 0.99999 ->
        return float(base_lr)    # 0.9999900000000002 with min_lr > 0)
    return min_lr + (base_lr - min_lr) * ((1.0 + math.cos(math.pi * t / total_steps)) / 2.0)
