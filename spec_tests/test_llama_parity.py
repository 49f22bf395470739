"""Parity with Hugging Face transformers (marker ``parity``; run with ``-m parity``): a
random-init ``LlamaForCausalLM`` with grouped-query attention and an untied head, and a
``GPT2LMHeadModel`` on a padded batch (unpadded GPT-2 parity is in test_gpt2_parity.py), both
in float64 with eager attention, loaded with the same weights as our GPT through
:mod:`llmref.transformer.convert_llama` and :mod:`llmref.transformer.convert`.

Hugging Face computes three things in float32 whatever the model's dtype: the rotary
angles (``inv_freq`` and the products with the positions), RMSNorm's statistics, and the
eager attention softmax.  The oracle runs those same formulas in float64 (the rotary module's
``inv_freq`` recomputed in float64, its forward and RMSNorm's taken in the input's dtype,
the softmax not down-cast), so only float64 rounding separates the two models and the
harness' float64 tolerances apply.

Padding: Hugging Face's forward counts positions ``0 .. T-1`` whatever the mask (its
``generate`` passes ``cumsum(mask) - 1``); the tests give it those position ids, as
``generate`` does.  Outputs at padding positions differ (Hugging Face lets a query with no
visible key attend uniformly; ours outputs 0) and no real token reads them, so logits are
compared at real tokens and the upstream gradient is 0 at padding.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmref.spec.harness import params as hp
from llmref.spec.harness.checks import flatten
from llmref.spec.harness.tolerances import F64, assert_close, assert_grads_close
from llmref.transformer.gpt import GPTConfig

pytestmark = pytest.mark.parity


def _transformers():
    """transformers, imported only when a parity test runs (the default run leaves these
    tests out and should not pay for importing it)."""
    transformers = pytest.importorskip("transformers")
    transformers.utils.logging.set_verbosity_error()
    return transformers

LLAMA = GPTConfig(vocab_size=37, context_len=16, d_model=16, n_heads=4, n_layers=2, d_ff=24,
                  activation="swiglu", tie_weights=False, norm="rms", position="rope",
                  rope_theta=500.0, n_kv_heads=2, bias=False, fused_qkv=False, eps=1e-5)
GPT2 = GPTConfig(vocab_size=37, context_len=16, d_model=16, n_heads=4, n_layers=2)


@pytest.fixture
def float64_llama(monkeypatch):
    """Hugging Face's Llama with its three float32 computations kept in float64."""
    from transformers.models.llama import modeling_llama

    softmax = F.softmax

    def softmax_in_the_input_dtype(input, dim=None, _stacklevel=3, dtype=None):
        if dtype == torch.float32 and input.dtype == torch.float64:
            dtype = None
        return softmax(input, dim=dim, dtype=dtype)

    def rms_norm(self, x):
        return F.rms_norm(x, self.weight.shape, self.weight, self.variance_epsilon)

    def rotary(self, x, position_ids):
        angle = position_ids[..., None].to(torch.float64) * self.inv_freq.to(torch.float64)
        angle = torch.cat((angle, angle), dim=-1)
        return angle.cos().to(x.dtype), angle.sin().to(x.dtype)

    monkeypatch.setattr(torch.nn.functional, "softmax", softmax_in_the_input_dtype)
    monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", rms_norm)
    monkeypatch.setattr(modeling_llama.LlamaRotaryEmbedding, "forward", rotary)


def hf_llama(impl, params, config, **config_fields):
    """LlamaForCausalLM in float64 (eager attention) holding ``params``."""
    transformers = _transformers()
    fields = {**impl("convert_llama.config_to_hf_llama")(config), **config_fields}
    hf_config = transformers.LlamaConfig(**fields, pad_token_id=0, bos_token_id=None,
                                         eos_token_id=None)
    hf_config._attn_implementation = "eager"
    model = transformers.LlamaForCausalLM(hf_config).to(torch.float64).eval()
    state = impl("convert_llama.to_hf_llama")(params, config)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    rotary = model.model.rotary_emb
    D = config.head_dim
    rotary.inv_freq = 1.0 / config.rope_theta ** (torch.arange(0, D, 2, dtype=torch.float64)
                                                  / D)
    return model


def left_padded(rng, lengths, T, V):
    ids = rng.integers(1, V, size=(len(lengths), T))
    mask = np.arange(T)[None, :] >= (T - np.array(lengths))[:, None]
    ids[~mask] = 0
    return ids, mask


def hf_positions(mask):
    return torch.from_numpy(np.maximum(np.cumsum(mask, axis=1) - 1, 0))


def test_config_converts_both_ways(impl):
    fields = impl("convert_llama.config_to_hf_llama")(LLAMA)
    hf = _transformers().LlamaConfig(**fields).to_dict()
    assert impl("convert_llama.config_from_hf_llama")(hf) == LLAMA


def test_llama_logits_and_every_gradient_match_hugging_face(impl, float64_llama):
    """Left-padded batch (rows of 11, 6 and 1 real tokens): logits at every real token and the
    gradient of every parameter (HF's gradients converted back to our tree) within the
    harness' float64 tolerances."""
    rng = np.random.default_rng(0)
    params = hp.random_gpt(LLAMA, rng)
    model = hf_llama(impl, params, LLAMA)
    ids, mask = left_padded(rng, [11, 6, 1], 11, LLAMA.vocab_size)
    out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask).long(),
                position_ids=hf_positions(mask))
    upstream = rng.standard_normal(out.logits.shape) * mask[..., None]
    out.logits.backward(torch.from_numpy(upstream))
    hf_grads = impl("convert_llama.from_hf_llama")(
        {k: p.grad.numpy() for k, p in model.named_parameters()}, LLAMA)

    logits, cache = impl("gpt.forward")(ids, params, LLAMA, attention_mask=mask)
    assert_close(logits[mask], out.logits.detach().numpy()[mask], F64, name="logits")
    grads = impl("gpt.backward")(upstream, cache)
    assert set(flatten(grads)) == set(flatten(hf_grads))
    assert_grads_close(flatten(grads), flatten(hf_grads), F64, upstream)


def test_llama_weights_round_trip_through_hugging_face(impl):
    """to_hf_llama -> a strict load_state_dict -> state_dict() -> from_hf_llama gives the
    tree back bit for bit."""
    params = hp.random_gpt(LLAMA, np.random.default_rng(1))
    model = hf_llama(impl, params, LLAMA)
    back = impl("convert_llama.from_hf_llama")(
        {k: v.numpy() for k, v in model.state_dict().items()}, LLAMA)
    for k, v in flatten(params).items():
        np.testing.assert_array_equal(flatten(back)[k], v, err_msg=k)


def test_llama_cached_decoding_and_greedy_tokens_match_hugging_face(impl, float64_llama):
    """Unequal prompts (lengths 5, 2, 4, left-padded): our cached decoding gives, at every
    step, the logits of Hugging Face's full forward pass over the sequence so far, and our
    greedy generation (KV cache) the same tokens as ``generate(do_sample=False)``, with and
    without a stop token (Hugging Face's eos, after which rows hold the pad id)."""
    rng = np.random.default_rng(2)
    params = hp.random_gpt(LLAMA, rng)
    model = hf_llama(impl, params, LLAMA)
    ids, mask = left_padded(rng, [5, 2, 4], 5, LLAMA.vocab_size)
    n_new = 8
    ours = impl("generate.generate")(params, LLAMA, ids, n_new, greedy=True,
                                     attention_mask=mask)
    theirs = model.generate(input_ids=torch.from_numpy(ids),
                            attention_mask=torch.from_numpy(mask).long(),
                            max_new_tokens=n_new, do_sample=False, pad_token_id=0)
    np.testing.assert_array_equal(ours, theirs.numpy())

    full_mask = np.concatenate([mask, np.ones((3, n_new), bool)], axis=1)
    logits, kv = impl("gpt.decode")(ids, params, LLAMA, attention_mask=mask)
    for t in range(ids.shape[1], ours.shape[1]):
        with torch.no_grad():
            hf = model(input_ids=torch.from_numpy(ours[:, :t]),
                       attention_mask=torch.from_numpy(full_mask[:, :t]).long(),
                       position_ids=hf_positions(full_mask[:, :t])).logits[:, -1]
        assert_close(logits[:, -1], hf.numpy(), F64, name=f"logits before token {t}")
        logits, kv = impl("gpt.decode")(ours[:, t:t + 1], params, LLAMA, kv)

    stop = int(theirs[1, 6])                             # a token row 1 emits
    ours = impl("generate.generate")(params, LLAMA, ids, n_new, greedy=True,
                                     attention_mask=mask, stop_tokens=stop, pad_id=0)
    theirs = model.generate(input_ids=torch.from_numpy(ids),
                            attention_mask=torch.from_numpy(mask).long(),
                            max_new_tokens=n_new, do_sample=False, pad_token_id=0,
                            eos_token_id=stop)
    np.testing.assert_array_equal(ours, theirs.numpy())


def test_flop_count_matches_torch_on_hugging_face_llama(impl):
    """flops.gpt for the Llama configuration (grouped-query K/V projections, three SwiGLU
    matrices, untied head) equals what torch's FlopCounterMode counts on Hugging Face's
    model, forward and backward."""
    from torch.utils.flop_counter import FlopCounterMode

    params = hp.random_gpt(LLAMA, np.random.default_rng(3))
    model = hf_llama(impl, params, LLAMA)
    ids = torch.from_numpy(np.random.default_rng(3).integers(0, 37, size=(2, 7)))
    with FlopCounterMode(display=False) as forward:
        logits = model(input_ids=ids).logits
    with FlopCounterMode(display=False) as backward:
        logits.backward(torch.randn_like(logits))
    cost = impl("flops.gpt")(LLAMA, 2, 7)
    assert (cost.forward, cost.backward) == (forward.get_total_flops(),
                                             backward.get_total_flops())


# ------------------------------------------------------------------ GPT-2, padded

def test_gpt2_padded_batch_matches_hugging_face(impl):
    """GPT2LMHeadModel (float64, eager) on a left-padded batch with the mask and position
    ids: logits at real tokens and every parameter gradient (converted back to our tree by
    :mod:`llmref.transformer.convert`; the tied table's gradient holds the head's share in
    both)."""
    transformers = _transformers()
    rng = np.random.default_rng(4)
    params = hp.random_gpt(GPT2, rng)
    hf_config = transformers.GPT2Config(**impl("convert.config_to_hf_gpt2")(GPT2),
                                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                        attn_implementation="eager")
    model = transformers.GPT2LMHeadModel(hf_config).to(torch.float64).eval()
    state = impl("convert.to_hf_gpt2")(params, GPT2)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    ids, mask = left_padded(rng, [9, 3, 6], 9, 37)
    out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask).long(),
                position_ids=hf_positions(mask))
    upstream = rng.standard_normal(out.logits.shape) * mask[..., None]
    out.logits.backward(torch.from_numpy(upstream))
    hf_grads = impl("convert.from_hf_gpt2")(
        {k: p.grad.numpy() for k, p in model.named_parameters()}, GPT2)

    logits, cache = impl("gpt.forward")(ids, params, GPT2, attention_mask=mask)
    assert_close(logits[mask], out.logits.detach().numpy()[mask], F64, name="logits",
                 reference_scale=10.0)
    grads = impl("gpt.backward")(upstream, cache)
    assert set(flatten(grads)) == set(flatten(hf_grads))
    assert_grads_close(flatten(grads), flatten(hf_grads), F64, upstream * 10.0)
