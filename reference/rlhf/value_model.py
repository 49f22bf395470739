r"""The critic of RLHF with a GPT: a separate GPT trunk with a scalar value head read at every
response step.

$$ V_{b,t} = h_{b,\,P + t - 1} \cdot w + c $$

where `h` (B, P + L, C) are the trunk's final hidden states of prompt and response read
together (as :mod:`llmref.rlhf.gpt_policy` reads them) and column `P + t - 1` is the last
token before response token `t`: the value of the state in which token `t` is chosen, read
where the policy reads the logits that choose it.

**A separate trunk, not a head on the policy's.**  The policy and the critic share no
parameter, so the policy's gradient is the PPO objective's alone (no value-loss weight to
balance against it, nothing of the critic's regression leaking into the language model),
and the critic can start from the reward model, which already scores responses: InstructGPT
does this, and so does TRL's PPO trainer.  The price is a second forward and backward per
minibatch.  Initialised from a reward model (:func:`init_from_reward_model`), the value at
step `t` is the reward model's score of the prefix that ends just before token `t`.

Parameters: the GPT trunk's (no `lm_head`) plus `"value_head": {"W": (C, 1), "b": (1,)}`.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.params import map_tree
from llmref.rlhf import reward_model, rlhf_loop
from llmref.transformer import gpt
from llmref.transformer.gpt import GPTConfig

_CONFIG = GPTConfig(vocab_size=7, context_len=8, d_model=8, n_heads=2, n_layers=1)


def _rm_example(rng):
    return {"reward_params": reward_model.init(_CONFIG, rng), "config": _CONFIG}


@contract(example=_rm_example)
def init_from_reward_model(reward_params: dict, config: GPTConfig) -> dict:
    r"""A critic that starts as the reward model: a copy of its trunk, and its reward head as
    the value head.

    Parameters
    ----------
    reward_params : dict
        A reward model's parameters (:mod:`llmref.rlhf.reward_model`).
    config : GPTConfig
        Its trunk's configuration.

    Returns
    -------
    params : dict
        The critic's parameters, new arrays (training the critic leaves the reward model
        unchanged).

    Raises
    ------
    TypeError
        If `reward_params` is not a dict or `config` not a GPTConfig.
    ValueError
        If `reward_params` is not a reward model's tree for `config`.
    """
    where = "value_model.init_from_reward_model"
    gpt._check_config(where, config)
    if not isinstance(reward_params, dict):
        raise TypeError(f"{where}: argument 'reward_params' must be a dict, got "
                        f"{type(reward_params).__name__}")
    if "reward_head" not in reward_params:
        raise ValueError(f"{where}: argument 'reward_params' is missing key(s) "
                         f"['reward_head']: not a reward model's parameters")
    try:
        gpt._check_params({k: v for k, v in reward_params.items() if k != "reward_head"},
                          reward_model._trunk_config(config), where)
        _checks.params(where, reward_params["reward_head"], {"W": (config.d_model, 1), "b": (1,)},
                       name="reward_params['reward_head']")
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: argument 'reward_params' is not a reward model's tree for "
                        f"'config': {str(exc).removeprefix(f'{where}: ')}") from None
    params = map_tree(np.copy, {k: v for k, v in reward_params.items() if k != "reward_head"})
    params["value_head"] = map_tree(np.copy, reward_params["reward_head"])
    return params


def _forward_example(rng):
    params = init_from_reward_model(reward_model.init(_CONFIG, rng), _CONFIG)
    b = rlhf_loop.batch([rng.integers(0, 7, 3), rng.integers(0, 7, 1)],
                        [rng.integers(0, 7, 2), rng.integers(0, 7, 4)])
    return {"batch": b, "params": params, "config": _CONFIG}


@contract(example=_forward_example, opaque=("params",))
def forward(batch: dict, params: dict, config: GPTConfig):
    r"""The value of the state before every response token.

    $$ V_{b,t} = h_{b,\,P + t - 1} \cdot w + c $$

    Parameters
    ----------
    batch : dict
        Prompts and responses (:func:`llmref.rlhf.rlhf_loop.batch`).
    params : dict
        The trunk's parameters plus `value_head`.
    config : GPTConfig
        The trunk's configuration (`tie_weights` is ignored: the trunk has no LM head).

    Returns
    -------
    values : ndarray, shape (B, L)
        Entries outside the response mask mean nothing.
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The trunk's cache, the hidden states read (a new array), a copy of the value head's `W`
    and the prompt width P.  The trunk's cache holds the batch's ids and masks (new arrays)
    and the trunk's weights by reference: do not change `params` in place before the
    backward (`LLMREF_DEBUG_CACHE=1` verifies it).

    Raises
    ------
    TypeError
        If `batch`, `params` or `config` has the wrong kind.
    ValueError
        If `batch` or `params` is malformed or a row is longer than the context.
    """
    where = "value_model.forward"
    gpt._check_config(where, config)
    rlhf_loop._check_batch(where, batch, config.vocab_size, config.context_len)
    if not isinstance(params, dict):
        raise TypeError(f"{where}: argument 'params' must be a dict, got "
                        f"{type(params).__name__}")
    if "value_head" not in params:
        raise ValueError(f"{where}: argument 'params' is missing key(s) ['value_head']")
    head = _checks.params(where, params["value_head"], {"W": (config.d_model, 1), "b": (1,)},
                          name="params['value_head']")
    trunk = {k: v for k, v in params.items() if k != "value_head"}
    ids, attention_mask = rlhf_loop.sequences(batch)
    h, trunk_cache = gpt.hidden_forward(ids, trunk, reward_model._trunk_config(config),
                                        attention_mask)
    P, L = batch["prompts"].shape[1], batch["responses"].shape[1]
    h_read = h[:, P - 1:P + L - 1]                                         # (B, L, C)
    values = (h_read @ head["W"])[..., 0] + head["b"][0]
    return values, _checks.guard(where, (trunk_cache, h.shape, P, h_read, head["W"].copy()),
                                 params=params)


@contract(example=lambda rng: {"dvalues": rng.standard_normal((2, 4)),
                               "cache": forward(**_forward_example(rng))[1]})
def backward(dvalues: np.ndarray, cache) -> dict:
    r"""Gradients of every critic parameter.

    $$ \frac{\partial L}{\partial w} = \sum_{b,t} \frac{\partial L}{\partial V_{b,t}}
       h_{b,P+t-1}, \qquad \frac{\partial L}{\partial h_{b,P+t-1}} =
       \frac{\partial L}{\partial V_{b,t}}\, w $$

    and the trunk's backward from there.

    Parameters
    ----------
    dvalues : ndarray, shape (B, L), floating
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        A tree shaped like the critic's parameters.

    Raises
    ------
    TypeError
        If `dvalues` is not a floating-point NumPy array.
    ValueError
        If `dvalues` has the wrong shape or is not finite.
    """
    trunk_cache, h_shape, P, h_read, W = _checks.unguard("value_model.backward", cache, 5)
    dvalues = _checks.dout_like("value_model.backward", dvalues, h_read.shape[:2],
                                name="dvalues")
    L = h_read.shape[1]
    dh = np.zeros(h_shape, dtype=np.result_type(h_read, dvalues))
    dh[:, P - 1:P + L - 1] = dvalues[..., None] * W[:, 0]
    grads = gpt.hidden_backward(dh, trunk_cache)
    C = h_read.shape[-1]
    grads["value_head"] = {"W": h_read.reshape(-1, C).T @ dvalues.reshape(-1, 1),
                           "b": np.array([dvalues.sum()])}
    return grads


@contract(example=lambda rng: {"config": _CONFIG})
def critic(config: GPTConfig) -> rlhf_loop.Critic:
    r"""The value model as a :class:`llmref.rlhf.rlhf_loop.Critic`.

    Parameters
    ----------
    config : GPTConfig
        The trunk's configuration.

    Returns
    -------
    critic : Critic

    Raises
    ------
    TypeError
        If `config` is not a GPTConfig.
    """
    gpt._check_config("value_model.critic", config)
    return rlhf_loop.Critic(values=lambda params, batch: forward(batch, params, config),
                            values_backward=backward)
