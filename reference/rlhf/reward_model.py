r"""A reward model: the tiny GPT's trunk with a scalar head read at the last real token.

.. math::  r_b = h_{b,\,\ell_b - 1} \cdot w + c

where ``h`` (B, T, C) are the trunk's final hidden states and ``ell_b`` is the length of
sequence ``b`` (the rest is right padding, which a causal model cannot see from position
``ell_b - 1``).  Parameters: the GPT's (its ``lm_head`` unused) plus
``"reward_head": {"W": (C, 1), "b": (1,)}``.
Trained with :mod:`reference.preference` on (chosen, rejected) pairs.
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


def forward(ids: np.ndarray, params: dict, config: GPTConfig, lengths: np.ndarray):
    """``ids`` (B, T), ``lengths`` (B,) in [1, T] -> rewards (B,), cache."""
    _checks.int_array("reward_model.forward", "lengths", lengths, 1, ids.shape[-1] + 1)
    _checks.same_shape("reward_model.forward", "lengths", lengths, ids.shape[:1])
    trunk_config = GPTConfig(**{**config.__dict__, "tie_weights": True})
    h, trunk_c = gpt.hidden_forward(ids, _trunk(params), trunk_config)
    last = h[np.arange(ids.shape[0]), lengths - 1]                       # (B, C)
    head = params["reward_head"]
    rewards = (last @ head["W"])[:, 0] + head["b"][0]
    return rewards, (trunk_c, h.shape, lengths, last, head["W"])


def backward(drewards: np.ndarray, cache) -> dict:
    """``drewards`` (B,) -> gradients of every parameter (``lm_head`` excluded)."""
    trunk_c, h_shape, lengths, last, W = cache
    drewards = _checks.dout_like("reward_model.backward", drewards, (h_shape[0],),
                                 name="drewards")
    dh = np.zeros(h_shape, dtype=np.result_type(last, drewards))
    dh[np.arange(h_shape[0]), lengths - 1] = drewards[:, None] * W[:, 0]
    grads = gpt.hidden_backward(dh, trunk_c)
    grads["reward_head"] = {"W": last.T @ drewards[:, None], "b": np.array([drewards.sum()])}
    return grads
