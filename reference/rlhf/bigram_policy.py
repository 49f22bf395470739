r"""A tiny autoregressive policy for RLHF experiments: each token depends on the previous one.

.. math::  \pi(a_t \mid a_{t-1}) = \mathrm{softmax}(Z[a_{t-1}])_{a_t}, \qquad a_{-1} = \mathrm{BOS}

Parameters: ``{"Z": (V + 1, V)}``, row ``V`` being the begin-of-sequence context.  With one
token per response it is a plain categorical distribution over ``V`` responses (a bandit),
small enough to enumerate.  Built from :mod:`reference.embedding` (a row lookup) and
:mod:`reference.log_softmax`, so its gradient is theirs.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.layers import embedding, log_softmax


def init(vocab_size: int, rng: np.random.Generator, std: float = 1.0) -> dict:
    _checks.positive("bigram_policy.init", "vocab_size", vocab_size, integer=True)
    return {"Z": rng.normal(0.0, std, size=(vocab_size + 1, vocab_size))}


def contexts(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """The token each position is conditioned on: BOS (= ``vocab_size``), then the previous
    token.  (n, L) -> (n, L)."""
    bos = np.full((tokens.shape[0], 1), vocab_size)
    return np.concatenate([bos, tokens[:, :-1]], axis=1)


def sample(params: dict, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` responses of ``length`` tokens, (n, length) ints."""
    Z = params["Z"]
    V = Z.shape[1]
    tokens = np.zeros((n, length), dtype=np.int64)
    prev = np.full(n, V)
    for t in range(length):
        logits = Z[prev]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
        u = rng.random(n)[:, None]
        tokens[:, t] = np.minimum((cdf < u).sum(axis=1), V - 1)
        prev = tokens[:, t]
    return tokens


def logprobs(params: dict, tokens: np.ndarray):
    """``tokens`` (n, L) -> per-token ``log pi(a_t | a_{t-1})`` (n, L), cache."""
    V = params["Z"].shape[1]
    _checks.int_array("bigram_policy.logprobs", "tokens", tokens, 0, V)
    logits, emb_c = embedding.forward(contexts(tokens, V), {"W": params["Z"]})
    logp_all, ls_c = log_softmax.forward(logits)
    logp = np.take_along_axis(logp_all, tokens[..., None], axis=-1)[..., 0]
    return logp, (tokens, emb_c, ls_c, logp_all)


def logprobs_backward(dlogp: np.ndarray, cache) -> dict:
    """``dlogp`` (n, L) -> ``{"Z": (V + 1, V)}``."""
    tokens, emb_c, ls_c, logp_all = cache
    dlogp = _checks.dout_like("bigram_policy.logprobs_backward", dlogp, tokens.shape)
    d_all = np.zeros_like(logp_all)
    np.put_along_axis(d_all, tokens[..., None], dlogp[..., None], axis=-1)
    d_logits = log_softmax.backward(d_all, ls_c)["x"]
    return {"Z": embedding.backward(d_logits, emb_c)["W"]}


def distribution(params: dict) -> np.ndarray:
    """For one-token responses: the full distribution over the V responses."""
    z = params["Z"][-1]
    e = np.exp(z - z.max())
    return e / e.sum()
