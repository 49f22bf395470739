"""Converters between our parameter tree and the checkpoints of Hugging Face's GPT-2 and of
nanoGPT: the names and layouts each checkpoint uses (written out here from the two projects'
conventions, not taken from the converter), round trips both ways, and clear errors.  The
parity tests against real ``transformers`` models are in ``test_gpt2_parity.py``."""

import dataclasses

import numpy as np
import pytest

from llmref.spec.harness import params as hp
from llmref.spec.harness.checks import assert_same_tree, flatten
from llmref.transformer.gpt import GPTConfig

TIED = GPTConfig(vocab_size=11, context_len=6, d_model=8, n_heads=2, n_layers=2)
UNTIED = GPTConfig(vocab_size=7, context_len=5, d_model=6, n_heads=3, n_layers=1, d_ff=10,
                   activation="relu", tie_weights=False, eps=1e-6)
NANO = GPTConfig(vocab_size=9, context_len=5, d_model=4, n_heads=2, n_layers=2,
                 activation="gelu")

#: GPT-2's names for one block (``transformer.h.{i}.``) and whether a name is a Conv1D weight,
#: stored (in, out) like ours; nanoGPT uses the same names with nn.Linear's (out, in)
GPT2_BLOCK = {
    "ln_1.weight": ("ln1", "gamma"), "ln_1.bias": ("ln1", "beta"),
    "attn.c_attn.weight": ("attn", "qkv", "W"), "attn.c_attn.bias": ("attn", "qkv", "b"),
    "attn.c_proj.weight": ("attn", "proj", "W"), "attn.c_proj.bias": ("attn", "proj", "b"),
    "ln_2.weight": ("ln2", "gamma"), "ln_2.bias": ("ln2", "beta"),
    "mlp.c_fc.weight": ("ffn", "fc", "W"), "mlp.c_fc.bias": ("ffn", "fc", "b"),
    "mlp.c_proj.weight": ("ffn", "proj", "W"), "mlp.c_proj.bias": ("ffn", "proj", "b"),
}


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def gpt2_state_dict(params, config):
    """What GPT2LMHeadModel.state_dict() holds for our tree, written out by hand."""
    sd = {"transformer.wte.weight": params["wte"]["W"],
          "transformer.wpe.weight": params["wpe"]["W"]}
    for i, block in enumerate(params["blocks"]):
        for name, path in GPT2_BLOCK.items():
            sd[f"transformer.h.{i}.{name}"] = _get(block, path)
    sd["transformer.ln_f.weight"] = params["ln_f"]["gamma"]
    sd["transformer.ln_f.bias"] = params["ln_f"]["beta"]
    sd["lm_head.weight"] = params["wte"]["W"] if config.tie_weights else params["lm_head"]["W"].T
    return sd


def nanogpt_state_dict(gpt2_sd, prefix=""):
    """nanoGPT's state dict from GPT-2's: the same names, nn.Linear (out, in) weights."""
    return {prefix + k: v.T if k.startswith("transformer.h.") and v.ndim == 2 else v
            for k, v in gpt2_sd.items()}


def assert_same_flat(got: dict, want: dict):
    assert list(got) == list(want) or set(got) == set(want), (sorted(got), sorted(want))
    for k in want:
        assert got[k].shape == want[k].shape and np.array_equal(got[k], want[k]), k
        assert got[k].flags.c_contiguous, f"{k} not contiguous"


@pytest.mark.parametrize("config", [TIED, UNTIED], ids=["tied", "untied"])
def test_to_hf_gpt2_writes_gpt2s_names_and_layouts(impl, config):
    params = hp.random_gpt(config, np.random.default_rng(0))
    got = impl("convert.to_hf_gpt2")(params, config)
    assert_same_flat(got, gpt2_state_dict(params, config))
    for k, v in got.items():
        assert not any(np.shares_memory(v, leaf) for leaf in flatten(params).values()), k


def test_to_hf_gpt2_names_itself_for_a_tree_with_a_list_of_numbers(impl):
    """A leaf that is a list of numbers is refused by the converter, naming itself, the
    argument and the path (not by a helper it calls)."""
    params = hp.random_gpt(TIED, np.random.default_rng(3))
    with pytest.raises(TypeError) as info:
        impl("convert.to_hf_gpt2")({**params, "wpe": {"W": [[1.0]]}}, TIED)
    assert str(info.value).startswith("convert.to_hf_gpt2: argument 'params' at 'wpe.W.0.0' "), \
        str(info.value)


@pytest.mark.parametrize("config", [TIED, UNTIED], ids=["tied", "untied"])
def test_from_hf_gpt2_inverts_it_with_or_without_prefix_and_buffers(impl, config):
    params = hp.random_gpt(config, np.random.default_rng(1))
    sd = gpt2_state_dict(params, config)
    assert_same_tree(impl("convert.from_hf_gpt2")(sd, config), params)
    # GPT2Model's names (no "transformer."), the old attention-mask buffers, no tied head
    # (each layer's buffers come first, as in a real checkpoint's order, so that every name
    # after a buffer must still be read)
    bare = {}
    for i in range(config.n_layers):
        bare[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 4, 4)))
        bare[f"h.{i}.attn.masked_bias"] = np.array(-1e4)
    bare.update({k.removeprefix("transformer."): v for k, v in sd.items()
                 if not (config.tie_weights and k == "lm_head.weight")})
    assert_same_tree(impl("convert.from_hf_gpt2")(bare, config), params)
    assert_same_tree(impl("convert.from_hf_gpt2")(impl("convert.to_hf_gpt2")(params, config),
                                                  config), params)


def test_from_hf_gpt2_casts_on_request_and_copies(impl):
    params = hp.random_gpt(TIED, np.random.default_rng(2))
    sd = {k: v.astype(np.float32) for k, v in gpt2_state_dict(params, TIED).items()}
    got = impl("convert.from_hf_gpt2")(sd, TIED, dtype=np.float64)
    assert all(v.dtype == np.float64 for v in flatten(got).values())
    same = impl("convert.from_hf_gpt2")(sd, TIED)
    assert all(v.dtype == np.float32 for v in flatten(same).values())
    assert not any(np.shares_memory(v, s) for v in flatten(same).values() for s in sd.values())


@pytest.mark.parametrize("compiled", [False, True], ids=["plain", "torch.compile"])
def test_nanogpt_names_and_linear_layout_round_trip(impl, compiled):
    params = hp.random_gpt(NANO, np.random.default_rng(3))
    want = nanogpt_state_dict(gpt2_state_dict(params, NANO))
    got = impl("convert.to_nanogpt")(params, NANO)
    assert_same_flat(got, want)
    saved = nanogpt_state_dict(gpt2_state_dict(params, NANO), "_orig_mod." if compiled else "")
    for i in range(NANO.n_layers):                     # the causal-mask buffer, without flash
        saved[f"{'_orig_mod.' if compiled else ''}transformer.h.{i}.attn.bias"] = \
            np.tril(np.ones((1, 1, 5, 5)))
    assert_same_tree(impl("convert.from_nanogpt")(saved, NANO), params)
    # nanoGPT's linear weights are (out, in), C-ordered as torch stores them: ours are their
    # transposes, as fresh C-ordered arrays
    back = impl("convert.from_nanogpt")({k: np.ascontiguousarray(v) for k, v in saved.items()},
                                        NANO)
    assert all(leaf.flags.c_contiguous for leaf in flatten(back).values())


def test_nanogpt_without_biases(impl):
    """bias=False: no linear biases, layer norms without beta; loads as zero biases and
    beta = 0 (a tree the GPT runs), and goes back only while every bias is still zero."""
    params = hp.random_gpt(NANO, np.random.default_rng(4))
    sd = {k: v for k, v in nanogpt_state_dict(gpt2_state_dict(params, NANO)).items()
          if not k.endswith(".bias")}
    got = impl("convert.from_nanogpt")(sd, NANO)
    impl("gpt.forward")(np.array([[1, 2]]), got, NANO)
    for i, block in enumerate(got["blocks"]):
        for part, layer in (("attn", "qkv"), ("attn", "proj"), ("ffn", "fc"), ("ffn", "proj")):
            assert not np.any(block[part][layer]["b"])
        for ln in ("ln1", "ln2"):
            assert np.array_equal(block[ln]["beta"], np.zeros(NANO.d_model))
            assert np.array_equal(block[ln]["gamma"], params["blocks"][i][ln]["gamma"])
    assert np.array_equal(got["ln_f"]["beta"], np.zeros(NANO.d_model))
    assert_same_flat(impl("convert.to_nanogpt")(got, NANO, bias=False), sd)
    got["blocks"][1]["ln2"]["beta"][0] = 0.5
    with pytest.raises(ValueError, match=r"convert\.to_nanogpt.*nonzero biases.*blocks\.1\.ln2"):
        impl("convert.to_nanogpt")(got, NANO, bias=False)


def test_configs_from_and_to_gpt2_and_nanogpt(impl):
    hf = {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12,
          "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
          "tie_word_embeddings": True, "model_type": "gpt2", "resid_pdrop": 0.1}
    small = impl("convert.config_from_hf_gpt2")(hf)
    assert small == GPTConfig(vocab_size=50257, context_len=1024, d_model=768, n_heads=12,
                              n_layers=12, activation="gelu_tanh", eps=1e-5, tie_weights=True)
    back = impl("convert.config_to_hf_gpt2")(small)
    assert {k: hf[k] for k in back} == back
    assert impl("convert.config_from_hf_gpt2")(impl("convert.config_to_hf_gpt2")(UNTIED)) \
        == UNTIED
    args = {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024, "bias": True,
            "vocab_size": 50304, "dropout": 0.0}
    nano = impl("convert.config_from_nanogpt")(args)
    assert nano == GPTConfig(vocab_size=50304, context_len=1024, d_model=768, n_heads=12,
                             n_layers=12, activation="gelu", eps=1e-5, tie_weights=True)
    assert impl("convert.config_to_nanogpt")(nano) == args
    assert impl("convert.config_to_nanogpt")(nano, bias=False, dropout=0.2)["bias"] is False
    # a feed-forward width written out as 4 C is the default width, which nanoGPT has
    assert impl("convert.config_to_nanogpt")(dataclasses.replace(nano, d_ff=4 * 768)) == args


BAD_CONFIGS = {
    "post-norm to GPT-2": ("convert.config_to_hf_gpt2",
                           (dataclasses.replace(TIED, norm_first=False),),
                           ValueError, ["argument 'config' has options Hugging Face's GPT-2 "
                                        "does not have: norm_first=False"]),
    "no residual to nanoGPT": ("convert.config_to_nanogpt",
                               (dataclasses.replace(NANO, residual=False),),
                               ValueError, ["argument 'config' has options nanoGPT does not "
                                            "have: residual=False"]),
    "two options to GPT-2": ("convert.config_to_hf_gpt2",
                             (dataclasses.replace(TIED, norm_first=False, residual=False),),
                             ValueError, ["does not have: norm_first=False, residual=False"]),
    "a feed-forward width nanoGPT lacks": ("convert.config_to_nanogpt",
                                           (dataclasses.replace(NANO, d_ff=12),), ValueError,
                                           ["argument 'config' has options nanoGPT does not "
                                            "have: d_ff=12"]),
    "nanoGPT fields that make no config": (
        "convert.config_from_nanogpt", ({"n_layer": 1, "n_head": 3, "n_embd": 8,
                                         "block_size": 4, "bias": True, "vocab_size": 5,
                                         "dropout": 0.0},), ValueError,
        ["the fields make no valid GPTConfig: GPTConfig: argument 'n_heads' must divide "
         "d_model = 8, got n_heads = 3"]),
    "SwiGLU to GPT-2": ("convert.config_to_hf_gpt2",
                        (dataclasses.replace(TIED, activation="swiglu"),), ValueError,
                        ["argument 'config' has activation 'swiglu', which Hugging Face's "
                         "GPT-2 does not have"]),
    "tanh GELU to nanoGPT": ("convert.config_to_nanogpt", (TIED,),
                             ValueError, ["'config'", "activation='gelu_tanh'"]),
    "untied to nanoGPT": ("convert.config_to_nanogpt",
                          (dataclasses.replace(NANO, tie_weights=False),),
                          ValueError, ["'config'", "tie_weights=False"]),
    "not a config": ("convert.config_to_hf_gpt2", ({"n_embd": 4},),
                     TypeError, ["'config'", "GPTConfig", "dict"]),
    "GPT-2 missing a field": ("convert.config_from_hf_gpt2", ({"n_embd": 4},),
                              ValueError, ["'hf_config'", "missing", "vocab_size"]),
    "GPT-2 activation we lack": ("convert.config_from_hf_gpt2",
                                 ({"vocab_size": 5, "n_positions": 4, "n_embd": 4, "n_head": 2,
                                   "n_layer": 1, "activation_function": "silu"},),
                                 ValueError, ["activation_function", "'silu'"]),
    "GPT-2 scaled by layer": ("convert.config_from_hf_gpt2",
                              ({"vocab_size": 5, "n_positions": 4, "n_embd": 4, "n_head": 2,
                                "n_layer": 1, "scale_attn_by_inverse_layer_idx": True},),
                              ValueError, ["scale_attn_by_inverse_layer_idx", "False"]),
    "another model type": ("convert.config_from_hf_gpt2",
                           ({"vocab_size": 5, "n_positions": 4, "n_embd": 4, "n_head": 2,
                             "n_layer": 1, "model_type": "llama"},),
                           ValueError, ["model_type", "'llama'"]),
    "heads not dividing": ("convert.config_from_hf_gpt2",
                           ({"vocab_size": 5, "n_positions": 4, "n_embd": 5, "n_head": 2,
                             "n_layer": 1},),
                           ValueError, ["n_heads", "divide"]),
    "nanoGPT unknown arg": ("convert.config_from_nanogpt",
                            ({"n_layer": 1, "n_head": 1, "n_embd": 4, "block_size": 4,
                              "vocab_size": 5, "n_kv_head": 1},),
                            ValueError, ["'model_args'", "n_kv_head"]),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_configs_the_other_side_cannot_express_are_rejected(impl, case):
    fn, args, exc, parts = BAD_CONFIGS[case]
    with pytest.raises(exc) as info:
        impl(fn)(*args)
    for part in [f"{fn}: ", *parts]:
        assert part in str(info.value), (part, str(info.value))


def _bad_state_dicts():
    params = hp.random_gpt(TIED, np.random.default_rng(5))
    sd = gpt2_state_dict(params, TIED)
    head = dict(sd, **{"lm_head.weight": sd["lm_head.weight"] + 1.0})
    missing = {k: v for k, v in sd.items() if k != "transformer.h.1.mlp.c_fc.bias"}
    extra = dict(sd, **{"transformer.h.2.ln_1.weight": np.ones(8)})
    shape = dict(sd, **{"transformer.h.0.attn.c_attn.weight": np.zeros((24, 8))})
    ints = dict(sd, **{"transformer.wpe.weight": np.zeros((6, 8), dtype=np.int64)})
    twice = dict(sd, **{"wte.weight": sd["transformer.wte.weight"]})
    return {
        "tied head unlike the table": (head, ValueError, ["lm_head.weight", "tie_weights"]),
        "missing parameter": (missing, ValueError, ["missing", "h.1.mlp.c_fc.bias"]),
        "unknown parameter": (extra, ValueError, ["does not know", "h.2.ln_1.weight"]),
        "wrong shape": (shape, ValueError, ["c_attn.weight", "(8, 24)", "(24, 8)"]),
        "integer weights": (ints, TypeError, ["wpe.weight", "floating-point", "int64"]),
        "weights as a list": (dict(sd, **{"transformer.wpe.weight": [[1.0]]}), TypeError,
                              ["state_dict['transformer.wpe.weight'] must be a floating-point "
                               "NumPy array (a torch tensor: .numpy()), got list"]),
        "a name twice": (twice, ValueError, ["'wte.weight' twice"]),
        "not a mapping": ([1, 2], TypeError, ["'state_dict'", "mapping", "list"]),
    }


@pytest.mark.parametrize("case", list(_bad_state_dicts()))
def test_bad_state_dicts_are_rejected_with_the_reason(impl, case):
    sd, exc, parts = _bad_state_dicts()[case]
    with pytest.raises(exc) as info:
        impl("convert.from_hf_gpt2")(sd, TIED)
    for part in ["convert.from_hf_gpt2: ", *parts]:
        assert part in str(info.value), (part, str(info.value))


def test_trees_that_do_not_fit_the_config_are_rejected(impl):
    params = hp.random_gpt(TIED, np.random.default_rng(6))
    with pytest.raises(ValueError, match=r"to_hf_gpt2.*missing.*lm_head\.W"):
        impl("convert.to_hf_gpt2")(params, dataclasses.replace(TIED, tie_weights=False))
    with pytest.raises(ValueError, match=r"to_hf_gpt2.*does not know.*blocks\.1"):
        impl("convert.to_hf_gpt2")(params, dataclasses.replace(TIED, n_layers=1))
    with pytest.raises(ValueError, match=r"to_nanogpt.*params\['wpe\.W'\].*\(5, 8\).*\(6, 8\)"):
        impl("convert.to_nanogpt")(params, dataclasses.replace(TIED, context_len=5,
                                                               activation="gelu"))


LLAMA = GPTConfig(vocab_size=13, context_len=8, d_model=8, n_heads=4, n_layers=2, d_ff=12,
                  activation="swiglu", tie_weights=False, norm="rms", position="rope",
                  rope_theta=500.0, n_kv_heads=2, bias=False, fused_qkv=False, eps=1e-5)


def test_llama_config_and_weights_round_trip(impl):
    """The Llama converters without transformers (HF parity is in test_llama_parity.py): the
    configuration and every weight come back unchanged through Hugging Face's layout, and the
    state dict holds the names LlamaForCausalLM uses."""
    fields = impl("convert_llama.config_to_hf_llama")(LLAMA)
    assert impl("convert_llama.config_from_hf_llama")(fields) == LLAMA
    params = hp.random_gpt(LLAMA, np.random.default_rng(5))
    state = impl("convert_llama.to_hf_llama")(params, LLAMA)
    assert "model.embed_tokens.weight" in state and "lm_head.weight" in state
    assert "model.layers.1.self_attn.q_proj.weight" in state
    back = impl("convert_llama.from_hf_llama")(state, LLAMA)
    assert_same_tree(back, params)


#: Llama's names for one block (``model.layers.{i}.``), our path, and whether the weight is an
#: nn.Linear (stored (out, in), transposed from ours); biases only with ``bias=True``
LLAMA_BLOCK = {
    "input_layernorm.weight": (("ln1", "gamma"), False),
    "self_attn.q_proj.weight": (("attn", "q", "W"), True),
    "self_attn.k_proj.weight": (("attn", "k", "W"), True),
    "self_attn.v_proj.weight": (("attn", "v", "W"), True),
    "self_attn.o_proj.weight": (("attn", "proj", "W"), True),
    "post_attention_layernorm.weight": (("ln2", "gamma"), False),
    "mlp.gate_proj.weight": (("ffn", "gate", "W"), True),
    "mlp.up_proj.weight": (("ffn", "up", "W"), True),
    "mlp.down_proj.weight": (("ffn", "down", "W"), True),
}
LLAMA_BIASES = {"self_attn.q_proj.bias": ("attn", "q", "b"),
                "self_attn.k_proj.bias": ("attn", "k", "b"),
                "self_attn.v_proj.bias": ("attn", "v", "b"),
                "self_attn.o_proj.bias": ("attn", "proj", "b"),
                "mlp.gate_proj.bias": ("ffn", "gate", "b"), "mlp.up_proj.bias": ("ffn", "up", "b"),
                "mlp.down_proj.bias": ("ffn", "down", "b")}
#: tied, with biases, one key/value head per two query heads... and 3 layers
LLAMA_TIED = dataclasses.replace(LLAMA, tie_weights=True, bias=True, n_layers=3, eps=1e-6)


def llama_state_dict(params, config):
    """What LlamaForCausalLM.state_dict() holds for our tree, written out by hand (without
    ``lm_head.weight`` when tied, as Hugging Face's files leave it out)."""
    sd = {"model.embed_tokens.weight": params["wte"]["W"]}
    for i, block in enumerate(params["blocks"]):
        for name, (path, transposed) in LLAMA_BLOCK.items():
            sd[f"model.layers.{i}.{name}"] = _get(block, path).T if transposed \
                else _get(block, path)
        if config.bias:
            for name, path in LLAMA_BIASES.items():
                sd[f"model.layers.{i}.{name}"] = _get(block, path)
    sd["model.norm.weight"] = params["ln_f"]["gamma"]
    if not config.tie_weights:
        sd["lm_head.weight"] = params["lm_head"]["W"].T
    return sd


@pytest.mark.parametrize("config", [LLAMA, LLAMA_TIED], ids=["untied", "tied, biases"])
def test_to_hf_llama_writes_llamas_names_and_layouts(impl, config):
    """Every name of LlamaForCausalLM, every nn.Linear weight transposed, the token table and
    the norms not; fresh contiguous arrays (no view of the tree)."""
    params = hp.random_gpt(config, np.random.default_rng(7))
    got = impl("convert_llama.to_hf_llama")(params, config)
    assert_same_flat(got, llama_state_dict(params, config))
    for k, v in got.items():
        assert not any(np.shares_memory(v, leaf) for leaf in flatten(params).values()), k


@pytest.mark.parametrize("config", [LLAMA, LLAMA_TIED], ids=["untied", "tied, biases"])
def test_from_hf_llama_reads_llamas_names_and_layouts(impl, config):
    """The hand-written state dict gives the tree back; stored rotary frequencies are ignored;
    a tied model's stored head (equal to the table) is accepted and not kept."""
    params = hp.random_gpt(config, np.random.default_rng(8))
    sd = llama_state_dict(params, config)
    assert_same_tree(impl("convert_llama.from_hf_llama")(sd, config), params)
    extra = dict(sd, **{f"model.layers.{i}.self_attn.rotary_emb.inv_freq": np.ones(1)
                        for i in range(config.n_layers)})
    if config.tie_weights:
        extra["lm_head.weight"] = sd["model.embed_tokens.weight"].copy()
    got = impl("convert_llama.from_hf_llama")(extra, config)
    assert_same_tree(got, params)
    assert not any(np.shares_memory(v, s) for v in flatten(got).values() for s in sd.values())


def test_from_hf_llama_casts_on_request(impl):
    params = hp.random_gpt(LLAMA, np.random.default_rng(9))
    sd = {k: v.astype(np.float32) for k, v in llama_state_dict(params, LLAMA).items()}
    got = impl("convert_llama.from_hf_llama")(sd, LLAMA, dtype=np.float64)
    assert all(v.dtype == np.float64 for v in flatten(got).values())
    same = impl("convert_llama.from_hf_llama")(sd, LLAMA)
    assert all(v.dtype == np.float32 for v in flatten(same).values())


LLAMA_HF = {"vocab_size": 13, "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 2,
            "num_attention_heads": 4, "max_position_embeddings": 8}


def test_config_from_hf_llama_reads_defaults_and_both_rope_fields(impl):
    """Left out: eps 1e-6, base 10000, untied, no biases, as many key/value heads as heads.
    The base comes from ``rope_parameters`` (transformers 5) before ``rope_theta``; fields
    equal to the only value our model has are accepted."""
    from_hf = impl("convert_llama.config_from_hf_llama")
    base = GPTConfig(vocab_size=13, context_len=8, d_model=8, n_heads=4, n_layers=2, d_ff=12,
                     activation="swiglu", tie_weights=False, norm="rms", position="rope",
                     rope_theta=10000.0, n_kv_heads=4, bias=False, fused_qkv=False, eps=1e-6)
    assert from_hf(LLAMA_HF) == base
    assert from_hf({**LLAMA_HF, "num_key_value_heads": None}) == base
    assert from_hf({**LLAMA_HF, "rope_theta": 500.0}).rope_theta == 500.0
    assert from_hf({**LLAMA_HF, "rope_theta": 500.0, "rope_parameters": {
        "rope_type": "default", "rope_theta": 7.5}}).rope_theta == 7.5
    assert from_hf({**LLAMA_HF, "rope_parameters": None, "rope_scaling": None}) == base
    assert from_hf({**LLAMA_HF, "hidden_act": "silu", "pretraining_tp": 1, "head_dim": 2,
                    "model_type": "llama", "attention_bias": False, "mlp_bias": False}) == base
    assert from_hf({**LLAMA_HF, "attention_bias": True, "mlp_bias": True,
                    "tie_word_embeddings": True, "rms_norm_eps": 1e-5,
                    "num_key_value_heads": 2}) == \
        dataclasses.replace(base, bias=True, tie_weights=True, eps=1e-5, n_kv_heads=2)
    fields = impl("convert_llama.config_to_hf_llama")(LLAMA_TIED)
    assert fields == {"vocab_size": 13, "hidden_size": 8, "intermediate_size": 12,
                      "num_hidden_layers": 3, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "max_position_embeddings": 8,
                      "rms_norm_eps": 1e-6, "rope_theta": 500.0, "tie_word_embeddings": True,
                      "attention_bias": True, "mlp_bias": True, "hidden_act": "silu"}
    assert from_hf(fields) == LLAMA_TIED


BAD_LLAMA_CONFIGS = {
    "a field missing": ({k: v for k, v in LLAMA_HF.items() if k != "hidden_size"},
                        ValueError, ["'hf_config'", "missing", "'hidden_size'"]),
    "another model type": ({**LLAMA_HF, "model_type": "mistral"}, ValueError,
                           ["model_type", "'mistral'"]),
    "rotary scaling (transformers 5)": (
        {**LLAMA_HF, "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}},
        ValueError, ["'hf_config'", "rotary scaling", "llama3"]),
    "rotary scaling (older)": ({**LLAMA_HF, "rope_scaling": {"type": "linear", "factor": 2.0}},
                               ValueError, ["'hf_config'", "rotary scaling", "linear"]),
    "another activation": ({**LLAMA_HF, "hidden_act": "gelu"}, ValueError,
                           ["hf_config['hidden_act']", "'silu'", "'gelu'"]),
    "tensor parallel pretraining": ({**LLAMA_HF, "pretraining_tp": 2}, ValueError,
                                    ["hf_config['pretraining_tp']", "1", "2"]),
    "another head dimension": ({**LLAMA_HF, "head_dim": 4}, ValueError,
                               ["hf_config['head_dim'] must be 2 (the only setting our model "
                                "has), got 4"]),
    "a width given as text": ({**LLAMA_HF, "hidden_size": str(LLAMA_HF["hidden_size"])},
                              TypeError, ["'hf_config' gives an invalid configuration",
                                          "'d_model' must be an int, got str"]),
    "bias in attention only": ({**LLAMA_HF, "attention_bias": True}, ValueError,
                               ["attention_bias", "mlp_bias", "True", "False"]),
    "bias in the MLP only": ({**LLAMA_HF, "mlp_bias": True}, ValueError,
                             ["attention_bias", "mlp_bias", "False", "True"]),
    "heads not dividing": ({**LLAMA_HF, "num_attention_heads": 3}, ValueError,
                           ["'hf_config'", "invalid configuration", "n_heads"]),
    "not a mapping": ([("vocab_size", 13)], TypeError, ["'hf_config'", "mapping", "list"]),
}


@pytest.mark.parametrize("case", BAD_LLAMA_CONFIGS)
def test_llama_configs_ours_cannot_express_are_rejected(impl, case):
    hf_config, exc, parts = BAD_LLAMA_CONFIGS[case]
    with pytest.raises(exc) as info:
        impl("convert_llama.config_from_hf_llama")(hf_config)
    for part in ["convert_llama.config_from_hf_llama: ", *parts]:
        assert part in str(info.value), (part, str(info.value))


def _bad_llama():
    """(function, args, exception, substrings of the message)."""
    params = hp.random_gpt(LLAMA, np.random.default_rng(10))
    sd = llama_state_dict(params, LLAMA)
    tied = llama_state_dict(hp.random_gpt(LLAMA_TIED, np.random.default_rng(11)), LLAMA_TIED)
    q = "model.layers.1.self_attn.q_proj.weight"
    without = {k: v for k, v in sd.items() if k != q}
    lacking = {k: v for k, v in params.items() if k != "lm_head"}
    wide = dict(params, lm_head={"W": np.zeros((8, 14))})
    return {
        "state dict not a mapping": ("from_hf_llama", ([1], LLAMA), TypeError,
                                     ["'state_dict'", "mapping", "list"]),
        "a weight missing": ("from_hf_llama", (without, LLAMA), ValueError,
                             ["'state_dict'", "missing", q]),
        "an unknown weight": ("from_hf_llama", (dict(sd, **{"model.layers.2.x": np.ones(1)}),
                                                LLAMA), ValueError, ["unknown", "layers.2.x"]),
        "integer weights": ("from_hf_llama", (dict(sd, **{q: sd[q].astype(np.int64)}), LLAMA),
                            TypeError, [f"state_dict[{q!r}]", "floating-point", "int64"]),
        "a weight not transposed": ("from_hf_llama", (dict(sd, **{
            "model.layers.0.mlp.up_proj.weight": sd["model.layers.0.mlp.up_proj.weight"].T}),
            LLAMA), ValueError, ["up_proj.weight", "(12, 8)", "(8, 12)"]),
        "a tied head unlike the table": ("from_hf_llama", (dict(tied, **{
            "lm_head.weight": tied["model.embed_tokens.weight"] + 1.0}), LLAMA_TIED),
            ValueError, ["state_dict['lm_head.weight']", "model.embed_tokens.weight"]),
        "a tied head of another shape": ("from_hf_llama", (dict(tied, **{
            "lm_head.weight": tied["model.embed_tokens.weight"][:5]}), LLAMA_TIED),
            ValueError, ["state_dict['lm_head.weight']", "model.embed_tokens.weight"]),
        "a GPT-2 config": ("from_hf_llama", (sd, TIED), ValueError,
                           ["'config'", "not Llama-shaped", "'activation': 'gelu_tanh'",
                            "'swiglu'"]),
        "tree lacking the head": ("to_hf_llama", (lacking, LLAMA), ValueError,
                                  ["'params'", "missing", "lm_head.W"]),
        "tree with a head too wide": ("to_hf_llama", (wide, LLAMA), ValueError,
                                      ["params['lm_head.W']", "(8, 13)", "(8, 14)"]),
        "tree for a GPT-2 config": ("to_hf_llama", (params, NANO), ValueError,
                                    ["'config'", "not Llama-shaped", "'norm': 'layer'"]),
        "a GPT-2 config's fields": ("config_to_hf_llama", (dataclasses.replace(
            LLAMA, fused_qkv=True),), ValueError, ["'config'", "'fused_qkv': True"]),
        "not a config": ("config_to_hf_llama", ({"d_model": 8},), TypeError,
                         ["'config'", "GPTConfig", "dict"]),
    }


@pytest.mark.parametrize("case", list(_bad_llama()))
def test_bad_llama_state_dicts_and_trees_are_rejected_with_the_reason(impl, case):
    fn, args, exc, parts = _bad_llama()[case]
    with pytest.raises(exc) as info:
        impl(f"convert_llama.{fn}")(*args)
    for part in [f"convert_llama.{fn}: ", *parts]:
        assert part in str(info.value), (part, str(info.value))


GPT2_HF = {"vocab_size": 11, "n_positions": 6, "n_embd": 8, "n_head": 2, "n_layer": 1}


def test_config_from_hf_gpt2_reads_defaults_and_every_activation(impl):
    """Left out: d_ff 4 n_embd, the tanh GELU (``gelu_new``), eps 1e-5, tied; the fixed options
    at their only value are accepted; each activation name maps to ours and back."""
    from_hf, to_hf = impl("convert.config_from_hf_gpt2"), impl("convert.config_to_hf_gpt2")
    base = GPTConfig(vocab_size=11, context_len=6, d_model=8, n_heads=2, n_layers=1)
    assert from_hf(GPT2_HF) == base
    assert from_hf({**GPT2_HF, "scale_attn_weights": True, "model_type": "gpt2",
                    "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False,
                    "n_inner": None}) == base
    assert from_hf({**GPT2_HF, "n_inner": 5, "layer_norm_epsilon": 1e-6,
                    "tie_word_embeddings": False}) == \
        dataclasses.replace(base, d_ff=5, eps=1e-6, tie_weights=False)
    for theirs, ours in [("gelu_new", "gelu_tanh"), ("gelu_pytorch_tanh", "gelu_tanh"),
                         ("gelu", "gelu"), ("relu", "relu")]:
        config = from_hf({**GPT2_HF, "activation_function": theirs})
        assert config.activation == ours
        back = "gelu_new" if theirs == "gelu_pytorch_tanh" else theirs
        assert to_hf(config)["activation_function"] == back
    assert to_hf(dataclasses.replace(base, d_ff=5, eps=1e-6, tie_weights=False)) == {
        "vocab_size": 11, "n_positions": 6, "n_embd": 8, "n_head": 2, "n_layer": 1,
        "n_inner": 5, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-6,
        "tie_word_embeddings": False}


BAD_GPT2_CONFIGS = {
    "unscaled attention": ({**GPT2_HF, "scale_attn_weights": False},
                           ["hf_config['scale_attn_weights']", "True", "False"]),
    "cross-attention": ({**GPT2_HF, "add_cross_attention": True},
                        ["hf_config['add_cross_attention']", "False", "True"]),
    "a field missing": ({k: v for k, v in GPT2_HF.items() if k != "n_layer"},
                        ["'hf_config'", "missing", "'n_layer'"]),
}


@pytest.mark.parametrize("case", BAD_GPT2_CONFIGS)
def test_gpt2_options_ours_lacks_are_rejected(impl, case):
    hf_config, parts = BAD_GPT2_CONFIGS[case]
    with pytest.raises(ValueError) as info:
        impl("convert.config_from_hf_gpt2")(hf_config)
    for part in ["convert.config_from_hf_gpt2: ", *parts]:
        assert part in str(info.value), (part, str(info.value))


def test_config_to_nanogpt_checks_bias_and_dropout(impl):
    """Defaults bias True and dropout 0.0 (a float even from an int); dropout in [0, 1)."""
    to_nano = impl("convert.config_to_nanogpt")
    args = to_nano(NANO)
    assert args["bias"] is True and args["dropout"] == 0.0
    assert isinstance(to_nano(NANO, dropout=0)["dropout"], float)
    assert to_nano(NANO, bias=np.bool_(False))["bias"] is False
    assert to_nano(NANO, dropout=0.999)["dropout"] == 0.999
    for bad, exc, parts in [({"dropout": 1.0}, ValueError, ["'dropout'", "[0, 1)", "1.0"]),
                            ({"dropout": -0.1}, ValueError, ["'dropout'", "[0, 1)", "-0.1"]),
                            ({"dropout": True}, TypeError, ["'dropout'", "number", "True"]),
                            ({"dropout": "0.1"}, TypeError, ["'dropout'", "number", "'0.1'"]),
                            ({"bias": 1}, TypeError, ["'bias'", "bool", "1"])]:
        with pytest.raises(exc) as info:
            to_nano(NANO, **bad)
        for part in ["convert.config_to_nanogpt: ", *parts]:
            assert part in str(info.value), (part, str(info.value))


def test_from_nanogpt_without_biases_casts_the_zeros_too(impl):
    """dtype applies to every leaf, the zero biases of a bias=False checkpoint included (they
    take the dtype of the weights)."""
    params = hp.random_gpt(NANO, np.random.default_rng(12))
    sd = {k: v.astype(np.float32) for k, v in
          nanogpt_state_dict(gpt2_state_dict(params, NANO)).items() if not k.endswith(".bias")}
    for dtype, want in [(None, np.float32), (np.float64, np.float64)]:
        got = impl("convert.from_nanogpt")(sd, NANO, dtype=dtype)
        assert {v.dtype for v in flatten(got).values()} == {np.dtype(want)}
    with_biases = nanogpt_state_dict(gpt2_state_dict(params, NANO))
    got = impl("convert.from_nanogpt")(with_biases, NANO, dtype=np.float32)
    assert {v.dtype for v in flatten(got).values()} == {np.dtype(np.float32)}
    assert np.array_equal(got["blocks"][0]["attn"]["qkv"]["b"],
                          params["blocks"][0]["attn"]["qkv"]["b"].astype(np.float32))


def test_state_dict_keys_and_buffers(impl):
    """Only the attention-mask buffers are skipped (``attn.bias``, not ``attn.c_attn.bias``);
    a key that is not a str is refused; a tied head absent, or stored equal, both load."""
    params = hp.random_gpt(TIED, np.random.default_rng(13))
    sd = gpt2_state_dict(params, TIED)
    with pytest.raises(TypeError) as info:
        impl("convert.from_hf_gpt2")({**sd, 3: np.zeros(1)}, TIED)
    assert all(p in str(info.value) for p in ("convert.from_hf_gpt2: ", "'state_dict'", "str",
                                              "3"))
    no_bias = {k: v for k, v in sd.items() if k != "transformer.h.0.attn.c_attn.bias"}
    with pytest.raises(ValueError, match=r"missing.*h\.0\.attn\.c_attn\.bias"):
        impl("convert.from_hf_gpt2")(no_bias, TIED)
    with pytest.raises(ValueError, match=r"does not know.*h\.0\.attn\.biases"):
        impl("convert.from_hf_gpt2")({**sd, "transformer.h.0.attn.biases": np.zeros(1)}, TIED)
    headless = {k: v for k, v in sd.items() if k != "lm_head.weight"}
    assert_same_tree(impl("convert.from_hf_gpt2")(headless, TIED), params)


def test_gpt2_edges_of_tied_heads_and_bias_free_trees(impl):
    """A tied head of another shape than the table is refused; a tree without any bias goes
    to a bias=False nanoGPT (absent biases count as zero); a list leaf is refused."""
    params = hp.random_gpt(TIED, np.random.default_rng(14))
    sd = gpt2_state_dict(params, TIED)
    with pytest.raises(ValueError, match=r"from_hf_gpt2: argument state_dict\['lm_head.weight'\]"
                                         r" differs"):
        impl("convert.from_hf_gpt2")({**sd, "lm_head.weight": sd["lm_head.weight"][:4]}, TIED)
    nano = hp.random_gpt(NANO, np.random.default_rng(15))
    bare = _without_biases(nano)
    got = impl("convert.to_nanogpt")(bare, NANO, bias=False)
    assert not any(k.endswith(".bias") for k in got)
    assert np.array_equal(got["transformer.h.1.mlp.c_fc.weight"],
                          nano["blocks"][1]["ffn"]["fc"]["W"].T)
    with pytest.raises(ValueError, match=r"to_nanogpt: .*'params' is missing.*blocks\.0\.attn"):
        impl("convert.to_nanogpt")(bare, NANO)


def _without_biases(tree):
    if isinstance(tree, dict):
        return {k: _without_biases(v) for k, v in tree.items() if k not in ("b", "beta")}
    if isinstance(tree, list):
        return [_without_biases(v) for v in tree]
    return tree


def _first_names(message: str) -> list:
    """The list a message gives after ``first `` (or ``nonzero biases ``)."""
    import ast
    import re

    return ast.literal_eval(re.search(r"(?:first|biases) (\[[^\]]*\])", message).group(1))


def test_long_lists_of_names_are_cut_to_their_first_four(impl):
    """A converter that finds many missing, unknown or nonzero entries names how many and
    the first four of them (in the order its message states: the config's order for missing
    Hugging Face names, sorted otherwise)."""
    params = hp.random_gpt(TIED, np.random.default_rng(20))
    sd = gpt2_state_dict(params, TIED)
    gone = [k for k in sorted(sd) if ".h.1." in k][:6]
    with pytest.raises(ValueError) as info:
        impl("convert.from_hf_gpt2")({k: v for k, v in sd.items() if k not in gone}, TIED)
    listed = _first_names(str(info.value))
    assert "is missing 6 parameter(s)" in str(info.value)
    assert len(listed) == 4 and {f"transformer.{k}" for k in listed} <= set(gone), \
        str(info.value)
    extra = {f"transformer.h.9.extra_{i}": np.zeros(1) for i in range(6)}
    with pytest.raises(ValueError) as info:
        impl("convert.from_hf_gpt2")({**sd, **extra}, TIED)
    assert "has 6 name(s)" in str(info.value)
    assert _first_names(str(info.value)) == [k.removeprefix("transformer.")
                                             for k in sorted(extra)[:4]], str(info.value)
    flat = flatten(params)
    dropped = sorted(flat)[:6]
    with pytest.raises(ValueError) as info:
        impl("convert.to_hf_gpt2")(impl("params.unflatten")(
            {k: v for k, v in flat.items() if k not in dropped}), TIED)
    assert "is missing 6 parameter(s)" in str(info.value)
    assert _first_names(str(info.value)) == dropped[:4], str(info.value)
    strays = {f"stray_{i}": np.zeros(1) for i in range(6)}
    with pytest.raises(ValueError) as info:
        impl("convert.to_hf_gpt2")({**params, **strays}, TIED)
    assert "has 6 path(s)" in str(info.value)
    assert _first_names(str(info.value)) == sorted(strays)[:4], str(info.value)
    nano = hp.random_gpt(NANO, np.random.default_rng(21))
    biases = [k for k, v in flatten(nano).items() if k.endswith((".b", ".beta")) and v.any()]
    assert len(biases) > 4
    with pytest.raises(ValueError) as info:
        impl("convert.to_nanogpt")(nano, NANO, bias=False)
    listed = _first_names(str(info.value))
    assert len(listed) == 4 and set(listed) <= set(biases), str(info.value)
    assert f"(of {len(biases)})" in str(info.value)


@pytest.mark.reference_only
def test_llama_state_dicts_that_do_not_match_are_refused_word_for_word(impl):
    """Up to six missing or unknown names are listed; more get " ..."; a value that is not
    an array is named with its type."""
    import ast

    params = hp.random_gpt(LLAMA, np.random.default_rng(30))
    sd = llama_state_dict(params, LLAMA)
    names = list(sd)
    head = "convert_llama.from_hf_llama: argument 'state_dict' does not match the " \
           "configuration: "

    def refused(state, error=ValueError):
        with pytest.raises(error) as info:
            impl("convert_llama.from_hf_llama")(state, LLAMA)
        return str(info.value)

    for n in (6, 7):
        gone = names[:n]
        message = refused({k: v for k, v in sd.items() if k not in gone})
        listed = message.removeprefix(head + "missing ").split("]")[0] + "]"
        assert message.startswith(head + "missing [") and len(ast.literal_eval(listed)) == 6, \
            message
        assert message.endswith("] ..., unknown []" if n > 6 else "], unknown []"), message
        extra = {f"extra.{i}": np.zeros(1) for i in range(n)}
        assert refused({**sd, **extra}) == head + (
            f"missing [], unknown {sorted(extra)[:6]}" + (" ..." if n > 6 else ""))
    flat = flatten(params)
    paths = list(flat)
    to_hf = impl("convert_llama.to_hf_llama")
    with pytest.raises(ValueError) as info:
        to_hf(impl("params.unflatten")({k: v for k, v in flat.items() if k not in paths[:7]}),
              LLAMA)
    listed = ast.literal_eval(str(info.value).split("missing ")[1].split(", unknown")[0])
    assert len(listed) == 6 and set(listed) <= set(paths[:7]), str(info.value)
    strays = {f"stray_{i}": np.zeros(1) for i in range(7)}
    with pytest.raises(ValueError) as info:
        to_hf({**params, **strays}, LLAMA)
    assert str(info.value).endswith(f"missing [], unknown {sorted(strays)[:6]}")
    with pytest.raises(TypeError) as info:
        impl("convert.to_hf_gpt2")([1], TIED)
    assert str(info.value) == ("convert.to_hf_gpt2: argument 'params' must be a parameter "
                               "tree (dict), got list")
    assert refused({**sd, names[0]: [1.0]}, TypeError) == (
        f"convert_llama.from_hf_llama: argument state_dict[{names[0]!r}] must be a "
        f"floating-point NumPy array, got list")
