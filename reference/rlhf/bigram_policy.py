r"""A tiny autoregressive policy for RLHF experiments: each token depends on the previous one.

$$ \pi(a_t \mid a_{t-1}) = \operatorname{softmax}(Z[a_{t-1}])_{a_t}, \qquad
   a_{-1} = \text{the prompt's last token} $$

Parameters: `{"Z": (V + 1, V)}`; row `V` is the begin-of-sequence token `BOS = V`, the usual
prompt (`np.array([V])`).  With one token per response it is a plain categorical
distribution over `V` responses (a bandit), small enough to enumerate.  Its logits are a row
lookup (:mod:`llmref.layers.embedding`), so their gradient is a scatter-add.

It is the RLHF loop's second, fast policy (:mod:`llmref.rlhf.rlhf_loop`), with a critic to
match: a value table indexed by (response position, previous token),
`{"table": (L, V + 1)}`.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import embedding
from llmref.rlhf import rlhf_loop
from llmref.transformer import generate


def _vocab(params, where) -> int:
    _checks.keys(where, params, ("Z",))
    Z = _checks.float_array(where, "params['Z']", params["Z"], ndim=2)
    if Z.shape[0] != Z.shape[1] + 1:
        raise ValueError(f"{where}: argument params['Z'] must have shape (V + 1, V), got "
                         f"shape {Z.shape}")
    return Z.shape[1]


@contract(example=lambda rng: {"vocab_size": 4, "rng": rng, "std": 1.0})
def init(vocab_size: int, rng: np.random.Generator, std: float = 1.0) -> dict:
    r"""Random logits $Z \sim N(0, \text{std}^2)$.

    Parameters
    ----------
    vocab_size : int
        V, >= 1.
    rng : numpy.random.Generator
    std : float, default 1.0
        Standard deviation of the logits, > 0.

    Returns
    -------
    params : dict
        `{"Z": ndarray (V + 1, V)}`.

    Raises
    ------
    TypeError
        If `vocab_size` is not an int, `rng` not a Generator or `std` not a number.
    ValueError
        If `vocab_size` < 1 or `std` is not > 0 and finite.
    """
    where = "bigram_policy.init"
    vocab_size = int(_checks.positive(where, "vocab_size", vocab_size, integer=True))
    _checks.generator(where, "rng", rng)
    std = _checks.std(where, "std", std, strict=True)
    return {"Z": rng.normal(0.0, std, size=(vocab_size + 1, vocab_size))}


def _contexts(batch) -> np.ndarray:
    """The token each response token is conditioned on: the prompt's last, then the
    previous response token.  (B, L) -> (B, L)."""
    return np.concatenate([batch["prompts"][:, -1:], batch["responses"][:, :-1]], axis=1)


def _sample_example(rng):
    return {"params": init(4, rng), "prompts": [np.array([4]), np.array([2, 1])],
            "length": 3, "rng": rng}


@contract(example=_sample_example)
def sample(params: dict, prompts: list, length: int, rng: np.random.Generator) -> dict:
    r"""One response of `length` tokens per prompt, each token drawn from
    $\operatorname{softmax}(Z[a_{t-1}])$.

    Parameters
    ----------
    params : dict
        `{"Z": (V + 1, V)}`.
    prompts : list of ndarray of int
        1-D prompts with tokens in [0, V] (V is BOS); only the last token matters.
    length : int
        Tokens per response, >= 1.
    rng : numpy.random.Generator

    Returns
    -------
    batch : dict
        The batch layout of :mod:`llmref.rlhf.rlhf_loop`, every response token real;
        a token of probability 0 is never drawn, whatever the uniform draw.

    Raises
    ------
    TypeError
        If an argument has the wrong kind.
    ValueError
        If `params` is malformed, a prompt is empty or holds a token outside [0, V], or
        `length` < 1.
    """
    where = "bigram_policy.sample"
    V = _vocab(params, where)
    prompts = rlhf_loop._id_list(where, "prompts", prompts, V + 1)
    length = _checks.integer(where, "length", length, low=1)
    _checks.generator(where, "rng", rng)
    Z = params["Z"]
    tokens = np.zeros((len(prompts), length), dtype=np.int64)
    prev = np.array([p[-1] for p in prompts])
    for t in range(length):
        logits = Z[prev]
        tokens[:, t] = generate._draw(np.exp(logits - logits.max(axis=1, keepdims=True)), rng)
        prev = tokens[:, t]
    return rlhf_loop.batch(prompts, list(tokens))


def _logits_example(rng):
    params = init(4, rng)
    return {"params": params, "batch": sample(**_sample_example(rng))}


@contract(example=_logits_example)
def logits(params: dict, batch: dict):
    r"""The logits that chose each response token: $z_{b,t} = Z[a_{b,t-1}]$.

    Parameters
    ----------
    params : dict
        `{"Z": (V + 1, V)}`.
    batch : dict
        Prompts and responses (:func:`llmref.rlhf.rlhf_loop.batch`), tokens in [0, V].

    Returns
    -------
    z : ndarray, shape (B, L, V)
    cache : object
        What `logits_backward` needs (see Cache).

    Cache
    -----
    The embedding lookup's cache: the context ids (a new array) and the table's shape.

    Raises
    ------
    TypeError
        If `params` or `batch` has the wrong kind.
    ValueError
        If `params` or `batch` is malformed.
    """
    where = "bigram_policy.logits"
    V = _vocab(params, where)
    rlhf_loop._check_batch(where, batch, V + 1)
    if batch["responses"].max() >= V:
        raise ValueError(f"{where}: argument batch['responses'] must hold tokens in [0, {V})")
    return embedding.forward(_contexts(batch), {"W": params["Z"]})


@contract(example=lambda rng: {"dz": rng.standard_normal((2, 3, 4)),
                               "cache": logits(**_logits_example(rng))[1]})
def logits_backward(dz: np.ndarray, cache) -> dict:
    r"""Gradient of the table: each row `Z[c]` receives the sum of `dz` at every step whose
    context is `c`.

    $$ \frac{\partial L}{\partial Z_c} = \sum_{b,t:\ a_{b,t-1} = c} \frac{\partial L}
       {\partial z_{b,t}} $$

    Parameters
    ----------
    dz : ndarray, shape (B, L, V), floating
    cache : object
        The cache returned by `logits`.

    Returns
    -------
    grads : dict
        `{"Z": ndarray (V + 1, V)}`.

    Raises
    ------
    TypeError
        If `dz` is not a floating-point NumPy array.
    ValueError
        If `dz` has the wrong shape or is not finite.
    """
    cache = _checks.unguard("bigram_policy.logits_backward", cache, 3,
                            forward="bigram_policy.logits")
    try:
        return {"Z": embedding.backward(dz, cache)["W"]}
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"bigram_policy.logits_backward: argument 'dz': {exc}") from None


@contract(example=lambda rng: {"params": init(4, rng)})
def distribution(params: dict) -> np.ndarray:
    r"""The distribution of the first response token after BOS: $\operatorname{softmax}(Z_V)$.
    With one-token responses, the whole policy.

    Parameters
    ----------
    params : dict
        `{"Z": (V + 1, V)}`.

    Returns
    -------
    p : ndarray, shape (V,)

    Raises
    ------
    TypeError
        If `params` has the wrong kind.
    ValueError
        If `params` is malformed.
    """
    _vocab(params, "bigram_policy.distribution")
    z = params["Z"][-1]
    e = np.exp(z - z.max())
    return e / e.sum()


@contract(example=lambda rng: {"length": 3})
def policy(length: int) -> rlhf_loop.Policy:
    r"""The bigram policy as a :class:`llmref.rlhf.rlhf_loop.Policy` writing `length`-token
    responses.

    Parameters
    ----------
    length : int
        Tokens per response, >= 1.

    Returns
    -------
    policy : Policy

    Raises
    ------
    TypeError
        If `length` is not an int.
    ValueError
        If `length` < 1.
    """
    length = _checks.integer("bigram_policy.policy", "length", length, low=1)
    return rlhf_loop.Policy(sample=lambda params, prompts, rng: sample(params, prompts, length,
                                                                       rng),
                            logits=logits, logits_backward=logits_backward)


# ------------------------------------------------------------------ the matching critic

@contract(example=lambda rng: {"length": 3, "vocab_size": 4})
def critic_init(length: int, vocab_size: int) -> dict:
    r"""A zero value table, one value per (response position, previous token).

    Parameters
    ----------
    length : int
        Response length L, >= 1.
    vocab_size : int
        V, >= 1.

    Returns
    -------
    params : dict
        `{"table": zeros (L, V + 1)}`.

    Raises
    ------
    TypeError
        If an argument is not an int.
    ValueError
        If an argument is < 1.
    """
    length = _checks.integer("bigram_policy.critic_init", "length", length, low=1)
    vocab_size = _checks.integer("bigram_policy.critic_init", "vocab_size", vocab_size, low=1)
    return {"table": np.zeros((length, vocab_size + 1))}


def _values_example(rng):
    return {"params": critic_init(3, 4), "batch": sample(**_sample_example(rng))}


@contract(example=_values_example)
def values(params: dict, batch: dict):
    r"""The value of each response step: $V_{b,t} = \text{table}[t, a_{b,t-1}]$.

    Parameters
    ----------
    params : dict
        `{"table": (L, V + 1)}`, L at least the batch's response length.
    batch : dict
        Prompts and responses.

    Returns
    -------
    v : ndarray, shape (B, L)
    cache : object
        The indices read (new arrays) and the table's shape.

    Raises
    ------
    TypeError
        If `params` or `batch` has the wrong kind.
    ValueError
        If `params` or `batch` is malformed.
    """
    where = "bigram_policy.values"
    _checks.keys(where, params, ("table",))
    table = _checks.float_array(where, "params['table']", params["table"], ndim=2)
    rlhf_loop._check_batch(where, batch, table.shape[1])
    L = batch["responses"].shape[1]
    if L > table.shape[0]:
        raise ValueError(f"{where}: argument params['table'] has {table.shape[0]} positions, "
                         f"the batch's responses {L}")
    pos = np.broadcast_to(np.arange(L), batch["responses"].shape)
    ctx = _contexts(batch)
    return table[pos, ctx], (pos, ctx, table.shape)


@contract(example=lambda rng: {"dv": rng.standard_normal((2, 3)),
                               "cache": values(**_values_example(rng))[1]})
def values_backward(dv: np.ndarray, cache) -> dict:
    r"""Gradient of the value table: a scatter-add of `dv` into the cells read.

    Parameters
    ----------
    dv : ndarray, shape (B, L), floating
    cache : object
        The cache returned by `values`.

    Returns
    -------
    grads : dict
        `{"table": ndarray (L_table, V + 1)}`.

    Raises
    ------
    TypeError
        If `dv` is not a floating-point NumPy array.
    ValueError
        If `dv` has the wrong shape or is not finite.
    """
    pos, ctx, shape = _checks.unguard("bigram_policy.values_backward", cache, 3,
                                      forward="bigram_policy.values")
    dv = _checks.dout_like("bigram_policy.values_backward", dv, pos.shape, name="dv")
    grad = np.zeros(shape, dtype=dv.dtype)
    np.add.at(grad, (pos, ctx), dv)
    return {"table": grad}


@contract(example=lambda rng: {})
def critic() -> rlhf_loop.Critic:
    r"""The value table as a :class:`llmref.rlhf.rlhf_loop.Critic`.

    Returns
    -------
    critic : Critic
    """
    return rlhf_loop.Critic(values=values, values_backward=values_backward)
