r"""Converters between the GPT's parameter tree and the checkpoints of Hugging Face's GPT-2 and
of nanoGPT, both ways, on mappings of NumPy arrays (load a PyTorch checkpoint with PyTorch and
turn its tensors into arrays with ``.numpy()``; this module never imports torch).

The three models are the same network under different names.  Per block ``i``:

| ours (``blocks[i]``) | GPT-2 and nanoGPT (``transformer.h.{i}.``) |
| --- | --- |
| ``ln1.gamma``, ``ln1.beta`` | ``ln_1.weight``, ``ln_1.bias`` |
| ``attn.qkv.W``, ``attn.qkv.b`` | ``attn.c_attn.weight``, ``attn.c_attn.bias`` |
| ``attn.proj.W``, ``attn.proj.b`` | ``attn.c_proj.weight``, ``attn.c_proj.bias`` |
| ``ln2.gamma``, ``ln2.beta`` | ``ln_2.weight``, ``ln_2.bias`` |
| ``ffn.fc.W``, ``ffn.fc.b`` | ``mlp.c_fc.weight``, ``mlp.c_fc.bias`` |
| ``ffn.proj.W``, ``ffn.proj.b`` | ``mlp.c_proj.weight``, ``mlp.c_proj.bias`` |

and around them ``wte.W`` = ``transformer.wte.weight``, ``wpe.W`` = ``transformer.wpe.weight``,
``ln_f`` = ``transformer.ln_f``, ``lm_head.W`` = ``lm_head.weight`` transposed.

Weight layout.  Our linear layers compute $y = x W + b$ with ``W`` stored (in, out).  GPT-2's
``Conv1D`` stores its weight the same way, so only the head (a ``torch.nn.Linear``) is
transposed.  nanoGPT uses ``nn.Linear`` everywhere, whose weight is (out, in) for
$y = x W^\top + b$: every block weight and the head are transposed, the two embedding tables
are not.  The fused ``c_attn`` holds queries, keys and values side by side, and each of them
head after head, in all three, so no columns move.

Weight tying.  With tied weights the head is the token table, and the checkpoint's
``lm_head.weight`` (written by ``state_dict()``, absent from files that drop shared tensors)
must equal ``wte``.  Gradients convert the same way as weights: a tied model's table gradient
already holds the head's share.

Buffers older GPT-2 versions and nanoGPT (without flash attention) save as ``attn.bias`` or
``attn.masked_bias`` (the causal mask) are skipped.  nanoGPT saves ``torch.compile``'d models
with every name prefixed by ``_orig_mod.``, which is stripped.  GPT-2 checkpoints saved from
``GPT2Model`` rather than ``GPT2LMHeadModel`` lack the ``transformer.`` prefix; both load.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import numpy as np

from llmref import params as _params
from llmref._contract import contract
from llmref.params import unflatten
from llmref.transformer import gpt
from llmref.transformer.gpt import GPTConfig

#: one block's parameters: our path -> GPT-2's name (nanoGPT uses the same names)
BLOCK_NAMES = {
    "ln1.gamma": "ln_1.weight", "ln1.beta": "ln_1.bias",
    "attn.qkv.W": "attn.c_attn.weight", "attn.qkv.b": "attn.c_attn.bias",
    "attn.proj.W": "attn.c_proj.weight", "attn.proj.b": "attn.c_proj.bias",
    "ln2.gamma": "ln_2.weight", "ln2.beta": "ln_2.bias",
    "ffn.fc.W": "mlp.c_fc.weight", "ffn.fc.b": "mlp.c_fc.bias",
    "ffn.proj.W": "mlp.c_proj.weight", "ffn.proj.b": "mlp.c_proj.bias",
}

#: Hugging Face's GPT-2 activation names -> ours (``gelu_new`` is the tanh approximation)
HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu",
                  "relu": "relu"}
_TO_HF_ACTIVATION = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}

#: GPT-2 options our model does not have, with the only value it can convert
_HF_FIXED = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
             "add_cross_attention": False}

NANOGPT_PREFIX = "_orig_mod."
_NANOGPT_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size", "dropout")
_BUFFER = re.compile(r"(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)")

# the input contracts' examples: a one-block GPT-2 and a one-block nanoGPT
_GPT2 = GPTConfig(vocab_size=5, context_len=3, d_model=4, n_heads=2, n_layers=1)
_NANO = GPTConfig(vocab_size=5, context_len=3, d_model=4, n_heads=2, n_layers=1,
                  activation="gelu")


# --- configurations -----------------------------------------------------------------------

@contract(example=lambda rng: {"hf_config": {"vocab_size": 11, "n_positions": 6, "n_embd": 8,
                                             "n_head": 2, "n_layer": 1}},
          lenient={"hf_config": ("extra_key",)})       # a GPT2Config has many fields
def config_from_hf_gpt2(hf_config: Mapping) -> GPTConfig:
    """Our configuration of a Hugging Face GPT-2 (the fields of ``GPT2Config.to_dict()``).

    Parameters
    ----------
    hf_config : Mapping
        Needs ``vocab_size``, ``n_positions``, ``n_embd``, ``n_head``, ``n_layer``; reads
        ``n_inner`` (default ``4 n_embd``), ``activation_function`` (default ``gelu_new``),
        ``layer_norm_epsilon`` (default 1e-5) and ``tie_word_embeddings`` (default true).
        Dropout rates and generation settings are ignored (our model has no dropout).

    Returns
    -------
    GPTConfig
        Pre-norm blocks with residual connections, as GPT-2.

    Raises
    ------
    TypeError
        If ``hf_config`` is not a mapping.
    ValueError
        If a required field is missing, the activation has no counterpart here, or an option
        our model lacks is switched on (attention scaled by layer index, cross-attention,
        unscaled attention).
    """
    where = "convert.config_from_hf_gpt2"
    _mapping(where, "hf_config", hf_config)
    _required(where, "hf_config", hf_config,
              ("vocab_size", "n_positions", "n_embd", "n_head", "n_layer"))
    if hf_config.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"{where}: argument 'hf_config' must describe a GPT-2 "
                         f"(model_type 'gpt2'), got model_type {hf_config['model_type']!r}")
    for key, value in _HF_FIXED.items():
        if hf_config.get(key, value) != value:
            raise ValueError(f"{where}: argument hf_config[{key!r}] must be {value} (the only "
                             f"setting our GPT has), got {hf_config[key]!r}")
    act = hf_config.get("activation_function", "gelu_new")
    if act not in HF_ACTIVATIONS:
        raise ValueError(f"{where}: argument hf_config['activation_function'] must be one of "
                         f"{sorted(HF_ACTIVATIONS)}, got {act!r}")
    return _config(where, vocab_size=hf_config["vocab_size"],
                   context_len=hf_config["n_positions"], d_model=hf_config["n_embd"],
                   n_heads=hf_config["n_head"], n_layers=hf_config["n_layer"],
                   d_ff=hf_config.get("n_inner"), activation=HF_ACTIVATIONS[act],
                   eps=hf_config.get("layer_norm_epsilon", 1e-5),
                   tie_weights=hf_config.get("tie_word_embeddings", True))


@contract(example=lambda rng: {"config": _GPT2})
def config_to_hf_gpt2(config: GPTConfig) -> dict:
    """The ``GPT2Config`` fields of our configuration (``GPT2Config(**fields)`` builds it).

    Parameters
    ----------
    config : GPTConfig
        A GPT-2-shaped configuration: pre-norm, residual, an activation GPT-2 offers.

    Returns
    -------
    dict
        ``vocab_size``, ``n_positions``, ``n_embd``, ``n_head``, ``n_layer``, ``n_inner``,
        ``activation_function``, ``layer_norm_epsilon``, ``tie_word_embeddings``.

    Raises
    ------
    TypeError
        If ``config`` is not a GPTConfig.
    ValueError
        If GPT-2 cannot express the configuration (naming the fields it cannot).
    """
    return _hf_fields("convert.config_to_hf_gpt2", config)


@contract(example=lambda rng: {"model_args": {"n_layer": 1, "n_head": 2, "n_embd": 8,
                                              "block_size": 6, "vocab_size": 11}})
def config_from_nanogpt(model_args: Mapping) -> GPTConfig:
    """Our configuration of a nanoGPT checkpoint's ``model_args``.

    nanoGPT's blocks are GPT-2's with the exact (erf) GELU, hidden width ``4 n_embd``, layer
    norms with eps 1e-5, and tied weights.

    Parameters
    ----------
    model_args : Mapping
        ``n_layer``, ``n_head``, ``n_embd``, ``block_size``, ``vocab_size`` (required),
        ``bias`` and ``dropout`` (read by :func:`from_nanogpt` from the weights, and ignored).

    Returns
    -------
    GPTConfig

    Raises
    ------
    TypeError
        If ``model_args`` is not a mapping.
    ValueError
        If a required key is missing or an unknown key is present (a variant of nanoGPT
        this converter does not know).
    """
    where = "convert.config_from_nanogpt"
    _mapping(where, "model_args", model_args)
    _required(where, "model_args", model_args,
              ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"))
    unknown = sorted(set(model_args) - set(_NANOGPT_ARGS))
    if unknown:
        raise ValueError(f"{where}: argument 'model_args' has unknown key(s) {unknown}; "
                         f"nanoGPT's are {list(_NANOGPT_ARGS)}")
    return _config(where, vocab_size=model_args["vocab_size"],
                   context_len=model_args["block_size"], d_model=model_args["n_embd"],
                   n_heads=model_args["n_head"], n_layers=model_args["n_layer"],
                   activation="gelu", eps=1e-5, tie_weights=True)


@contract(example=lambda rng: {"config": _NANO, "bias": False, "dropout": 0.1})
def config_to_nanogpt(config: GPTConfig, bias: bool = True, dropout: float = 0.0) -> dict:
    """nanoGPT's ``model_args`` for our configuration.

    Parameters
    ----------
    config : GPTConfig
        Must be nanoGPT-shaped: exact GELU, ``d_ff = 4 d_model``, eps 1e-5, tied, pre-norm.
    bias : bool, default True
        nanoGPT's ``bias`` flag (linear layers and layer norms with biases).
    dropout : float, default 0.0
        nanoGPT's dropout rate (our model has none; 0 reproduces it).

    Returns
    -------
    dict
        ``n_layer``, ``n_head``, ``n_embd``, ``block_size``, ``bias``, ``vocab_size``,
        ``dropout``.

    Raises
    ------
    TypeError
        If ``config`` is not a GPTConfig, ``bias`` not a bool or ``dropout`` not a number.
    ValueError
        If nanoGPT cannot express the configuration (naming the fields it cannot), or
        ``dropout`` is outside [0, 1).
    """
    return _nanogpt_args("convert.config_to_nanogpt", config, bias, dropout)


# --- weights ------------------------------------------------------------------------------

@contract(example=lambda rng: {"state_dict": to_hf_gpt2(gpt.init(_GPT2, rng), _GPT2),
                               "config": _GPT2})
def from_hf_gpt2(state_dict: Mapping, config: GPTConfig, dtype=None) -> dict:
    """Our parameter tree from a Hugging Face GPT-2 state dict of NumPy arrays.

    Parameters
    ----------
    state_dict : Mapping of str to numpy.ndarray
        ``GPT2LMHeadModel`` names (``transformer.h.0.attn.c_attn.weight``, ...,
        ``lm_head.weight``), or ``GPT2Model`` names without the ``transformer.`` prefix.
        Parameter gradients in the same names convert the same way.  Not modified.
    config : GPTConfig
        The model's configuration (for example from :func:`config_from_hf_gpt2`).
    dtype : numpy dtype, default None
        Cast every array to it (default: keep each array's own).

    Returns
    -------
    dict
        The parameter tree of :func:`llmref.transformer.gpt.init`'s layout; fresh arrays.

    Raises
    ------
    TypeError
        If a value is not a floating-point NumPy array.
    ValueError
        If a parameter is missing, unknown or of the wrong shape for ``config``, the
        configuration is not GPT-2-shaped, or tied weights have a head unlike the table.
    """
    where = "convert.from_hf_gpt2"
    _hf_fields(where, config)
    state = _strip(where, state_dict, lambda k: k.removeprefix("transformer."), _BUFFER)
    return unflatten(_from_names(where, state, config, _names(config, ""), set(), dtype))


@contract(example=lambda rng: {"params": gpt.init(_GPT2, rng), "config": _GPT2})
def to_hf_gpt2(params: dict, config: GPTConfig) -> dict:
    """A ``GPT2LMHeadModel`` state dict of NumPy arrays from our parameter tree.

    ``GPT2LMHeadModel(GPT2Config(**config_to_hf_gpt2(config))).load_state_dict(...)``, after
    turning the arrays into tensors, loads it strictly.  ``lm_head.weight`` is included even
    when tied (a copy of the table), as ``state_dict()`` includes it.

    Parameters
    ----------
    params : dict
        Our parameter tree (or a tree of gradients).  Not modified.
    config : GPTConfig

    Returns
    -------
    dict of str to numpy.ndarray
        Fresh contiguous arrays in the model's order.

    Raises
    ------
    TypeError
        If ``params`` is not a dict or ``config`` not a GPTConfig.
    ValueError
        If the configuration is not GPT-2-shaped or the tree lacks a parameter or has one
        the table does not know, or of another shape.
    """
    where = "convert.to_hf_gpt2"
    _hf_fields(where, config)
    return _to_names(where, _flat(where, params), config, _names(config, "transformer."),
                     set())


@contract(example=lambda rng: {"state_dict": to_nanogpt(gpt.init(_NANO, rng), _NANO),
                               "config": _NANO})
def from_nanogpt(state_dict: Mapping, config: GPTConfig, dtype=None) -> dict:
    """Our parameter tree from a nanoGPT state dict (``checkpoint["model"]``) of NumPy arrays.

    A ``bias=False`` nanoGPT (no ``transformer.ln_f.bias``) gives zero linear biases and
    layer norms with ``beta = 0``: the same function, in the layout of a configuration with
    biases (the GPT checks that every bias its configuration calls for is there).

    Parameters
    ----------
    state_dict : Mapping of str to numpy.ndarray
        nanoGPT names, with or without the ``_orig_mod.`` prefix of a compiled model.
        ``nn.Linear`` weights are (out, in) and are transposed.  Not modified.
    config : GPTConfig
        For example from :func:`config_from_nanogpt` of the checkpoint's ``model_args``.
    dtype : numpy dtype, default None
        Cast every array to it (default: keep each array's own).

    Returns
    -------
    dict
        The parameter tree; fresh arrays.

    Raises
    ------
    TypeError
        If a value is not a floating-point NumPy array.
    ValueError
        If a parameter is missing, unknown or of the wrong shape, or the configuration is not
        nanoGPT-shaped.
    """
    where = "convert.from_nanogpt"
    _nanogpt_args(where, config)
    state = _strip(where, state_dict, lambda k: k.removeprefix(NANOGPT_PREFIX), _BUFFER)
    names = _names(config, "transformer.")
    bias = "transformer.ln_f.bias" in state
    if not bias:                                                   # nanoGPT's bias=False
        names = {o: t for o, t in names.items() if not o.endswith((".b", ".beta"))}
    flat = _from_names(where, state, config, names, _linear_weights(names), dtype)
    if not bias:                    # the same function with zero biases, in the layout of
        zeros_like = flat["ln_f.gamma"]                       # a configuration with biases
        for path, shape in _shapes(config).items():
            if path.endswith((".b", ".beta")):
                flat[path] = np.zeros(shape, dtype=zeros_like.dtype)
    return unflatten(flat)


@contract(example=lambda rng: {"params": gpt.init(_NANO, rng), "config": _NANO,
                               "bias": True})
def to_nanogpt(params: dict, config: GPTConfig, bias: bool = True) -> dict:
    """A nanoGPT state dict of NumPy arrays from our parameter tree (no ``_orig_mod.``).

    Parameters
    ----------
    params : dict
        Our parameter tree.  Not modified.
    config : GPTConfig
        nanoGPT-shaped (see :func:`config_to_nanogpt`).
    bias : bool, default True
        Write the biases (nanoGPT's ``bias=True``).  With ``bias=False`` every bias and
        layer-norm ``beta`` of the tree must be zero or absent.

    Returns
    -------
    dict of str to numpy.ndarray
        Fresh contiguous arrays, ``lm_head.weight`` included (it is the token table).

    Raises
    ------
    TypeError
        If ``params`` is not a dict, ``config`` not a GPTConfig or ``bias`` not a bool.
    ValueError
        If the configuration is not nanoGPT-shaped, the tree does not match it, or
        ``bias=False`` would drop a nonzero bias.
    """
    where = "convert.to_nanogpt"
    _nanogpt_args(where, config, bias)
    flat = _flat(where, params)
    names = _names(config, "transformer.")
    if not bias:
        dropped = [o for o in names if o.endswith((".b", ".beta"))]
        nonzero = [o for o in dropped if o in flat and np.any(flat[o] != 0)]
        if nonzero:
            raise ValueError(f"{where}: argument 'params' has nonzero biases {nonzero[:4]} "
                             f"(of {len(nonzero)}), which bias=False would drop")
        flat = {k: v for k, v in flat.items() if k not in dropped}
        names = {o: t for o, t in names.items() if o not in dropped}
    return _to_names(where, flat, config, names, _linear_weights(names))


# --- helpers ------------------------------------------------------------------------------

def _names(config: GPTConfig, prefix: str) -> dict:
    """Our dotted path -> GPT-2's name (``prefix`` before all but the head), every parameter
    including ``lm_head.W`` (with tied weights it is stored, if at all, as the table)."""
    names = {"wte.W": "wte.weight", "wpe.W": "wpe.weight"}
    for i in range(config.n_layers):
        names.update({f"blocks.{i}.{ours}": f"h.{i}.{theirs}"
                      for ours, theirs in BLOCK_NAMES.items()})
    names.update({"ln_f.gamma": "ln_f.weight", "ln_f.beta": "ln_f.bias"})
    names = {ours: prefix + theirs for ours, theirs in names.items()}
    names["lm_head.W"] = "lm_head.weight"
    return names


def _linear_weights(names: dict) -> set:
    """The paths nanoGPT stores as ``nn.Linear`` weights: every ``W`` but the embeddings (the
    head is transposed in GPT-2 too, and handled apart)."""
    return {o for o in names if o.endswith(".W") and o not in ("wte.W", "wpe.W", "lm_head.W")}


def _shapes(config: GPTConfig) -> dict:
    """Our dotted path -> shape, for every parameter a GPT-2-shaped config has."""
    V, P, C, F = config.vocab_size, config.context_len, config.d_model, config.hidden
    block = {"ln1.gamma": (C,), "ln1.beta": (C,), "attn.qkv.W": (C, 3 * C),
             "attn.qkv.b": (3 * C,), "attn.proj.W": (C, C), "attn.proj.b": (C,),
             "ln2.gamma": (C,), "ln2.beta": (C,), "ffn.fc.W": (C, F), "ffn.fc.b": (F,),
             "ffn.proj.W": (F, C), "ffn.proj.b": (C,)}
    shapes = {"wte.W": (V, C), "wpe.W": (P, C), "ln_f.gamma": (C,), "ln_f.beta": (C,),
              "lm_head.W": (C, V)}
    for i in range(config.n_layers):
        shapes.update({f"blocks.{i}.{k}": s for k, s in block.items()})
    return shapes


def _from_names(where, state: dict, config, names: dict, transposed: set, dtype) -> dict:
    """Their names -> our flat dict: pick, check the shape, transpose, copy.  The head
    (``lm_head.weight``, an ``nn.Linear`` in both) is transposed; when tied it is not kept,
    and must equal the table if present."""
    shapes = _shapes(config)
    names = dict(names)
    transposed = transposed | {"lm_head.W"}
    head, table = state.get(names["lm_head.W"]), state.get(names["wte.W"])
    if config.tie_weights:
        if head is not None and table is not None and (
                head.shape != table.shape or not np.array_equal(head, table)):
            raise ValueError(f"{where}: argument state_dict['lm_head.weight'] differs from the "
                             f"token table {names['wte.W']!r}, but config.tie_weights is True "
                             f"(convert with a config whose tie_weights is False)")
        known = set(names.values())
        del names["lm_head.W"]
    else:
        known = set(names.values())
    missing = [t for t in names.values() if t not in state]
    if missing:
        raise ValueError(f"{where}: argument 'state_dict' is missing {len(missing)} "
                         f"parameter(s) of this config, first {missing[:4]}")
    unknown = sorted(set(state) - known)
    if unknown:
        raise ValueError(f"{where}: argument 'state_dict' has {len(unknown)} name(s) this "
                         f"config does not know, first {unknown[:4]} (another number of "
                         f"layers, or another architecture?)")
    flat = {}
    for ours, theirs in names.items():
        value = state[theirs]
        want = shapes[ours][::-1] if ours in transposed else shapes[ours]
        if value.shape != want:
            raise ValueError(f"{where}: argument state_dict[{theirs!r}] must have shape {want} "
                             f"for this config, got shape {value.shape}")
        value = value.T if ours in transposed else value
        flat[ours] = np.array(value, dtype=dtype or value.dtype, order="C", copy=True)
    return flat


def _to_names(where, flat: dict, config, names: dict, transposed: set) -> dict:
    """Our flat dict -> their names: check the shape, transpose, copy.  The head is
    transposed; when tied it is written as a copy of the table."""
    shapes = _shapes(config)
    wanted = set(names) - ({"lm_head.W"} if config.tie_weights else set())
    missing = sorted(wanted - set(flat))
    if missing:
        raise ValueError(f"{where}: argument 'params' is missing {len(missing)} parameter(s) "
                         f"of this config, first {missing[:4]}")
    unknown = sorted(set(flat) - wanted)
    if unknown:
        raise ValueError(f"{where}: argument 'params' has {len(unknown)} path(s) this config "
                         f"does not know, first {unknown[:4]}")
    out = {}
    for ours, theirs in names.items():
        if ours == "lm_head.W" and config.tie_weights:
            out[theirs] = out[names["wte.W"]].copy()              # the head is the table
            continue
        value = flat[ours]
        if value.shape != shapes[ours]:                   # _flat: every leaf is an array
            raise ValueError(f"{where}: argument params[{ours!r}] must have shape "
                             f"{shapes[ours]} for this config, got {value.shape}")
        value = value.T if ours in transposed | {"lm_head.W"} else value
        out[theirs] = np.array(value, order="C", copy=True)
    return out


def _flat(where: str, params) -> dict:
    if not isinstance(params, dict):
        raise TypeError(f"{where}: argument 'params' must be a parameter tree (dict), "
                        f"got {type(params).__name__}")
    return _params._flatten(where, "params", params, "", {})     # messages name ``where``


def _strip(where: str, state_dict, rename, skip) -> dict:
    """Check the mapping, rename its keys, drop buffers; two keys becoming one is an error."""
    _mapping(where, "state_dict", state_dict)
    state = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: argument 'state_dict' must have str keys, got {key!r}")
        name = rename(key)
        if skip.fullmatch(name):
            continue
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            got = f"dtype {value.dtype}" if isinstance(value, np.ndarray) \
                else type(value).__name__
            raise TypeError(f"{where}: argument state_dict[{key!r}] must be a floating-point "
                            f"NumPy array (a torch tensor: .numpy()), got {got}")
        if name in state:
            raise ValueError(f"{where}: argument 'state_dict' holds {name!r} twice (with and "
                             f"without a prefix)")
        state[name] = value
    return state


def _config(where: str, **fields) -> GPTConfig:
    try:
        return GPTConfig(**fields)
    except (TypeError, ValueError) as exc:                 # the same type, our function's name
        raise type(exc)(f"{where}: the fields make no valid GPTConfig: {exc}") from None


def _hf_fields(where: str, config) -> dict:
    """``GPT2Config`` fields of ``config``, or ValueError naming what GPT-2 lacks."""
    _gpt_config(where, config)
    act = _TO_HF_ACTIVATION.get(config.activation)
    if act is None:
        raise ValueError(f"{where}: argument 'config' has activation {config.activation!r}, "
                         f"which Hugging Face's GPT-2 does not have")
    fields = {"vocab_size": config.vocab_size, "n_positions": config.context_len,
              "n_embd": config.d_model, "n_head": config.n_heads, "n_layer": config.n_layers,
              "n_inner": config.d_ff, "activation_function": act,
              "layer_norm_epsilon": config.eps, "tie_word_embeddings": config.tie_weights}
    _round_trip(where, config, config_from_hf_gpt2(fields), "Hugging Face's GPT-2")
    return fields


def _nanogpt_args(where: str, config, bias: bool = True, dropout: float = 0.0) -> dict:
    """nanoGPT's ``model_args`` of ``config``, or ValueError naming what nanoGPT lacks."""
    _gpt_config(where, config)
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"{where}: argument 'bias' must be a bool, got {bias!r}")
    if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, (int, float, np.number)):
        raise TypeError(f"{where}: argument 'dropout' must be a number, got {dropout!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{where}: argument 'dropout' must be in [0, 1), got {dropout!r}")
    args = {"n_layer": config.n_layers, "n_head": config.n_heads, "n_embd": config.d_model,
            "block_size": config.context_len, "bias": bool(bias),
            "vocab_size": config.vocab_size, "dropout": float(dropout)}
    _round_trip(where, config, config_from_nanogpt(args), "nanoGPT")
    return args


def _round_trip(where: str, config: GPTConfig, theirs: GPTConfig, target: str) -> None:
    """Raise unless ``theirs`` (``config`` sent to ``target`` and back) equals ``config``:
    then ``target`` has every option ``config`` sets."""
    def fields(c):
        return dataclasses.asdict(dataclasses.replace(c, d_ff=c.hidden))     # None = 4C

    ours, back = fields(config), fields(theirs)
    differ = [f"{k}={v!r}" for k, v in ours.items() if back[k] != v]
    if differ:
        raise ValueError(f"{where}: argument 'config' has options {target} does not have: "
                         f"{', '.join(differ)}")


def _gpt_config(where: str, config) -> None:
    if not isinstance(config, GPTConfig):
        raise TypeError(f"{where}: argument 'config' must be a GPTConfig, "
                        f"got {type(config).__name__}")


def _mapping(where: str, name: str, value) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: argument '{name}' must be a mapping, "
                        f"got {type(value).__name__}")


def _required(where: str, name: str, mapping: Mapping, keys) -> None:
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise ValueError(f"{where}: argument '{name}' is missing key(s) {missing}")
