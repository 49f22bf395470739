"""Parity with the libraries people exchange GPT-2 weights with (marker ``parity``, left out
of the default run; needs the ``parity`` extra: ``transformers`` and ``safetensors``).

- Our safetensors files are read by the ``safetensors`` library and its files by our reader,
  bit for bit, metadata included, bfloat16 too.
- A random-init Hugging Face ``GPT2LMHeadModel`` (float64, eager attention, no dropout), every
  parameter redrawn at random so that no bias is zero and no gain is one, converted into our
  tree: the same logits, the same loss, and the same gradient for every parameter (the
  model's gradients converted back through the converter), within the float64 tolerances.
- Greedy decoding gives the same tokens as ``generate(do_sample=False)``.
- Checkpoints written by ``save_pretrained`` load into ours, and ours load with
  ``from_pretrained``; a nanoGPT-named copy (``_orig_mod.`` prefix, nn.Linear layout) is the
  same model.
"""

import json

import numpy as np
import pytest
import torch

from llmref.spec.harness import oracles
from llmref.spec.harness.checks import flatten
from llmref.spec.harness.tolerances import F64, assert_close, assert_grads_close

pytestmark = pytest.mark.parity


def _transformers():
    """transformers, imported only when a parity test runs (the default run, which leaves
    these tests out, should not pay for importing it)."""
    transformers = pytest.importorskip("transformers")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers

SMALL = dict(vocab_size=37, n_positions=12, n_embd=16, n_layer=2, n_head=4)
VARIANTS = {
    "gelu_new, tied": {},
    "gelu_new, untied, n_inner 24": {"tie_word_embeddings": False, "n_inner": 24},
    "exact gelu, tied": {"activation_function": "gelu"},
    "relu, untied, eps 1e-6": {"activation_function": "relu", "tie_word_embeddings": False,
                               "layer_norm_epsilon": 1e-6},
}


def hf_gpt2(seed: int, **overrides):
    """A float64 GPT2LMHeadModel with eager attention, no dropout, and every parameter drawn
    at random (biases nonzero, gains away from one), so a dropped or misplaced tensor shows."""
    transformers = _transformers()
    config = transformers.GPT2Config(**{**SMALL, **overrides}, resid_pdrop=0.0,
                                     embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None,
                                     eos_token_id=None, attn_implementation="eager")
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config).to(torch.float64).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.copy_(1.0 + 0.3 * noise if name.endswith(("ln_1.weight", "ln_2.weight",
                                                        "ln_f.weight")) else 0.3 * noise)
    assert model.config._attn_implementation == "eager"
    return model


def numpy_state(model) -> dict:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def ours_from(impl, model):
    config = impl("convert.config_from_hf_gpt2")(model.config.to_dict())
    return impl("convert.from_hf_gpt2")(numpy_state(model), config), config


# --- safetensors: our files and the library's ---------------------------------------------

def _arrays(rng):
    return {"f64": rng.standard_normal((3, 4)), "f32": rng.standard_normal(5).astype("f4"),
            "f16": rng.standard_normal((2, 2)).astype("f2"),
            "i64": rng.integers(-9, 9, (2, 3)), "i32": rng.integers(-9, 9, 4).astype("i4"),
            "i16": np.array([-7, 300], "i2"), "i8": np.array([-128, 127], "i1"),
            "u8": np.arange(6, dtype="u1").reshape(2, 3), "u16": np.array([65535], "u2"),
            "u32": np.array([7], "u4"), "u64": np.array([2 ** 63], "u8"),
            "bool": np.array([True, False, True]), "scalar": np.array(2.5),
            "empty": np.zeros((0, 3), "f4"), "blocks.0.attn.qkv.W": rng.standard_normal((2, 6))}


def test_safetensors_library_reads_our_files(impl, tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    safe_open = pytest.importorskip("safetensors").safe_open
    arrays = _arrays(np.random.default_rng(0))
    meta = {"config": json.dumps({"d_model": 4}), "note": "ünïcode ✓"}
    path = impl("weights.write_safetensors")(tmp_path / "ours.safetensors", arrays, meta)
    theirs = safetensors_numpy.load_file(str(path))
    assert set(theirs) == set(arrays)
    for name, a in arrays.items():
        assert theirs[name].dtype == a.dtype and theirs[name].shape == a.shape, name
        assert np.array_equal(theirs[name], a), name
    with safe_open(str(path), framework="np") as f:
        assert f.metadata() == meta


def test_our_reader_reads_the_librarys_files(impl, tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    arrays = _arrays(np.random.default_rng(1))
    meta = {"format": "np", "config": "{}"}
    path = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(arrays, str(path), metadata=meta)
    ours, ours_meta = impl("weights.read_safetensors")(path)
    assert ours_meta == meta and set(ours) == set(arrays)
    for name, a in arrays.items():
        assert ours[name].dtype == a.dtype and ours[name].shape == a.shape, name
        assert np.array_equal(ours[name], a), name


def test_bfloat16_both_ways_with_the_library(impl, tmp_path):
    """The library's BF16 (written from torch) read by us equals torch's float32 view; our
    BF16 read by the library holds the bits torch's float32 -> bfloat16 rounding gives."""
    safetensors_torch = pytest.importorskip("safetensors.torch")
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(2000) * 10.0 ** rng.integers(-20, 20, 2000)).astype(np.float32)
    x[:4] = [np.float32(1 + 2 ** -8), np.float32(1 + 3 * 2 ** -8), np.inf, 3.4e38]   # ties
    bf16 = torch.from_numpy(x).to(torch.bfloat16)
    safetensors_torch.save_file({"x": bf16}, str(tmp_path / "theirs.safetensors"))
    ours, _ = impl("weights.read_safetensors")(tmp_path / "theirs.safetensors")
    assert ours["x"].dtype == np.float32
    assert np.array_equal(ours["x"], bf16.to(torch.float32).numpy())
    impl("weights.save")(tmp_path / "ours.safetensors", {"x": x}, dtype="bfloat16")
    theirs = safetensors_torch.load_file(str(tmp_path / "ours.safetensors"))["x"]
    assert theirs.dtype == torch.bfloat16
    assert torch.equal(theirs.view(torch.int16), bf16.view(torch.int16))


# --- the model --------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_gpt2_logits_and_every_gradient_match_transformers(impl, variant):
    seed = list(VARIANTS).index(variant)
    model = hf_gpt2(seed, **VARIANTS[variant])
    params, config = ours_from(impl, model)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, config.vocab_size, (3, config.context_len))

    logits_t = model(torch.from_numpy(ids)).logits
    upstream = oracles.random_upstream(rng, tuple(logits_t.shape))
    logits_t.backward(torch.from_numpy(upstream))
    logits, cache = impl("gpt.forward")(ids, params, config)
    assert_close(logits, logits_t.detach().numpy(), F64, name="logits")

    grads = impl("gpt.backward")(upstream, cache)
    hf_grads = {name: p.grad.numpy() for name, p in model.named_parameters()}
    expected = impl("convert.from_hf_gpt2")(hf_grads, config)
    assert_grads_close(flatten(grads), flatten(expected), F64, upstream)
    # and the other way: ours, converted to GPT-2's names, covers every parameter it has
    ours_named = impl("convert.to_hf_gpt2")(grads, config)
    assert set(hf_grads) <= set(ours_named)
    assert_grads_close({k: ours_named[k] for k in hf_grads}, hf_grads, F64, upstream)


def test_gpt2_next_token_loss_and_gradients_match_transformers(impl):
    """Mean cross-entropy of ``ids[:, :-1]`` predicting ``ids[:, 1:]``, computed in float64
    torch on the transformers model's logits (its own ``labels=`` loss casts the logits to
    float32), against our ``loss_and_grads``."""
    model = hf_gpt2(7)
    params, config = ours_from(impl, model)
    ids = np.random.default_rng(7).integers(0, config.vocab_size, (2, 9))
    logits = model(torch.from_numpy(ids[:, :-1])).logits
    loss_t = torch.nn.functional.cross_entropy(logits.reshape(-1, config.vocab_size),
                                               torch.from_numpy(ids[:, 1:]).reshape(-1))
    loss_t.backward()
    loss, grads = impl("gpt.loss_and_grads")(ids[:, :-1], ids[:, 1:], params, config)
    assert_close(loss, loss_t.item(), F64, name="loss")
    expected = impl("convert.from_hf_gpt2")(
        {name: p.grad.numpy() for name, p in model.named_parameters()}, config)
    assert_grads_close(flatten(grads), flatten(expected), F64)


@pytest.mark.parametrize("variant", ["gelu_new, tied", "relu, untied, eps 1e-6"])
def test_greedy_generation_gives_transformers_tokens(impl, variant):
    model = hf_gpt2(11, **VARIANTS[variant])
    params, config = ours_from(impl, model)
    prompt = np.random.default_rng(11).integers(0, config.vocab_size, (2, 3))
    new = config.context_len - prompt.shape[1]
    theirs = model.generate(torch.from_numpy(prompt), attention_mask=torch.ones(prompt.shape),
                            max_new_tokens=new, do_sample=False, num_beams=1,
                            pad_token_id=0).numpy()
    ours = impl("generate.generate")(params, config, prompt, new, greedy=True)
    assert theirs.shape == (2, config.context_len)
    assert np.array_equal(ours, theirs), f"ours {ours.tolist()} vs transformers {theirs.tolist()}"


def test_save_pretrained_checkpoints_load_into_ours_and_ours_into_from_pretrained(impl,
                                                                                 tmp_path):
    """transformers' own files (model.safetensors without the tied head, config.json) read
    with our reader; our files (to_hf_gpt2 names, config_to_hf_gpt2) read with
    ``from_pretrained``; both give the original logits."""
    model = hf_gpt2(3)
    ids = torch.from_numpy(np.random.default_rng(3).integers(0, 37, (2, 8)))
    want = model(ids).logits.detach().numpy()

    model.save_pretrained(tmp_path / "hf")
    hf_config = json.loads((tmp_path / "hf" / "config.json").read_text())
    config = impl("convert.config_from_hf_gpt2")(hf_config)
    state, _ = impl("weights.read_safetensors")(tmp_path / "hf" / "model.safetensors")
    params = impl("convert.from_hf_gpt2")(state, config)
    assert_close(impl("gpt.forward")(ids.numpy(), params, config)[0], want, F64, name="logits")

    (tmp_path / "ours").mkdir()
    impl("weights.write_safetensors")(tmp_path / "ours" / "model.safetensors",
                                      impl("convert.to_hf_gpt2")(params, config),
                                      {"format": "pt"})
    (tmp_path / "ours" / "config.json").write_text(json.dumps(
        {"model_type": "gpt2", **impl("convert.config_to_hf_gpt2")(config)}))
    back = _transformers().GPT2LMHeadModel.from_pretrained(
        tmp_path / "ours", dtype=torch.float64, attn_implementation="eager").eval()
    got = back(ids).logits.detach().numpy()
    assert_close(got, want, F64, name="logits after from_pretrained")
    for name, tensor in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name


@pytest.mark.parametrize("compiled", [False, True], ids=["plain", "torch.compile"])
def test_nanogpt_checkpoint_is_the_same_model(impl, compiled):
    """A nanoGPT-named copy of an exact-GELU GPT-2 (nn.Linear (out, in) weights, the mask
    buffer nanoGPT keeps without flash attention, ``_orig_mod.`` when compiled) with its
    ``model_args`` gives the model's logits, and converts back to the same names."""
    model = hf_gpt2(5, activation_function="gelu")
    prefix = "_orig_mod." if compiled else ""
    nano = {}
    for name, value in numpy_state(model).items():
        conv1d = name.startswith("transformer.h.") and value.ndim == 2
        nano[prefix + name] = value.T.copy() if conv1d else value
    for i in range(SMALL["n_layer"]):
        nano[f"{prefix}transformer.h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 12, 12)))
    model_args = {"n_layer": 2, "n_head": 4, "n_embd": 16, "block_size": 12, "bias": True,
                  "vocab_size": 37, "dropout": 0.0}
    config = impl("convert.config_from_nanogpt")(model_args)
    params = impl("convert.from_nanogpt")(nano, config)
    ids = np.random.default_rng(5).integers(0, 37, (2, 12))
    assert_close(impl("gpt.forward")(ids, params, config)[0],
                 model(torch.from_numpy(ids)).logits.detach().numpy(), F64, name="logits")
    back = impl("convert.to_nanogpt")(params, config)
    want = {k.removeprefix(prefix): v for k, v in nano.items()
            if k.split(".")[-2:] != ["attn", "bias"]}
    assert set(back) == set(want)
    assert all(np.array_equal(back[k], want[k]) for k in want)
    assert impl("convert.config_to_nanogpt")(config) == model_args
