r"""The PPO loop of RLHF with a per-token KL penalty, for any policy.

A **policy** (:class:`Policy`) is three functions: `sample(params, prompts, rng) -> batch`,
`logits(params, batch) -> (z, cache)`, giving the logits `z` (B, L, V) that chose each
response token, and `logits_backward(dz, cache) -> grads`.  From the logits the loop takes
the log-probabilities of the taken tokens and the entropy (:mod:`llmref.rlhf.ppo`), so
:mod:`llmref.rlhf.bigram_policy` (a table) and :mod:`llmref.rlhf.gpt_policy` (the GPT) run
through the same loop.  A **critic** (:class:`Critic`) is `values(params, batch) -> (v,
cache)`, `v` (B, L), and `values_backward(dv, cache) -> grads`.

A **batch** of B prompts and their responses (see :func:`batch`) is a dict::

    {"prompts": (B, P) ints, left-padded,   "prompt_mask": (B, P) bool,
     "responses": (B, L) ints, right-padded, "mask": (B, L) bool}

`mask` is the response mask: True for the response tokens, the actions PPO trains; prompt
and padding tokens are never actions.

Each iteration:

1. roll out: draw `batch_size` prompts, sample a response to each from the policy;
2. score: `s = reward_fn(batch)`; per-token rewards are the KL penalty to the frozen
   reference plus `s` on each response's last token (:func:`llmref.rlhf.kl.penalized_rewards`);
3. advantages by GAE over the response tokens only (each response terminates at its last
   token: the reward model has scored it whole, there is nothing to bootstrap), whitened
   over the mask (:mod:`llmref.rlhf.gae`);
4. `epochs` passes over shuffled minibatches; each minibatch computes the clipped surrogate
   with the entropy bonus and the clipped value loss, then, **before the optimiser step**,
   stops the iteration if the approximate KL from the rollout policy exceeds
   `1.5 * target_kl` (stable-baselines3's rule); otherwise both take an Adam step;
5. with `kl_target`, the adaptive controller moves beta
   (:func:`llmref.rlhf.ppo.adaptive_kl_update`).

$$ L(\theta) = L^{clip}(\theta) - c_H\,\bar H(\theta), \qquad
   \max_\theta\ E\Big[s - \beta \sum_t \big(\log\pi_\theta(a_t) - \log\pi_{ref}(a_t)\big)\Big] $$
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.rlhf import gae, kl, ppo
from llmref.training import adam, clip


def _fn(rng):
    return lambda *args: None


@contract(example=lambda rng: {"sample": _fn(rng), "logits": _fn(rng),
                               "logits_backward": _fn(rng)})
@dataclass(frozen=True)
class Policy:
    r"""A policy the loop can train: sampling, the logits of the response tokens, and their
    backward.

    Parameters
    ----------
    sample : callable
        `sample(params, prompts, rng) -> batch`: one response per prompt (`prompts` a list
        of 1-D int arrays, `rng` a NumPy Generator), as a batch dict (module docstring).
    logits : callable
        `logits(params, batch) -> (z, cache)`: `z` (B, L, V), row `[b, t]` the logits that
        chose `batch["responses"][b, t]`.
    logits_backward : callable
        `logits_backward(dz, cache) -> grads`: the gradient of every parameter, a tree
        shaped like `params`.

    Raises
    ------
    TypeError
        If a field is not a function.
    """

    sample: Callable
    logits: Callable
    logits_backward: Callable

    def __post_init__(self):
        for name in ("sample", "logits", "logits_backward"):
            _checks.function("Policy", name, getattr(self, name))


@contract(example=lambda rng: {"values": _fn(rng), "values_backward": _fn(rng)})
@dataclass(frozen=True)
class Critic:
    r"""A critic (value function) the loop can train.

    Parameters
    ----------
    values : callable
        `values(params, batch) -> (v, cache)`: `v` (B, L), the value of the state in which
        each response token is chosen.
    values_backward : callable
        `values_backward(dv, cache) -> grads`, a tree shaped like the critic's params.

    Raises
    ------
    TypeError
        If a field is not a function.
    """

    values: Callable
    values_backward: Callable

    def __post_init__(self):
        for name in ("values", "values_backward"):
            _checks.function("Critic", name, getattr(self, name))


# ------------------------------------------------------------------ batches

BATCH_KEYS = ("prompts", "prompt_mask", "responses", "mask")


def _id_list(where, name, seqs, vocab_size=None) -> list:
    if not isinstance(seqs, (list, tuple)):
        raise TypeError(f"{where}: argument '{name}' must be a list of 1-D NumPy int arrays, "
                        f"got {_checks._describe(seqs)}")
    if not seqs:
        raise ValueError(f"{where}: argument '{name}' must not be empty")
    high = np.iinfo(np.int64).max if vocab_size is None else vocab_size
    for i, s in enumerate(seqs):
        if not (isinstance(s, np.ndarray) and s.ndim == 1 and s.size and s.dtype.kind in "iu"):
            _checks.int_array(where, f"{name}[{i}]", s, 0, high)      # says what is wrong
            raise ValueError(f"{where}: argument {name}[{i}] must be 1-D, got shape {s.shape}")
    _checks.int_array(where, name, np.concatenate(seqs), 0, high)   # the range, all at once
    return list(seqs)


@contract(example=lambda rng: {"prompts": [rng.integers(0, 5, 3), rng.integers(0, 5, 1)],
                               "responses": [rng.integers(0, 5, 2), rng.integers(0, 5, 4)],
                               "pad_id": 0},
          lenient={"pad_id": ("zero",)})
def batch(prompts: list, responses: list, pad_id: int = 0) -> dict:
    r"""Pack prompts (left-padded) and their responses (right-padded) into a batch.

    Row b of the batch reads, left to right: padding, prompt b, response b, padding.  With
    `P` the longest prompt and `L` the longest response, `prompts[b]` fills the last
    `len(prompts[b])` columns of the (B, P) block and `responses[b]` the first
    `len(responses[b])` columns of the (B, L) block.

    Parameters
    ----------
    prompts : list of ndarray of int, each 1-D and non-empty
    responses : list of ndarray of int, each 1-D and non-empty, as many as `prompts`
    pad_id : int, default 0
        The token id written in padding positions (never read: the masks hide them).

    Returns
    -------
    batch : dict
        `{"prompts": (B, P) int64, "prompt_mask": (B, P) bool, "responses": (B, L) int64,
        "mask": (B, L) bool}`, new arrays.

    Raises
    ------
    TypeError
        If `prompts` or `responses` is not a list of integer arrays, or `pad_id` not an int.
    ValueError
        If a list is empty, an entry is empty, not 1-D or negative, the lists' lengths
        differ, or `pad_id` is negative.
    """
    where = "rlhf_loop.batch"
    prompts = _id_list(where, "prompts", prompts)
    responses = _id_list(where, "responses", responses)
    if len(responses) != len(prompts):
        raise ValueError(f"{where}: argument 'responses' must hold one response per prompt, "
                         f"{len(prompts)}, got {len(responses)}")
    pad_id = _checks.integer(where, "pad_id", pad_id, low=0)
    B, P, L = len(prompts), max(map(len, prompts)), max(map(len, responses))
    out = {"prompts": np.full((B, P), pad_id, np.int64), "prompt_mask": np.zeros((B, P), bool),
           "responses": np.full((B, L), pad_id, np.int64), "mask": np.zeros((B, L), bool)}
    for b, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        out["prompts"][b, P - len(p):] = p
        out["prompt_mask"][b, P - len(p):] = True
        out["responses"][b, :len(r)] = r
        out["mask"][b, :len(r)] = True
    return out


def _check_batch(where: str, batch, vocab_size: int, context_len: int | None = None) -> dict:
    """Check a batch dict (keys, kinds, shapes, left-padded prompts, one response token per
    row at least and, given ``context_len``, no row longer than it); returns it.  For the
    policies' and critics' own checks."""
    _checks.keys(where, batch, BATCH_KEYS, "batch")
    prompts = _checks.int_array(where, "batch['prompts']", batch["prompts"], 0, vocab_size)
    responses = _checks.int_array(where, "batch['responses']", batch["responses"], 0,
                                  vocab_size)
    for name, ids in (("prompts", prompts), ("responses", responses)):
        if ids.ndim != 2 or ids.shape[0] != prompts.shape[0]:
            raise ValueError(f"{where}: argument batch['{name}'] must have shape (B, ...) with "
                             f"B = {prompts.shape[0]}, got shape {ids.shape}")
    pm = _checks.bool_array(where, "batch['prompt_mask']", batch["prompt_mask"],
                              prompts.shape)
    mask = _checks.bool_array(where, "batch['mask']", batch["mask"], responses.shape)
    if not pm[:, -1].all():
        raise ValueError(f"{where}: argument batch['prompt_mask'] must describe left-padded "
                         f"prompts: every row's last column is a real prompt token")
    if not mask.any(axis=1).all():
        raise ValueError(f"{where}: argument batch['mask'] must mark at least one response "
                         f"token in every row")
    if context_len is not None:
        longest = int((pm.sum(axis=1) + mask.sum(axis=1)).max())
        if longest > context_len:
            raise ValueError(f"{where}: argument 'batch' has a row of {longest} tokens (prompt "
                             f"and response), longer than the context length {context_len}")
    return batch


@contract(example=lambda rng: {"batch": batch([rng.integers(0, 5, 2)], [rng.integers(0, 5, 3)])})
def sequences(batch: dict):
    r"""A batch's full rows, prompt then response, for models that read whole sequences (the
    reward model, the GPT).

    Parameters
    ----------
    batch : dict
        Prompts and responses (:func:`batch`).

    Returns
    -------
    ids : ndarray of int, shape (B, P + L)
        New array.
    attention_mask : ndarray of bool, shape (B, P + L)
        True on real tokens: left padding before each prompt, right padding after each
        response.

    Raises
    ------
    TypeError
        If `batch` is not a dict of the batch's arrays.
    ValueError
        If `batch` is malformed.
    """
    _check_batch("rlhf_loop.sequences", batch, np.iinfo(np.int64).max)
    return (np.concatenate([batch["prompts"], batch["responses"]], axis=1),
            np.concatenate([batch["prompt_mask"], batch["mask"]], axis=1))


def _take(batch: dict, idx: np.ndarray) -> dict:
    return {k: v[idx] for k, v in batch.items()}


# ------------------------------------------------------------------ the two losses

def _policy_example(rng):
    from llmref.rlhf import bigram_policy
    params = bigram_policy.init(4, rng)
    b = bigram_policy.sample(params, [np.array([4]), np.array([1, 4])], 3, rng)
    shape = b["responses"].shape
    return {"policy": bigram_policy.policy(3), "params": params, "batch": b,
            "logp_old": -rng.random(shape), "advantages": rng.standard_normal(shape),
            "clip_eps": 0.2, "ent_coef": 0.01, "dloss": 1.0}


@contract(example=_policy_example,
          lenient={"ent_coef": ("negative",), "dloss": ("negative",)},
          opaque=("params",))
def policy_loss_and_grads(policy: Policy, params, batch: dict, logp_old: np.ndarray,
                          advantages: np.ndarray, *, clip_eps: float = 0.2,
                          ent_coef: float = 0.0, dloss: float = 1.0):
    r"""The PPO objective of a batch and its gradient with respect to every policy parameter.

    $$ L = L^{clip} - c_H\,\bar H = -\operatorname{mean}_m \min\big(\rho_t A_t,
       \operatorname{clip}(\rho_t, 1 \pm \epsilon) A_t\big) - c_H \operatorname{mean}_m H_t $$

    The gradient flows: loss -> per-token log-probabilities and entropies -> the policy's
    logits (:mod:`llmref.rlhf.ppo`) -> `policy.logits_backward` -> every parameter.

    Parameters
    ----------
    policy : Policy
    params : tree
        The policy's parameters (checked by the policy).
    batch : dict
        Prompts and responses (module docstring); its `mask` selects the tokens that count.
    logp_old : ndarray, shape (B, L), floating
        Log-probabilities of the response tokens under the policy that sampled them.
    advantages : ndarray, shape (B, L), floating
    clip_eps : float, default 0.2
        The clip range, > 0.
    ent_coef : float, default 0.0
        Weight $c_H$ of the entropy bonus (0: none; negative values penalise entropy).
    dloss : float, default 1.0
        Upstream gradient of the loss (1: the gradient of the loss itself).

    Returns
    -------
    loss : float
    grads : tree
        `dloss` times the gradient of `loss`, shaped like `params`.
    info : dict
        `logp` (B, L), the new log-probabilities; `entropy`, the mean entropy; and
        `clip_fraction` and `approx_kl` (:func:`llmref.rlhf.ppo.stats`).

    Raises
    ------
    TypeError
        If `policy` is not a Policy, an array has the wrong kind, or a number is not one.
    ValueError
        If an array's shape differs from the batch's responses, or is not finite, or
        `clip_eps` is not > 0.
    """
    where = "rlhf_loop.policy_loss_and_grads"
    _check_kind(where, "policy", policy, Policy)
    _checks.keys(where, batch, BATCH_KEYS, "batch")
    mask = batch["mask"]
    for name, arr in (("logp_old", logp_old), ("advantages", advantages)):
        _checks.float_array(where, name, arr, ndim=2)
        if arr.shape != np.shape(mask):
            raise ValueError(f"{where}: argument '{name}' must have the shape of "
                             f"batch['responses'], {np.shape(mask)}, got shape {arr.shape}")
    clip_eps = _checks.number(where, "clip_eps", clip_eps, low=0.0, strict=True)
    ent_coef = _checks.number(where, "ent_coef", ent_coef)
    dloss = _checks.number(where, "dloss", dloss)
    logits, cache = policy.logits(params, batch)
    logp, lp_cache = ppo.logprobs_forward(logits, batch["responses"])
    l_clip, pg_cache = ppo.policy_forward(logp, logp_old, advantages, clip_eps, mask)
    entropy, ent_cache = ppo.entropy_forward(logits, mask)
    dlogp = ppo.policy_backward(dloss, pg_cache)["logp_new"]
    dlogits = ppo.logprobs_backward(dlogp, lp_cache)["logits"]
    if ent_coef:
        dlogits = dlogits + ppo.entropy_backward(-ent_coef * dloss, ent_cache)["logits"]
    info = {"logp": logp, "entropy": entropy, **ppo.stats(logp, logp_old, clip_eps, mask)}
    return l_clip - ent_coef * entropy, policy.logits_backward(dlogits, cache), info


def _value_example(rng):
    from llmref.rlhf import bigram_policy
    ex = _policy_example(rng)
    shape = ex["batch"]["responses"].shape
    return {"critic": bigram_policy.critic(), "params": bigram_policy.critic_init(3, 4),
            "batch": ex["batch"], "returns": rng.standard_normal(shape),
            "old_values": rng.standard_normal(shape), "clip_eps": 0.2, "dloss": 1.0}


@contract(example=_value_example,
          lenient={"clip_eps": ("none",), "old_values": ("none",), "dloss": ("negative",)},
          opaque=("params",))
def value_loss_and_grads(critic: Critic, params, batch: dict, returns: np.ndarray,
                         old_values: np.ndarray | None = None, *,
                         clip_eps: float | None = None, dloss: float = 1.0):
    r"""The (clipped) value loss of a batch and its gradient with respect to every critic
    parameter.

    $$ L^V = \tfrac12 \operatorname{mean}_m \max\big((V_t - R_t)^2, (V_{old,t} +
       \operatorname{clip}(V_t - V_{old,t}, \pm\epsilon) - R_t)^2\big) $$

    Parameters
    ----------
    critic : Critic
    params : tree
        The critic's parameters (checked by the critic).
    batch : dict
        Prompts and responses; its `mask` selects the tokens that count.
    returns : ndarray, shape (B, L), floating
        Regression targets.
    old_values : ndarray, shape (B, L), floating, default None
        Values at rollout time; needed when `clip_eps` is given.
    clip_eps : float or None, default None
        Value clip range (> 0), None for the plain loss.
    dloss : float, default 1.0
        Upstream gradient of the loss.

    Returns
    -------
    loss : float
    grads : tree
        `dloss` times the gradient, shaped like `params`.

    Raises
    ------
    TypeError
        If `critic` is not a Critic, an array has the wrong kind, or a number is not one.
    ValueError
        If an array's shape differs from the batch's responses, or is not finite, or
        `clip_eps` is not > 0.
    """
    where = "rlhf_loop.value_loss_and_grads"
    _check_kind(where, "critic", critic, Critic)
    _checks.keys(where, batch, BATCH_KEYS, "batch")
    _checks.float_array(where, "returns", returns, ndim=2)
    if returns.shape != np.shape(batch["mask"]):
        raise ValueError(f"{where}: argument 'returns' must have the shape of "
                         f"batch['responses'], {np.shape(batch['mask'])}, got shape "
                         f"{returns.shape}")
    dloss = _checks.number(where, "dloss", dloss)
    values, cache = critic.values(params, batch)
    try:
        loss, v_cache = ppo.value_forward(values, returns, old_values, clip_eps, batch["mask"])
    except (TypeError, ValueError) as exc:      # name this function, not the loss inside
        raise type(exc)(f"{where}: {exc}") from None
    dv = ppo.value_backward(dloss, v_cache)["values"]
    return loss, critic.values_backward(dv, cache)


def _check_kind(where, name, value, kind):
    if not isinstance(value, kind):
        raise TypeError(f"{where}: argument '{name}' must be a {kind.__name__}, got "
                        f"{_checks._describe(value)}")


# ------------------------------------------------------------------ the loop

def _train_example(rng):
    from llmref.rlhf import bigram_policy
    params = bigram_policy.init(4, rng)
    return {"policy": bigram_policy.policy(2), "params": params, "reference_params": params,
            "reward_fn": lambda b: (b["responses"] == 1).sum(axis=1).astype(float),
            "prompts": [np.array([4])], "critic": bigram_policy.critic(),
            "critic_params": bigram_policy.critic_init(2, 4), "iterations": 1,
            "batch_size": 4, "epochs": 1, "minibatch_size": 2, "beta": 0.1,
            "kl_target": 1.0, "kl_horizon": 100, "clip_eps": 0.2, "value_clip_eps": 0.2,
            "ent_coef": 0.0, "lr": 0.01, "critic_lr": 0.01, "gamma": 1.0, "lam": 0.95,
            "target_kl": 0.5, "whiten_advantages": True, "max_grad_norm": 1.0, "seed": 0}


@contract(example=_train_example,
          lenient={"beta": ("zero",), "ent_coef": ("negative",), "seed": ("zero",),
                   "kl_target": ("none",), "value_clip_eps": ("none",),
                   "target_kl": ("none",), "max_grad_norm": ("none",)},
          opaque=("params", "reference_params", "critic_params"))
def ppo_train(policy: Policy, params, reference_params, reward_fn: Callable, prompts: list, *,
              critic: Critic, critic_params, iterations: int, batch_size: int = 64,
              epochs: int = 4, minibatch_size: int = 16, beta: float = 0.1,
              kl_target: float | None = None, kl_horizon: int = 10_000,
              clip_eps: float = 0.2, value_clip_eps: float | None = 0.2,
              ent_coef: float = 0.0, lr: float = 1e-3, critic_lr: float = 1e-3,
              gamma: float = 1.0, lam: float = 0.95, target_kl: float | None = None,
              whiten_advantages: bool = True, max_grad_norm: float | None = None,
              seed: int = 0, log: Callable[[str], None] | None = None, log_every: int = 10):
    r"""Train `policy` against `reward_fn` with PPO and a KL penalty to a frozen reference.

    $$ \max_\theta\ E_{x,\,y \sim \pi_\theta}\Big[s(x, y) - \beta \sum_t
       \big(\log\pi_\theta(y_t) - \log\pi_{ref}(y_t)\big)\Big] $$

    The steps of an iteration are in the module docstring.  Everything random (prompt
    order, sampling, minibatches) comes from one generator seeded with `seed`, so a run is
    reproducible.

    Parameters
    ----------
    policy : Policy
    params : tree
        The policy's starting parameters (not modified).
    reference_params : tree
        The frozen reference policy's parameters (usually the same starting point).
    reward_fn : callable
        `reward_fn(batch) -> scores`, a float array (B,): the reward model.
    prompts : list of ndarray of int
        The prompts to draw from (with replacement), each 1-D.
    critic : Critic
    critic_params : tree
        The critic's starting parameters (not modified).
    iterations : int
        Rollouts to collect, >= 1.
    batch_size : int, default 64
        Responses per rollout, >= 2.
    epochs : int, default 4
        Passes over each rollout, >= 1.
    minibatch_size : int, default 16
        Responses per gradient step, >= 1.
    beta : float, default 0.1
        KL coefficient, >= 0 (0: no penalty).
    kl_target : float, default None
        Turn on the adaptive KL controller with this target (nats per response, > 0).
    kl_horizon : int, default 10000
        The controller's horizon, >= 1.
    clip_eps : float, default 0.2
        Policy clip range, > 0.
    value_clip_eps : float, default 0.2
        Value clip range (> 0); None: the plain value loss.
    ent_coef : float, default 0.0
        Entropy bonus weight.
    lr : float, default 0.001
        Adam learning rate of the policy, > 0.
    critic_lr : float, default 0.001
        Adam learning rate of the critic, > 0.
    gamma : float, default 1.0
        Discount, in [0, 1].
    lam : float, default 0.95
        GAE lambda, in [0, 1].
    target_kl : float, default None
        Early stop: end an iteration's epochs, before the optimiser step, at the first
        minibatch whose approximate KL from the rollout policy exceeds `1.5 * target_kl`.
    whiten_advantages : bool, default True
        Whiten the advantages over the response mask of each rollout.
    max_grad_norm : float, default None
        Clip each gradient (policy and critic separately) to this global norm.
    seed : int, default 0
        Seed of the run's generator, >= 0.
    log : callable, default None
        Called with a progress line every `log_every` iterations.
    log_every : int, default 10
        >= 1.

    Returns
    -------
    params : tree
        The trained policy.
    critic_params : tree
        The trained critic.
    history : list of dict
        One per iteration: `iteration`, `score` (mean reward-model score of the rollout),
        `kl` (mean over responses of the summed `log pi - log pi_ref`, the k1 estimate),
        `beta` (used in this rollout), `length` (mean response length), `entropy`,
        `policy_loss`, `value_loss`, `clip_fraction` and `approx_kl` (of the last step
        taken; NaN for the first three and 0 for the last two when the early stop came
        before any step), `steps` (optimiser steps taken) and `stopped_early`.

    Raises
    ------
    TypeError
        If an argument has the wrong kind (`reward_fn` returning anything but a float array
        included).
    ValueError
        If a number is out of its range, `prompts` is empty, or `reward_fn` returns the
        wrong shape or non-finite scores.
    """
    where = "rlhf_loop.ppo_train"
    _check_kind(where, "policy", policy, Policy)
    _check_kind(where, "critic", critic, Critic)
    _checks.function(where, "reward_fn", reward_fn)
    prompts = _id_list(where, "prompts", prompts)
    iterations = _checks.integer(where, "iterations", iterations, low=1)
    batch_size = _checks.integer(where, "batch_size", batch_size, low=2)
    epochs = _checks.integer(where, "epochs", epochs, low=1)
    minibatch_size = _checks.integer(where, "minibatch_size", minibatch_size, low=1)
    beta = _checks.number(where, "beta", beta, low=0.0)
    kl_target = _checks.optional_number(where, "kl_target", kl_target, low=0.0, strict=True)
    kl_horizon = _checks.integer(where, "kl_horizon", kl_horizon, low=1)
    clip_eps = _checks.number(where, "clip_eps", clip_eps, low=0.0, strict=True)
    value_clip_eps = _checks.optional_number(where, "value_clip_eps", value_clip_eps,
                                               low=0.0, strict=True)
    ent_coef = _checks.number(where, "ent_coef", ent_coef)
    lr = _checks.number(where, "lr", lr, low=0.0, strict=True)
    critic_lr = _checks.number(where, "critic_lr", critic_lr, low=0.0, strict=True)
    gamma = _checks.number(where, "gamma", gamma, low=0.0, high=1.0)
    lam = _checks.number(where, "lam", lam, low=0.0, high=1.0)
    target_kl = _checks.optional_number(where, "target_kl", target_kl, low=0.0, strict=True)
    whiten_advantages = _checks.boolean(where, "whiten_advantages", whiten_advantages)
    max_grad_norm = _checks.optional_number(where, "max_grad_norm", max_grad_norm, low=0.0,
                                              strict=True)
    seed = _checks.integer(where, "seed", seed, low=0)
    if log is not None:
        _checks.function(where, "log", log)
    log_every = _checks.integer(where, "log_every", log_every, low=1)

    rng = np.random.default_rng(seed)
    opt, critic_opt = adam.init(params), adam.init(critic_params)
    history = []
    for it in range(iterations):
        rollout = policy.sample(params, [prompts[i] for i in
                                         rng.integers(0, len(prompts), batch_size)], rng)
        mask = rollout["mask"]
        logp_old = _logprobs(policy, params, rollout)
        logp_ref = _logprobs(policy, reference_params, rollout)
        scores = _scores(where, reward_fn, rollout)
        rewards = kl.penalized_rewards(logp_old, logp_ref, scores, mask, beta)
        values_old, _ = critic.values(critic_params, rollout)
        dones = np.zeros(mask.shape, dtype=bool)
        dones[np.arange(batch_size), kl._last_true(mask)] = True    # each response ends
        adv, returns = gae.advantages(rewards, values_old, dones, gamma, lam,
                                      next_value=np.zeros(batch_size), mask=mask)
        if whiten_advantages:
            adv = np.where(mask, gae.whiten(adv, mask), 0.0)
        seq_kl = float(np.mean(np.sum(logp_old - logp_ref, axis=1, where=mask)))
        record = {"iteration": it, "score": float(scores.mean()), "kl": seq_kl, "beta": beta,
                  "length": float(mask.sum(axis=1).mean()), "steps": 0,
                  "stopped_early": False, "clip_fraction": 0.0, "approx_kl": 0.0,
                  "entropy": float("nan"), "policy_loss": float("nan"),
                  "value_loss": float("nan")}
        for _ in range(epochs):
            order = rng.permutation(batch_size)
            for start in range(0, batch_size, minibatch_size):
                idx = order[start:start + minibatch_size]
                mb = _take(rollout, idx)
                loss, grads, info = policy_loss_and_grads(
                    policy, params, mb, logp_old[idx], adv[idx], clip_eps=clip_eps,
                    ent_coef=ent_coef)
                if target_kl is not None and info["approx_kl"] > 1.5 * target_kl:
                    record["stopped_early"] = True
                    break
                v_loss, v_grads = value_loss_and_grads(
                    critic, critic_params, mb, returns[idx], values_old[idx],
                    clip_eps=value_clip_eps)
                if max_grad_norm is not None:
                    grads, _ = clip.clip_by_global_norm(grads, max_grad_norm)
                    v_grads, _ = clip.clip_by_global_norm(v_grads, max_grad_norm)
                params, opt = _step(where, "lr", lr, params, grads, opt)
                critic_params, critic_opt = _step(where, "critic_lr", critic_lr,
                                                  critic_params, v_grads, critic_opt)
                record.update(steps=record["steps"] + 1, policy_loss=loss, value_loss=v_loss,
                              entropy=info["entropy"], clip_fraction=info["clip_fraction"],
                              approx_kl=info["approx_kl"])
            if record["stopped_early"]:
                break
        history.append(record)
        if kl_target is not None:
            beta = ppo.adaptive_kl_update(beta, seq_kl, kl_target, kl_horizon, batch_size)
        if log is not None and (it + 1) % log_every == 0:
            log(f"iteration {it + 1}/{iterations}  score {record['score']:.3f}  "
                f"KL {seq_kl:.3f}  beta {record['beta']:.3g}  steps {record['steps']}")
    return params, critic_params, history


def _logprobs(policy, params, batch):
    logits, _ = policy.logits(params, batch)
    return ppo.logprobs_forward(logits, batch["responses"])[0]


def _scores(where, reward_fn, batch):
    scores = reward_fn(batch)
    _checks.float_array(where, "reward_fn(batch)", scores, ndim=1)
    if scores.shape != batch["mask"].shape[:1]:
        raise ValueError(f"{where}: argument reward_fn(batch) must return one score per "
                         f"response, shape {batch['mask'].shape[:1]}, got shape {scores.shape}")
    return scores


def _step(where: str, name: str, lr: float, params, grads, state):
    """One Adam step of the loop; a step that overflows (a huge learning rate) is reported
    as this function's argument ``name``, not as ``adam.step``'s."""
    try:
        return adam.step(params, grads, state, lr=lr)
    except ValueError as exc:
        raise ValueError(f"{where}: argument {name!r} = {lr!r} gave a failed optimizer step: "
                         f"{exc}") from None
