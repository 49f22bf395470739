r"""Converters between the GPT's parameter tree in its Llama configuration and Hugging Face's
``LlamaForCausalLM`` state dicts, both ways, on mappings of NumPy arrays (load a checkpoint
with PyTorch or safetensors and turn its tensors into arrays; this module never imports
torch).

Per block ``i`` (Hugging Face's names start with ``model.layers.{i}.``):

| ours (``blocks[i]``) | Hugging Face |
| --- | --- |
| ``ln1.gamma`` | ``input_layernorm.weight`` |
| ``attn.q.W``, ``attn.k.W``, ``attn.v.W`` | ``self_attn.q_proj.weight``, ``k_proj``, ``v_proj`` |
| ``attn.proj.W`` | ``self_attn.o_proj.weight`` |
| ``ln2.gamma`` | ``post_attention_layernorm.weight`` |
| ``ffn.gate.W``, ``ffn.up.W``, ``ffn.down.W`` | ``mlp.gate_proj.weight``, ``up_proj``, ... |

and around them ``wte.W`` = ``model.embed_tokens.weight``, ``ln_f.gamma`` =
``model.norm.weight``, ``lm_head.W`` = ``lm_head.weight`` transposed.  With biases
(``attention_bias`` and ``mlp_bias``, which our single ``bias`` option sets together) each
``.b`` is the layer's ``.bias``.

Weight layout.  Our linear layers compute $y = x W$ with ``W`` stored (in, out); PyTorch's
``nn.Linear`` stores (out, in) for $y = x W^\top$, so every projection and the head are
transposed; the token table is (V, C) in both.  With grouped-query attention ``k_proj`` and
``v_proj`` have ``n_kv_heads * head_dim`` rows.

Rotary layout.  Hugging Face's Llama rotates the two halves of each head (``rotate_half``),
and its checkpoints were converted from Meta's interleaved-pair layout by permuting the rows
of ``q_proj`` and ``k_proj`` once.  :mod:`reference.rope` uses the same split-half layout, so
the q and k weights are copied unchanged (transposed only).  Weights in Meta's original
layout would need that permutation first; this module does not read them.

Tied weights (``tie_word_embeddings``): the head is the token table; ``lm_head.weight``, if
present, must equal it.  The rotary frequencies some older checkpoints store
(``rotary_emb.inv_freq``) are recomputed, not read.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from llmref._contract import contract
from llmref.transformer import convert, gpt
from llmref.transformer.gpt import GPTConfig

#: one block's parameters: our path -> Hugging Face's name after ``model.layers.{i}.``
BLOCK_NAMES = {
    "ln1.gamma": "input_layernorm.weight",
    "attn.q.W": "self_attn.q_proj.weight", "attn.q.b": "self_attn.q_proj.bias",
    "attn.k.W": "self_attn.k_proj.weight", "attn.k.b": "self_attn.k_proj.bias",
    "attn.v.W": "self_attn.v_proj.weight", "attn.v.b": "self_attn.v_proj.bias",
    "attn.proj.W": "self_attn.o_proj.weight", "attn.proj.b": "self_attn.o_proj.bias",
    "ln2.gamma": "post_attention_layernorm.weight",
    "ffn.gate.W": "mlp.gate_proj.weight", "ffn.gate.b": "mlp.gate_proj.bias",
    "ffn.up.W": "mlp.up_proj.weight", "ffn.up.b": "mlp.up_proj.bias",
    "ffn.down.W": "mlp.down_proj.weight", "ffn.down.b": "mlp.down_proj.bias",
}

#: what a configuration must have to be a Llama, field by field
LLAMA_OPTIONS = {"activation": "swiglu", "norm": "rms", "position": "rope",
                 "fused_qkv": False, "norm_first": True, "residual": True}


# --- configurations -----------------------------------------------------------------------

def _example_config():
    return GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=4, n_layers=2, d_ff=12,
                     activation="swiglu", tie_weights=False, norm="rms", position="rope",
                     n_kv_heads=2, bias=False, fused_qkv=False)


@contract(example=lambda rng: {"hf_config": config_to_hf_llama(_example_config())},
          lenient={"hf_config": ("extra_key",)})
def config_from_hf_llama(hf_config: Mapping) -> GPTConfig:
    """Our configuration of a Hugging Face Llama (the fields of ``LlamaConfig.to_dict()`` or a
    ``config.json``).

    Parameters
    ----------
    hf_config : Mapping
        Needs ``vocab_size``, ``hidden_size``, ``intermediate_size``, ``num_hidden_layers``,
        ``num_attention_heads``, ``max_position_embeddings``; reads ``num_key_value_heads``
        (default: the number of heads), ``rms_norm_eps`` (1e-6), the rotary base from
        ``rope_parameters["rope_theta"]`` (transformers 5) or ``rope_theta`` (10000),
        ``tie_word_embeddings`` (false), ``attention_bias`` and ``mlp_bias`` (false).

    Returns
    -------
    GPTConfig

    Raises
    ------
    TypeError
        If ``hf_config`` is not a mapping.
    ValueError
        If a required field is missing, or the model uses something ours lacks: an
        activation other than SiLU, rotary scaling, a head dimension other than
        ``hidden_size / num_attention_heads``, biases in only one of attention and MLP,
        ``pretraining_tp`` other than 1.
    """
    where = "convert_llama.config_from_hf_llama"
    convert._mapping(where, "hf_config", hf_config)
    required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "max_position_embeddings")
    missing = [k for k in required if k not in hf_config]
    if missing:
        raise ValueError(f"{where}: argument 'hf_config' is missing {missing}")
    if hf_config.get("model_type", "llama") != "llama":
        raise ValueError(f"{where}: argument 'hf_config' must describe a Llama (model_type "
                         f"'llama'), got model_type {hf_config['model_type']!r}")
    rope = dict(hf_config.get("rope_parameters") or {})
    scaling = hf_config.get("rope_scaling")
    if rope.get("rope_type", "default") != "default" or scaling:
        raise ValueError(f"{where}: argument 'hf_config' uses rotary scaling "
                         f"({rope or scaling}); our RoPE has plain frequencies only")
    theta = rope.get("rope_theta", hf_config.get("rope_theta", 10000.0))
    C, H = hf_config["hidden_size"], hf_config["num_attention_heads"]
    fixed = {"hidden_act": "silu", "pretraining_tp": 1,
             "head_dim": C // H if isinstance(C, int) and isinstance(H, int) else None}
    for key, value in fixed.items():
        if hf_config.get(key) is not None and hf_config[key] != value:
            raise ValueError(f"{where}: argument hf_config[{key!r}] must be {value!r} (the "
                             f"only setting our model has), got {hf_config[key]!r}")
    bias = hf_config.get("attention_bias", False)
    if hf_config.get("mlp_bias", False) != bias:
        raise ValueError(f"{where}: argument 'hf_config' must have attention_bias and "
                         f"mlp_bias equal (one bias option here), got {bias!r} and "
                         f"{hf_config.get('mlp_bias', False)!r}")
    try:
        return GPTConfig(vocab_size=hf_config["vocab_size"],
                         context_len=hf_config["max_position_embeddings"], d_model=C,
                         n_heads=H, n_layers=hf_config["num_hidden_layers"],
                         d_ff=hf_config["intermediate_size"], activation="swiglu",
                         tie_weights=bool(hf_config.get("tie_word_embeddings", False)),
                         eps=hf_config.get("rms_norm_eps", 1e-6), norm="rms",
                         position="rope", rope_theta=theta,
                         n_kv_heads=hf_config.get("num_key_value_heads") or H,
                         bias=bool(bias), fused_qkv=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: argument 'hf_config' gives an invalid configuration: "
                        f"{exc}") from exc


@contract(example=lambda rng: {"config": _example_config()})
def config_to_hf_llama(config: GPTConfig) -> dict:
    """The ``LlamaConfig`` fields of our configuration (``LlamaConfig(**fields)`` builds it).

    Parameters
    ----------
    config : GPTConfig
        A Llama-shaped configuration (see :data:`LLAMA_OPTIONS`).

    Returns
    -------
    dict
        ``vocab_size``, ``hidden_size``, ``intermediate_size``, ``num_hidden_layers``,
        ``num_attention_heads``, ``num_key_value_heads``, ``max_position_embeddings``,
        ``rms_norm_eps``, ``rope_theta``, ``tie_word_embeddings``, ``attention_bias``,
        ``mlp_bias``, ``hidden_act``.

    Raises
    ------
    TypeError
        If ``config`` is not a GPTConfig.
    ValueError
        If it is not Llama-shaped (naming the fields that are not).
    """
    _check_llama("convert_llama.config_to_hf_llama", config)
    return {"vocab_size": config.vocab_size, "hidden_size": config.d_model,
            "intermediate_size": config.hidden, "num_hidden_layers": config.n_layers,
            "num_attention_heads": config.n_heads, "num_key_value_heads": config.kv_heads,
            "max_position_embeddings": config.context_len, "rms_norm_eps": config.eps,
            "rope_theta": config.rope_theta, "tie_word_embeddings": config.tie_weights,
            "attention_bias": config.bias, "mlp_bias": config.bias, "hidden_act": "silu"}


# --- weights ------------------------------------------------------------------------------

@contract(example=lambda rng: {"state_dict": to_hf_llama(gpt.init(_example_config(), rng),
                                                          _example_config()),
                               "config": _example_config()})
def from_hf_llama(state_dict: Mapping, config: GPTConfig, dtype=None) -> dict:
    """Our parameter tree from a ``LlamaForCausalLM`` state dict of NumPy arrays.

    Parameters
    ----------
    state_dict : Mapping of str to numpy.ndarray
        Hugging Face's names (``model.layers.0.self_attn.q_proj.weight``, ...,
        ``lm_head.weight``).  Parameter gradients in the same names convert the same way.
        Not modified.
    config : GPTConfig
        Llama-shaped (for example from :func:`config_from_hf_llama`).
    dtype : numpy dtype, default None
        Cast every array to it (default: keep each array's own).

    Returns
    -------
    dict
        The parameter tree of :func:`llmref.transformer.gpt.init`'s layout; fresh arrays.

    Raises
    ------
    TypeError
        If ``state_dict`` is not a mapping or a value is not a floating-point NumPy array.
    ValueError
        If a parameter is missing, unknown or of the wrong shape, the configuration is not
        Llama-shaped, or a tied model's ``lm_head.weight`` differs from its token table.
    """
    where = "convert_llama.from_hf_llama"
    _check_llama(where, config)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{where}: argument 'state_dict' must be a mapping of names to "
                        f"arrays, got {type(state_dict).__name__}")
    state = {k: v for k, v in state_dict.items() if not k.endswith("rotary_emb.inv_freq")}
    names = _names(config)
    if config.tie_weights and "lm_head.weight" in state:       # the table, if stored at all
        head, table = state.pop("lm_head.weight"), state.get("model.embed_tokens.weight")
        if table is not None and not (np.shape(head) == np.shape(table)
                                      and np.array_equal(head, table)):
            raise ValueError(f"{where}: argument state_dict['lm_head.weight'] must equal "
                             f"'model.embed_tokens.weight' in a model with tied weights")
    expected = set(names.values())
    missing = sorted(expected - set(state))
    unknown = sorted(set(state) - expected)
    if missing or unknown:
        raise ValueError(f"{where}: argument 'state_dict' does not match the configuration: "
                         f"missing {missing[:6]}{' ...' if len(missing) > 6 else ''}, "
                         f"unknown {unknown[:6]}{' ...' if len(unknown) > 6 else ''}")

    def take(path, shape):
        name = names[path]
        value = state[name]
        if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
            raise TypeError(f"{where}: argument state_dict[{name!r}] must be a floating-point "
                            f"NumPy array, got {getattr(value, 'dtype', type(value).__name__)}")
        theirs = shape[::-1] if _transposed(path) else shape
        if value.shape != theirs:
            raise ValueError(f"{where}: argument state_dict[{name!r}] must have shape "
                             f"{theirs} for this configuration, got {value.shape}")
        out = np.array(value.T if _transposed(path) else value, dtype=dtype or value.dtype)
        return out

    return _map_paths(take, gpt.shapes(config))


@contract(example=lambda rng: {"params": gpt.init(_example_config(), rng),
                               "config": _example_config()})
def to_hf_llama(params: dict, config: GPTConfig) -> dict:
    """A ``LlamaForCausalLM`` state dict of NumPy arrays from our parameter tree.

    ``LlamaForCausalLM(LlamaConfig(**config_to_hf_llama(config))).load_state_dict(...)``,
    after turning the arrays into tensors, loads it strictly (with tied weights the head is
    the table, and ``lm_head.weight`` is left out as Hugging Face's files do).

    Parameters
    ----------
    params : dict
        Our parameter tree (or a tree of gradients).  Not modified.
    config : GPTConfig
        Llama-shaped.

    Returns
    -------
    dict of str to numpy.ndarray
        Fresh contiguous arrays.

    Raises
    ------
    TypeError
        If ``params`` is not a dict.
    ValueError
        If the configuration is not Llama-shaped, or the tree lacks a parameter, has one the
        configuration does not, or one of another shape.
    """
    where = "convert_llama.to_hf_llama"
    _check_llama(where, config)
    flat = convert._flat(where, params)
    shapes = gpt.shapes(config, flat=True)
    missing, unknown = sorted(set(shapes) - set(flat)), sorted(set(flat) - set(shapes))
    if missing or unknown:
        raise ValueError(f"{where}: argument 'params' does not match the configuration: "
                         f"missing {missing[:6]}, unknown {unknown[:6]}")
    names = _names(config)
    out = {}
    for path, shape in shapes.items():
        value = flat[path]
        if value.shape != shape:
            raise ValueError(f"{where}: argument params[{path!r}] must have shape {shape}, got "
                             f"{value.shape}")
        out[names[path]] = np.array(value.T if _transposed(path) else value, order="C",
                                    copy=True)
    return out


# --- helpers ------------------------------------------------------------------------------

def _names(config: GPTConfig) -> dict:
    """Our dotted path -> Hugging Face's name, for every parameter of ``config``'s tree."""
    names = {"wte.W": "model.embed_tokens.weight", "ln_f.gamma": "model.norm.weight",
             "lm_head.W": "lm_head.weight"}
    for i in range(config.n_layers):
        names.update({f"blocks.{i}.{ours}": f"model.layers.{i}.{theirs}"
                      for ours, theirs in BLOCK_NAMES.items()})
    return {path: names[path] for path in gpt.shapes(config, flat=True)}


def _transposed(path: str) -> bool:
    """``nn.Linear`` weights (every ``W`` but the token table) are stored (out, in)."""
    return path.endswith(".W") and path != "wte.W"


def _map_paths(fn, tree, prefix=""):
    """The tree of shapes with ``fn(path, shape)`` at every leaf."""
    if isinstance(tree, tuple):
        return fn(prefix, tree)
    if isinstance(tree, dict):
        return {k: _map_paths(fn, v, f"{prefix}.{k}" if prefix else k) for k, v in tree.items()}
    return [_map_paths(fn, v, f"{prefix}.{i}") for i, v in enumerate(tree)]


def _check_llama(where: str, config) -> None:
    if not isinstance(config, GPTConfig):
        raise TypeError(f"{where}: argument 'config' must be a GPTConfig, got "
                        f"{type(config).__name__}")
    wrong = {k: getattr(config, k) for k, v in LLAMA_OPTIONS.items() if getattr(config, k) != v}
    if wrong:
        raise ValueError(f"{where}: argument 'config' is not Llama-shaped: it has {wrong}, a "
                         f"Llama needs {dict((k, LLAMA_OPTIONS[k]) for k in wrong)}")


