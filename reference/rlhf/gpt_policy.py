r"""The GPT as an RLHF policy: sampling responses, the per-token log-probabilities of the
response under the GPT, and their gradient with respect to every GPT parameter.

A batch (:func:`llmref.rlhf.rlhf_loop.batch`) holds left-padded prompts (B, P) and
right-padded responses (B, L), each with its mask.  The GPT reads each row whole, prompt then
response, with the attention mask hiding both paddings and positions counting real tokens
only (:mod:`llmref.transformer.gpt`), so every row is computed as if it were alone.  The
logits at column $j$ predict the token at column $j + 1$, so response token $t$ (column
$P + t$) is chosen by the logits at column $P + t - 1$; $t = 0$ reads the prompt's last
token, which left padding keeps in column $P - 1$ for every row:

$$ z_{b,t} = \operatorname{GPT}(x_b)_{P + t - 1}, \qquad
   \log\pi(a_{b,t}) = z_{b,t,a_{b,t}} - \log\sum_j e^{z_{b,t,j}} $$

Only these L columns of logits receive a gradient; the response mask then drops padding
(and the prompt is never an action).  The backward is the GPT's own (:func:`gpt.backward`).

Sampling uses the reference's generation (:func:`llmref.transformer.generate.generate`, KV
cache, temperature, top-k, stop tokens, prompts of unequal length), seeded, so a rollout is
reproducible.  A response ends after a stop token (kept) or after `max_new_tokens`.

**The policy PPO trains is the distribution it samples from.**  With a temperature
$\tau$ that is $\operatorname{softmax}(z / \tau)$, so :func:`logits` divides by $\tau$ (as
TRL does) and the ratio $\pi / \pi_{old}$, the KL to the reference and the entropy are all
those of the sampling distribution.  Top-k sampling is offered for collecting and showing
answers (:func:`sample`), not for the PPO policy (:func:`policy`): its distribution is 0
outside the k likeliest tokens, so its log-probabilities are not those of the logits'
softmax, and a ratio computed from the latter would be wrong.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.rlhf import ppo, rlhf_loop
from llmref.transformer import generate, gpt
from llmref.transformer.gpt import GPTConfig

_CONFIG = GPTConfig(vocab_size=7, context_len=8, d_model=8, n_heads=2, n_layers=1)


def _example_batch(rng):
    return rlhf_loop.batch([rng.integers(0, 7, 3), rng.integers(0, 7, 1)],
                           [rng.integers(0, 7, 2), rng.integers(0, 7, 4)], pad_id=0)


def _logits_example(rng):
    return {"batch": _example_batch(rng), "params": gpt.init(_CONFIG, rng), "config": _CONFIG}


@contract(example=_logits_example, opaque=("params",))
def logits(batch: dict, params: dict, config: GPTConfig, temperature: float = 1.0):
    r"""The logits that chose each response token, divided by the sampling temperature.

    $$ z_{b,t} = \operatorname{GPT}(\text{prompt}_b \,\|\, \text{response}_b)_{P + t - 1}
       \,/\, \tau $$

    Parameters
    ----------
    batch : dict
        Prompts and responses (:func:`llmref.rlhf.rlhf_loop.batch`); no row's real prompt
        and response tokens together may exceed the context length.
    params : dict
        The GPT's parameters (checked as :func:`gpt.forward` checks them).
    config : GPTConfig
    temperature : float, default 1.0
        The sampling temperature $\tau$ (> 0) the responses were drawn with.

    Returns
    -------
    z : ndarray, shape (B, L, V)
        A new array; rows outside the response mask mean nothing.
    cache : object
        What `logits_backward` needs (see Cache).

    Cache
    -----
    The GPT's cache, the prompt width P, the full logits' shape and the temperature.  The
    GPT's cache holds its weights by reference: do not change `params` in place before the
    backward (`LLMREF_DEBUG_CACHE=1` verifies it).

    Raises
    ------
    TypeError
        If `batch`, `params` or `config` has the wrong kind.
    ValueError
        If `batch` or `params` is malformed or a row is longer than the context.
    """
    z, cache = _logits("gpt_policy.logits", batch, params, config, temperature)
    return z, _checks.guard("gpt_policy.logits", cache, params=params)


def _logits(where, batch, params, config, temperature):
    gpt._check_config(where, config)
    temperature = _checks.number(where, "temperature", temperature, low=0.0, strict=True)
    rlhf_loop._check_batch(where, batch, config.vocab_size, config.context_len)
    gpt._check_params(params, config, where)
    ids, attention_mask = rlhf_loop.sequences(batch)
    positions = gpt._positions_from_mask(attention_mask)
    full, cache = gpt._forward(ids, params, config, attention_mask, positions)
    P, L = batch["prompts"].shape[1], batch["responses"].shape[1]
    return full[:, P - 1:P + L - 1] / temperature, (cache, P, full.shape, temperature)


@contract(example=lambda rng: {"dz": rng.standard_normal((2, 4, 7)),
                               "cache": logits(**_logits_example(rng))[1]})
def logits_backward(dz: np.ndarray, cache) -> dict:
    r"""Gradient of every GPT parameter from the gradient of the response logits.

    The full sequence's logit gradient is `dz / tau` in columns `P - 1 .. P + L - 2` and 0
    elsewhere; the GPT's backward takes it from there.

    Parameters
    ----------
    dz : ndarray, shape (B, L, V), floating
    cache : object
        The cache returned by `logits`.

    Returns
    -------
    grads : dict
        A tree shaped like the GPT's parameters.

    Raises
    ------
    TypeError
        If `dz` is not a floating-point NumPy array.
    ValueError
        If `dz` has the wrong shape or is not finite.
    """
    gpt_cache, P, shape, temperature = _checks.unguard("gpt_policy.logits_backward", cache, 4,
                                                       forward="gpt_policy.logits")
    B, T, V = shape
    dz = _checks.dout_like("gpt_policy.logits_backward", dz, (B, T - P, V), name="dz")
    _, _, h, _ = gpt_cache
    dfull = np.zeros(shape, dtype=np.result_type(dz.dtype, h.dtype))
    dfull[:, P - 1:T - 1] = dz / temperature
    return gpt.backward(dfull, gpt_cache)


@contract(example=_logits_example, opaque=("params",))
def logprobs(batch: dict, params: dict, config: GPTConfig, temperature: float = 1.0):
    r"""Per-token log-probabilities of the responses under the GPT, 0 outside the response
    mask.

    $$ \ell_{b,t} = m_{b,t} \log\pi(a_{b,t} \mid \text{prompt}_b, a_{b,<t}), \qquad
       \pi = \operatorname{softmax}(z / \tau) $$

    A response's log-probability is the sum of its row.

    Parameters
    ----------
    batch : dict
        Prompts and responses.
    params : dict
        The GPT's parameters.
    config : GPTConfig
    temperature : float, default 1.0
        The sampling temperature (> 0); 1 for the model's own distribution.

    Returns
    -------
    logp : ndarray, shape (B, L)
    cache : object
        What `logprobs_backward` needs: the caches of the logits and the log-softmax.

    Raises
    ------
    TypeError
        If `batch`, `params` or `config` has the wrong kind.
    ValueError
        If `batch` or `params` is malformed or a row is longer than the context.
    """
    z, z_cache = _logits("gpt_policy.logprobs", batch, params, config, temperature)
    logp, lp_cache = ppo.logprobs_forward(z, batch["responses"])
    mask = batch["mask"]
    return np.where(mask, logp, 0.0), _checks.guard(
        "gpt_policy.logprobs", (z_cache, lp_cache, mask.copy()), params=params)


@contract(example=lambda rng: {"dlogp": rng.standard_normal((2, 4)),
                               "cache": logprobs(**_logits_example(rng))[1]})
def logprobs_backward(dlogp: np.ndarray, cache) -> dict:
    r"""Gradient of every GPT parameter from the gradient of the per-token log-probabilities
    (entries outside the response mask are ignored).

    $$ \frac{\partial L}{\partial z_{b,t,j}} = m_{b,t}\,\frac{\partial L}{\partial \ell_{b,t}}
       \big([j = a_{b,t}] - p_{b,t,j}\big) $$

    Parameters
    ----------
    dlogp : ndarray, shape (B, L), floating
    cache : object
        The cache returned by `logprobs`.

    Returns
    -------
    grads : dict
        A tree shaped like the GPT's parameters.

    Raises
    ------
    TypeError
        If `dlogp` is not a floating-point NumPy array.
    ValueError
        If `dlogp` has the wrong shape or is not finite.
    """
    z_cache, lp_cache, mask = _checks.unguard("gpt_policy.logprobs_backward", cache, 3,
                                              forward="gpt_policy.logprobs")
    dlogp = _checks.dout_like("gpt_policy.logprobs_backward", dlogp, mask.shape,
                                  name="dlogp")
    dz = ppo.logprobs_backward(np.where(mask, dlogp, 0.0), lp_cache)["logits"]
    return logits_backward(dz, z_cache)


def _sample_example(rng):
    return {"params": gpt.init(_CONFIG, rng), "config": _CONFIG,
            "prompts": [rng.integers(0, 7, 3), rng.integers(0, 7, 1)], "max_new_tokens": 3,
            "temperature": 1.0, "top_k": 5, "stop_tokens": [6], "pad_id": 0, "seed": 1}


@contract(example=_sample_example, opaque=("params",),
          lenient={"top_k": ("none",), "stop_tokens": ("none", "empty"), "pad_id": ("zero",),
                   "seed": ("zero",)})
def sample(params: dict, config: GPTConfig, prompts: list, max_new_tokens: int, *,
           temperature: float = 1.0, top_k: int | None = None, stop_tokens=None,
           pad_id: int = 0, seed: int = 0) -> dict:
    r"""One sampled response per prompt, as a batch.

    $$ a_t \sim p_i \propto e^{z_i / \tau} \text{ over the top } k \text{ logits} $$

    Parameters
    ----------
    params : dict
        The GPT's parameters.
    config : GPTConfig
    prompts : list of ndarray of int
        1-D prompts of any lengths; the longest plus `max_new_tokens` must fit the context.
    max_new_tokens : int
        Most tokens per response, >= 1.
    temperature : float, default 1.0
        > 0.
    top_k : int, default None
        Sample among the k likeliest tokens only.
    stop_tokens : int or list of int, default None
        A response ends after one of these (kept in the response).
    pad_id : int, default 0
        Written in padding positions.
    seed : int, default 0
        Seed of the generation, >= 0: the same seed gives the same responses.

    Returns
    -------
    batch : dict
        The batch layout of :mod:`llmref.rlhf.rlhf_loop`.

    Raises
    ------
    TypeError
        If an argument has the wrong kind.
    ValueError
        If an argument is out of range, or a prompt plus `max_new_tokens` exceeds the
        context.
    """
    where = "gpt_policy.sample"
    gpt._check_config(where, config)
    prompts = rlhf_loop._id_list(where, "prompts", prompts, config.vocab_size)
    max_new_tokens = _checks.integer(where, "max_new_tokens", max_new_tokens, low=1)
    temperature = _checks.number(where, "temperature", temperature, low=0.0, strict=True)
    seed = _checks.integer(where, "seed", seed, low=0)
    longest = max(map(len, prompts)) + max_new_tokens
    if longest > config.context_len:
        raise ValueError(f"{where}: argument 'max_new_tokens' plus the longest prompt makes "
                         f"{longest} tokens, more than the context length {config.context_len}")
    try:
        rows = generate.generate(params, config, prompts, max_new_tokens,
                                 temperature=temperature, top_k=top_k, stop_tokens=stop_tokens,
                                 pad_id=pad_id, seed=seed)
    except (TypeError, ValueError) as exc:      # name this function, not the one inside
        raise type(exc)(f"{where}: {exc}") from None
    return rlhf_loop.batch(prompts, [rows[b][len(p):] for b, p in enumerate(prompts)], pad_id)


@contract(example=lambda rng: {"config": _CONFIG, "max_new_tokens": 3, "temperature": 0.8,
                               "stop_tokens": [6], "pad_id": 0},
          lenient={"stop_tokens": ("none", "empty"), "pad_id": ("zero",)})
def policy(config: GPTConfig, max_new_tokens: int, *, temperature: float = 1.0,
           stop_tokens=None, pad_id: int = 0) -> rlhf_loop.Policy:
    r"""The GPT as a :class:`llmref.rlhf.rlhf_loop.Policy`, the distribution
    $\operatorname{softmax}(z / \tau)$: `sample` draws each rollout's generation seed from
    the loop's generator, so a run is reproducible from its seed, and `logits` divides by
    the same temperature.  (No top-k: see the module docstring.)

    Parameters
    ----------
    config : GPTConfig
    max_new_tokens : int
        Most tokens per response, >= 1.
    temperature : float, default 1.0
        Sampling temperature, > 0.
    stop_tokens : int or list of int, default None
        A response ends after one of these.
    pad_id : int, default 0
        Written in padding positions.

    Returns
    -------
    policy : Policy

    Raises
    ------
    TypeError
        If an argument has the wrong kind.
    ValueError
        If an argument is out of range.
    """
    where = "gpt_policy.policy"
    gpt._check_config(where, config)
    max_new_tokens = _checks.integer(where, "max_new_tokens", max_new_tokens, low=1)
    temperature = _checks.number(where, "temperature", temperature, low=0.0, strict=True)
    generate._stop_ids(where, stop_tokens, config.vocab_size)
    generate._check_count(where, "pad_id", pad_id)

    def sample_fn(params, prompts, rng):
        return sample(params, config, prompts, max_new_tokens, temperature=temperature,
                      stop_tokens=stop_tokens, pad_id=pad_id, seed=int(rng.integers(2**31)))

    return rlhf_loop.Policy(
        sample=sample_fn, logits=lambda params, batch: logits(batch, params, config, temperature),
        logits_backward=logits_backward)
