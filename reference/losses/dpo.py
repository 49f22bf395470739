r"""Direct preference optimisation: learn from preference pairs without a reward model.

$$
L = -\operatorname{mean}\,\log\sigma\Big(\beta\big[(\log\pi(y_w) - \log\pi_{ref}(y_w))
    - (\log\pi(y_l) - \log\pi_{ref}(y_l))\big]\Big)
$$

`y_w` is the preferred response, `y_l` the other; the log-probabilities are of whole
responses (sums over their tokens).  When the policy equals the reference the margin is 0 and
the loss is `log 2`.  Gradients go to the policy's log-probabilities only (the reference is
frozen):

$$
\frac{\partial L}{\partial \log\pi(y_w)} = \beta\,\frac{\partial L_{BT}}{\partial r^{c}}, \qquad
\frac{\partial L}{\partial \log\pi(y_l)} = \beta\,\frac{\partial L_{BT}}{\partial r^{r}}
$$

with `L_BT` the pairwise loss of `llmref.losses.preference` on the implicit rewards
`beta (log pi - log pi_ref)`.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.losses import preference

_NAMES = ("policy_chosen", "policy_rejected", "ref_chosen", "ref_rejected")


def _example(rng) -> dict:
    return {**{name: rng.standard_normal(3) - 5.0 for name in _NAMES}, "beta": 0.1}


@contract(example=_example)
def forward(policy_chosen: np.ndarray, policy_rejected: np.ndarray, ref_chosen: np.ndarray,
            ref_rejected: np.ndarray, beta: float = 0.1):
    r"""The DPO loss of N preference pairs.

    $$ L = -\frac1N \sum_n \log\sigma\big(\beta\,[(\pi^w_n - \pi^w_{ref,n}) -
       (\pi^l_n - \pi^l_{ref,n})]\big) $$

    with `pi` the log-probabilities below.

    Parameters
    ----------
    policy_chosen, policy_rejected : ndarray, shape (N,), floating
        Log-probabilities of the chosen and rejected responses under the policy.
    ref_chosen, ref_rejected : ndarray, shape (N,), floating
        The same under the frozen reference model.
    beta : float, default 0.1
        Strength of the implicit KL penalty (> 0, finite; 0.1 is usual).

    Returns
    -------
    loss : float
        `log 2` when the policy equals the reference.
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The pairwise loss's cache (the margins, a new array) and `beta`: nothing the caller
    holds.

    Raises
    ------
    TypeError
        If an array argument is not a NumPy floating-point array or `beta` not a number.
    ValueError
        If an array is not 1-D, is empty or not finite, the lengths differ, or `beta` is
        not > 0 and finite.
    """
    where = "dpo.forward"
    beta = _checks.number(where, "beta", beta, low=0.0, strict=True)
    arrays = {"policy_chosen": policy_chosen, "policy_rejected": policy_rejected,
              "ref_chosen": ref_chosen, "ref_rejected": ref_rejected}
    for name, arr in arrays.items():
        _checks.float_array(where, name, arr, ndim=1)
    for name, arr in arrays.items():
        if arr.shape != policy_chosen.shape:
            raise ValueError(f"{where}: argument {name!r} must have shape "
                             f"{policy_chosen.shape} (the shape of 'policy_chosen'), "
                             f"got shape {arr.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        r_chosen = beta * (policy_chosen - ref_chosen)      # the implicit rewards
        r_rejected = beta * (policy_rejected - ref_rejected)
        margin = r_chosen - r_rejected
    _checks.finite_result(where, "the implicit rewards", (r_chosen, r_rejected, margin),
                          f"argument 'beta' = {beta!r} (with these log-probabilities)")
    loss, cache = preference._forward(r_chosen, r_rejected)
    return loss, (cache, beta)


@contract(example=lambda rng: {"dloss": 1.0, "cache": forward(**_example(rng))[1]},
          lenient={"dloss": ("negative",)})
def backward(dloss, cache) -> dict:
    r"""Gradients of the DPO loss with respect to the policy's log-probabilities.

    $$ \frac{\partial L}{\partial \pi^w_n} = -\frac{\beta\,\mathrm{d}L}{N}\,
       \sigma(-\beta\,m_n) = -\frac{\partial L}{\partial \pi^l_n} $$

    with `m_n` the bracket of the forward.

    Parameters
    ----------
    dloss : float or 0-d ndarray
        Upstream gradient of the scalar loss.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"policy_chosen": ndarray (N,), "policy_rejected": ndarray (N,)}`; the frozen
        reference gets none.

    Raises
    ------
    TypeError
        If `dloss` is not a number or a floating-point array.
    ValueError
        If `dloss` is not a scalar or is NaN or inf.
    """
    pref_cache, beta = _checks.unguard("dpo.backward", cache, 2)
    dloss = _checks.dout_like("dpo.backward", dloss, (), name="dloss")
    g = preference._backward(dloss, pref_cache)
    return {"policy_chosen": beta * g["r_chosen"], "policy_rejected": beta * g["r_rejected"]}
