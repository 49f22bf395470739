"""Parameter trees for the composite components, made here (not by the implementation under
test) so that a learner's ``init`` is never needed and never trusted.

``random_*`` fill every leaf with random values: the zeros and ones of a fresh
initialisation would hide bugs (a missing bias gradient, a gamma never multiplied in).
``gpt2_*`` follow GPT-2's initialisation, for tests about what happens at the start of
training.
"""

from __future__ import annotations

import numpy as np


def random_linear(d_in: int, d_out: int, rng, scale: float = 0.5) -> dict:
    return {"W": rng.standard_normal((d_in, d_out)) * scale, "b": rng.standard_normal(d_out)}


def random_norm(C: int, rng) -> dict:
    return {"gamma": 1 + 0.3 * rng.standard_normal(C), "beta": rng.standard_normal(C)}


def random_mha(C: int, rng) -> dict:
    return {"qkv": random_linear(C, 3 * C, rng), "proj": random_linear(C, C, rng)}


def random_ffn(C: int, d_ff: int, rng, scale: float = 0.5) -> dict:
    return {"fc": random_linear(C, d_ff, rng, scale), "proj": random_linear(d_ff, C, rng, scale)}


def random_block(C: int, d_ff: int, rng) -> dict:
    return {"ln1": random_norm(C, rng), "attn": random_mha(C, rng),
            "ln2": random_norm(C, rng), "ffn": random_ffn(C, d_ff, rng)}


def random_gpt(config, rng) -> dict:
    C = config.d_model
    params = {"wte": {"W": rng.standard_normal((config.vocab_size, C)) * 0.5},
              "wpe": {"W": rng.standard_normal((config.context_len, C)) * 0.5},
              "blocks": [random_block(C, config.hidden, rng) for _ in range(config.n_layers)],
              "ln_f": random_norm(C, rng)}
    if not config.tie_weights:
        params["lm_head"] = {"W": rng.standard_normal((C, config.vocab_size)) * 0.5}
    return params


def gpt2_block(C: int, d_ff: int, rng, std: float = 0.02) -> dict:
    """GPT-2's initialisation: weights N(0, std^2), zero biases, unit gains."""
    def linear(d_in, d_out):
        return {"W": rng.normal(0.0, std, (d_in, d_out)), "b": np.zeros(d_out)}
    norm = {"gamma": np.ones(C), "beta": np.zeros(C)}
    return {"ln1": dict(norm), "attn": {"qkv": linear(C, 3 * C), "proj": linear(C, C)},
            "ln2": dict(norm), "ffn": {"fc": linear(C, d_ff), "proj": linear(d_ff, C)}}


def gpt2_like_reward_model(config, rng, std: float = 0.02) -> dict:
    """A GPT trunk at GPT-2 initialisation with a scalar reward head near zero."""
    C = config.d_model
    return {"wte": {"W": rng.normal(0.0, std, (config.vocab_size, C))},
            "wpe": {"W": rng.normal(0.0, std, (config.context_len, C))},
            "blocks": [gpt2_block(C, config.hidden, rng, std) for _ in range(config.n_layers)],
            "ln_f": {"gamma": np.ones(C), "beta": np.zeros(C)},
            "reward_head": {"W": rng.normal(0.0, std, (C, 1)), "b": np.zeros(1)}}
