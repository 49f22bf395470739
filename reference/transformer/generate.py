r"""Text generation with the tiny GPT: greedy decoding, temperature and top-k sampling.

At each step the model sees the last ``context_len`` tokens and gives logits ``z`` for the
next one.  Greedy decoding takes ``argmax z``.  Sampling draws from

.. math::  p_i \propto \exp(z_i / \tau) \quad \text{for } i \text{ among the } k
           \text{ largest logits}, \qquad p_i = 0 \text{ otherwise}

A temperature ``tau < 1`` sharpens the distribution (as ``tau -> 0`` it puts all its mass on
the argmax); ``tau > 1`` flattens it.  The generator is seeded, so the same seed gives the
same text.

Ties: top-k keeps exactly ``k`` tokens; among logits equal to the ``k``-th largest it keeps the
lowest token ids.  Greedy decoding takes the lowest id among tied maxima (``np.argmax``).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.transformer import gpt


def next_token_probs(logits: np.ndarray, temperature: float = 1.0,
                     top_k: int | None = None) -> np.ndarray:
    """``logits`` (B, V) -> sampling probabilities (B, V), exactly 0 outside the top k."""
    _checks.float_array("generate.next_token_probs", "logits", logits, ndim=2)
    _checks.positive("generate.next_token_probs", "temperature", temperature)
    V = logits.shape[-1]
    z = logits / temperature
    if top_k is not None:
        _checks.positive("generate.next_token_probs", "top_k", top_k, integer=True)
        if top_k > V:
            raise ValueError(f"generate.next_token_probs: argument 'top_k' must be <= the "
                             f"vocabulary size {V}, got {top_k}")
        keep = np.argsort(-z, axis=-1, kind="stable")[:, :top_k]      # exactly k per row
        masked = np.full_like(z, -np.inf)
        np.put_along_axis(masked, keep, np.take_along_axis(z, keep, axis=-1), axis=-1)
        z = masked
    e = np.exp(z - z.max(axis=-1, keepdims=True))                     # exp(-inf) = 0
    return e / e.sum(axis=-1, keepdims=True)


def generate(params: dict, config: gpt.GPTConfig, prompt: np.ndarray, max_new_tokens: int, *,
             greedy: bool = False, temperature: float = 1.0, top_k: int | None = None,
             seed: int | None = 0) -> np.ndarray:
    """``prompt`` (B, T0) or (T0,) ids -> (B, T0 + max_new_tokens) ids (1-D in, 1-D out)."""
    prompt = np.asarray(prompt)
    single = prompt.ndim == 1
    ids = prompt[None] if single else prompt
    _checks.int_array("generate.generate", "prompt", ids, 0, config.vocab_size)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) \
            or max_new_tokens < 0:
        raise ValueError(f"generate.generate: argument 'max_new_tokens' must be an int >= 0, "
                         f"got {max_new_tokens!r}")
    rng = np.random.default_rng(seed)
    for _ in range(max_new_tokens):
        logits = gpt.forward(ids[:, -config.context_len:], params, config)[0][:, -1, :]
        if greedy:
            nxt = logits.argmax(axis=-1)
        else:
            probs = next_token_probs(logits, temperature, top_k)
            nxt = np.array([rng.choice(probs.shape[-1], p=row) for row in probs])
        ids = np.concatenate([ids, nxt[:, None].astype(ids.dtype)], axis=1)
    return ids[0] if single else ids


