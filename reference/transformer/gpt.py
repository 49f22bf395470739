r"""A tiny GPT: token and position embeddings, N transformer blocks, a final layer norm and
a language-model head, trained with next-token cross-entropy.

.. math::
    h_0 = W_{te}[\mathrm{ids}] + W_{pe}[0{:}T], \quad h_{l} = \mathrm{block}_l(h_{l-1}), \quad
    \mathrm{logits} = \mathrm{LN}_f(h_N)\, W_{head}

With ``tie_weights=True`` the head is the transposed token table, ``W_head = W_te^T`` (GPT-2),
so ``W_te`` receives two gradients, one from the lookup and one from the head, and they add.

Shapes: ``ids`` (B, T) ints -> ``logits`` (B, T, V).  Parameters::

    {"wte": {"W": (V, C)}, "wpe": {"W": (T_max, C)},
     "blocks": [block params, ...],           # n_layers of them
     "ln_f": {"gamma": (C,), "beta": (C,)},
     "lm_head": {"W": (C, V)}}                 # absent when the weights are tied
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmref import _checks
from llmref.layers import embedding, layer_norm, positional
from llmref.layers.ffn import activation_module
from llmref.losses import cross_entropy
from llmref.params import map_tree
from llmref.transformer import block, mha


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    context_len: int
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int | None = None              # None: 4 * d_model
    activation: str = "gelu_tanh"
    norm_first: bool = True
    tie_weights: bool = True
    eps: float = 1e-5
    residual: bool = True

    def __post_init__(self):
        for name in ("vocab_size", "context_len", "d_model", "n_heads", "n_layers"):
            _checks.positive("GPTConfig", name, getattr(self, name), integer=True)
        mha.check_heads("GPTConfig", self.d_model, self.n_heads)
        activation_module("GPTConfig", self.activation)

    @property
    def hidden(self) -> int:
        return 4 * self.d_model if self.d_ff is None else self.d_ff


def init(config: GPTConfig, rng: np.random.Generator, dtype=np.float64) -> dict:
    """GPT-2 style initialisation: N(0, 0.02^2) weights, residual projections scaled by
    1/sqrt(2 n_layers), zero biases, unit layer-norm gains."""
    C = config.d_model
    proj_std = 0.02 / np.sqrt(2 * config.n_layers)
    params = {
        "wte": embedding.init(config.vocab_size, C, rng),
        "wpe": positional.init(config.context_len, C, rng, std=0.01),
        "blocks": [block.init(C, config.n_heads, config.hidden, rng, proj_std=proj_std)
                   for _ in range(config.n_layers)],
        "ln_f": layer_norm.init(C),
    }
    if not config.tie_weights:
        params["lm_head"] = {"W": rng.normal(0.0, 0.02, size=(C, config.vocab_size))}
    return map_tree(lambda a: a.astype(dtype), params)


def head(params: dict, config: GPTConfig) -> np.ndarray:
    """The LM head (C, V): the transposed token table when tied, else ``lm_head.W``."""
    return params["wte"]["W"].T if config.tie_weights else params["lm_head"]["W"]


def embed_forward(ids: np.ndarray, params: dict, config: GPTConfig):
    """``ids`` (B, T) -> token plus position embeddings ``h_0`` (B, T, C), cache."""
    _checks.int_array("gpt.forward", "ids", ids, 0, config.vocab_size)
    if ids.ndim != 2:
        raise ValueError(f"gpt.forward: argument 'ids' must have shape (B, T), got {ids.shape}")
    T = ids.shape[1]
    if T > config.context_len:
        raise ValueError(f"gpt.forward: argument 'ids' has sequence length {T}, longer than "
                         f"the context length {config.context_len}")
    tok, tok_c = embedding.forward(ids, params["wte"])
    pos, pos_c = positional.forward(T, params["wpe"])
    return tok + pos, (tok_c, pos_c)


def embed_backward(dh: np.ndarray, cache) -> dict:
    """``dh`` (B, T, C) -> ``{"wte", "wpe"}``; the positions were broadcast over the batch."""
    tok_c, pos_c = cache
    return {"wte": embedding.backward(dh, tok_c),
            "wpe": positional.backward(dh.sum(axis=0), pos_c)}


def _block_forward(h, params, config):
    """One causal block with the configuration's options; unchecked (the callers check the
    whole parameter tree once with :func:`_check_params`)."""
    return block._forward(h, params, config.n_heads, config.norm_first, config.activation,
                          causal=True, eps=config.eps, residual=config.residual)


def _check_params(params, config: GPTConfig, where: str = "gpt.forward") -> dict:
    """Check the whole parameter tree against ``config``: keys, float dtypes, shapes and finite
    values, with messages that name the part (``params['blocks'][2]['attn']['qkv']['W']``).
    The forward pass runs this once instead of checking every layer's input on the way."""
    V, P, C = config.vocab_size, config.context_len, config.d_model
    own_head = () if config.tie_weights else ("lm_head",)        # tie_weights=False
    _checks.keys(where, params, ("wte", "wpe", "blocks", "ln_f") + own_head, "params")
    _checks.params(where, params["wte"], {"W": (V, C)}, name="params['wte']")
    _checks.params(where, params["wpe"], {"W": (P, C)}, name="params['wpe']")
    blocks = params["blocks"]
    if not isinstance(blocks, (list, tuple)) or len(blocks) != config.n_layers:
        got = len(blocks) if isinstance(blocks, (list, tuple)) else type(blocks).__name__
        raise ValueError(f"{where}: argument params['blocks'] must be a list of "
                         f"n_layers = {config.n_layers} block parameter dicts, got {got}")
    for i, p in enumerate(blocks):
        block._check_params(where, p, C, config.n_heads, f"params['blocks'][{i}]")
    layer_norm._check_params(where, params["ln_f"], C, "params['ln_f']")
    if not config.tie_weights:
        _checks.params(where, params["lm_head"], {"W": (C, V)}, name="params['lm_head']")
    return params


def head_backward(dlogits: np.ndarray, h: np.ndarray, head_w: np.ndarray):
    """forward: ``logits = h @ head_w``; returns ``(dh, d_head)``."""
    C, V = head_w.shape
    # d_head = h^T dlogits, computed as (dlogits^T h)^T: a (V, C) product whose transpose
    # adds straight onto a tied (V, C) token table
    d_head = (dlogits.reshape(-1, V).T @ h.reshape(-1, C)).T                 # (C, V)
    return dlogits @ head_w.T, d_head


def add_head_grad(grads: dict, d_head: np.ndarray, config: GPTConfig) -> dict:
    """Put the head's gradient in ``grads``: added to the token table's when tied."""
    if config.tie_weights:
        grads["wte"]["W"] += d_head.T              # the head's share of the tied table
    else:
        grads["lm_head"] = {"W": np.ascontiguousarray(d_head)}
    return grads


def hidden_forward(ids: np.ndarray, params: dict, config: GPTConfig):
    """The trunk: ``ids`` (B, T) -> final hidden states ``LN_f(h_N)`` (B, T, C), cache."""
    _check_params(params, config)
    h, embed_c = embed_forward(ids, params, config)
    block_caches = []
    for p in params["blocks"]:
        h, c = _block_forward(h, p, config)
        block_caches.append(c)
    h, ln_c = layer_norm._forward(h, params["ln_f"], config.eps)
    return h, (embed_c, block_caches, ln_c)


def hidden_backward(dh: np.ndarray, cache) -> dict:
    """``dh`` (B, T, C) -> gradients of the trunk's parameters (no head).  ``dh`` is not
    checked here: the callers (:func:`backward`, the reward model) check their own input."""
    embed_c, block_caches, ln_c = cache
    d_ln_f = layer_norm._backward(dh, ln_c)
    dh = d_ln_f.pop("x")
    d_blocks = [None] * len(block_caches)
    for i in reversed(range(len(block_caches))):
        d_blocks[i] = block._backward(dh, block_caches[i])
        dh = d_blocks[i].pop("x")
    return {**embed_backward(dh, embed_c), "blocks": d_blocks, "ln_f": d_ln_f}


def forward(ids: np.ndarray, params: dict, config: GPTConfig):
    """``ids`` (B, T) -> ``logits`` (B, T, V), cache."""
    h, trunk_c = hidden_forward(ids, params, config)
    head_w = head(params, config)
    return h @ head_w, (config, trunk_c, h, head_w)


def backward(dlogits: np.ndarray, cache) -> dict:
    """``dlogits`` (B, T, V) -> gradients with the same tree shape as the parameters."""
    config, trunk_c, h, head_w = cache
    dlogits = _checks.dout_like("gpt.backward", dlogits, h.shape[:-1] + (head_w.shape[1],),
                                name="dlogits")
    dh, d_head = head_backward(dlogits, h, head_w)
    return add_head_grad(hidden_backward(dh, trunk_c), d_head, config)


def loss_and_grads(ids: np.ndarray, targets: np.ndarray, params: dict, config: GPTConfig,
                   ignore_index: int = -100, dloss: float = 1.0):
    """Mean next-token cross-entropy of a batch and the gradient of every parameter.

    ``ids`` and ``targets`` are (B, T); usually ``targets`` is ``ids`` shifted left by one.
    ``dloss`` is the gradient fed into the loss: 1 gives the gradient of the loss itself, a
    loss scale ``S`` gives the gradient of ``S * loss`` (mixed-precision loss scaling).
    Returns ``(loss, grads)``.
    """
    logits, cache = forward(ids, params, config)
    loss, ce_cache = cross_entropy.forward(logits, targets, ignore_index)
    dlogits = cross_entropy.backward(dloss, ce_cache)["logits"]
    return loss, backward(dlogits, cache)
