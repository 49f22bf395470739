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

The rest of this module extends that model; each part can be skipped on a first reading.

**Llama is a configuration of the same model.**  ``norm="rms"`` (RMSNorm, no ``beta``),
``position="rope"`` (rotary embeddings inside attention, no ``wpe``), ``activation="swiglu"``
(the feed-forward becomes ``{"gate", "up", "down"}``), ``n_kv_heads`` (grouped-query
attention), ``fused_qkv=False`` (separate ``"q"``, ``"k"``, ``"v"`` projections),
``bias=False`` (no ``"b"`` anywhere, no layer-norm ``beta``) and ``tie_weights=False``.
Llama 2 70B, for example, is ``GPTConfig(vocab_size=32000, context_len=4096, d_model=8192,
n_heads=64, n_layers=80, d_ff=28672, activation="swiglu", tie_weights=False, norm="rms",
position="rope", n_kv_heads=8, bias=False, fused_qkv=False)``.  :func:`shapes` gives its
parameter tree's shapes without allocating a single parameter.

**Padded batches.**  ``attention_mask`` (B, T) is a *boolean* array, ``True`` for a real token
(Hugging Face's meaning; an integer 0/1 mask is rejected, because ``~1`` is ``-2``, not
``False``).  Padding keys are hidden from every query, and positions count real tokens only:
``position_ids = cumsum(mask) - 1`` (0 on padding), so the real tokens of a left-padded prompt
get the same logits as the prompt alone.  Explicit ``position_ids`` (B, T) override that.
The outputs at padding positions mean nothing (a left-padding query has no key it may see,
and attention defines its output as 0).

**Decoding with a KV cache** (:func:`decode`): the prompt is run once ("prefill") and every
layer's keys and values are kept; each new token then costs one position's work, attending
to the cached keys with the causal mask aligned bottom-right (see
:mod:`reference.attention`) at position ``n_real_tokens_so_far``.  Its logits equal those of
:func:`forward` on the whole sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.layers import embedding, positional, rope
from llmref.losses import cross_entropy
from llmref.transformer import block, mha

NORMS = block.NORMS
POSITIONS = ("learned", "rope")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    context_len: int
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int | None = None              # None: 4 * d_model
    activation: str = "gelu_tanh"        # "relu", "gelu", "gelu_tanh" or "swiglu"
    norm_first: bool = True
    tie_weights: bool = True
    eps: float = 1e-5
    residual: bool = True
    # Options a Llama needs; the defaults are GPT-2's.
    norm: str = "layer"                  # "layer" (LayerNorm) or "rms" (RMSNorm)
    position: str = "learned"            # "learned" (a wpe table) or "rope" (rotary)
    rope_theta: float = 10000.0          # RoPE's base: frequencies theta^(-2j/D)
    n_kv_heads: int | None = None        # None: n_heads; fewer: grouped-query attention
    bias: bool = True                    # biases in the linear layers and layer norms
    fused_qkv: bool = True               # one (C, 3C) Q/K/V projection, or separate q, k, v

    def __post_init__(self):
        for name in ("vocab_size", "context_len", "d_model", "n_heads", "n_layers"):
            _checks.positive("GPTConfig", name, getattr(self, name), integer=True)
        if self.d_ff is not None:
            _checks.positive("GPTConfig", "d_ff", self.d_ff, integer=True)
        mha.check_heads("GPTConfig", self.d_model, self.n_heads, self.n_kv_heads)
        block._feed_forward_module("GPTConfig", self.activation)
        block._norm_module("GPTConfig", self.norm)
        if self.position not in POSITIONS:
            raise ValueError(f"GPTConfig: argument 'position' must be one of "
                             f"{list(POSITIONS)}, got {self.position!r}")
        _checks.positive("GPTConfig", "rope_theta", self.rope_theta)
        _checks.positive("GPTConfig", "eps", self.eps)
        for name in ("norm_first", "tie_weights", "residual", "bias", "fused_qkv"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"GPTConfig: argument '{name}' must be a bool, got "
                                f"{getattr(self, name)!r}")
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(f"GPTConfig: rotary embeddings need an even head dimension, got "
                             f"d_model / n_heads = {self.head_dim}")

    @property
    def hidden(self) -> int:
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


# ----------------------------------------------------------------- parameters

def _layout(config: GPTConfig) -> dict:
    """The parameter tree with ``(shape, fill)`` leaves: ``fill`` is the standard deviation of
    a N(0, std^2) weight, or ``"zeros"`` (biases) or ``"ones"`` (norm gains).  :func:`init`
    and :func:`shapes` both read it, so the shapes always describe what ``init`` makes."""
    C, V, F = config.d_model, config.vocab_size, config.hidden
    H, H_kv, D = config.n_heads, config.kv_heads, config.head_dim
    proj_std = 0.02 / math.sqrt(2 * config.n_layers)     # residual projections (GPT-2)

    def linear(d_in, d_out, std=0.02):
        p = {"W": ((d_in, d_out), std)}
        if config.bias:
            p["b"] = ((d_out,), "zeros")
        return p

    def norm():
        p = {"gamma": ((C,), "ones")}
        if config.norm == "layer" and config.bias:
            p["beta"] = ((C,), "zeros")
        return p

    def attention():
        if config.fused_qkv:
            qkv = {"qkv": linear(C, (H + 2 * H_kv) * D)}
        else:
            qkv = {"q": linear(C, H * D), "k": linear(C, H_kv * D), "v": linear(C, H_kv * D)}
        return {**qkv, "proj": linear(H * D, C, proj_std)}

    def feed_forward():
        if config.activation == "swiglu":
            return {"gate": linear(C, F), "up": linear(C, F), "down": linear(F, C, proj_std)}
        return {"fc": linear(C, F), "proj": linear(F, C, proj_std)}

    tree = {"wte": {"W": ((V, C), 0.02)}}
    if config.position == "learned":
        tree["wpe"] = {"W": ((config.context_len, C), 0.01)}
    tree["blocks"] = [{"ln1": norm(), "attn": attention(), "ln2": norm(),
                       "ffn": feed_forward()} for _ in range(config.n_layers)]
    tree["ln_f"] = norm()
    if not config.tie_weights:
        tree["lm_head"] = {"W": ((C, V), 0.02)}
    return tree


def _map_layout(fn, tree):
    if isinstance(tree, tuple):                          # a (shape, fill) leaf
        return fn(*tree)
    if isinstance(tree, dict):
        return {k: _map_layout(fn, v) for k, v in tree.items()}
    return [_map_layout(fn, v) for v in tree]


def _example_config():
    return GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=4, n_layers=2, d_ff=12,
                     activation="swiglu", tie_weights=False, norm="rms", position="rope",
                     n_kv_heads=2, bias=False, fused_qkv=False)


@contract(example=lambda rng: {"config": _example_config(), "flat": True})
def shapes(config: GPTConfig, flat: bool = False) -> dict:
    """The parameter tree with the shape tuple of every parameter in place of its array:
    nothing is allocated, so a 70B-parameter configuration costs a few kilobytes
    (``memory.param_count`` counts it).  ``flat=True``: ``{"blocks.0.attn.q.W": (C, C),
    ...}``, the dotted paths of ``params.flatten``."""
    if not isinstance(config, GPTConfig):
        raise TypeError(f"gpt.shapes: argument 'config' must be a GPTConfig, got "
                        f"{type(config).__name__}")
    if not isinstance(flat, (bool, np.bool_)):
        raise TypeError(f"gpt.shapes: argument 'flat' must be True or False, got {flat!r}")
    tree = _map_layout(lambda shape, fill: shape, _layout(config))
    return _flat_shapes(tree) if flat else tree


def _flat_shapes(tree, prefix: str = "") -> dict:
    if isinstance(tree, tuple):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    out = {}
    for key, value in items:
        out.update(_flat_shapes(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def init(config: GPTConfig, rng: np.random.Generator, dtype=np.float64) -> dict:
    """GPT-2 style initialisation: N(0, 0.02^2) weights, residual projections scaled by
    1/sqrt(2 n_layers), zero biases, unit norm gains (Llama configurations too)."""
    def make(shape, fill):
        if fill == "zeros":
            return np.zeros(shape, dtype)
        if fill == "ones":
            return np.ones(shape, dtype)
        return rng.normal(0.0, fill, size=shape).astype(dtype, copy=False)
    return _map_layout(make, _layout(config))


def head(params: dict, config: GPTConfig) -> np.ndarray:
    """The LM head (C, V): the transposed token table when tied, else ``lm_head.W``."""
    return params["wte"]["W"].T if config.tie_weights else params["lm_head"]["W"]


def _check_params(params, config: GPTConfig, where: str = "gpt.forward") -> dict:
    """Check the whole parameter tree against ``config``: keys, float dtypes, shapes and finite
    values, with messages that name the part (``params['blocks'][2]['attn']['qkv']['W']``).
    The forward pass runs this once instead of checking every layer's input on the way."""
    V, P, C = config.vocab_size, config.context_len, config.d_model
    own_head = () if config.tie_weights else ("lm_head",)        # tie_weights=False
    table = ("wpe",) if config.position == "learned" else ()
    _checks.keys(where, params, ("wte",) + table + ("blocks", "ln_f") + own_head, "params")
    _checks.params(where, params["wte"], {"W": (V, C)}, name="params['wte']")
    if table:
        _checks.params(where, params["wpe"], {"W": (P, C)}, name="params['wpe']")
    blocks = params["blocks"]
    if not isinstance(blocks, (list, tuple)) or len(blocks) != config.n_layers:
        got = len(blocks) if isinstance(blocks, (list, tuple)) else type(blocks).__name__
        raise ValueError(f"{where}: argument params['blocks'] must be a list of "
                         f"n_layers = {config.n_layers} block parameter dicts, got {got}")
    for i, p in enumerate(blocks):
        block._check_params(where, p, C, config.n_heads, f"params['blocks'][{i}]",
                            norm=config.norm, activation=config.activation,
                            n_kv_heads=config.n_kv_heads, bias=config.bias,
                            fused=config.fused_qkv)
    NORMS[config.norm]._check_params(where, params["ln_f"], C, "params['ln_f']", config.bias)
    if not config.tie_weights:
        _checks.params(where, params["lm_head"], {"W": (C, V)}, name="params['lm_head']")
    return params


# ----------------------------------------------------------------- inputs

@contract(example=lambda rng: {"attention_mask": rng.random((2, 5)) < 0.7},
          lenient={})
def positions_from_mask(attention_mask: np.ndarray) -> np.ndarray:
    """(B, T) boolean mask -> (B, T) positions: each real token's index among the real tokens
    of its row, 0 on padding (Hugging Face's rule)."""
    _check_attention_mask("gpt.positions_from_mask", attention_mask,
                          getattr(attention_mask, "shape", ()))
    if attention_mask.ndim != 2:
        raise ValueError(f"gpt.positions_from_mask: argument 'attention_mask' must have shape "
                         f"(B, T), got shape {attention_mask.shape}")
    return _positions_from_mask(attention_mask)


def _positions_from_mask(attention_mask: np.ndarray) -> np.ndarray:
    return np.maximum(np.cumsum(attention_mask, axis=1) - 1, 0)


def _check_attention_mask(where: str, attention_mask, shape: tuple,
                         name: str = "attention_mask") -> np.ndarray:
    """A boolean array of ``shape``, ``True`` for real tokens.  Integer masks are refused:
    ``~`` of an integer 1 is -2, which would silently keep every padding token."""
    if not isinstance(attention_mask, np.ndarray) or attention_mask.dtype != bool:
        got = attention_mask.dtype if isinstance(attention_mask, np.ndarray) \
            else type(attention_mask).__name__
        raise TypeError(f"{where}: argument '{name}' must be a boolean NumPy array (True = "
                        f"real token), got {got}; convert a 0/1 mask with mask.astype(bool)")
    _checks.same_shape(where, name, attention_mask, shape)
    return attention_mask


def _check_ids(where: str, ids, config: GPTConfig) -> np.ndarray:
    _checks.int_array(where, "ids", ids, 0, config.vocab_size)
    if ids.ndim != 2:
        raise ValueError(f"{where}: argument 'ids' must have shape (B, T), got {ids.shape}")
    return ids


def _check_inputs(where: str, ids, config: GPTConfig, attention_mask=None, position_ids=None):
    """Check ``ids``, ``attention_mask`` and ``position_ids``; return the positions to use
    ((B, T) ints), or None for plain ``0 .. T-1``."""
    _check_ids(where, ids, config)
    B, T = ids.shape
    if attention_mask is not None:
        _check_attention_mask(where, attention_mask, (B, T))
    if position_ids is not None:
        _checks.int_array(where, "position_ids", position_ids, 0, config.context_len)
        _checks.same_shape(where, "position_ids", position_ids, (B, T))
        return position_ids
    if attention_mask is not None:
        longest = int(attention_mask.sum(axis=1).max())
        if longest > config.context_len:
            raise ValueError(f"{where}: argument 'attention_mask' has a row of {longest} real "
                             f"tokens, longer than the context length {config.context_len}")
        return _positions_from_mask(attention_mask)
    if T > config.context_len:
        raise ValueError(f"{where}: argument 'ids' has sequence length {T}, longer than "
                         f"the context length {config.context_len}")
    return None


# ----------------------------------------------------------------- the model

def embed_forward(ids: np.ndarray, params: dict, config: GPTConfig):
    """``ids`` (B, T) -> token plus position embeddings ``h_0`` (B, T, C), cache."""
    _check_inputs("gpt.forward", ids, config)
    return _embed(ids, params, config, None)


def _embed(ids, params, config, positions):
    """Token embeddings plus, for learned positions, ``wpe`` at ``positions`` ((B, T), or
    None for ``0 .. T-1``, broadcast over the batch).  Rotary positions are applied inside
    attention instead."""
    tok, tok_c = embedding.forward(ids, params["wte"])
    if config.position == "rope":
        return tok, (tok_c, None, None)
    if positions is None:
        pos, pos_c = positional.forward(ids.shape[1], params["wpe"])
        return tok + pos, (tok_c, "0..T-1", pos_c)
    pos, pos_c = embedding.forward(positions, params["wpe"])
    return tok + pos, (tok_c, "ids", pos_c)


def embed_backward(dh: np.ndarray, cache) -> dict:
    """``dh`` (B, T, C) -> ``{"wte", "wpe"}``; positions ``0 .. T-1`` were broadcast over the
    batch, so their gradient is summed over it."""
    tok_c, kind, pos_c = cache
    grads = {"wte": embedding.backward(dh, tok_c)}
    if kind == "0..T-1":
        grads["wpe"] = positional.backward(dh.sum(axis=0), pos_c)
    elif kind == "ids":
        grads["wpe"] = embedding.backward(dh, pos_c)
    return grads


def _attention_inputs(config, T: int, key_mask, positions, dtype) -> dict:
    """What every block's attention needs besides its input, computed once per pass: the key
    padding mask (None when every key is real) and the rotary tables (None for learned
    positions)."""
    tables = None
    if config.position == "rope":
        tables = rope._tables(np.arange(T) if positions is None else positions,
                             config.head_dim, config.rope_theta, dtype)
    padding = None if key_mask is None or key_mask.all() else ~key_mask
    return {"key_padding_mask": padding, "tables": tables}


def _block_forward(h, params, config, key_padding_mask=None, tables=None, past=None):
    """One causal block with the configuration's options; unchecked (the callers check the
    whole parameter tree once with :func:`_check_params`)."""
    return block._forward(h, params, config.n_heads, config.norm_first, config.activation,
                          True, key_padding_mask, config.eps, config.residual, config.norm,
                          config.n_kv_heads, tables, past)


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


def hidden_forward(ids: np.ndarray, params: dict, config: GPTConfig,
                   attention_mask: np.ndarray | None = None,
                   position_ids: np.ndarray | None = None):
    """The trunk: ``ids`` (B, T) -> final hidden states ``LN_f(h_N)`` (B, T, C), cache."""
    _check_params(params, config)
    positions = _check_inputs("gpt.forward", ids, config, attention_mask, position_ids)
    return _hidden_forward(ids, params, config, attention_mask, positions)


def _hidden_forward(ids, params, config, attention_mask, positions):
    h, embed_c = _embed(ids, params, config, positions)
    extra = _attention_inputs(config, ids.shape[1], attention_mask, positions, h.dtype)
    block_caches = []
    for p in params["blocks"]:
        h, c = _block_forward(h, p, config, **extra)
        block_caches.append(c)
    norm = NORMS[config.norm]
    h, ln_c = norm._forward(h, params["ln_f"], config.eps)
    return h, (embed_c, block_caches, norm, ln_c)


def hidden_backward(dh: np.ndarray, cache) -> dict:
    """``dh`` (B, T, C) -> gradients of the trunk's parameters (no head).  ``dh`` is not
    checked here: the callers (:func:`backward`, the reward model) check their own input."""
    embed_c, block_caches, norm, ln_c = cache
    d_ln_f = norm._backward(dh, ln_c)
    dh = d_ln_f.pop("x")
    d_blocks = [None] * len(block_caches)
    for i in reversed(range(len(block_caches))):
        d_blocks[i] = block._backward(dh, block_caches[i])
        dh = d_blocks[i].pop("x")
    return {**embed_backward(dh, embed_c), "blocks": d_blocks, "ln_f": d_ln_f}


def forward(ids: np.ndarray, params: dict, config: GPTConfig,
            attention_mask: np.ndarray | None = None, position_ids: np.ndarray | None = None):
    """``ids`` (B, T) -> ``logits`` (B, T, V), cache.  ``attention_mask`` (B, T) bool, True =
    real token; ``position_ids`` (B, T) ints in [0, context_len) (default: from the mask)."""
    _check_params(params, config)
    positions = _check_inputs("gpt.forward", ids, config, attention_mask, position_ids)
    return _forward(ids, params, config, attention_mask, positions)


def _forward(ids, params, config, attention_mask=None, positions=None):
    h, trunk_c = _hidden_forward(ids, params, config, attention_mask, positions)
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
                   ignore_index: int = -100, dloss: float = 1.0,
                   attention_mask: np.ndarray | None = None,
                   position_ids: np.ndarray | None = None):
    """Mean next-token cross-entropy of a batch and the gradient of every parameter.

    ``ids`` and ``targets`` are (B, T); usually ``targets`` is ``ids`` shifted left by one.
    ``dloss`` is the gradient fed into the loss: 1 gives the gradient of the loss itself, a
    loss scale ``S`` gives the gradient of ``S * loss`` (mixed-precision loss scaling).
    With an ``attention_mask``, the targets at padding positions are ignored.
    Returns ``(loss, grads)``.
    """
    logits, cache = forward(ids, params, config, attention_mask, position_ids)
    if attention_mask is not None:
        targets = np.where(attention_mask, targets, ignore_index)
    loss, ce_cache = cross_entropy.forward(logits, targets, ignore_index)
    dlogits = cross_entropy.backward(dloss, ce_cache)["logits"]
    return loss, backward(dlogits, cache)


# ----------------------------------------------------------------- decoding with a KV cache

@contract(example=lambda rng: {"ids": rng.integers(0, 11, size=(2, 3)),
                               "params": init(_example_config(), rng),
                               "config": _example_config(), "kv_cache": None,
                               "attention_mask": np.array([[False, True, True]] * 2)},
          lenient={"attention_mask": ("none",)})
def decode(ids: np.ndarray, params: dict, config: GPTConfig, kv_cache: dict | None = None,
           attention_mask: np.ndarray | None = None):
    """Inference forward with a KV cache: ``ids`` (B, T) new tokens -> ``(logits (B, T, V),
    kv_cache)``.  No backward.

    Prefill with ``kv_cache=None`` and the (left-padded) prompts; then feed one token per row
    at a time with the returned cache.  ``attention_mask`` (B, T) marks the real tokens among
    the *new* ones (the cache remembers the earlier ones).  The cache is a dict::

        {"k": [(B, H_kv, S, D) per layer], "v": [same], "mask": (B, S) bool,
         "next_position": (B,) ints}

    (keys after rotation; ``S`` counts every position so far, padding included;
    ``next_position`` is each row's number of real tokens so far).  It is a new dict each
    call: the one passed in is not modified.
    """
    where = "gpt.decode"
    _check_params(params, config, where)
    _check_ids(where, ids, config)
    B, T = ids.shape
    new = np.ones((B, T), bool) if attention_mask is None else \
        _check_attention_mask(where, attention_mask, (B, T))
    start = np.zeros(B, np.int64) if kv_cache is None else \
        _check_kv_cache(where, kv_cache, config, B)
    longest = int((start + new.sum(axis=1)).max())
    if longest > config.context_len:
        raise ValueError(f"{where}: a row would reach {longest} tokens, more than the context "
                         f"length {config.context_len}")
    return _decode(ids, params, config, kv_cache, attention_mask)


def _check_kv_cache(where: str, kv_cache, config: GPTConfig, B: int) -> np.ndarray:
    """The structure :func:`decode` returns, for batch size ``B``; returns ``next_position``."""
    _checks.keys(where, kv_cache, ("k", "v", "mask", "next_position"), "kv_cache")
    mask = kv_cache["mask"]
    _check_attention_mask(where, mask, getattr(mask, "shape", ()), "kv_cache['mask']")
    if mask.ndim != 2 or mask.shape[0] != B:
        raise ValueError(f"{where}: argument kv_cache['mask'] must have shape (B, S) with "
                         f"B = {B} (the batch of 'ids'), got shape {mask.shape}")
    S = mask.shape[1]
    shape = (B, config.kv_heads, S, config.head_dim)
    for name in ("k", "v"):
        layers = kv_cache[name]
        if not isinstance(layers, list) or len(layers) != config.n_layers:
            raise ValueError(f"{where}: argument kv_cache['{name}'] must be a list of "
                             f"n_layers = {config.n_layers} arrays, got "
                             f"{len(layers) if isinstance(layers, list) else type(layers)}")
        for i, a in enumerate(layers):
            _checks.float_array(where, f"kv_cache['{name}'][{i}]", a, ndim=4)
            _checks.same_shape(where, f"kv_cache['{name}'][{i}]", a, shape)
    start = kv_cache["next_position"]
    _checks.int_array(where, "kv_cache['next_position']", start, 0, S + 1)
    _checks.same_shape(where, "kv_cache['next_position']", start, (B,))
    return start


def _decode(ids, params, config, kv_cache, attention_mask):
    B, T = ids.shape
    new = np.ones((B, T), bool) if attention_mask is None else attention_mask
    if kv_cache is None:
        seen, start, past = np.zeros((B, 0), bool), np.zeros(B, np.int64), [None] * len(
            params["blocks"])
    else:
        seen, start = kv_cache["mask"], kv_cache["next_position"]
        past = list(zip(kv_cache["k"], kv_cache["v"], strict=True))
    # the new real tokens continue each row's count; padding takes the next row position
    positions = start[:, None] + _positions_from_mask(new)
    keys = np.concatenate([seen, new], axis=1)                      # (B, S): every key so far
    h, _ = _embed(ids, params, config, positions)
    extra = _attention_inputs(config, T, keys, positions, h.dtype)
    presents = []
    for p, layer_past in zip(params["blocks"], past, strict=True):
        h, c = _block_forward(h, p, config, past=layer_past, **extra)
        presents.append(block._present(c))
    h, _ = NORMS[config.norm]._forward(h, params["ln_f"], config.eps)
    logits = h @ head(params, config)
    return logits, {"k": [k for k, _ in presents], "v": [v for _, v in presents],
                    "mask": keys, "next_position": start + new.sum(axis=1)}
