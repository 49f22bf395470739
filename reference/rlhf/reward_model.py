r"""A reward model: the tiny GPT's trunk with a scalar head read at the last real token.

.. math::  r_b = h_{b,\,\ell_b - 1} \cdot w + c

where ``h`` (B, T, C) are the trunk's final hidden states and ``ell_b - 1`` is the index of
the last real token of sequence ``b``.  Parameters: the GPT's (its ``lm_head`` unused) plus
``"reward_head": {"W": (C, 1), "b": (1,)}``.
Trained with :mod:`reference.preference` on (chosen, rejected) pairs.

Padding, one of three ways:

- ``lengths`` (B,): sequence ``b`` is its first ``lengths[b]`` tokens, the rest is right
  padding, which a causal model cannot see from position ``lengths[b] - 1``;
- ``attention_mask`` (B, T) boolean, True for real tokens (left or right padding): the trunk
  hides the padding from attention and counts positions over real tokens only
  (:mod:`reference.gpt`), and the reward is read at each row's last real token;
- neither: every token is real, the reward is read at position ``T - 1``.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.transformer import gpt
from llmref.transformer.gpt import GPTConfig


def init(config: GPTConfig, rng: np.random.Generator) -> dict:
    params = gpt.init(config, rng)
    params.pop("lm_head", None)
    params["reward_head"] = {"W": rng.normal(0.0, 0.02, size=(config.d_model, 1)),
                             "b": np.zeros(1)}
    return params


def _trunk(params):
    return {k: v for k, v in params.items() if k not in ("reward_head", "lm_head")}


def forward(ids: np.ndarray, params: dict, config: GPTConfig, lengths: np.ndarray | None = None,
            attention_mask: np.ndarray | None = None):
    """``ids`` (B, T), ``lengths`` (B,) in [1, T] or ``attention_mask`` (B, T) bool ->
    rewards (B,), cache."""
    where = "reward_model.forward"
    gpt._check_ids(where, ids, config)
    B, T = ids.shape
    if lengths is not None and attention_mask is not None:
        raise ValueError(f"{where}: give 'lengths' (right padding) or 'attention_mask', not both")
    if lengths is not None:
        _checks.int_array(where, "lengths", lengths, 1, T + 1)
        _checks.same_shape(where, "lengths", lengths, (B,))
        last = lengths - 1
    elif attention_mask is not None:
        gpt._check_attention_mask(where, attention_mask, (B, T))
        if not attention_mask.any(axis=1).all():
            raise ValueError(f"{where}: argument 'attention_mask' has a row without any real "
                             f"token")
        last = T - 1 - np.argmax(attention_mask[:, ::-1], axis=1)     # last True of each row
    else:
        last = np.full(B, T - 1)
    if "reward_head" not in params:
        raise ValueError(f"{where}: argument 'params' is missing key(s) ['reward_head']")
    head = _checks.params(where, params["reward_head"], {"W": (config.d_model, 1), "b": (1,)},
                          name="params['reward_head']")
    trunk_config = GPTConfig(**{**config.__dict__, "tie_weights": True})
    h, trunk_c = gpt.hidden_forward(ids, _trunk(params), trunk_config, attention_mask)
    h_last = h[np.arange(B), last]                                         # (B, C)
    rewards = (h_last @ head["W"])[:, 0] + head["b"][0]
    return rewards, (trunk_c, h.shape, last, h_last, head["W"])


def backward(drewards: np.ndarray, cache) -> dict:
    """``drewards`` (B,) -> gradients of every parameter (``lm_head`` excluded)."""
    trunk_c, h_shape, last, h_last, W = cache
    drewards = _checks.dout_like("reward_model.backward", drewards, (h_shape[0],),
                                 name="drewards")
    dh = np.zeros(h_shape, dtype=np.result_type(h_last, drewards))
    dh[np.arange(h_shape[0]), last] = drewards[:, None] * W[:, 0]
    grads = gpt.hidden_backward(dh, trunk_c)
    grads["reward_head"] = {"W": h_last.T @ drewards[:, None], "b": np.array([drewards.sum()])}
    return grads
