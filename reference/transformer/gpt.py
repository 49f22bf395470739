r"""A tiny GPT: token and position embeddings, N transformer blocks, a final layer norm and
a language-model head, trained with next-token cross-entropy.

$$ h_0 = W_{te}[\mathrm{ids}] + W_{pe}[0{:}T], \quad h_{l} = \mathrm{block}_l(h_{l-1}), \quad
   \mathrm{logits} = \mathrm{LN}_f(h_N)\, W_{head} $$

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
position="rope", n_kv_heads=8, bias=False, fused_qkv=False)``.  `shapes` gives its
parameter tree's shapes without allocating a single parameter.

**Padded batches.**  ``attention_mask`` (B, T) is a *boolean* array, ``True`` for a real token
(Hugging Face's meaning; an integer 0/1 mask is rejected, because ``~1`` is ``-2``, not
``False``).  Padding keys are hidden from every query, and positions count real tokens only:
``position_ids = cumsum(mask) - 1`` (0 on padding), so the real tokens of a left-padded prompt
get the same logits as the prompt alone.  Explicit ``position_ids`` (B, T) override that.
The outputs at padding positions mean nothing (a left-padding query has no key it may see,
and attention defines its output as 0).

**Decoding with a KV cache** (`decode`): the prompt is run once ("prefill") and every
layer's keys and values are kept; each new token then costs one position's work, attending
to the cached keys with the causal mask aligned bottom-right (see
`llmref.attention`) at position ``n_real_tokens_so_far``.  Its logits equal those of
`forward` on the whole sequence.
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


def _config_example(rng):
    return {"vocab_size": 11, "context_len": 8, "d_model": 8, "n_heads": 4, "n_layers": 2,
            "d_ff": 12, "activation": "swiglu", "norm_first": True, "tie_weights": False,
            "eps": 1e-5, "residual": True, "norm": "rms", "position": "rope",
            "rope_theta": 10000.0, "n_kv_heads": 2, "bias": False, "fused_qkv": False}


@contract(example=_config_example, lenient={"d_ff": ("none",), "n_kv_heads": ("none",)})
@dataclass(frozen=True)
class GPTConfig:
    """The sizes and options of a GPT (GPT-2 by default; a Llama with the options below).

    Parameters
    ----------
    vocab_size, context_len, d_model, n_heads, n_layers : int
        Sizes (>= 1); `n_heads` divides `d_model`.
    d_ff : int, default None
        Hidden width of the feed-forward (None: 4 * d_model).
    activation : str, default 'gelu_tanh'
        `"relu"`, `"gelu"`, `"gelu_tanh"` or `"swiglu"`.
    norm_first, tie_weights, residual, bias, fused_qkv : bool, optional
        Pre-norm; head tied to the token table; residual connections; biases; one fused
        Q/K/V projection (each True by default).
    eps : float, default 1e-05
        The norms' epsilon (> 0).
    norm : str, default 'layer'
        `"layer"` or `"rms"`.
    position : str, default 'learned'
        `"learned"` or `"rope"`.
    rope_theta : float, default 10000.0
        RoPE's base (> 0).
    n_kv_heads : int, default None
        Key/value heads (grouped-query attention), dividing `n_heads` (None: `n_heads`).

    Raises
    ------
    TypeError
        If a field has the wrong type.
    ValueError
        If a size or name is invalid.
    """

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
        for name in ("activation", "norm", "position"):
            _checks.string("GPTConfig", name, getattr(self, name))
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
    a N(0, std^2) weight, or ``"zeros"`` (biases) or ``"ones"`` (norm gains).  `init`
    and `shapes` both read it, so the shapes always describe what ``init`` makes."""
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


def _check_config(where: str, config) -> GPTConfig:
    if not isinstance(config, GPTConfig):
        raise TypeError(f"{where}: argument 'config' must be a GPTConfig, got "
                        f"{type(config).__name__}")
    return config


def _example_tied_config():
    return GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=2, n_layers=1)


def _ids_example(rng, config=None):
    config = _example_config() if config is None else config
    return {"ids": rng.integers(0, 11, (2, 3)), "params": init(config, rng), "config": config,
            "attention_mask": np.array([[False, True, True]] + [[True] * 3]),
            "position_ids": np.array([[0, 0, 1], [0, 1, 2]])}


@contract(example=lambda rng: {"config": _example_config(), "rng": rng, "dtype": np.float32})
def init(config: GPTConfig, rng: np.random.Generator, dtype=np.float64) -> dict:
    r"""GPT-2 style initialisation (Llama configurations too).

    $$ W \sim \mathcal{N}(0, 0.02^2), \quad W_{proj} \sim
       \mathcal{N}\big(0, (0.02 / \sqrt{2 L})^2\big), \quad b = 0, \quad \gamma = 1 $$

    Parameters
    ----------
    config : GPTConfig
        The model.
    rng : numpy.random.Generator
        Source of the random weights.
    dtype : numpy floating dtype, default float64
        The parameters' dtype.

    Returns
    -------
    params : dict
        The parameter tree (see the module docstring).

    Raises
    ------
    TypeError
        If `config` is not a GPTConfig, `rng` not a Generator or `dtype` not floating.
    """
    where = "gpt.init"
    _check_config(where, config)
    _checks.generator(where, "rng", rng)
    dtype = _checks.float_dtype(where, "dtype", dtype)

    def make(shape, fill):
        if fill == "zeros":
            return np.zeros(shape, dtype)
        if fill == "ones":
            return np.ones(shape, dtype)
        return rng.normal(0.0, fill, size=shape).astype(dtype, copy=False)
    return _map_layout(make, _layout(config))


@contract(example=lambda rng: {"params": init(_example_config(), rng),
                               "config": _example_config()})
def head(params: dict, config: GPTConfig) -> np.ndarray:
    """The LM head (C, V): the transposed token table when tied, else `lm_head.W`.

    Parameters
    ----------
    params : dict
        The GPT's parameters.
    config : GPTConfig
        Its configuration.

    Returns
    -------
    head_w : ndarray, shape (C, V)
        A view of the parameter (not a copy).

    Raises
    ------
    TypeError
        If `config` is not a GPTConfig or `params` not a parameter tree.
    ValueError
        If `params` does not match `config`.
    """
    _check_params(params, config, "gpt.head")
    return _head(params, config)


def _head(params, config):
    return params["wte"]["W"].T if config.tie_weights else params["lm_head"]["W"]


def _check_params(params, config: GPTConfig, where: str = "gpt.forward") -> dict:
    """Check the whole parameter tree against ``config``: keys, float dtypes, shapes and finite
    values, with messages that name the part (``params['blocks'][2]['attn']['qkv']['W']``).
    The forward pass runs this once instead of checking every layer's input on the way.
    ``config`` is checked first (callers need not)."""
    _check_config(where, config)
    _check_leaf_shapes(params, config, where)
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


def _check_leaf_shapes(params, config: GPTConfig, where: str) -> None:
    """The config fixes the shape of every parameter (`shapes`): a leaf of another shape is
    named by its own path, before the layer checks (which infer widths from the tree and
    would blame a healthy neighbour).  Missing keys and non-arrays are left to them."""
    for path, shape in shapes(config, flat=True).items():
        leaf, label = params, "params"
        for part in path.split("."):
            key = int(part) if part.isdigit() else part
            if isinstance(leaf, dict) and key in leaf:
                leaf = leaf[key]
            elif isinstance(leaf, (list, tuple)) and isinstance(key, int) and key < len(leaf):
                leaf = leaf[key]
            else:
                leaf = None
                break
            label += f"[{key}]" if isinstance(key, int) else f"['{key}']"
        if isinstance(leaf, np.ndarray) and leaf.shape != shape:
            raise ValueError(f"{where}: argument {label} must have shape {shape} (set by the "
                             f"config), got shape {leaf.shape}")


# ----------------------------------------------------------------- inputs

@contract(example=lambda rng: {"attention_mask": rng.random((2, 5)) < 0.7},
          lenient={})
def positions_from_mask(attention_mask: np.ndarray) -> np.ndarray:
    r"""Positions that count real tokens only (Hugging Face's rule).

    $$ \mathrm{pos}_{bt} = \max\Big(\sum_{t' \le t} m_{bt'} - 1,\ 0\Big) $$

    Parameters
    ----------
    attention_mask : ndarray of bool, shape (B, T)
        True for a real token (an int mask is refused).

    Returns
    -------
    positions : ndarray of int, shape (B, T)
        Each real token's index among the real tokens of its row, 0 on padding.

    Raises
    ------
    TypeError
        If `attention_mask` is not a boolean array.
    ValueError
        If it is not 2-D.
    """
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
    """A boolean array of ``shape``, ``True`` for real tokens (an integer mask is refused)."""
    return _checks.bool_array(where, name, attention_mask, shape, "True = real token")


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

@contract(example=lambda rng: {k: v for k, v in _ids_example(rng, _example_tied_config()).items()
                               if k in ("ids", "params", "config")})
def embed_forward(ids: np.ndarray, params: dict, config: GPTConfig):
    r"""Token plus position embeddings.

    $$ h_0 = W_{te}[\mathrm{ids}] + W_{pe}[0{:}T] $$

    (rotary configurations: token embeddings only.)

    Parameters
    ----------
    ids : ndarray of int, shape (B, T)
        Token ids in [0, V), T <= context_len.
    params : dict
        The GPT's parameters.
    config : GPTConfig
        Its configuration.

    Returns
    -------
    h0 : ndarray, shape (B, T, C)
        The embeddings.
    cache : object
        What `embed_backward` needs (see Cache).

    Cache
    -----
    The embedding lookups' caches (they hold `ids` by reference) and the kind of positions:
    do not change `ids` or the tables in place before the backward (`LLMREF_DEBUG_CACHE=1`
    verifies it).

    Raises
    ------
    TypeError
        If an argument has the wrong type or dtype.
    ValueError
        If an id is out of range, a shape is wrong or `params` does not match `config`.
    """
    where = "gpt.embed_forward"
    _check_params(params, config, where)
    _check_inputs(where, ids, config)
    h, cache = _embed(ids, params, config, None)
    return h, _checks.guard(where, cache, ids=ids, params=params)


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


@contract(example=lambda rng: {"dh": rng.standard_normal((2, 3, 8)),
                               "cache": embed_forward(**{k: v for k, v in _ids_example(
                                   rng, _example_tied_config()).items()
                                   if k in ("ids", "params", "config")})[1]})
def embed_backward(dh: np.ndarray, cache) -> dict:
    """Gradients of the embeddings; positions `0 .. T-1` were broadcast over the batch, so
    their gradient is summed over it.

    Parameters
    ----------
    dh : ndarray, shape (B, T, C), floating
        Upstream gradient.
    cache : object
        The cache returned by `embed_forward`.

    Returns
    -------
    grads : dict
        `{"wte": {"W"}, "wpe": {"W"}}` (no `"wpe"` for rotary positions).

    Raises
    ------
    TypeError
        If `dh` is not a floating-point array.
    ValueError
        If `dh` has the wrong shape or holds NaN or inf.
    """
    cache = _checks.unguard("gpt.embed_backward", cache, 3)
    _checks.float_array("gpt.embed_backward", "dh", dh, ndim=3)
    return _embed_backward(dh, cache)


def _embed_backward(dh, cache) -> dict:
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
    whole parameter tree once with `_check_params`)."""
    return block._forward(h, params, config.n_heads, config.norm_first, config.activation,
                          True, key_padding_mask, config.eps, config.residual, config.norm,
                          config.n_kv_heads, tables, past)


@contract(example=lambda rng: {"dlogits": rng.standard_normal((2, 3, 5)),
                               "h": rng.standard_normal((2, 3, 4)),
                               "head_w": rng.standard_normal((4, 5))})
def head_backward(dlogits: np.ndarray, h: np.ndarray, head_w: np.ndarray):
    r"""Gradients of the LM head `logits = h @ head_w`.

    $$ dh = G\, W_{head}^\top, \qquad dW_{head} = h^\top G $$

    Parameters
    ----------
    dlogits : ndarray, shape (B, T, V), floating
        Upstream gradient `G`.
    h : ndarray, shape (B, T, C), floating
        The head's input.
    head_w : ndarray, shape (C, V), floating
        The head.

    Returns
    -------
    dh : ndarray, shape (B, T, C)
    d_head : ndarray, shape (C, V)

    Raises
    ------
    TypeError
        If an argument is not a floating-point array.
    ValueError
        If a shape is wrong or an array is empty or holds NaN or inf.
    """
    where = "gpt.head_backward"
    _checks.float_array(where, "head_w", head_w, ndim=2)
    _checks.float_array(where, "h", h, ndim=3)
    if h.shape[-1] != head_w.shape[0]:
        raise ValueError(f"{where}: argument 'h' must have shape (B, T, C) with C = "
                         f"{head_w.shape[0]} (the rows of 'head_w'), got shape {h.shape}")
    _checks.dout_like(where, dlogits, h.shape[:-1] + (head_w.shape[1],), "dlogits")
    return _head_backward(dlogits, h, head_w)


def _head_backward(dlogits, h, head_w):
    C, V = head_w.shape
    # d_head = h^T dlogits, computed as (dlogits^T h)^T: a (V, C) product whose transpose
    # adds straight onto a tied (V, C) token table
    d_head = (dlogits.reshape(-1, V).T @ h.reshape(-1, C)).T                 # (C, V)
    return dlogits @ head_w.T, d_head


@contract(example=lambda rng: {"grads": init(_example_tied_config(), rng),
                               "d_head": rng.standard_normal((8, 11)),
                               "config": _example_tied_config()},
          mutates=("grads",))
def add_head_grad(grads: dict, d_head: np.ndarray, config: GPTConfig) -> dict:
    """Put the head's gradient in `grads`, **in place**: added to `grads["wte"]["W"]` when the
    weights are tied, else stored as `grads["lm_head"]`.

    Parameters
    ----------
    grads : dict
        The trunk's gradients (`hidden_backward`); updated in place and returned.
    d_head : ndarray, shape (C, V), floating
        The head's gradient.
    config : GPTConfig
        The configuration.

    Returns
    -------
    grads : dict
        The same dict, now with the head's gradient.

    Raises
    ------
    TypeError
        If an argument has the wrong type or dtype.
    ValueError
        If a key or shape is wrong or `d_head` holds NaN or inf.
    """
    where = "gpt.add_head_grad"
    _check_config(where, config)
    V, C = config.vocab_size, config.d_model
    table = ("wpe",) if config.position == "learned" else ()
    _checks.keys(where, grads, ("wte",) + table + ("blocks", "ln_f"), "grads")
    _checks.params(where, grads["wte"], {"W": (V, C)}, name="grads['wte']")
    _checks.float_array(where, "d_head", d_head, ndim=2)
    _checks.same_shape(where, "d_head", d_head, (C, V))
    return _add_head_grad(grads, d_head, config)


def _add_head_grad(grads, d_head, config):
    if config.tie_weights:
        grads["wte"]["W"] += d_head.T              # the head's share of the tied table
    else:
        grads["lm_head"] = {"W": np.ascontiguousarray(d_head)}
    return grads


_MASKS_LENIENT = {"attention_mask": ("none",), "position_ids": ("none",)}


@contract(example=_ids_example, lenient=_MASKS_LENIENT)
def hidden_forward(ids: np.ndarray, params: dict, config: GPTConfig,
                   attention_mask: np.ndarray | None = None,
                   position_ids: np.ndarray | None = None):
    r"""The trunk: embeddings, the blocks and the final norm.

    $$ h = \mathrm{LN}_f(h_N), \qquad h_l = \mathrm{block}_l(h_{l-1}) $$

    Parameters
    ----------
    ids : ndarray of int, shape (B, T)
        Token ids in [0, V).
    params : dict
        The GPT's parameters.
    config : GPTConfig
        Its configuration.
    attention_mask : ndarray of bool, shape (B, T), default None
        True for a real token (an int mask is refused).
    position_ids : ndarray of int, shape (B, T), default None
        Positions in [0, context_len) (default: from the mask, else 0 .. T-1).

    Returns
    -------
    h : ndarray, shape (B, T, C)
        Final hidden states.
    cache : object
        What `hidden_backward` needs (see Cache).

    Cache
    -----
    The embeddings', blocks' and final norm's caches, which hold `ids`, the masks and the
    weights by reference: do not change them in place before the backward
    (`LLMREF_DEBUG_CACHE=1` verifies it).  `h` is a new array the cache does not hold.

    Raises
    ------
    TypeError
        If an argument has the wrong type or dtype.
    ValueError
        If an id or position is out of range, a shape is wrong or `params` does not match.
    """
    where = "gpt.hidden_forward"
    _check_params(params, config, where)
    positions = _check_inputs(where, ids, config, attention_mask, position_ids)
    h, cache = _hidden_forward(ids, params, config, attention_mask, positions)
    return h, _checks.guard(where, cache, ids=ids, params=params, attention_mask=attention_mask,
                            position_ids=position_ids)


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


@contract(example=lambda rng: {"dh": rng.standard_normal((2, 3, 8)),
                               "cache": hidden_forward(**_ids_example(rng))[1]})
def hidden_backward(dh: np.ndarray, cache) -> dict:
    """Gradients of the trunk's parameters (no head).

    Parameters
    ----------
    dh : ndarray, shape (B, T, C), floating
        Upstream gradient of the final hidden states.
    cache : object
        The cache returned by `hidden_forward`.

    Returns
    -------
    grads : dict
        `{"wte", "wpe" (learned positions), "blocks": [...], "ln_f"}`.

    Raises
    ------
    TypeError
        If `dh` is not a floating-point array.
    ValueError
        If `dh` has the wrong shape or holds NaN or inf.
    """
    cache = _checks.unguard("gpt.hidden_backward", cache, 4)
    shape = cache[1][-1][-1][0].shape                   # the last block's attention input
    return _hidden_backward(_checks.dout_like("gpt.hidden_backward", dh, shape, "dh"), cache)


def _hidden_backward(dh, cache) -> dict:
    embed_c, block_caches, norm, ln_c = cache
    d_ln_f = norm._backward(dh, ln_c)
    dh = d_ln_f.pop("x")
    d_blocks = [None] * len(block_caches)
    for i in reversed(range(len(block_caches))):
        d_blocks[i] = block._backward(dh, block_caches[i])
        dh = d_blocks[i].pop("x")
    return {**_embed_backward(dh, embed_c), "blocks": d_blocks, "ln_f": d_ln_f}


@contract(example=_ids_example, lenient=_MASKS_LENIENT)
def forward(ids: np.ndarray, params: dict, config: GPTConfig,
            attention_mask: np.ndarray | None = None, position_ids: np.ndarray | None = None):
    r"""The GPT: `ids` (B, T) -> next-token logits (B, T, V).

    $$ \mathrm{logits} = \mathrm{LN}_f(h_N)\, W_{head} $$

    Parameters
    ----------
    ids : ndarray of int, shape (B, T)
        Token ids in [0, V).
    params : dict
        The GPT's parameters.
    config : GPTConfig
        Its configuration.
    attention_mask : ndarray of bool, shape (B, T), default None
        True for a real token (an int mask is refused).
    position_ids : ndarray of int, shape (B, T), default None
        Positions in [0, context_len) (default: from the mask, else 0 .. T-1).

    Returns
    -------
    logits : ndarray, shape (B, T, V)
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The configuration, the trunk's cache, the final hidden states and the head, which hold
    `ids`, the masks and the weights by reference: do not change them in place before the
    backward (`LLMREF_DEBUG_CACHE=1` verifies it).  The logits are a new array the cache does
    not hold.

    Raises
    ------
    TypeError
        If an argument has the wrong type or dtype.
    ValueError
        If an id or position is out of range, a shape is wrong or `params` does not match.
    """
    _check_params(params, config)
    positions = _check_inputs("gpt.forward", ids, config, attention_mask, position_ids)
    logits, cache = _forward(ids, params, config, attention_mask, positions)
    return logits, _checks.guard("gpt.forward", cache, ids=ids, params=params,
                                 attention_mask=attention_mask, position_ids=position_ids)


def _forward(ids, params, config, attention_mask=None, positions=None):
    h, trunk_c = _hidden_forward(ids, params, config, attention_mask, positions)
    head_w = _head(params, config)
    return h @ head_w, (config, trunk_c, h, head_w)


@contract(example=lambda rng: {"dlogits": rng.standard_normal((2, 3, 11)),
                               "cache": forward(**_ids_example(rng))[1]})
def backward(dlogits: np.ndarray, cache) -> dict:
    """Gradients of every parameter, a tree shaped like the parameters.

    Parameters
    ----------
    dlogits : ndarray, shape (B, T, V), floating
        Upstream gradient.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        Same tree as the parameters.

    Raises
    ------
    TypeError
        If `dlogits` is not a floating-point array.
    ValueError
        If `dlogits` has the wrong shape or holds NaN or inf.
    """
    config, trunk_c, h, head_w = _checks.unguard("gpt.backward", cache, 4)
    dlogits = _checks.dout_like("gpt.backward", dlogits, h.shape[:-1] + (head_w.shape[1],),
                                name="dlogits")
    dh, d_head = _head_backward(dlogits, h, head_w)
    return _add_head_grad(_hidden_backward(dh, trunk_c), d_head, config)


@contract(example=lambda rng: {**_ids_example(rng), "targets": rng.integers(0, 11, (2, 3)),
                               "ignore_index": -100, "dloss": 2.0},
          lenient={**_MASKS_LENIENT, "ignore_index": ("negative", "zero"), "dloss": ("zero",)})
def loss_and_grads(ids: np.ndarray, targets: np.ndarray, params: dict, config: GPTConfig,
                   ignore_index: int = -100, dloss: float = 1.0,
                   attention_mask: np.ndarray | None = None,
                   position_ids: np.ndarray | None = None):
    """Mean next-token cross-entropy of a batch and the gradient of every parameter.

    ``ids`` and ``targets`` are (B, T); usually ``targets`` is ``ids`` shifted left by one.
    ``dloss`` is the gradient fed into the loss: 1 gives the gradient of the loss itself, a
    loss scale ``S`` gives the gradient of ``S * loss`` (mixed-precision loss scaling).
    With an ``attention_mask``, the targets at padding positions are ignored.

    Parameters
    ----------
    ids, targets : ndarray of int, shape (B, T)
        Inputs and targets, in [0, V) (`targets` may hold `ignore_index`).
    params : dict
        The GPT's parameters.
    config : GPTConfig
        Its configuration.
    ignore_index : int, default -100
        Target value that counts for nothing.
    dloss : float, default 1.0
        Gradient fed into the loss (>= 0, finite).
    attention_mask, position_ids : ndarray, shape (B, T), optional
        As in `forward`.

    Returns
    -------
    loss : float
        Mean cross-entropy over the counted targets.
    grads : dict
        Gradients, same tree as the parameters.

    Raises
    ------
    TypeError
        If an argument has the wrong type or dtype.
    ValueError
        If an id, target or position is out of range, or a shape is wrong.
    """
    where = "gpt.loss_and_grads"
    _check_params(params, config, where)
    positions = _check_inputs(where, ids, config, attention_mask, position_ids)
    ignore_index = _checks.integer(where, "ignore_index", ignore_index)
    _checks.int_array(where, "targets", targets, 0, config.vocab_size, allowed=(ignore_index,))
    _checks.same_shape(where, "targets", targets, ids.shape)
    dloss = _checks.number(where, "dloss", dloss, low=0)
    logits, cache = _forward(ids, params, config, attention_mask, positions)
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
    """The structure `decode` returns, for batch size ``B``; returns ``next_position``."""
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
    logits = h @ _head(params, config)
    return logits, {"k": [k for k, _ in presents], "v": [v for _, v in presents],
                    "mask": keys, "next_position": start + new.sum(axis=1)}
