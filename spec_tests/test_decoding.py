"""Padded batches and incremental decoding: attention masks and position ids in the GPT and
the reward model, and the KV cache (prefill, then one token at a time, or chunks) for every
configuration, each against the full forward pass or the torch composition."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.spec.harness import torch_twins as tw
from llmref.spec.harness.checks import flatten
from llmref.spec.harness.tolerances import F64, assert_close, assert_grads_close
from llmref.spec.test_llama import LLAMA, any_config
from llmref.transformer.gpt import GPTConfig

GPT2 = GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=2, n_layers=2)


def left_padding(rng, B, T):
    """(B, T) boolean mask, True on real tokens: each row ends with 1..T real tokens."""
    n_real = rng.integers(1, T + 1, size=B)
    return np.arange(T)[None, :] >= (T - n_real)[:, None]


def _rounding(config):
    return 10.0 if config.activation.startswith("gelu") else 0.0


@given(any_config(), hs.seeds)
def test_padded_batch_matches_torch(impl, config, seed):
    """Left-padded batch with an attention mask: logits at the real tokens and every parameter
    gradient (the upstream gradient is random on real tokens and 0 on padding, where outputs
    mean nothing) against the torch composition with the same mask and positions."""
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(config, rng)
    B, T = int(rng.integers(1, 4)), int(rng.integers(1, config.context_len + 1))
    ids = rng.integers(0, config.vocab_size, size=(B, T))
    mask = left_padding(rng, B, T)
    p_t = tw.tensors(params)
    logits_t = tw.gpt_any_logits(torch.from_numpy(ids), p_t, config, torch.from_numpy(mask))
    upstream = rng.standard_normal(logits_t.shape) * mask[..., None]
    logits_t.backward(torch.from_numpy(upstream))
    logits, cache = impl("gpt.forward")(ids, params, config, attention_mask=mask)
    scale = max(1.0, _rounding(config))
    assert_close(logits[mask], logits_t.detach().numpy()[mask], F64, name="real-token logits",
                 reference_scale=_rounding(config))
    grads = impl("gpt.backward")(upstream, cache)
    assert_grads_close(flatten(grads), flatten(tw.grads(p_t)), F64, upstream * scale)


@given(any_config(), hs.seeds)
def test_left_padded_rows_equal_each_row_alone(impl, config, seed):
    """Padding changes nothing for the real tokens: each row's logits there equal those of
    the row run alone without padding (the issue's max difference without masks was 10.1)."""
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(config, rng)
    B, T = 3, config.context_len
    ids = rng.integers(0, config.vocab_size, size=(B, T))
    mask = left_padding(rng, B, T)
    logits, _ = impl("gpt.forward")(ids, params, config, attention_mask=mask)
    for b in range(B):
        alone, _ = impl("gpt.forward")(ids[b:b + 1, mask[b]], params, config)
        assert_close(logits[b, mask[b]], alone[0], F64, name=f"row {b}",
                     reference_scale=_rounding(config))


def test_explicit_position_ids_are_used(impl):
    """position_ids override the mask's; with learned positions, giving every row the
    positions 2..T+1 equals looking up wpe rows 2.. (checked against the torch composition)."""
    rng = np.random.default_rng(1)
    params = hp.random_gpt(GPT2, rng)
    ids = rng.integers(0, 11, size=(2, 5))
    pos = np.tile(np.arange(2, 7), (2, 1))
    logits, _ = impl("gpt.forward")(ids, params, GPT2, position_ids=pos)
    expected = tw.gpt_any_logits(torch.from_numpy(ids), tw.tensors(params, False), GPT2,
                                 position_ids=torch.from_numpy(pos))
    assert_close(logits, expected.numpy(), F64, name="logits at positions 2..6",
                 reference_scale=10.0)
    plain, _ = impl("gpt.forward")(ids, params, GPT2)
    assert np.max(np.abs(plain - logits)) > 1e-3


def test_loss_with_a_mask_ignores_padding_targets(impl):
    """With a mask, targets at padding positions do not count: the loss equals the one with
    those targets set to ignore_index."""
    rng = np.random.default_rng(2)
    params = hp.random_gpt(LLAMA, rng)
    ids = rng.integers(0, 11, size=(3, 6))
    mask = left_padding(rng, 3, 6)
    targets = rng.integers(0, 11, size=(3, 6))
    loss, grads = impl("gpt.loss_and_grads")(ids, targets, params, LLAMA, attention_mask=mask)
    ignored = np.where(mask, targets, -100)
    loss2, grads2 = impl("gpt.loss_and_grads")(ids, ignored, params, LLAMA,
                                               attention_mask=mask)
    assert loss == loss2
    for k, g in flatten(grads).items():
        np.testing.assert_array_equal(g, flatten(grads2)[k], err_msg=k)


# ------------------------------------------------------------------ the KV cache

@st.composite
def decoding_case(draw):
    config = draw(any_config(max_layers=2))
    config = GPTConfig(**{**config.__dict__, "context_len": 9})
    rng = np.random.default_rng(draw(hs.seeds))
    B, T0 = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    return config, rng, B, T0


@given(decoding_case())
def test_cached_decoding_equals_the_full_forward_at_every_step(impl, case):
    """Prefill left-padded prompts, then feed one token at a time: at every step the new
    logits equal those of gpt.forward on the whole sequence so far (with its mask), for any
    configuration (learned or rotary positions, grouped-query heads, ...)."""
    config, rng, B, T0 = case
    params = hp.random_gpt(config, rng)
    ids = rng.integers(0, config.vocab_size, size=(B, config.context_len))
    mask = np.ones(ids.shape, dtype=bool)
    mask[:, :T0] = left_padding(rng, B, T0)
    logits, cache = impl("gpt.decode")(ids[:, :T0], params, config, attention_mask=mask[:, :T0])
    full, _ = impl("gpt.forward")(ids[:, :T0], params, config, attention_mask=mask[:, :T0])
    assert_close(logits[mask[:, :T0]], full[mask[:, :T0]], F64, name="prefill",
                 reference_scale=_rounding(config))
    for t in range(T0, config.context_len):
        step, cache = impl("gpt.decode")(ids[:, t:t + 1], params, config, cache)
        full, _ = impl("gpt.forward")(ids[:, :t + 1], params, config,
                                      attention_mask=mask[:, :t + 1])
        assert_close(step[:, 0], full[:, t], F64, name=f"step {t}",
                     reference_scale=_rounding(config))


@given(decoding_case())
def test_decoding_in_chunks_equals_one_pass(impl, case):
    """Several new tokens at once after a cache (T new queries against P + T keys, the
    causal mask aligned bottom-right) give the same logits as one pass over everything."""
    config, rng, B, T0 = case
    params = hp.random_gpt(config, rng)
    ids = rng.integers(0, config.vocab_size, size=(B, 9))
    mask = np.ones(ids.shape, dtype=bool)
    mask[:, :T0] = left_padding(rng, B, T0)
    cut = int(rng.integers(T0, 9))
    a, cache = impl("gpt.decode")(ids[:, :T0], params, config, attention_mask=mask[:, :T0])
    b, cache = impl("gpt.decode")(ids[:, T0:cut], params, config, cache,
                                  attention_mask=mask[:, T0:cut]) if cut > T0 else (a[:, :0],
                                                                                     cache)
    c, _ = impl("gpt.decode")(ids[:, cut:], params, config, cache)
    full, _ = impl("gpt.forward")(ids, params, config, attention_mask=mask)
    got = np.concatenate([a, b, c], axis=1)
    assert_close(got[mask], full[mask], F64, name="chunked decoding",
                 reference_scale=_rounding(config))


def test_decode_leaves_the_cache_it_was_given_unchanged(impl):
    rng = np.random.default_rng(3)
    params = hp.random_gpt(LLAMA, rng)
    ids = rng.integers(0, 11, size=(2, 4))
    _, cache = impl("gpt.decode")(ids, params, LLAMA)
    before = {k: np.copy(v) for k, v in flatten(cache).items()}
    first, _ = impl("gpt.decode")(np.array([[1], [2]]), params, LLAMA, cache)
    again, _ = impl("gpt.decode")(np.array([[1], [2]]), params, LLAMA, cache)
    for k, v in flatten(cache).items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize(("call", "error", "needles"), [
    (lambda d, p, ids, c: d(ids, p, LLAMA, attention_mask=np.ones((2, 3), int)), TypeError,
     ["gpt.decode", "'attention_mask'", "boolean", "astype(bool)"]),
    (lambda d, p, ids, c: d(ids[:1], p, LLAMA, c), ValueError,
     ["gpt.decode", "kv_cache['mask']", "B = 1"]),
    (lambda d, p, ids, c: d(np.zeros((2, 6), int), p, LLAMA, c), ValueError,
     ["gpt.decode", "9 tokens", "context length 8"]),
    (lambda d, p, ids, c: d(ids, p, LLAMA, {**c, "k": c["k"][:1]}), ValueError,
     ["gpt.decode", "kv_cache['k']", "n_layers = 2"]),
], ids=["integer mask", "cache of another batch", "past the context", "cache too shallow"])
def test_decode_rejects_bad_input(impl, call, error, needles):
    rng = np.random.default_rng(0)
    params = hp.random_gpt(LLAMA, rng)
    ids = rng.integers(0, 11, size=(2, 3))
    _, cache = impl("gpt.decode")(ids, params, LLAMA)
    with pytest.raises(error) as info:
        call(impl("gpt.decode"), params, ids, cache)
    assert all(n in str(info.value) for n in needles), str(info.value)


def test_forward_rejects_an_integer_mask(impl):
    """An integer 0/1 mask is refused, not inverted bitwise (~1 == -2 keeps every token)."""
    params = hp.random_gpt(GPT2, np.random.default_rng(0))
    with pytest.raises(TypeError, match="'attention_mask' must be a boolean"):
        impl("gpt.forward")(np.zeros((1, 3), int), params, GPT2,
                            attention_mask=np.array([[0, 1, 1]]))


# ------------------------------------------------------------------ the reward model

@given(st.booleans(), hs.seeds)
def test_reward_model_with_left_padding_equals_each_row_alone(impl, llama, seed):
    """Rewards of left-padded rows (attention mask) equal those of each row alone; the
    gradients match the torch composition with the same mask."""
    config = LLAMA if llama else GPT2
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(GPTConfig(**{**config.__dict__, "tie_weights": True}), rng)
    params["reward_head"] = hp.random_linear(config.d_model, 1, rng)
    ids = rng.integers(0, 11, size=(3, 6))
    mask = left_padding(rng, 3, 6)
    rewards, cache = impl("reward_model.forward")(ids, params, config, attention_mask=mask)
    for b in range(3):
        alone, _ = impl("reward_model.forward")(ids[b:b + 1, mask[b]], params, config)
        assert_close(rewards[b:b + 1], alone, F64, name=f"reward of row {b}",
                     reference_scale=10.0)
    p_t = tw.tensors(params)
    trunk = {k: v for k, v in p_t.items() if k != "reward_head"}
    h = _torch_hidden(torch.from_numpy(ids), trunk, config, torch.from_numpy(mask))
    r_t = h[:, -1] @ p_t["reward_head"]["W"][:, 0] + p_t["reward_head"]["b"][0]
    upstream = rng.standard_normal(3)
    r_t.backward(torch.from_numpy(upstream))
    assert_close(rewards, r_t.detach().numpy(), F64, name="rewards", reference_scale=10.0)
    grads = impl("reward_model.backward")(upstream, cache)
    assert_grads_close(flatten(grads), flatten(tw.grads(p_t)), F64, upstream * 10.0)


def _torch_hidden(ids, p, config, mask):
    """ln_f(h_N) of the torch composition: its logits with an identity head."""
    identity = {"W": torch.eye(config.d_model, dtype=torch.float64)}
    untied = GPTConfig(**{**config.__dict__, "tie_weights": False})
    return tw.gpt_any_logits(ids, {**p, "lm_head": identity}, untied, mask)


def test_reward_model_mask_and_lengths_agree_on_right_padding(impl):
    """Right padding given as lengths or as a mask: the same rewards."""
    rng = np.random.default_rng(4)
    params = hp.random_gpt(GPT2, rng)
    params["reward_head"] = hp.random_linear(8, 1, rng)
    ids = rng.integers(0, 11, size=(3, 6))
    lengths = np.array([6, 2, 4])
    mask = np.arange(6)[None, :] < lengths[:, None]
    a, _ = impl("reward_model.forward")(ids, params, GPT2, lengths)
    b, _ = impl("reward_model.forward")(ids, params, GPT2, attention_mask=mask)
    assert_close(b, a, F64, name="rewards", reference_scale=10.0)
