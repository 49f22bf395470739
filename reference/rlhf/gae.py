r"""Generalized advantage estimation (GAE) and advantage whitening.

$$ \delta_t = r_t + \gamma\,(1 - d_t)\,V_{t+1} - V_t, \qquad
   A_t = \delta_t + \gamma\lambda\,(1 - d_t)(1 - u_t)\,A_{t+1}, \qquad R_t = A_t + V_t $$

Conventions, stated because the libraries differ (see the RLHF page's conventions table):

- `dones[t]` ($d_t$) is True when the episode **terminated after step t**: nothing from later
  steps reaches it, and nothing is bootstrapped.  (stable-baselines3 stores the same
  information shifted by one, as `episode_starts[t + 1]`.)
- The step after the last column is bootstrapped with `next_value` (B,), which is
  **required**: pass zeros for rows that end there, the critic's value of the next state for
  rows that go on.  There is no silent default.
- `truncated[t]` ($u_t$), optional, is True when a time limit cut the episode after step t
  without terminating it: the advantage recursion stops there, as for a termination, but the
  TD error still bootstraps, from `truncated_value[t]` (the value of the state the episode
  would have continued from) in place of $V_{t+1}$.  (stable-baselines3 adds
  $\gamma V$ of that state to $r_t$, which is the same.)
- `mask` (B, T), optional, marks the steps that are actions (response tokens).  Steps
  outside it are skipped: their advantage and return are 0, and the recursion passes over
  them, so the next real step's value is what a real step bootstraps from.  With
  right-padded responses this is "GAE over the response tokens only".

`lambda = 0` gives the one-step TD error; `lambda = 1` gives the discounted return minus the
value.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


def _advantages_example(rng):
    dones = np.zeros((2, 4), dtype=bool)
    dones[:, -1] = True
    mask = np.ones((2, 4), dtype=bool)
    mask[1, 2:] = False
    return {"rewards": rng.standard_normal((2, 4)), "values": rng.standard_normal((2, 4)),
            "dones": dones, "gamma": 0.99, "lam": 0.95, "next_value": np.zeros(2),
            "mask": mask, "truncated": np.zeros((2, 4), dtype=bool),
            "truncated_value": rng.standard_normal((2, 4))}


def _flags(where, name, flags, shape):
    if flags is None:
        return np.zeros(shape, dtype=bool)
    if getattr(flags, "shape", None) != shape:
        _checks.bool_array(where, name, flags, getattr(flags, "shape", ()))
        raise ValueError(f"{where}: argument '{name}' must have the shape of 'rewards', "
                         f"{shape}, got shape {flags.shape}")
    return _checks.bool_array(where, name, flags, shape)


@contract(example=_advantages_example,
          lenient={"mask": ("none",), "truncated": ("none",), "truncated_value": ("none",)})
def advantages(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, gamma: float,
               lam: float, *, next_value: np.ndarray, mask: np.ndarray | None = None,
               truncated: np.ndarray | None = None,
               truncated_value: np.ndarray | None = None):
    r"""Advantages and returns of a batch of trajectories by GAE.

    $$ \delta_t = r_t + \gamma\,(1 - d_t)\,\tilde V_{t+1} - V_t, \qquad
       A_t = \delta_t + \gamma\lambda\,(1 - d_t)(1 - u_t)\,A_{t+1}, \qquad R_t = A_t + V_t $$

    where $\tilde V_{t+1}$ is the value of the next real step (`next_value` after the last
    one), or `truncated_value[t]` where `truncated[t]`.

    Parameters
    ----------
    rewards : ndarray, shape (B, T), floating
        Reward of each step.
    values : ndarray, shape (B, T), floating
        The critic's value of the state each step acts in.
    dones : ndarray of bool, shape (B, T)
        True where the episode terminated after that step.
    gamma : float
        Discount, in [0, 1].
    lam : float
        GAE's lambda, in [0, 1].
    next_value : ndarray, shape (B,), floating
        Value of the state after each row's last real step (ignored where that step is done
        or truncated); required.
    mask : ndarray of bool, shape (B, T), default None
        True for the steps that are actions; None: all of them.
    truncated : ndarray of bool, shape (B, T), default None
        True where a time limit cut the episode after that step (a termination wins where
        both are True).
    truncated_value : ndarray, shape (B, T), floating, default None
        Where `truncated`, the value of the state the episode would have continued from;
        required with `truncated`.

    Returns
    -------
    advantages : ndarray, shape (B, T)
        0 outside the mask.
    returns : ndarray, shape (B, T)
        `advantages + values`, the critic's regression targets; 0 outside the mask.

    Raises
    ------
    TypeError
        If an array has the wrong kind (floating point; boolean flags and mask) or a number
        is not a number.
    ValueError
        If an array has the wrong shape, is empty or not finite, `gamma` or `lam` is outside
        [0, 1], or `truncated` comes without `truncated_value`.
    """
    where = "gae.advantages"
    _checks.float_array(where, "rewards", rewards, ndim=2)
    shape = rewards.shape
    _checks.float_array(where, "values", values, ndim=2)
    if values.shape != shape:
        raise ValueError(f"{where}: argument 'values' must have the shape of 'rewards', "
                         f"{shape}, got shape {values.shape}")
    if dones is None:
        raise TypeError(f"{where}: argument 'dones' must be a boolean NumPy array, got None")
    dones = _flags(where, "dones", dones, shape)
    gamma = _checks.number(where, "gamma", gamma, low=0.0, high=1.0)
    lam = _checks.number(where, "lam", lam, low=0.0, high=1.0)
    _checks.float_array(where, "next_value", next_value, ndim=1)
    if next_value.shape != shape[:1]:
        raise ValueError(f"{where}: argument 'next_value' must have shape (B,) = {shape[:1]} "
                         f"(one per row of 'rewards'), got shape {next_value.shape}")
    mask = np.ones(shape, dtype=bool) if mask is None else _flags(where, "mask", mask, shape)
    truncated = _flags(where, "truncated", truncated, shape)
    if truncated.any():
        if truncated_value is None:
            raise ValueError(f"{where}: argument 'truncated_value' is needed where "
                             f"'truncated' is True (the value to bootstrap from)")
    if truncated_value is not None:
        _checks.float_array(where, "truncated_value", truncated_value, ndim=2)
        if truncated_value.shape != shape:
            raise ValueError(f"{where}: argument 'truncated_value' must have the shape of "
                             f"'rewards', {shape}, got shape {truncated_value.shape}")
    B, T = shape
    adv = np.zeros(shape)
    running = np.zeros(B)                       # A of the next real step
    v_next = np.asarray(next_value, dtype=np.float64).copy()   # V of the next real step
    for t in reversed(range(T)):
        keep = 1.0 - dones[:, t]
        cut = truncated[:, t] & ~dones[:, t]
        bootstrap = np.where(cut, truncated_value[:, t], v_next) if cut.any() else v_next
        delta = rewards[:, t] + gamma * keep * bootstrap - values[:, t]
        a = delta + gamma * lam * keep * (1.0 - cut) * running
        real = mask[:, t]
        adv[:, t] = np.where(real, a, 0.0)
        running = np.where(real, a, running)
        v_next = np.where(real, values[:, t], v_next)
    return adv, np.where(mask, adv + values, 0.0)


def _whiten_example(rng):
    mask = np.ones((2, 3), dtype=bool)
    mask[1, 2] = False
    return {"x": rng.standard_normal((2, 3)), "mask": mask, "eps": 1e-8}


@contract(example=_whiten_example, lenient={"mask": ("none",)})
def whiten(x: np.ndarray, mask: np.ndarray | None = None, eps: float = 1e-8) -> np.ndarray:
    r"""Shift and scale `x` to mean 0 and variance 1 over the entries where `mask` is True.

    $$ \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
       \mu = \operatorname{mean}_m x, \qquad \sigma^2 = \operatorname{mean}_m (x - \mu)^2 $$

    The variance is the population variance (divided by n); stable-baselines3 and TRL divide
    by n - 1 (`torch.std`, `torch.var`), so their result is ours times
    $\sqrt{(n-1)/n}$.

    Parameters
    ----------
    x : ndarray, any shape, floating
    mask : ndarray of bool, the shape of `x`, default None
        The entries that count (at least 2); None: all.
    eps : float, default 1e-08
        Added to the variance, >= 0.

    Returns
    -------
    whitened : ndarray, the shape of `x`
        A new array; entries outside the mask are shifted and scaled the same way.

    Raises
    ------
    TypeError
        If `x` is not a floating-point NumPy array, `mask` not boolean, or `eps` not a
        number.
    ValueError
        If `x` is empty or not finite, `mask` has the wrong shape, fewer than 2 entries are
        selected, or `eps` is negative or not finite.
    """
    where = "gae.whiten"
    _checks.float_array(where, "x", x)
    if mask is not None and getattr(mask, "shape", None) != x.shape:
        _checks.bool_array(where, "mask", mask, getattr(mask, "shape", ()))
        raise ValueError(f"{where}: argument 'mask' must have the shape of 'x', {x.shape}, "
                         f"got shape {mask.shape}")
    mask = np.ones(x.shape, dtype=bool) if mask is None else \
        _checks.bool_array(where, "mask", mask, x.shape)
    eps = _checks.number(where, "eps", eps, low=0.0)
    sel = x[mask]
    if sel.size < 2:
        raise ValueError(f"{where}: argument 'x' needs at least 2 selected entries, got "
                         f"{sel.size}")
    return (x - sel.mean()) / np.sqrt(sel.var() + eps)
