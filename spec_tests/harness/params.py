"""Parameter trees for the composite components, made here (not by the implementation under
test) so that a learner's ``init`` is never needed and never trusted.

``random_*`` fill every leaf with random values: the zeros and ones of a fresh
initialisation would hide bugs (a missing bias gradient, a gamma never multiplied in).
``gpt2_*`` follow GPT-2's initialisation, for tests about what happens at the start of
training.
"""

from __future__ import annotations

import numpy as np


def random_linear(d_in: int, d_out: int, rng, scale: float = 0.5, bias: bool = True) -> dict:
    p = {"W": rng.standard_normal((d_in, d_out)) * scale}
    if bias:
        p["b"] = rng.standard_normal(d_out)
    return p


def random_norm(C: int, rng, kind: str = "layer", bias: bool = True) -> dict:
    p = {"gamma": 1 + 0.3 * rng.standard_normal(C)}
    if kind == "layer" and bias:
        p["beta"] = rng.standard_normal(C)
    return p


def random_mha(C: int, rng, n_heads: int = 1, n_kv_heads: int | None = None,
               fused: bool = True, bias: bool = True) -> dict:
    """Fused ``qkv`` (C, (H + 2 H_kv) D) or separate ``q``, ``k``, ``v``; D = C / H."""
    D = C // n_heads
    n_kv = n_heads if n_kv_heads is None else n_kv_heads
    if fused:
        qkv = {"qkv": random_linear(C, (n_heads + 2 * n_kv) * D, rng, bias=bias)}
    else:
        qkv = {"q": random_linear(C, n_heads * D, rng, bias=bias),
               "k": random_linear(C, n_kv * D, rng, bias=bias),
               "v": random_linear(C, n_kv * D, rng, bias=bias)}
    return {**qkv, "proj": random_linear(C, C, rng, bias=bias)}


def random_ffn(C: int, d_ff: int, rng, scale: float = 0.5, bias: bool = True) -> dict:
    return {"fc": random_linear(C, d_ff, rng, scale, bias),
            "proj": random_linear(d_ff, C, rng, scale, bias)}


def random_swiglu(C: int, d_ff: int, rng, scale: float = 0.5, bias: bool = False) -> dict:
    return {"gate": random_linear(C, d_ff, rng, scale, bias),
            "up": random_linear(C, d_ff, rng, scale, bias),
            "down": random_linear(d_ff, C, rng, scale, bias)}


def random_block(C: int, d_ff: int, rng, config=None) -> dict:
    """A GPT-2 block, or one with the options of ``config`` (a GPTConfig)."""
    if config is None:
        return {"ln1": random_norm(C, rng), "attn": random_mha(C, rng),
                "ln2": random_norm(C, rng), "ffn": random_ffn(C, d_ff, rng)}
    kind, bias = config.norm, config.bias
    ffn = random_swiglu(C, d_ff, rng, bias=bias) if config.activation == "swiglu" else \
        random_ffn(C, d_ff, rng, bias=bias)
    return {"ln1": random_norm(C, rng, kind, bias),
            "attn": random_mha(C, rng, config.n_heads, config.kv_heads, config.fused_qkv, bias),
            "ln2": random_norm(C, rng, kind, bias), "ffn": ffn}


def random_gpt(config, rng) -> dict:
    """Every leaf random, with the layout ``config``'s options call for."""
    C = config.d_model
    params = {"wte": {"W": rng.standard_normal((config.vocab_size, C)) * 0.5}}
    if config.position == "learned":
        params["wpe"] = {"W": rng.standard_normal((config.context_len, C)) * 0.5}
    params["blocks"] = [random_block(C, config.hidden, rng, config)
                        for _ in range(config.n_layers)]
    params["ln_f"] = random_norm(C, rng, config.norm, config.bias)
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
