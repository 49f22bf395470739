r"""PPO's losses: the clipped surrogate, the (optionally clipped) value loss, the entropy
bonus, and the statistics that watch a step (clip fraction, approximate KL), plus the
adaptive KL controller.

Clipped surrogate, with ``rho = exp(logp_new - logp_old)`` and advantages ``A``:

.. math::
    L^{clip} = -\operatorname{mean}\,\min\big(\rho A,\ \operatorname{clip}(\rho, 1-\epsilon,
    1+\epsilon) A\big)

Inside ``[1 - eps, 1 + eps]`` it equals the plain ``-mean(rho A)``.  Where the clipped term is
the smaller one, it is a constant and passes no gradient: the update stops pushing a ratio
that has already moved far enough in the helpful direction.  Where the two terms are equal
(a ratio inside the range or on its edge, or ``A = 0``) the gradient is the unclipped one,
``-rho A / N``.

Value loss: ``0.5 mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))``.
Entropy of the policy from logits ``z``: ``H = -sum p log p``, ``dH/dz_j = -p_j (log p_j + H)``.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.layers import log_softmax
from llmref.rlhf import kl


def _eps(where: str, clip_eps: float) -> None:
    if not clip_eps > 0:
        raise ValueError(f"{where}: argument 'clip_eps' must be > 0, got {clip_eps!r}")


def policy_forward(logp_new: np.ndarray, logp_old: np.ndarray, advantages: np.ndarray,
                   clip_eps: float = 0.2):
    """Per-token arrays (N,) -> scalar clipped-surrogate loss, cache."""
    where = "ppo.policy_forward"
    _checks.float_array(where, "logp_new", logp_new)
    _checks.float_array(where, "logp_old", logp_old)
    _checks.float_array(where, "advantages", advantages)
    _checks.same_shape(where, "logp_old", logp_old, logp_new.shape)
    _checks.same_shape(where, "advantages", advantages, logp_new.shape)
    _eps(where, clip_eps)
    ratio = np.exp(logp_new - logp_old)
    unclipped = ratio * advantages
    clipped = np.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -float(np.mean(np.minimum(unclipped, clipped)))
    return loss, (ratio, advantages, unclipped <= clipped)


def policy_backward(dloss, cache) -> dict:
    """scalar ``dloss`` -> ``{"logp_new": (N,)}``; zero where the clipped term is taken."""
    ratio, advantages, unclipped_active = cache
    dloss = _checks.dout_like("ppo.policy_backward", dloss, (), name="dloss")
    grad = np.where(unclipped_active, -ratio * advantages, 0.0) / ratio.size
    return {"logp_new": float(dloss) * grad}


def stats(logp_new: np.ndarray, logp_old: np.ndarray, clip_eps: float = 0.2) -> dict:
    """``clip_fraction``: share of ratios outside [1 - eps, 1 + eps]; ``approx_kl``: the k3
    estimate of KL(old || new) from samples of the old policy."""
    ratio = np.exp(logp_new - logp_old)
    k3 = kl.estimators(logp_q=logp_old, logp_p=logp_new)["k3"]
    return {"clip_fraction": float(np.mean(np.abs(ratio - 1.0) > clip_eps)),
            "approx_kl": float(np.mean(k3))}


def value_forward(values: np.ndarray, returns: np.ndarray, old_values: np.ndarray | None = None,
                  clip_eps: float | None = None):
    """``0.5 mean((V - R)^2)``, or its clipped form when ``clip_eps`` is given."""
    where = "ppo.value_forward"
    _checks.float_array(where, "values", values)
    _checks.float_array(where, "returns", returns)
    _checks.same_shape(where, "returns", returns, values.shape)
    err = values - returns
    if clip_eps is None:
        return 0.5 * float(np.mean(err**2)), (err, np.ones(err.shape, bool))
    _eps(where, clip_eps)
    _checks.same_shape(where, "old_values", old_values, values.shape)
    clipped_err = old_values + np.clip(values - old_values, -clip_eps, clip_eps) - returns
    use_plain = err**2 >= clipped_err**2
    # the clipped branch depends on V only while V - V_old is inside [-eps, eps]
    inside = np.abs(values - old_values) <= clip_eps
    grad_err = np.where(use_plain, err, np.where(inside, clipped_err, 0.0))
    return 0.5 * float(np.mean(np.maximum(err**2, clipped_err**2))), (grad_err, None)


def value_backward(dloss, cache) -> dict:
    grad_err, _ = cache
    dloss = _checks.dout_like("ppo.value_backward", dloss, (), name="dloss")
    return {"values": float(dloss) * grad_err / grad_err.size}


def entropy_forward(logits: np.ndarray):
    """Mean entropy of the distributions ``softmax(logits)`` over the last axis."""
    logp, _ = log_softmax.forward(logits)
    p = np.exp(logp)
    H = -(p * logp).sum(axis=-1)
    return float(H.mean()), (p, logp, H)


def entropy_backward(dloss, cache) -> dict:
    p, logp, H = cache
    dloss = _checks.dout_like("ppo.entropy_backward", dloss, (), name="dloss")
    return {"logits": float(dloss) * (-p * (logp + H[..., None])) / H.size}


def adaptive_kl_update(beta: float, kl: float, target: float, horizon: int,
                       n_steps: int) -> float:
    """Ziegler et al.'s controller: ``beta *= 1 + clip(kl / target - 1, -0.2, 0.2) *
    n_steps / horizon``.  Raises beta when the KL is above the target, lowers it below."""
    _checks.positive("ppo.adaptive_kl_update", "target", target)
    _checks.positive("ppo.adaptive_kl_update", "horizon", horizon)
    error = float(np.clip(kl / target - 1.0, -0.2, 0.2))
    return beta * (1.0 + error * n_steps / horizon)
