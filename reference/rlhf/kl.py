r"""KL divergence estimators and the per-token KL penalty of RLHF.

For samples ``x ~ q`` (the policy) and ``r = p(x) / q(x)`` (reference over policy):

.. math::
    k_1 = -\log r, \qquad k_2 = \tfrac12 (\log r)^2, \qquad k_3 = (r - 1) - \log r

``k1`` and ``k3`` are unbiased estimators of ``KL(q || p)``; ``k3 >= 0`` always (``log r <= r - 1``)
and is 0 only at ``r = 1``, with much lower variance than ``k1``, which goes negative.  ``k2``
is biased (its mean is close to the KL only when q and p are close) but low-variance.

The RLHF reward at token ``t`` of a response is ``-beta (log pi(a_t) - log pi_ref(a_t))``, and
the reward model's score is added on the response's last token.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks


def estimators(logp_q: np.ndarray, logp_p: np.ndarray) -> dict:
    """Per-sample ``k1``, ``k2``, ``k3`` from log-probabilities of samples drawn from q."""
    _checks.float_array("kl.estimators", "logp_q", logp_q)
    _checks.float_array("kl.estimators", "logp_p", logp_p)
    _checks.same_shape("kl.estimators", "logp_p", logp_p, logp_q.shape)
    log_r = logp_p - logp_q
    return {"k1": -log_r, "k2": 0.5 * log_r**2, "k3": np.expm1(log_r) - log_r}


def penalized_rewards(logp_policy: np.ndarray, logp_ref: np.ndarray, scores: np.ndarray,
                      mask: np.ndarray, beta: float) -> np.ndarray:
    """Per-token rewards (B, T): ``-beta * (logp_policy - logp_ref)`` on response tokens
    (``mask`` True), 0 elsewhere, plus ``scores`` (B,) on each row's last response token."""
    where = "kl.penalized_rewards"
    _checks.float_array(where, "logp_policy", logp_policy, ndim=2)
    _checks.float_array(where, "logp_ref", logp_ref, ndim=2)
    _checks.same_shape(where, "logp_ref", logp_ref, logp_policy.shape)
    _checks.float_array(where, "scores", scores, ndim=1)
    _checks.same_shape(where, "scores", scores, logp_policy.shape[:1])
    _checks.same_shape(where, "mask", mask, logp_policy.shape)
    if not beta >= 0:
        raise ValueError(f"{where}: argument 'beta' must be >= 0, got {beta!r}")
    if not np.all(mask.any(axis=1)):
        raise ValueError(f"{where}: argument 'mask' must mark at least one response token in "
                         f"every row")
    rewards = np.where(mask, -beta * (logp_policy - logp_ref), 0.0)
    last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
    rewards[np.arange(len(scores)), last] += scores
    return rewards
