r"""Text generation with the GPT: greedy decoding, temperature, top-k and top-p sampling,
a repetition penalty, stop tokens, batches of prompts of unequal length, and a KV cache.

At each step the model sees the last ``context_len`` tokens and gives logits ``z`` for the
next one.  Greedy decoding takes ``argmax z``.  Sampling draws from

$$ p_i \propto \exp(z_i / \tau) \quad \text{for } i \text{ among the } k
   \text{ largest logits}, \qquad p_i = 0 \text{ otherwise} $$

A temperature ``tau < 1`` sharpens the distribution (as ``tau -> 0`` it puts all its mass on
the argmax); ``tau > 1`` flattens it.  The generator is seeded, so the same seed gives the
same text.

The rest can be skipped on a first reading.

- Top-p (nucleus) sampling keeps the smallest set of most likely tokens whose probabilities
  add up to at least ``p``, and renormalises (applied after top-k).
- The repetition penalty (CTRL, Keskar et al. 2019) divides the positive logits of every
  token already in the row (prompt included) by ``r`` and multiplies the negative ones by
  ``r`` before anything else; ``r = 1`` turns it off.
- Stop tokens end a row (the stop token is kept); once every row has stopped, generation
  ends early.  The rows of a 2-D result are then padded with ``pad_id`` after their stop.
- Prompts of unequal length are left-padded, with an attention mask that hides the padding
  and positions that count real tokens only (see `llmref.gpt`), so each row is
  continued exactly as it would be alone.
- With ``use_cache=True`` (the default) the prompt is run once and each new token costs one
  position (`llmref.gpt.decode`); the tokens are the same as without the cache.
  Past the context length the window slides, which changes every position, so those steps
  rerun the whole window.
- Ties: top-k keeps exactly `k` tokens; among logits equal to the `k`-th largest it keeps the
  lowest token ids.  Top-p, at a tie on the nucleus' boundary, keeps the lowest ids among
  equal probabilities.  Greedy decoding takes the lowest id among tied maxima (`np.argmax`).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.transformer import gpt


@contract(example=lambda rng: {"logits": rng.standard_normal((2, 7)), "temperature": 0.7,
                               "top_k": 5, "top_p": 0.9},
          lenient={"top_k": ("none",), "top_p": ("none",)})
def next_token_probs(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> np.ndarray:
    r"""Sampling probabilities with temperature, top-k and top-p (nucleus) filtering.

    $$ p_i \propto \exp\big((z_i - \max_j z_j) / \tau\big) \quad \text{for } i
       \text{ among the top } k \text{ and in the nucleus} $$

    The maximum is subtracted before dividing by the temperature, so a tiny temperature
    gives (nearly) greedy probabilities, never NaN.

    Parameters
    ----------
    logits : ndarray, shape (B, V), floating
        Next-token logits.
    temperature : float, default 1.0
        Temperature (> 0, finite).
    top_k : int, default None
        Keep the k likeliest tokens (1 <= k <= V).
    top_p : float, default None
        Keep the smallest set of likeliest tokens whose mass reaches p (0 < p <= 1).

    Returns
    -------
    p : ndarray, shape (B, V)
        Probabilities, each row summing to 1, exactly 0 outside the top k and the nucleus.

    Raises
    ------
    TypeError
        If `logits` is not a floating-point array or a number has the wrong type.
    ValueError
        If `logits` is not (B, V), empty or not finite, or a number is out of range.
    """
    where = "generate.next_token_probs"
    _checks.float_array(where, "logits", logits, ndim=2)
    V = logits.shape[-1]
    _check_sampling(where, V, temperature, top_k, top_p)
    return _next_token_probs(logits, temperature, top_k, top_p)


def _check_sampling(where, V, temperature, top_k, top_p) -> None:
    _checks.positive(where, "temperature", temperature)
    if top_k is not None:
        _checks.positive(where, "top_k", top_k, integer=True)
        if top_k > V:
            raise ValueError(f"{where}: argument 'top_k' must be <= the vocabulary size {V}, "
                             f"got {top_k}")
    if top_p is not None:
        _checks.positive(where, "top_p", top_p)
        if top_p > 1:
            raise ValueError(f"{where}: argument 'top_p' must be in (0, 1], got {top_p!r}")


def _draw(weights, rng):
    """One index per row of `weights` (B, V), non-negative with a positive total, drawn with
    probability weight / total: the first index whose cumulative weight exceeds a uniform
    draw scaled to the row's total.  The scaled draw lies in [0, total), so an index of
    weight 0 (its cumulative weight equal to the one before) is never drawn, a draw of 0
    included, and none lies past the last."""
    cdf = np.cumsum(weights, axis=-1)
    u = rng.random((len(weights), 1)) * cdf[:, -1:]
    return (cdf <= u).sum(axis=-1)


def _next_token_probs(logits, temperature, top_k, top_p):
    # subtract the row maximum first: (z - max) / tau <= 0 cannot overflow to inf, so a
    # tiny temperature gives exp(0) = 1 at the maximum and 0 elsewhere, never inf / inf
    with np.errstate(over="ignore"):                  # a large gap / tiny tau -> -inf: fine
        z = (logits - logits.max(axis=-1, keepdims=True)) / temperature
    if top_k is not None:
        keep = np.argsort(-z, axis=-1, kind="stable")[:, :top_k]      # exactly k per row
        masked = np.full_like(z, -np.inf)
        np.put_along_axis(masked, keep, np.take_along_axis(z, keep, axis=-1), axis=-1)
        z = masked
    e = np.exp(z - z.max(axis=-1, keepdims=True))                     # exp(-inf) = 0
    p = e / e.sum(axis=-1, keepdims=True)
    if top_p is not None:
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=-1)
        before = np.cumsum(sorted_p, axis=-1) - sorted_p              # mass of the likelier ones
        drop = np.zeros_like(p, dtype=bool)
        np.put_along_axis(drop, order, before >= top_p, axis=-1)      # the first always stays
        p = np.where(drop, 0.0, p)
        p /= p.sum(axis=-1, keepdims=True)
    return p


@contract(example=lambda rng: {"logits": rng.standard_normal((2, 7)),
                               "ids": rng.integers(0, 7, size=(2, 4)),
                               "mask": rng.random((2, 4)) < 0.8, "penalty": 1.3})
def penalize_repeats(logits: np.ndarray, ids: np.ndarray, mask: np.ndarray,
                     penalty: float) -> np.ndarray:
    r"""The repetition penalty: logits of the tokens already in each row, pushed down.

    $$ z'_i = z_i / r \ \text{if } z_i > 0, \quad z_i\, r \ \text{otherwise},
       \quad \text{for every token } i \text{ seen in the row} $$

    Parameters
    ----------
    logits : ndarray, shape (B, V), floating
        Next-token logits (not modified).
    ids : ndarray of int, shape (B, T)
        Tokens so far, in [0, V).
    mask : ndarray of bool, shape (B, T)
        True for a real token of `ids` (padding does not count).
    penalty : float
        `r` (> 0, finite); 1 changes nothing.

    Returns
    -------
    logits : ndarray, shape (B, V)
        A new array.

    Raises
    ------
    TypeError
        If an argument has the wrong type or dtype.
    ValueError
        If a shape or value is invalid.
    """
    where = "generate.penalize_repeats"
    _checks.float_array(where, "logits", logits, ndim=2)
    B, V = logits.shape
    _checks.int_array(where, "ids", ids, 0, V)
    if ids.ndim != 2 or ids.shape[0] != B:
        raise ValueError(f"{where}: argument 'ids' must have shape (B, T) with B = {B}, got "
                         f"shape {ids.shape}")
    gpt._check_attention_mask(where, mask, ids.shape, "mask")
    _checks.positive(where, "penalty", penalty)               # finite and > 0
    return _penalize_repeats(logits, ids, mask, penalty, where, "penalty")


def _penalize_repeats(logits, ids, mask, penalty, where, name):
    """The penalty applied; a penalty so large that a logit overflows is the caller's
    argument ``name`` (a ``ValueError``), never a silent -inf."""
    with np.errstate(over="ignore"):
        out = _penalized(logits, ids, mask, penalty)
    _checks.finite_result(where, "the penalized logits", out, f"argument {name!r} = {penalty!r}")
    return out


def _penalized(logits, ids, mask, penalty):
    B, V = logits.shape
    seen = np.zeros((B, V), dtype=bool)
    rows = np.broadcast_to(np.arange(B)[:, None], ids.shape)
    seen[rows[mask], ids[mask]] = True
    return np.where(seen, np.where(logits > 0, logits / penalty, logits * penalty), logits)


def _generate_example(rng):
    config = gpt._example_config()
    return {"params": gpt.init(config, rng), "config": config,
            "prompt": rng.integers(0, 11, (2, 3)), "max_new_tokens": 2, "greedy": False,
            "temperature": 0.8, "top_k": 5, "top_p": 0.9, "repetition_penalty": 1.2,
            "stop_tokens": [3], "attention_mask": np.array([[False, True, True]] + [[True] * 3]),
            "pad_id": 1, "seed": 3, "use_cache": True}


@contract(example=_generate_example,
          lenient={"prompt": ("list",), "max_new_tokens": ("zero",), "top_k": ("none",),
                   "top_p": ("none",), "stop_tokens": ("none", "empty"),
                   "attention_mask": ("none",), "pad_id": ("zero",), "seed": ("zero", "none")})
def generate(params: dict, config: gpt.GPTConfig, prompt, max_new_tokens: int, *,
             greedy: bool = False, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, repetition_penalty: float = 1.0,
             stop_tokens=None, attention_mask: np.ndarray | None = None, pad_id: int = 0,
             seed: int | None = 0, use_cache: bool = True):
    """Continue ``prompt`` by up to ``max_new_tokens`` tokens.

    ``prompt``: (T0,) ids -> 1-D result; (B, T0) ids (left-padded, with a boolean
    ``attention_mask`` where rows have padding) -> (B, T0 + n) array; or a list of 1-D id
    sequences of any lengths -> a list of 1-D arrays, each its prompt and its new tokens.
    ``stop_tokens``: an id or a sequence of ids.  ``n <= max_new_tokens`` is the number of
    steps run (fewer when every row has stopped).

    Parameters
    ----------
    params : dict
        The GPT's parameters.
    config : GPTConfig
        Its configuration.
    prompt : ndarray of int, shape (T0,) or (B, T0), or list of 1-D id sequences
        The prompt(s).
    max_new_tokens : int
        Most tokens to add (>= 0).
    greedy : bool, default False
        Take the likeliest token instead of sampling.
    temperature : float, default 1.0
        Sampling temperature, as in `next_token_probs`.
    top_k : int, default None
        Keep the k most probable tokens, as in `next_token_probs`.
    top_p : float, default None
        Nucleus sampling, as in `next_token_probs`.
    repetition_penalty : float, default 1.0
        > 0; 1 leaves the logits alone (see `penalize_repeats`).
    stop_tokens : int or sequence of int, default None
        Ids that end a row.
    attention_mask : ndarray of bool, shape (B, T0), default None
        True for a real token (left padding only).
    pad_id : int, default 0
        Id written after a row stops, in [0, V).
    seed : int, default 0
        Seed of the sampler (>= 0).
    use_cache : bool, default True
        Decode with a KV cache.

    Returns
    -------
    ids : ndarray or list of ndarray
        The prompt(s) followed by the new tokens, in the prompt's form.

    Raises
    ------
    TypeError
        If an argument has the wrong type or dtype.
    ValueError
        If an id, a size or a sampling option is out of range or the mask is invalid.
    """
    where = "generate.generate"
    if not isinstance(config, gpt.GPTConfig):
        raise TypeError(f"{where}: argument 'config' must be a GPTConfig, got "
                        f"{type(config).__name__}")
    V = config.vocab_size
    ids, mask, form = _prompt_batch(where, prompt, attention_mask, pad_id, V)
    _check_count(where, "max_new_tokens", max_new_tokens)
    for name, flag in (("greedy", greedy), ("use_cache", use_cache)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{where}: argument '{name}' must be a bool, got {flag!r}")
    _check_sampling(where, V, temperature, top_k, top_p)
    _checks.positive(where, "repetition_penalty", repetition_penalty)
    stops = _stop_ids(where, stop_tokens, V)
    if seed is not None:
        _check_count(where, "seed", seed)
    gpt._check_params(params, config, where)            # once, not at every step

    rng = np.random.default_rng(seed)
    done = np.zeros(len(ids), dtype=bool)
    kv_cache = None
    P = config.context_len
    for _ in range(max_new_tokens):
        L = ids.shape[1]
        if use_cache and L <= P:
            if kv_cache is None:                        # prefill: the whole prompt at once
                logits, kv_cache = gpt._decode(ids, params, config, None, mask)
            else:                                       # one new position per row
                logits, kv_cache = gpt._decode(ids[:, -1:], params, config, kv_cache,
                                               mask[:, -1:])
        else:                                           # the last P tokens, recomputed
            window = mask[:, -P:]
            logits, _ = gpt._forward(ids[:, -P:], params, config, window,
                                     gpt._positions_from_mask(window))
        z = logits[:, -1]
        if repetition_penalty != 1.0:
            z = _penalize_repeats(z, ids, mask, repetition_penalty, where,
                                  "repetition_penalty")
        if greedy:
            nxt = z.argmax(axis=-1)
        else:
            nxt = _draw(_next_token_probs(z, temperature, top_k, top_p), rng)
        nxt = np.where(done, pad_id, nxt).astype(ids.dtype)
        ids = np.concatenate([ids, nxt[:, None]], axis=1)
        mask = np.concatenate([mask, ~done[:, None]], axis=1)
        done |= np.isin(nxt, stops) & mask[:, -1]
        if done.all():
            break
    if form == "list":
        return [row[keep] for row, keep in zip(ids, mask, strict=True)]
    return ids[0] if form == "1-D" else ids


def _check_count(where: str, name: str, value) -> None:
    """An int >= 0 (NumPy integers too, bools not) that fits in int64."""
    _checks.integer(where, name, value, low=0)


def _stop_ids(where: str, stop_tokens, V: int) -> np.ndarray:
    if stop_tokens is None:
        return np.zeros(0, dtype=np.int64)
    stops = np.atleast_1d(np.asarray(stop_tokens))
    if stops.size == 0:
        return np.zeros(0, dtype=np.int64)
    if stops.ndim != 1 or not np.issubdtype(stops.dtype, np.integer):
        raise TypeError(f"{where}: argument 'stop_tokens' must be an int or a sequence of ints, "
                        f"got {stop_tokens!r}")
    return _checks.int_array(where, "stop_tokens", stops, 0, V)


def _prompt_batch(where: str, prompt, attention_mask, pad_id, V: int):
    """``(ids (B, T0), mask (B, T0) bool, form)`` with ``form`` "1-D", "2-D" or "list"."""
    _check_count(where, "pad_id", pad_id)
    if pad_id >= V:
        raise ValueError(f"{where}: argument 'pad_id' must be in [0, {V}), got {pad_id}")
    if isinstance(prompt, (list, tuple)):
        if attention_mask is not None:
            raise ValueError(f"{where}: argument 'attention_mask' goes with a padded (B, T0) "
                             f"prompt, not with a list of prompts (they are padded here)")
        if not prompt:
            raise ValueError(f"{where}: argument 'prompt' must not be an empty list")
        rows = [np.asarray(p) for p in prompt]
        for i, row in enumerate(rows):
            if row.ndim != 1:
                raise ValueError(f"{where}: argument prompt[{i}] must be a 1-D sequence of "
                                 f"ids (a list holds one prompt per row; pass a single prompt "
                                 f"as a NumPy array), got shape {row.shape}")
            if row.size == 0:
                raise ValueError(f"{where}: argument prompt[{i}] must not be empty")
            _checks.int_array(where, f"prompt[{i}]", row, 0, V)
        T0 = max(len(r) for r in rows)
        ids = np.full((len(rows), T0), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), T0), dtype=bool)
        for i, row in enumerate(rows):                  # left padding
            ids[i, T0 - len(row):] = row
            mask[i, T0 - len(row):] = True
        return ids, mask, "list"
    if not isinstance(prompt, np.ndarray):
        raise TypeError(f"{where}: argument 'prompt' must be a NumPy integer array or a list "
                        f"of 1-D id sequences, got {type(prompt).__name__}")
    if prompt.ndim not in (1, 2):
        raise ValueError(f"{where}: argument 'prompt' must have shape (T0,) or (B, T0), got "
                         f"{prompt.shape}")
    ids = prompt[None] if prompt.ndim == 1 else prompt
    _checks.int_array(where, "prompt", ids, 0, V)
    if attention_mask is None:
        mask = np.ones(ids.shape, dtype=bool)
    else:
        if prompt.ndim == 1:
            raise ValueError(f"{where}: argument 'attention_mask' goes with a (B, T0) prompt; "
                             f"a single prompt has no padding")
        mask = gpt._check_attention_mask(where, attention_mask, ids.shape)
        if not mask.any(axis=1).all():
            raise ValueError(f"{where}: argument 'attention_mask' has a row without any real "
                             f"token")
        if np.any(mask[:, :-1] & ~mask[:, 1:]):
            raise ValueError(f"{where}: argument 'attention_mask' must describe left padding "
                             f"(in each row, no padding after a real token): new tokens are "
                             f"appended on the right")
    return ids, mask, "1-D" if prompt.ndim == 1 else "2-D"
