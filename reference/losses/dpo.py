r"""Direct preference optimisation: learn from preference pairs without a reward model.

.. math::
    L = -\operatorname{mean}\,\log\sigma\Big(\beta\big[(\log\pi(y_w) - \log\pi_{ref}(y_w))
        - (\log\pi(y_l) - \log\pi_{ref}(y_l))\big]\Big)

``y_w`` is the preferred response, ``y_l`` the other; the log-probabilities are of whole
responses (sums over their tokens).  When the policy equals the reference the margin is 0 and
the loss is ``log 2``.  Gradients go to the policy's log-probabilities only (the reference is
frozen).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.losses import preference


def forward(policy_chosen: np.ndarray, policy_rejected: np.ndarray, ref_chosen: np.ndarray,
            ref_rejected: np.ndarray, beta: float = 0.1):
    """Log-probabilities (N,) of chosen and rejected responses -> scalar loss, cache."""
    _checks.positive("dpo.forward", "beta", beta)
    for name, arr in (("policy_rejected", policy_rejected), ("ref_chosen", ref_chosen),
                      ("ref_rejected", ref_rejected)):
        _checks.float_array("dpo.forward", name, arr, ndim=1)
        _checks.same_shape("dpo.forward", name, arr, policy_chosen.shape)
    r_chosen = beta * (policy_chosen - ref_chosen)          # the implicit rewards
    r_rejected = beta * (policy_rejected - ref_rejected)
    loss, cache = preference.forward(r_chosen, r_rejected)
    return loss, (cache, beta)


def backward(dloss, cache) -> dict:
    """scalar ``dloss`` -> ``{"policy_chosen": (N,), "policy_rejected": (N,)}``."""
    pref_cache, beta = cache
    g = preference.backward(dloss, pref_cache)
    return {"policy_chosen": beta * g["r_chosen"], "policy_rejected": beta * g["r_rejected"]}
