r"""KL divergence estimators and the per-token KL penalty of RLHF.

For samples $x \sim q$ (the policy) and $r = p(x) / q(x)$ (reference over policy):

$$ k_1 = -\log r, \qquad k_2 = \tfrac12 (\log r)^2, \qquad k_3 = (r - 1) - \log r $$

`k1` and `k3` are unbiased estimators of $KL(q \,\|\, p)$; `k3 >= 0` always
($\log r \le r - 1$) and is 0 only at $r = 1$, with much lower variance than `k1`, which goes
negative.  `k2` is biased (its mean is close to the KL only when q and p are close) but
low-variance.

The RLHF reward of token $t$ of a response is the KL penalty, plus the reward model's score
$s$ on the response's last token $T$:

$$ r_t = -\beta\,\big(\log\pi(a_t) - \log\pi_{ref}(a_t)\big) + [t = T]\, s $$

Summed over a response, the penalty is $-\beta$ times the `k1` estimate of the sequence's KL
to the reference, so maximising the return maximises $E[s] - \beta\, KL(\pi \,\|\,
\pi_{ref})$.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


def _estimators_example(rng):
    return {"logp_q": np.log(rng.dirichlet(np.ones(4), size=2)),
            "logp_p": np.log(rng.dirichlet(np.ones(4), size=2))}


@contract(example=_estimators_example)
def estimators(logp_q: np.ndarray, logp_p: np.ndarray) -> dict:
    r"""Per-sample estimates of $KL(q \,\|\, p)$ from samples drawn from q.

    $$ \log r = \log p(x) - \log q(x), \quad k_1 = -\log r, \quad k_2 = \tfrac12(\log r)^2,
       \quad k_3 = e^{\log r} - 1 - \log r $$

    Parameters
    ----------
    logp_q : ndarray, any shape, floating
        Log-probabilities of the samples under q, the distribution that drew them.
    logp_p : ndarray, the shape of `logp_q`, floating
        Their log-probabilities under p.

    Returns
    -------
    estimates : dict
        `{"k1": ndarray, "k2": ndarray, "k3": ndarray}`, each the shape of `logp_q`.

    Raises
    ------
    TypeError
        If an argument is not a floating-point NumPy array.
    ValueError
        If an argument is empty or not finite, or the shapes differ.
    """
    where = "kl.estimators"
    _checks.float_array(where, "logp_q", logp_q)
    _checks.float_array(where, "logp_p", logp_p)
    if logp_p.shape != logp_q.shape:
        raise ValueError(f"{where}: argument 'logp_p' must have the shape of 'logp_q', "
                         f"{logp_q.shape}, got shape {logp_p.shape}")
    log_r = logp_p - logp_q
    return {"k1": -log_r, "k2": 0.5 * log_r**2, "k3": np.expm1(log_r) - log_r}


def _penalized_example(rng):
    mask = np.array([[True, True, False], [True, True, True]])
    return {"logp_policy": -rng.random((2, 3)), "logp_ref": -rng.random((2, 3)),
            "scores": rng.standard_normal(2), "mask": mask, "beta": 0.1}


@contract(example=_penalized_example)
def penalized_rewards(logp_policy: np.ndarray, logp_ref: np.ndarray, scores: np.ndarray,
                      mask: np.ndarray, beta: float) -> np.ndarray:
    r"""Per-token rewards of a batch of responses: the KL penalty on every response token,
    plus the reward model's score on each row's last response token.

    $$ r_{b,t} = m_{b,t}\,\Big(-\beta\,\big(\log\pi(a_{b,t}) - \log\pi_{ref}(a_{b,t})\big)
       + [t = T_b]\, s_b\Big), \qquad T_b = \max\{t : m_{b,t}\} $$

    Parameters
    ----------
    logp_policy : ndarray, shape (B, L), floating
        Log-probabilities of the response tokens under the policy that sampled them.
    logp_ref : ndarray, shape (B, L), floating
        The same under the frozen reference model.
    scores : ndarray, shape (B,), floating
        The reward model's score of each response.
    mask : ndarray of bool, shape (B, L)
        True for response tokens; every row needs at least one.
    beta : float
        The KL coefficient, >= 0.

    Returns
    -------
    rewards : ndarray, shape (B, L)
        0 outside the mask.

    Raises
    ------
    TypeError
        If an array has the wrong kind (floating point; boolean `mask`) or `beta` is not a
        number.
    ValueError
        If an array has the wrong shape, is empty or not finite, a row of `mask` has no
        response token, or `beta` is negative or not finite.
    """
    where = "kl.penalized_rewards"
    _checks.float_array(where, "logp_policy", logp_policy, ndim=2)
    _checks.float_array(where, "logp_ref", logp_ref, ndim=2)
    if logp_ref.shape != logp_policy.shape:
        raise ValueError(f"{where}: argument 'logp_ref' must have the shape of 'logp_policy', "
                         f"{logp_policy.shape}, got shape {logp_ref.shape}")
    _checks.float_array(where, "scores", scores, ndim=1)
    if scores.shape != logp_policy.shape[:1]:
        raise ValueError(f"{where}: argument 'scores' must have shape (B,) = "
                         f"{logp_policy.shape[:1]} (one per row of 'logp_policy'), got shape "
                         f"{scores.shape}")
    if getattr(mask, "shape", None) != logp_policy.shape:
        _checks.bool_array(where, "mask", mask, getattr(mask, "shape", ()))
        raise ValueError(f"{where}: argument 'mask' must have the shape of 'logp_policy', "
                         f"{logp_policy.shape}, got shape {mask.shape}")
    _checks.bool_array(where, "mask", mask, logp_policy.shape)
    beta = _checks.number(where, "beta", beta, low=0.0)
    if not np.all(mask.any(axis=1)):
        raise ValueError(f"{where}: argument 'mask' must mark at least one response token in "
                         f"every row")
    rewards = np.where(mask, -beta * (logp_policy - logp_ref), 0.0)
    rewards[np.arange(len(scores)), _last_true(mask)] += scores
    return rewards


def _last_true(mask: np.ndarray) -> np.ndarray:
    """Index of the last True of each row of a (B, L) mask."""
    return mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
