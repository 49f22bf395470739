r"""PPO's losses over tokens: the clipped surrogate, the clipped value loss, the entropy
bonus, the per-token log-probabilities they start from, the statistics that watch a step
(clip fraction, approximate KL), and the adaptive KL controller.

Every loss is a **masked token mean**: with a boolean `mask` (True for the tokens that are
actions, i.e. response tokens, False for prompt and padding),

$$ \operatorname{mean}_m x = \frac{\sum_t m_t\, x_t}{\sum_t m_t} $$

over all the tokens of the (mini)batch, as TRL does; without a mask every entry counts.

Clipped surrogate, with ratio $\rho_t = \exp(\log\pi(a_t) - \log\pi_{old}(a_t))$ and
advantages $A_t$:

$$ L^{clip} = -\operatorname{mean}_m \min\big(\rho_t A_t,\ \operatorname{clip}(\rho_t,
   1-\epsilon, 1+\epsilon)\, A_t\big) $$

Inside $[1-\epsilon, 1+\epsilon]$ it equals the plain $-\operatorname{mean}_m \rho A$.  Where
the clipped term is the smaller one it is a constant and passes no gradient: the update stops
pushing a ratio that has already moved far enough in the helpful direction.  Where the two
terms are equal (a ratio inside the range or on its edge, or $A = 0$) the gradient is the
unclipped one.

$$ \frac{\partial L^{clip}}{\partial \log\pi(a_t)} = -\frac{m_t\, \rho_t A_t}{\sum m}
   \ \text{where the unclipped term is taken, else } 0 $$

Value loss (TRL's and OpenAI baselines' form: the 1/2 and the larger of the two errors), with
$V^{clip} = V_{old} + \operatorname{clip}(V - V_{old}, -\epsilon_v, \epsilon_v)$:

$$ L^{V} = \tfrac12 \operatorname{mean}_m \max\big((V - R)^2,\ (V^{clip} - R)^2\big) $$

Entropy of the policy at a token, from its logits $z$:
$H = -\sum_j p_j \log p_j$, $\partial H / \partial z_j = -p_j(\log p_j + H)$.

Shapes: per-token arrays of any shape, `(N,)` or `(B, L)`, all alike; logits `(..., V)`.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import log_softmax
from llmref.rlhf import kl


def _same_shape_as(where, name, x, ref_name, ref):
    """`x` has the shape of `ref` (the message names both arguments)."""
    if x.shape != ref.shape:
        raise ValueError(f"{where}: argument '{name}' must have the shape of '{ref_name}', "
                         f"{ref.shape}, got shape {x.shape}")


def _token_arrays(where, first_name, first, **others):
    _checks.float_array(where, first_name, first)
    for name, arr in others.items():
        _checks.float_array(where, name, arr)
        _same_shape_as(where, name, arr, first_name, first)
    return first


def _mask(where, mask, shape):
    return _checks.optional_mask(where, "mask", mask, shape)


def _masked_mean(x, mask) -> float:
    return float(np.sum(x, where=mask) / np.count_nonzero(mask))


def _dloss(where, dloss) -> float:
    """A scalar upstream gradient: a number or a 0-d floating-point array."""
    if isinstance(dloss, np.ndarray):
        dloss = _checks.dout_like(where, dloss, (), name="dloss")[()]
    return _checks.number(where, "dloss", dloss)


def _per_token_example(rng, shape=(2, 3)):
    mask = np.ones(shape, dtype=bool)
    mask[0, -1] = False
    return {"logp_new": rng.standard_normal(shape) * 0.3 - 1.0,
            "logp_old": rng.standard_normal(shape) * 0.3 - 1.0,
            "advantages": rng.standard_normal(shape), "clip_eps": 0.2, "mask": mask}



@contract(example=_per_token_example, lenient={"mask": ("none",)})
def policy_forward(logp_new: np.ndarray, logp_old: np.ndarray, advantages: np.ndarray,
                   clip_eps: float = 0.2, mask: np.ndarray | None = None):
    r"""The clipped surrogate loss, a masked mean over tokens.

    $$ L^{clip} = -\operatorname{mean}_m \min\big(\rho_t A_t,\ \operatorname{clip}(\rho_t,
       1-\epsilon, 1+\epsilon) A_t\big), \qquad \rho_t = e^{\log\pi(a_t) -
       \log\pi_{old}(a_t)} $$

    Parameters
    ----------
    logp_new : ndarray, any shape, floating
        Log-probabilities of the taken tokens under the policy being trained.
    logp_old : ndarray, the shape of `logp_new`, floating
        The same under the policy that sampled them (a constant).
    advantages : ndarray, the shape of `logp_new`, floating
        Advantage estimates (a constant), usually whitened.
    clip_eps : float, default 0.2
        The clip range epsilon, > 0.
    mask : ndarray of bool, the shape of `logp_new`, default None
        True for the tokens that count; None: all of them.

    Returns
    -------
    loss : float
    cache : object
        What `policy_backward` needs (see Cache).

    Cache
    -----
    New arrays: the ratios, the advantages' gradient factor, which term was taken, the mask.

    Raises
    ------
    TypeError
        If an array is not a floating-point NumPy array, `mask` not boolean, or `clip_eps`
        not a number.
    ValueError
        If an array is empty or not finite, the shapes differ, `mask` selects nothing, or
        `clip_eps` is not > 0.
    """
    where = "ppo.policy_forward"
    _token_arrays(where, "logp_new", logp_new, logp_old=logp_old, advantages=advantages)
    clip_eps = _checks.number(where, "clip_eps", clip_eps, low=0.0, strict=True)
    mask = _mask(where, mask, logp_new.shape)
    ratio = np.exp(logp_new - logp_old)
    unclipped = ratio * advantages
    clipped = np.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -_masked_mean(np.minimum(unclipped, clipped), mask)
    # the unclipped term carries the gradient wherever it is the smaller (or equal) one
    active = (unclipped <= clipped) & mask
    return loss, (-ratio * advantages * active / np.count_nonzero(mask),)


@contract(example=lambda rng: {"dloss": 1.0,
                               "cache": policy_forward(**_per_token_example(rng))[1]},
          lenient={"dloss": ("negative",)})
def policy_backward(dloss, cache) -> dict:
    r"""Gradient of the clipped surrogate with respect to `logp_new`.

    $$ \frac{\partial L^{clip}}{\partial \log\pi(a_t)} = -\frac{m_t\,\rho_t A_t}{\sum_t m_t}
       \ \text{where } \rho_t A_t \le \operatorname{clip}(\rho_t) A_t, \text{ else } 0 $$

    Parameters
    ----------
    dloss : float
        Upstream gradient of the scalar loss.
    cache : object
        The cache returned by `policy_forward`.

    Returns
    -------
    grads : dict
        `{"logp_new": ndarray}` of the shape of `logp_new`; exactly 0 where the clip is
        active and outside the mask.

    Raises
    ------
    TypeError
        If `dloss` is not a number.
    ValueError
        If `dloss` is not finite.
    """
    (grad,) = _checks.unguard("ppo.policy_backward", cache, 1)
    dloss = _dloss("ppo.policy_backward", dloss)
    return {"logp_new": dloss * grad}


@contract(example=lambda rng: {k: v for k, v in _per_token_example(rng).items()
                               if k != "advantages"},
          lenient={"mask": ("none",)})
def stats(logp_new: np.ndarray, logp_old: np.ndarray, clip_eps: float = 0.2,
          mask: np.ndarray | None = None) -> dict:
    r"""What people log to watch a PPO step, in stable-baselines3's definitions (masked
    token means).

    $$ \text{clip fraction} = \operatorname{mean}_m \big[\,|\rho_t - 1| > \epsilon\,\big],
       \qquad \text{approx KL} = \operatorname{mean}_m \big[(\rho_t - 1) - \log\rho_t\big] $$

    The approximate KL is the k3 estimate (:mod:`llmref.rlhf.kl`) of KL(old || new) from
    tokens sampled by the old policy; it is >= 0.  TRL logs `0.5 mean(log rho^2)` (k2) and
    counts as clipped the tokens where the clipped term is taken, which differs from
    `|rho - 1| > eps` when the advantage's sign keeps the unclipped term (see the RLHF page's
    conventions table).

    Parameters
    ----------
    logp_new, logp_old : ndarray, same shape, floating
        Log-probabilities of the taken tokens under the new and the sampling policy.
    clip_eps : float, default 0.2
        The clip range, > 0.
    mask : ndarray of bool, default None
        True for the tokens that count.

    Returns
    -------
    stats : dict
        `{"clip_fraction": float, "approx_kl": float}`.

    Raises
    ------
    TypeError
        If an array is not a floating-point NumPy array, `mask` not boolean, or `clip_eps`
        not a number.
    ValueError
        If an array is empty or not finite, the shapes differ, `mask` selects nothing, or
        `clip_eps` is not > 0.
    """
    where = "ppo.stats"
    _token_arrays(where, "logp_new", logp_new, logp_old=logp_old)
    clip_eps = _checks.number(where, "clip_eps", clip_eps, low=0.0, strict=True)
    mask = _mask(where, mask, logp_new.shape)
    ratio = np.exp(logp_new - logp_old)
    k3 = kl.estimators(logp_q=logp_old, logp_p=logp_new)["k3"]
    return {"clip_fraction": _masked_mean(np.abs(ratio - 1.0) > clip_eps, mask),
            "approx_kl": _masked_mean(k3, mask)}


def _value_example(rng):
    ex = _per_token_example(rng)
    return {"values": rng.standard_normal((2, 3)), "returns": rng.standard_normal((2, 3)),
            "old_values": rng.standard_normal((2, 3)), "clip_eps": 0.5, "mask": ex["mask"]}


@contract(example=_value_example,
          lenient={"mask": ("none",), "clip_eps": ("none",),
                   "old_values": ("none",)})
def value_forward(values: np.ndarray, returns: np.ndarray, old_values: np.ndarray | None = None,
                  clip_eps: float | None = None, mask: np.ndarray | None = None):
    r"""The value loss, plain or clipped, a masked mean over tokens.

    $$ L^V = \tfrac12 \operatorname{mean}_m (V_t - R_t)^2 \quad\text{or, clipped,}\quad
       \tfrac12 \operatorname{mean}_m \max\big((V_t - R_t)^2, (V^{clip}_t - R_t)^2\big) $$

    with $V^{clip} = V_{old} + \operatorname{clip}(V - V_{old}, -\epsilon, \epsilon)$.
    stable-baselines3 uses `mean((V^clip - R)^2)` (no 1/2, the clipped error alone).

    Parameters
    ----------
    values : ndarray, any shape, floating
        The critic's current values.
    returns : ndarray, the shape of `values`, floating
        Regression targets (GAE's returns), a constant.
    old_values : ndarray, the shape of `values`, floating, default None
        The values at rollout time; needed when `clip_eps` is given.
    clip_eps : float, default None
        Clip range of the values (> 0); None: the plain loss.
    mask : ndarray of bool, default None
        True for the tokens that count.

    Returns
    -------
    loss : float
    cache : object
        What `value_backward` needs (see Cache).

    Cache
    -----
    New arrays: the error that carries the gradient at each token, masked and divided by the
    token count.

    Raises
    ------
    TypeError
        If an array is not a floating-point NumPy array, `mask` not boolean, or `clip_eps`
        not a number.
    ValueError
        If an array is empty or not finite, the shapes differ, `mask` selects nothing,
        `clip_eps` is not > 0, or `clip_eps` is given without `old_values`.
    """
    where = "ppo.value_forward"
    _token_arrays(where, "values", values, returns=returns)
    if old_values is not None:                  # checked even where the plain loss ignores it
        _token_arrays(where, "values", values, old_values=old_values)
    clip_eps = _checks.optional_number(where, "clip_eps", clip_eps, low=0.0, strict=True)
    mask = _mask(where, mask, values.shape)
    n = np.count_nonzero(mask)
    err = values - returns
    if clip_eps is None:
        return 0.5 * _masked_mean(err**2, mask), (np.where(mask, err, 0.0) / n,)
    if old_values is None:
        raise ValueError(f"{where}: argument 'old_values' is needed with 'clip_eps' (the "
                         f"clipped loss measures V - V_old)")
    clipped_err = old_values + np.clip(values - old_values, -clip_eps, clip_eps) - returns
    use_plain = err**2 >= clipped_err**2
    # the clipped branch depends on V only while V - V_old is inside [-eps, eps]
    inside = np.abs(values - old_values) <= clip_eps
    grad_err = np.where(use_plain, err, np.where(inside, clipped_err, 0.0))
    loss = 0.5 * _masked_mean(np.maximum(err**2, clipped_err**2), mask)
    return loss, (np.where(mask, grad_err, 0.0) / n,)


@contract(example=lambda rng: {"dloss": 1.0, "cache": value_forward(**_value_example(rng))[1]},
          lenient={"dloss": ("negative",)})
def value_backward(dloss, cache) -> dict:
    r"""Gradient of the value loss with respect to `values`.

    $$ \frac{\partial L^V}{\partial V_t} = \frac{m_t\, e_t}{\sum_t m_t} $$

    with $e_t$ the error of the larger term ($V_t - R_t$, or $V^{clip}_t - R_t$ while
    $|V_t - V_{old,t}| \le \epsilon$, else 0); where the two terms are equal, the plain
    error $V_t - R_t$ (as the surrogate's gradient takes the unclipped term).

    Parameters
    ----------
    dloss : float
        Upstream gradient of the scalar loss.
    cache : object
        The cache returned by `value_forward`.

    Returns
    -------
    grads : dict
        `{"values": ndarray}` of the shape of `values`.

    Raises
    ------
    TypeError
        If `dloss` is not a number.
    ValueError
        If `dloss` is not finite.
    """
    (grad,) = _checks.unguard("ppo.value_backward", cache, 1)
    dloss = _dloss("ppo.value_backward", dloss)
    return {"values": dloss * grad}


def _entropy_example(rng):
    mask = np.array([True, True, False])
    return {"logits": rng.standard_normal((3, 5)), "mask": mask}


@contract(example=_entropy_example, lenient={"mask": ("none",)})
def entropy_forward(logits: np.ndarray, mask: np.ndarray | None = None):
    r"""Mean entropy of the distributions `softmax(logits)`, a masked mean over positions.

    $$ H_t = -\sum_j p_{t,j} \log p_{t,j}, \qquad p_t = \operatorname{softmax}(z_t), \qquad
       \bar H = \operatorname{mean}_m H_t $$

    Parameters
    ----------
    logits : ndarray, shape (..., V), floating
        One row of logits per position.
    mask : ndarray of bool, shape (...), default None
        True for the positions that count.

    Returns
    -------
    entropy : float
    cache : object
        What `entropy_backward` needs (see Cache).

    Cache
    -----
    New arrays: the probabilities, their logs, the entropies and the mask's weights.

    Raises
    ------
    TypeError
        If `logits` is not a floating-point NumPy array or `mask` not boolean.
    ValueError
        If `logits` is 0-dimensional, empty or not finite, or `mask` has the wrong shape or
        selects nothing.
    """
    where = "ppo.entropy_forward"
    _checks.float_array(where, "logits", logits, ndim_min=1)
    if mask is not None and getattr(mask, "shape", None) != logits.shape[:-1]:
        _checks.bool_array(where, "mask", mask, getattr(mask, "shape", ()))
        raise ValueError(f"{where}: argument 'mask' must have the shape of 'logits' without "
                         f"its last axis, {logits.shape[:-1]}, got shape {mask.shape}")
    mask = _mask(where, mask, logits.shape[:-1])
    logp, _ = log_softmax.forward(logits)
    p = np.exp(logp)
    H = -(p * logp).sum(axis=-1)
    weight = mask / np.count_nonzero(mask)
    return float(np.sum(H * weight)), (p, logp, H, weight)


@contract(example=lambda rng: {"dloss": 1.0,
                               "cache": entropy_forward(**_entropy_example(rng))[1]},
          lenient={"dloss": ("negative",)})
def entropy_backward(dloss, cache) -> dict:
    r"""Gradient of the mean entropy with respect to the logits.

    $$ \frac{\partial \bar H}{\partial z_{t,j}} = -\frac{m_t}{\sum m}\, p_{t,j}
       (\log p_{t,j} + H_t) $$

    Parameters
    ----------
    dloss : float
        Upstream gradient of the scalar mean entropy.
    cache : object
        The cache returned by `entropy_forward`.

    Returns
    -------
    grads : dict
        `{"logits": ndarray (..., V)}`.

    Raises
    ------
    TypeError
        If `dloss` is not a number.
    ValueError
        If `dloss` is not finite.
    """
    p, logp, H, weight = _checks.unguard("ppo.entropy_backward", cache, 4)
    dloss = _dloss("ppo.entropy_backward", dloss)
    return {"logits": dloss * weight[..., None] * (-p * (logp + H[..., None]))}


def _logprobs_example(rng):
    return {"logits": rng.standard_normal((2, 3, 5)), "tokens": rng.integers(0, 5, (2, 3))}


@contract(example=_logprobs_example)
def logprobs_forward(logits: np.ndarray, tokens: np.ndarray):
    r"""Log-probabilities of the tokens a policy took, from the logits that chose them.

    $$ \log\pi(a_t) = z_{t,a_t} - \log\sum_j e^{z_{t,j}} $$

    Parameters
    ----------
    logits : ndarray, shape (..., V), floating
        The policy's logits at each step.
    tokens : ndarray of int, shape (...)
        The token taken at each step, in [0, V).

    Returns
    -------
    logp : ndarray, shape (...)
    cache : object
        What `logprobs_backward` needs (see Cache).

    Cache
    -----
    The log-softmax's cache (new arrays) and a copy of `tokens`.

    Raises
    ------
    TypeError
        If `logits` is not a floating-point NumPy array or `tokens` not an integer one.
    ValueError
        If `logits` is 0-dimensional, empty or not finite, `tokens` does not have the shape
        `logits.shape[:-1]`, or a token is outside [0, V).
    """
    where = "ppo.logprobs_forward"
    _checks.float_array(where, "logits", logits, ndim_min=1)
    _checks.int_array(where, "tokens", tokens, 0, logits.shape[-1])
    if tokens.shape != logits.shape[:-1]:
        raise ValueError(f"{where}: argument 'tokens' must have the shape of 'logits' without "
                         f"its last axis, {logits.shape[:-1]}, got shape {tokens.shape}")
    logp_all, ls_cache = log_softmax.forward(logits)
    logp = np.take_along_axis(logp_all, tokens[..., None], axis=-1)[..., 0]
    return logp, (tokens.copy(), ls_cache, logp_all.shape)


@contract(example=lambda rng: {"dlogp": rng.standard_normal((2, 3)),
                               "cache": logprobs_forward(**_logprobs_example(rng))[1]})
def logprobs_backward(dlogp: np.ndarray, cache) -> dict:
    r"""Gradient of the taken tokens' log-probabilities with respect to the logits.

    $$ \frac{\partial \log\pi(a_t)}{\partial z_{t,j}} = [j = a_t] - p_{t,j} $$

    Parameters
    ----------
    dlogp : ndarray, shape (...), floating
        Upstream gradient, the shape of `logp`.
    cache : object
        The cache returned by `logprobs_forward`.

    Returns
    -------
    grads : dict
        `{"logits": ndarray (..., V)}`.

    Raises
    ------
    TypeError
        If `dlogp` is not a floating-point NumPy array.
    ValueError
        If `dlogp` does not have the shape of `logp` or is not finite.
    """
    tokens, ls_cache, shape = _checks.unguard("ppo.logprobs_backward", cache, 3)
    dlogp = _checks.dout_like("ppo.logprobs_backward", dlogp, tokens.shape, name="dlogp")
    d_all = np.zeros(shape, dtype=np.result_type(dlogp.dtype, ls_cache.dtype))
    np.put_along_axis(d_all, tokens[..., None], dlogp[..., None], axis=-1)
    return {"logits": log_softmax.backward(d_all, ls_cache)["x"]}


@contract(example=lambda rng: {"beta": 0.1, "kl": 4.0, "target": 6.0, "horizon": 10_000,
                               "n_steps": 256},
          lenient={"kl": ("negative",), "n_steps": ("zero",)})
def adaptive_kl_update(beta: float, kl: float, target: float, horizon: int,
                       n_steps: int) -> float:
    r"""The adaptive KL controller of Ziegler et al. (2019): move beta towards the value
    that keeps the KL near a target.

    $$ \beta \leftarrow \beta\,\Big(1 + \operatorname{clip}\big(\tfrac{KL}{KL_{target}} - 1,
       -0.2, 0.2\big)\,\frac{n_{steps}}{\text{horizon}}\Big) $$

    Parameters
    ----------
    beta : float
        The current KL coefficient, >= 0.
    kl : float
        The KL measured on the last rollout (per sequence, in nats; may be slightly
        negative as a sampled estimate).
    target : float
        The KL to hold, > 0.
    horizon : int
        How many samples a full correction takes, > 0.
    n_steps : int
        Samples in the last rollout, >= 0.

    Returns
    -------
    beta : float
        The new coefficient: larger when the KL is above the target, smaller below.

    Raises
    ------
    TypeError
        If an argument is not a number (an int for `horizon` and `n_steps`).
    ValueError
        If a number is not finite, `beta` < 0, `target` <= 0, `horizon` <= 0 or
        `n_steps` < 0.
    """
    where = "ppo.adaptive_kl_update"
    beta = _checks.number(where, "beta", beta)
    if beta < 0:
        raise ValueError(f"{where}: argument 'beta' must be >= 0, got {beta!r}")
    kl = _checks.number(where, "kl", kl)
    target = _checks.number(where, "target", target, low=0.0, strict=True)
    horizon = _checks.integer(where, "horizon", horizon, low=1)
    n_steps = _checks.integer(where, "n_steps", n_steps, low=0)
    error = float(np.clip(kl / target - 1.0, -0.2, 0.2))
    return beta * (1.0 + error * n_steps / horizon)
