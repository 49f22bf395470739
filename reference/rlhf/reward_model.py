r"""A reward model: the tiny GPT's trunk with a scalar head read at the last real token.

$$ r_b = h_{b,\,\ell_b - 1} \cdot w + c $$

where `h` (B, T, C) are the trunk's final hidden states and $\ell_b - 1$ is the index of the
last real token of sequence `b`.  Parameters: the GPT's (no `lm_head`) plus
`"reward_head": {"W": (C, 1), "b": (1,)}`.  Trained with `llmref.losses.preference` (the
Bradley-Terry loss) on (chosen, rejected) pairs.

Backward: only the hidden state read receives a gradient,

$$ \frac{\partial L}{\partial w} = \sum_b \frac{\partial L}{\partial r_b}\, h_{b,\ell_b-1},
   \qquad \frac{\partial L}{\partial c} = \sum_b \frac{\partial L}{\partial r_b}, \qquad
   \frac{\partial L}{\partial h_{b,t}} = [t = \ell_b - 1]\,
   \frac{\partial L}{\partial r_b}\, w $$

and the trunk's backward (`gpt.hidden_backward`) carries it to every trunk parameter.

Padding, one of three ways:

- `lengths` (B,): sequence `b` is its first `lengths[b]` tokens, the rest is right padding,
  which a causal model cannot see from position `lengths[b] - 1`;
- `attention_mask` (B, T) boolean, True for real tokens (left or right padding): the trunk
  hides the padding from attention and counts positions over real tokens only
  (`llmref.transformer.gpt`), and the reward is read at each row's last real token;
- neither: every token is real, the reward is read at position `T - 1`.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.params import map_tree
from llmref.transformer import gpt
from llmref.transformer.gpt import GPTConfig

_CONFIG = GPTConfig(vocab_size=7, context_len=8, d_model=8, n_heads=2, n_layers=1)


def _head(config: GPTConfig, rng: np.random.Generator) -> dict:
    return {"W": rng.normal(0.0, 0.02, size=(config.d_model, 1)), "b": np.zeros(1)}


@contract(example=lambda rng: {"config": _CONFIG, "rng": rng})
def init(config: GPTConfig, rng: np.random.Generator) -> dict:
    r"""A reward model with random weights: the GPT's initialisation (its LM head dropped)
    and a scalar head.

    $$ w \sim \mathcal{N}(0, 0.02^2), \qquad c = 0 $$

    Parameters
    ----------
    config : GPTConfig
        The trunk's configuration (`tie_weights` is ignored: there is no LM head).
    rng : numpy.random.Generator
        Source of the random weights.

    Returns
    -------
    params : dict
        The trunk's parameters (as `gpt.init` makes them, no `lm_head`) plus
        `"reward_head": {"W": (C, 1), "b": (1,)}`, all float64.

    Raises
    ------
    TypeError
        If `config` is not a GPTConfig or `rng` not a NumPy random Generator.
    """
    where = "reward_model.init"
    gpt._check_config(where, config)
    _checks.generator(where, "rng", rng)
    params = gpt.init(config, rng)
    params.pop("lm_head", None)
    params["reward_head"] = _head(config, rng)
    return params


def _trunk_config(config: GPTConfig) -> GPTConfig:
    """The trunk has no head of its own: checked as a tied model (no `lm_head` key)."""
    return GPTConfig(**{**config.__dict__, "tie_weights": True})


def _check_params(where: str, params, config: GPTConfig):
    """The trunk's tree (an `lm_head`, if any, is ignored) and the checked reward head."""
    if not isinstance(params, dict):
        raise TypeError(f"{where}: argument 'params' must be a dict of arrays, got "
                        f"{_checks._describe(params)}")
    if "reward_head" not in params:
        raise ValueError(f"{where}: argument 'params' is missing key(s) ['reward_head']: "
                         f"not a reward model's parameters")
    head = _checks.params(where, params["reward_head"], {"W": (config.d_model, 1), "b": (1,)},
                          name="params['reward_head']")
    trunk = {k: v for k, v in params.items() if k not in ("reward_head", "lm_head")}
    gpt._check_params(trunk, _trunk_config(config), where)
    return trunk, head


def _forward_example(rng):
    return {"ids": rng.integers(0, 7, (2, 4)), "params": init(_CONFIG, rng),
            "config": _CONFIG, "lengths": np.array([2, 4])}


@contract(example=_forward_example, lenient={"lengths": ("none",)})
def forward(ids: np.ndarray, params: dict, config: GPTConfig, lengths: np.ndarray | None = None,
            attention_mask: np.ndarray | None = None):
    r"""The reward of each sequence, read at its last real token.

    $$ r_b = h_{b,\,\ell_b - 1} \cdot w + c, \qquad h = \mathrm{trunk}(x) $$

    Parameters
    ----------
    ids : ndarray of int, shape (B, T)
        Token ids in [0, V).
    params : dict
        The trunk's parameters plus `reward_head` (an `lm_head`, if present, is ignored).
    config : GPTConfig
        The trunk's configuration (`tie_weights` is ignored: the trunk has no LM head).
    lengths : ndarray of int, shape (B,), default None
        Real tokens per row, in [1, T]; the rest of the row is right padding.
    attention_mask : ndarray of bool, shape (B, T), default None
        True for a real token (left or right padding; an int mask is refused); every row
        holds at least one.  Give `lengths` or `attention_mask`, not both; neither means
        every token is real.

    Returns
    -------
    rewards : ndarray, shape (B,)
        One scalar per sequence.
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The trunk's cache (which holds the caller's parameters by reference: do not change them
    in place before the backward), the positions read, the hidden states read (a new
    array) and a copy of the head's `W`.

    Raises
    ------
    TypeError
        If `ids`, `lengths` or `attention_mask` has the wrong type or dtype, `params` is
        not a dict or `config` not a GPTConfig.
    ValueError
        If an id or length is out of range, a shape is wrong, both `lengths` and
        `attention_mask` are given, a mask row has no real token or `params` does not
        match `config`.
    """
    where = "reward_model.forward"
    gpt._check_config(where, config)
    if lengths is not None and attention_mask is not None:
        raise ValueError(f"{where}: give 'lengths' (right padding) or 'attention_mask', not both")
    positions = gpt._check_inputs(where, ids, config, attention_mask)
    B, T = ids.shape
    if lengths is not None:
        _checks.int_array(where, "lengths", lengths, 1, T + 1)
        _checks.same_shape(where, "lengths", lengths, (B,))
        last = lengths - 1
    elif attention_mask is not None:
        if not attention_mask.any(axis=1).all():
            raise ValueError(f"{where}: argument 'attention_mask' has a row without any real "
                             f"token")
        last = T - 1 - np.argmax(attention_mask[:, ::-1], axis=1)     # last True of each row
    else:
        last = np.full(B, T - 1)
    trunk, head = _check_params(where, params, config)
    h, trunk_c = gpt._hidden_forward(ids, trunk, _trunk_config(config), attention_mask,
                                     positions)
    h_last = h[np.arange(B), last]                                         # (B, C)
    rewards = (h_last @ head["W"])[:, 0] + head["b"][0]
    return rewards, _checks.guard(where, (trunk_c, h.shape, last, h_last, head["W"].copy()),
                                  ids=ids, params=params, lengths=lengths,
                                  attention_mask=attention_mask)


@contract(example=lambda rng: {"drewards": rng.standard_normal(2),
                               "cache": forward(**_forward_example(rng))[1]})
def backward(drewards: np.ndarray, cache) -> dict:
    r"""Gradients of every reward-model parameter.

    $$ \frac{\partial L}{\partial w} = \sum_b \frac{\partial L}{\partial r_b}\,
       h_{b,\ell_b-1}, \qquad \frac{\partial L}{\partial c} =
       \sum_b \frac{\partial L}{\partial r_b}, \qquad
       \frac{\partial L}{\partial h_{b,\ell_b-1}} = \frac{\partial L}{\partial r_b}\, w $$

    and the trunk's backward from there.

    Parameters
    ----------
    drewards : ndarray, shape (B,), floating
        Upstream gradient of the rewards.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        A tree shaped like the reward model's parameters (no `lm_head`).

    Raises
    ------
    TypeError
        If `drewards` is not a floating-point NumPy array or `cache` is not a cache of
        `forward`.
    ValueError
        If `drewards` has the wrong shape or holds NaN or inf.
    """
    where = "reward_model.backward"
    trunk_c, h_shape, last, h_last, W = _checks.unguard(where, cache, 5)
    drewards = _checks.dout_like(where, drewards, (h_shape[0],), name="drewards")
    dh = np.zeros(h_shape, dtype=np.result_type(h_last, drewards))
    dh[np.arange(h_shape[0]), last] = drewards[:, None] * W[:, 0]
    grads = gpt.hidden_backward(dh, trunk_c)
    grads["reward_head"] = {"W": h_last.T @ drewards[:, None], "b": np.array([drewards.sum()])}
    return grads


def _from_gpt_example(rng):
    return {"params": gpt.init(_CONFIG, rng), "config": _CONFIG, "rng": rng}


@contract(example=_from_gpt_example, opaque=("params",))
def init_from_gpt(params: dict, config: GPTConfig, rng: np.random.Generator) -> dict:
    r"""A reward model that starts from a language model: a copy of the GPT's trunk (its LM
    head dropped) and a new scalar head $w \sim N(0, 0.02^2)$, $c = 0$.

    InstructGPT initialises its reward model from the supervised fine-tuned model, so the
    features that model learned (here: which answer a question wants) are there from the
    start; only the head and a fine-tuning of the trunk are learned from the rankings.

    Parameters
    ----------
    params : dict
        The GPT's parameters (checked as `gpt.forward` checks them).
    config : GPTConfig
    rng : numpy.random.Generator
        Draws the head.

    Returns
    -------
    params : dict
        The reward model's parameters, new arrays.

    Raises
    ------
    TypeError
        If `config` is not a GPTConfig or `rng` not a Generator.
    ValueError
        If `params` does not match `config`.
    """
    where = "reward_model.init_from_gpt"
    gpt._check_config(where, config)
    _checks.generator(where, "rng", rng)
    gpt._check_params(params, config, where)
    out = map_tree(np.copy, {k: v for k, v in params.items() if k != "lm_head"})
    out["reward_head"] = _head(config, rng)
    return out
