"""The PPO loop of RLHF with a KL penalty, for :mod:`reference.bigram_policy` policies.

Each iteration: roll out a batch of responses from the policy; score them with the reward
function; turn scores and the per-token KL to the frozen reference into per-token rewards
(:mod:`reference.kl`); estimate advantages with GAE against a learned value baseline
(:mod:`reference.gae`); then run a few epochs of shuffled minibatches of the clipped PPO
update (:mod:`reference.ppo`) with Adam, stopping an iteration's epochs early if the policy
has moved more than 1.5x the KL target from the rollout policy.  With ``kl_target`` set,
beta is adapted between iterations by the adaptive KL controller.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from llmref.rlhf import bigram_policy, gae, kl, ppo
from llmref.training import adam


def _values(table: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """A value baseline indexed by (position, previous token): (n, L)."""
    prev = bigram_policy.contexts(tokens, table.shape[1] - 1)
    return table[np.arange(tokens.shape[1])[None, :], prev], prev


def ppo_train(policy: dict, reference: dict, reward_fn: Callable, *, iterations: int,
              batch_size: int = 64, length: int = 1, beta: float = 0.1,
              kl_target: float | None = None, kl_horizon: int = 10_000, epochs: int = 4,
              minibatch_size: int = 16, clip_eps: float = 0.2, lr: float = 0.05,
              value_lr: float = 1.0, gamma: float = 1.0, lam: float = 0.95,
              early_stop_kl: float | None = None, seed: int = 0,
              log: Callable[[str], None] | None = None, log_every: int = 10):
    """Train ``policy`` (bigram-policy params) against ``reward_fn(tokens (n, L)) -> (n,)``.

    Returns ``(policy, history)``; ``history`` has one dict per iteration with the mean
    score, mean KL to the reference (sum over tokens of log pi - log pi_ref), beta, the
    clip fraction and the approximate KL of the last minibatch.
    """
    if not 0.0 <= gamma <= 1.0 or not 0.0 <= lam <= 1.0:
        raise ValueError(f"rlhf.ppo_train: arguments 'gamma' and 'lam' must be in [0, 1], "
                         f"got {gamma!r} and {lam!r}")
    rng = np.random.default_rng(seed)
    V = policy["Z"].shape[1]
    value_table = np.zeros((length, V + 1))
    opt_state = adam.init(policy)
    history = []
    for it in range(iterations):
        tokens = bigram_policy.sample(policy, batch_size, length, rng)
        logp_old, _ = bigram_policy.logprobs(policy, tokens)
        logp_ref, _ = bigram_policy.logprobs(reference, tokens)
        scores = np.asarray(reward_fn(tokens), dtype=float)
        mask = np.ones(tokens.shape, dtype=bool)
        rewards = kl.penalized_rewards(logp_old, logp_ref, scores, mask, beta)
        values, prev = _values(value_table, tokens)
        dones = np.zeros(tokens.shape, dtype=bool)
        dones[:, -1] = True
        adv, returns = gae.advantages(rewards, values, dones, gamma, lam)
        if batch_size > 1:
            adv = gae.whiten(adv)
        stats = {"clip_fraction": 0.0, "approx_kl": 0.0}
        for _ in range(epochs):
            order = rng.permutation(batch_size)
            for start in range(0, batch_size, minibatch_size):
                idx = order[start:start + minibatch_size]
                logp_new, cache = bigram_policy.logprobs(policy, tokens[idx])
                _, pcache = ppo.policy_forward(logp_new.ravel(), logp_old[idx].ravel(),
                                               adv[idx].ravel(), clip_eps)
                dlogp = ppo.policy_backward(1.0, pcache)["logp_new"].reshape(logp_new.shape)
                grads = bigram_policy.logprobs_backward(dlogp, cache)
                policy, opt_state = adam.step(policy, grads, opt_state, lr=lr)
                stats = ppo.stats(logp_new.ravel(), logp_old[idx].ravel(), clip_eps)
            # value baseline: one regression step towards the returns on the whole batch
            v_now, _ = _values(value_table, tokens)
            dv = ppo.value_backward(1.0, ppo.value_forward(v_now, returns)[1])["values"]
            np.add.at(value_table, (np.arange(length)[None, :].repeat(batch_size, 0), prev),
                      -value_lr * dv)
            if early_stop_kl is not None and stats["approx_kl"] > 1.5 * early_stop_kl:
                break
        seq_kl = float(np.mean((logp_old - logp_ref).sum(axis=1)))
        history.append({"iteration": it, "score": float(scores.mean()), "kl": seq_kl,
                        "beta": beta, **stats})
        if kl_target is not None:
            beta = ppo.adaptive_kl_update(beta, seq_kl, kl_target, kl_horizon, batch_size)
        if log and log_every and (it + 1) % log_every == 0:
            log(f"iteration {it + 1}/{iterations}  score {scores.mean():.3f}  "
                f"KL {seq_kl:.3f}  beta {beta:.3g}")
    return policy, history
