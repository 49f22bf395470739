"""Generation: greedy decoding, temperature, top-k, seeding."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.spec.harness.draws import LARGEST_DRAW, generator_giving
from llmref.spec.harness.tolerances import F64, assert_close
from llmref.transformer.gpt import GPTConfig

CONFIG = GPTConfig(vocab_size=17, context_len=6, d_model=8, n_heads=2, n_layers=2)
#: a context of two tokens: the window slides from the second new token on
SHORT = GPTConfig(vocab_size=17, context_len=2, d_model=8, n_heads=2, n_layers=1)


def _params(seed=0, config=CONFIG):
    return hp.random_gpt(config, np.random.default_rng(seed))


@pytest.mark.claim("L001-one-token-at-a-time")
@pytest.mark.claim("L003-answers-token-by-token")
@pytest.mark.parametrize("config", [CONFIG, SHORT], ids=["context-6", "context-2"])
def test_greedy_picks_the_argmax_every_step(impl, config, claim_figures):
    """Each new token is the argmax of the logits the model gives for the last context_len
    tokens (the window slides once the sequence is longer than the context)."""
    params = _params(0, config)
    prompt = np.random.default_rng(1).integers(0, 17, size=(6, 3))
    out = impl("generate.generate")(params, config, prompt, 8, greedy=True)
    assert out.shape == (6, 11)
    np.testing.assert_array_equal(out[:, :3], prompt)
    agree = 0
    for t in range(3, 11):
        context = out[:, max(0, t - config.context_len):t]       # context window slides
        logits, _ = impl("gpt.forward")(context, params, config)
        np.testing.assert_array_equal(out[:, t], logits[:, -1].argmax(-1))
        agree += int(np.sum(out[:, t] == logits[:, -1].argmax(-1)))
    claim_figures.record(sequences=out.shape[0], tokens_generated=out[:, 3:].size,
                         tokens_equal_to_the_argmax_of_a_fresh_forward=agree,
                         context_len=config.context_len)


def _torch_probs(logits, temperature, top_k):
    """softmax(z / tau) over the top k logits, by torch.topk (which keeps the lowest ids on
    ties when the logits have none at the k-th place) and torch.softmax."""
    z = torch.from_numpy(logits) / temperature
    if top_k is not None:
        kept = torch.topk(z, top_k, dim=-1).indices
        masked = torch.full_like(z, -torch.inf)
        z = masked.scatter(-1, kept, z.gather(-1, kept))
    return torch.softmax(z, dim=-1).numpy()


@given(st.integers(1, 4), st.integers(1, 12), st.sampled_from([0.05, 0.5, 1.0, 3.0]),
       st.one_of(st.none(), st.integers(1, 12)), hs.seeds)
def test_next_token_probs_match_torch(impl, B, V, temperature, top_k, seed):
    """Sampling probabilities for every temperature and top-k against torch (no ties drawn:
    continuous random logits)."""
    top_k = None if top_k is None else min(top_k, V)
    logits = np.random.default_rng(seed).standard_normal((B, V)) * 3
    probs = impl("generate.next_token_probs")(logits, temperature, top_k)
    assert_close(probs, _torch_probs(logits, temperature, top_k), F64, name="probabilities")


def test_top_k_ties_keep_the_lowest_ids(impl):
    """The convention at a tie: top-k keeps exactly k tokens, and among logits equal to the
    k-th largest it keeps the lowest token ids; greedy decoding picks the lowest id of the
    tied maxima (np.argmax's rule)."""
    logits = np.array([[0.5, 2.0, 1.0, 2.0, 1.0, 1.0, -3.0],
                       [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    probs = impl("generate.next_token_probs")(logits, 1.0, 3)
    kept = probs > 0
    np.testing.assert_array_equal(kept[0], [False, True, True, True, False, False, False])
    np.testing.assert_array_equal(kept[1], [True, True, True, False, False, False, False])
    assert_close(probs[1, :3], np.full(3, 1 / 3), F64, name="three tied tokens")
    assert probs[0, 1] == probs[0, 3]                         # equal logits, equal mass
    # a final layer norm with gamma = 0 outputs beta whatever the input, so a head whose
    # columns 1, 2, 3 equal beta (and the others -beta) ties those three at the maximum
    config = GPTConfig(vocab_size=5, context_len=3, d_model=4, n_heads=1, n_layers=1,
                       tie_weights=False)
    params = hp.random_gpt(config, np.random.default_rng(0))
    beta = params["ln_f"]["beta"]
    params["ln_f"]["gamma"] = np.zeros(4)
    params["lm_head"]["W"] = np.stack([-beta, beta, beta, beta, -beta], axis=1)
    out = impl("generate.generate")(params, config, np.array([[0], [4]]), 3, greedy=True)
    np.testing.assert_array_equal(out[:, 1:], 1)


def test_low_temperature_tends_to_greedy(impl):
    params = _params(1)
    prompt = np.array([3, 1, 4])
    greedy = impl("generate.generate")(params, CONFIG, prompt, 10, greedy=True)
    for seed in range(5):
        cold = impl("generate.generate")(params, CONFIG, prompt, 10, temperature=1e-4,
                                         seed=seed)
        np.testing.assert_array_equal(cold, greedy)
    hot = [impl("generate.generate")(params, CONFIG, prompt, 10, temperature=5.0, seed=s)
           for s in range(5)]
    assert any(not np.array_equal(h, greedy) for h in hot)


@pytest.mark.parametrize("temperature", [1e-3, 1e-308, 5e-324])
def test_a_tiny_temperature_gives_finite_greedy_probabilities(impl, temperature):
    """Dividing first (z / tau) overflows to inf and gives inf - inf = NaN; the probabilities
    must stay finite and put all their mass on the argmax (split evenly on a tie)."""
    logits = np.array([[1.0, 3.0, 2.0, -4.0], [5.0, 5.0, 1.0, 0.5]])
    probs = impl("generate.next_token_probs")(logits, temperature)
    assert np.all(np.isfinite(probs))
    np.testing.assert_array_equal(probs, [[0, 1, 0, 0], [0.5, 0.5, 0, 0]])


@given(st.integers(1, 17), st.floats(0.1, 10.0), hs.seeds)
def test_top_k_never_leaves_the_k_best(impl, k, temperature, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((3, 17)) * 3
    probs = impl("generate.next_token_probs")(logits, temperature, k)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-12)
    top = np.argsort(-logits, axis=-1)[:, :k]
    outside = np.ones_like(probs, dtype=bool)
    np.put_along_axis(outside, top, False, axis=-1)
    assert np.all(probs[outside] == 0.0) and np.all(probs[~outside] > 0.0)
    params = _params(seed % 7)
    out = impl("generate.generate")(params, CONFIG, np.array([[1, 2]]), 6, top_k=k,
                                    temperature=temperature, seed=seed)
    for t in range(2, 8):
        logits, _ = impl("gpt.forward")(out[:, max(0, t - 6):t], params, CONFIG)
        best = np.argsort(-logits[0, -1])[:k]
        assert out[0, t] in best


def test_same_seed_same_text(impl):
    params = _params(2)
    a = impl("generate.generate")(params, CONFIG, np.array([5]), 12, seed=42)
    b = impl("generate.generate")(params, CONFIG, np.array([5]), 12, seed=42)
    c = impl("generate.generate")(params, CONFIG, np.array([5]), 12, seed=43)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(("kwargs", "error", "needle"), [
    ({"temperature": 0.0}, ValueError, "'temperature' must be > 0"),
    ({"top_k": 0}, ValueError, "'top_k' must be > 0"),
    ({"top_k": 18}, ValueError, "'top_k' must be <= the vocabulary size 17, got 18"),
])
def test_generation_rejects_bad_settings(impl, kwargs, error, needle):
    with pytest.raises(error, match=needle):
        impl("generate.generate")(_params(), CONFIG, np.array([1]), 2, **kwargs)


def test_generation_rejects_out_of_vocabulary_prompt(impl):
    with pytest.raises(ValueError, match=r"'prompt' must hold values in \[0, 17\), got 17"):
        impl("generate.generate")(_params(), CONFIG, np.array([1, 17]), 2)


# ------------------------------------------------------------------ the KV cache, batches,
# top-p, stop tokens, repetition penalty

LLAMA = GPTConfig(vocab_size=17, context_len=6, d_model=8, n_heads=4, n_layers=2, d_ff=12,
                  activation="swiglu", tie_weights=False, norm="rms", position="rope",
                  n_kv_heads=2, bias=False, fused_qkv=False)


def _llama(seed=0):
    return hp.random_gpt(LLAMA, np.random.default_rng(seed))


@pytest.mark.parametrize("llama", [False, True], ids=["gpt2", "llama"])
@pytest.mark.parametrize("sampling", [{"greedy": True}, {"temperature": 0.8, "top_k": 9,
                                                         "top_p": 0.9}], ids=["greedy", "top-p"])
def test_cached_generation_gives_the_same_tokens(impl, llama, sampling):
    """With and without the KV cache: the same tokens (same seed), also once the sequence
    outgrows the context and the window slides (9 new tokens after 2, context 6)."""
    config, params = (LLAMA, _llama()) if llama else (CONFIG, _params())
    prompt = np.array([[3, 1], [4, 1]])
    a = impl("generate.generate")(params, config, prompt, 9, use_cache=True, **sampling)
    b = impl("generate.generate")(params, config, prompt, 9, use_cache=False, **sampling)
    np.testing.assert_array_equal(a, b)


def test_the_cache_serves_every_step_until_the_sequence_passes_the_context(impl,
                                                                           monkeypatch):
    """The reference's module docstring: with the cache, each new token costs one position
    until the sequence passes the context length; only then is the window rerun.  From a
    prompt of 3 in a context of 6, the steps at lengths 3 to 6 are cached (the step at
    length exactly 6 too: its window is the whole sequence) and those at 7 and 8 rerun it."""
    if not impl.speaks_as_reference:
        pytest.skip("how the reference spends its work, not what it computes")
    from llmref.transformer import gpt

    lengths = []
    rerun = gpt._forward
    monkeypatch.setattr(gpt, "_forward",
                        lambda ids, *a, **k: lengths.append(ids.shape[1]) or rerun(ids, *a, **k))
    impl("generate.generate")(_params(), CONFIG, np.array([[3, 1, 4]]), 6, greedy=True)
    assert lengths == [CONFIG.context_len] * 2, lengths


@pytest.mark.parametrize("llama", [False, True], ids=["gpt2", "llama"])
def test_unequal_prompts_continue_as_each_would_alone(impl, llama):
    """A list of prompts of lengths 1, 4 and 2 is left-padded and masked: greedy decoding
    continues each exactly as that prompt alone."""
    config, params = (LLAMA, _llama(1)) if llama else (CONFIG, _params(1))
    prompts = [[5], [1, 2, 3, 4], [7, 7]]
    together = impl("generate.generate")(params, config, prompts, 2, greedy=True)
    for prompt, row in zip(prompts, together, strict=True):
        alone = impl("generate.generate")(params, config, np.array(prompt), 2, greedy=True)
        np.testing.assert_array_equal(row, alone)


def test_a_padded_array_with_its_mask_gives_the_same_rows(impl):
    params = _llama(2)
    ids = np.array([[0, 0, 5, 6], [1, 2, 3, 4]])
    mask = np.array([[False, False, True, True], [True, True, True, True]])
    out = impl("generate.generate")(params, LLAMA, ids, 2, greedy=True, attention_mask=mask)
    as_list = impl("generate.generate")(params, LLAMA, [[5, 6], [1, 2, 3, 4]], 2, greedy=True)
    np.testing.assert_array_equal(out[0, 2:], as_list[0])
    np.testing.assert_array_equal(out[1], as_list[1])


def test_stop_tokens_end_each_row(impl):
    """A row that emits a stop token keeps it and then only padding follows; generation ends
    once every row has stopped.  Expected rows are built from the run without stop tokens
    (the stop token is row 0's second new token)."""
    params = _params(3)
    prompt = np.array([[1, 2], [3, 4]])
    free = impl("generate.generate")(params, CONFIG, prompt, 6, greedy=True)
    stop = int(free[0, 3])
    expected, ends = free.copy(), []
    for row in expected:
        hits = np.flatnonzero(row[2:] == stop)
        end = 2 + (hits[0] + 1 if hits.size else 6)     # one past the stop token
        row[end:] = 16
        ends.append(end)
    out = impl("generate.generate")(params, CONFIG, prompt, 6, greedy=True,
                                    stop_tokens=[np.int64(stop)], pad_id=16)
    np.testing.assert_array_equal(out, expected[:, :max(ends)])
    rows = impl("generate.generate")(params, CONFIG, [[1, 2], [3, 4]], 6, greedy=True,
                                     stop_tokens=stop)
    for row, want, end in zip(rows, free, ends, strict=True):
        np.testing.assert_array_equal(row, want[:end])


@given(st.floats(0.05, 1.0), hs.seeds)
def test_top_p_keeps_the_smallest_nucleus(impl, p, seed):
    """The kept tokens are the most likely ones, their probability before renormalising is at
    least p, and dropping the least likely kept one would leave less than p."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((4, 17)) * 2
    probs = impl("generate.next_token_probs")(logits, 1.0, None, p)
    full = impl("generate.next_token_probs")(logits, 1.0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-12)
    for row, f in zip(probs, full, strict=True):
        kept = row > 0
        assert f[kept].min() >= f[~kept].max(initial=0.0)
        assert f[kept].sum() >= p - 1e-12
        assert f[kept].sum() - f[kept].min() < p
        np.testing.assert_allclose(row[kept], f[kept] / f[kept].sum(), rtol=1e-12)


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits(impl):
    logits = np.array([[2.0, -2.0, 1.0, -1.0, 0.5]])
    ids = np.array([[0, 1, 4, 2]])
    mask = np.array([[True, True, False, True]])        # token 4 is padding: not penalised
    out = impl("generate.penalize_repeats")(logits, ids, mask, 2.0)
    np.testing.assert_array_equal(out, [[1.0, -4.0, 0.5, -1.0, 0.5]])


def test_greedy_with_a_repetition_penalty_picks_the_penalised_argmax(impl):
    params = _params(4)
    prompt = np.array([[1, 2, 3]])
    out = impl("generate.generate")(params, CONFIG, prompt, 3, greedy=True,
                                    repetition_penalty=1.7)
    for t in range(3, 6):
        logits, _ = impl("gpt.forward")(out[:, :t], params, CONFIG)
        penalised = impl("generate.penalize_repeats")(logits[:, -1], out[:, :t],
                                                      np.ones((1, t), bool), 1.7)
        assert out[0, t] == penalised[0].argmax()


def test_sampling_a_batch_is_reproducible_from_the_seed(impl):
    params = _llama(5)
    kwargs = {"temperature": 1.3, "top_p": 0.95, "repetition_penalty": 1.2}
    a = impl("generate.generate")(params, LLAMA, [[1], [2, 3]], 5, seed=np.int64(9), **kwargs)
    b = impl("generate.generate")(params, LLAMA, [[1], [2, 3]], 5, seed=9, **kwargs)
    c = impl("generate.generate")(params, LLAMA, [[1], [2, 3]], 5, seed=10, **kwargs)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_numpy_integers_are_accepted(impl):
    params = _params()
    a = impl("generate.generate")(params, CONFIG, np.array([1, 2]), np.int64(3),
                                  top_k=np.int64(4), pad_id=np.int32(0), stop_tokens=np.int64(5))
    b = impl("generate.generate")(params, CONFIG, np.array([1, 2]), 3, top_k=4, stop_tokens=5)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("kwargs", "error", "needle"), [
    ({"top_p": 0.0}, ValueError, "'top_p' must be > 0"),
    ({"top_p": 1.5}, ValueError, "'top_p' must be in (0, 1]"),
    ({"repetition_penalty": 0.0}, ValueError, "'repetition_penalty' must be > 0"),
    ({"greedy": 1}, TypeError, "'greedy' must be a bool"),
    ({"use_cache": "yes"}, TypeError, "'use_cache' must be a bool"),
    ({"stop_tokens": [17]}, ValueError, "'stop_tokens' must hold values in [0, 17)"),
    ({"stop_tokens": 1.5}, TypeError, "'stop_tokens' must be an int or a sequence of ints"),
    ({"pad_id": 17}, ValueError, "'pad_id' must be in [0, 17)"),
    ({"seed": -1}, ValueError, "'seed' must be an int >= 0"),
    ({"seed": 1.5}, TypeError, "'seed' must be an int, got float"),
    ({"max_new_tokens": -1}, ValueError, "'max_new_tokens' must be an int >= 0"),
    ({"max_new_tokens": 2.0}, TypeError, "'max_new_tokens' must be an int, got float"),
    ({"max_new_tokens": True}, TypeError, "'max_new_tokens' must be an int, got bool"),
    ({"max_new_tokens": 2**70}, ValueError, "'max_new_tokens' must be an int that fits in int64"),
    ({"prompt": np.array([[1, 2]]), "attention_mask": np.array([[1, 1]])}, TypeError,
     "'attention_mask' must be a boolean NumPy array"),
    ({"prompt": np.array([[1, 2]]), "attention_mask": np.array([[True, False]])}, ValueError,
     "left padding"),
    ({"prompt": np.array([[1, 2]]), "attention_mask": np.array([[False, False]])}, ValueError,
     "a row without any real token"),
    ({"prompt": [[1], []]}, ValueError, "argument prompt[1] must not be empty"),
    ({"prompt": [1.0, 2.0]}, ValueError, "prompt[0]"),
    ({"prompt": "12"}, TypeError, "'prompt' must be a NumPy integer array or a list of 1-D id "
     "sequences, got str"),
    ({"prompt": [[1], [2]], "attention_mask": np.array([[True], [True]])}, ValueError,
     "argument 'attention_mask' goes with a padded (B, T0) prompt, not with a list"),
    ({"prompt": []}, ValueError, "argument 'prompt' must not be an empty list"),
    ({"prompt": [[1, 2], [3, 17]]}, ValueError, "argument prompt[1] must hold values in [0, 17)"),
    ({"prompt": np.ones((1, 2, 2), dtype=np.int64)}, ValueError,
     "argument 'prompt' must have shape (T0,) or (B, T0), got (1, 2, 2)"),
    ({"prompt": np.array([1, 2]), "attention_mask": np.array([True, True])}, ValueError,
     "argument 'attention_mask' goes with a (B, T0) prompt"),
    ({"prompt": np.array([[1, 2], [3, 4]]), "attention_mask": np.array([[True, True],
                                                                       [False, False]])},
     ValueError, "a row without any real token"),
    ({"prompt": np.array([[1, 2, 3]]), "attention_mask": np.array([[False, True, False]])},
     ValueError, "left padding"),
    ({"config": {"vocab_size": 17}}, TypeError, "'config' must be a GPTConfig, got dict"),
], ids=lambda v: str(v)[:40] if not isinstance(v, type) else v.__name__)
def test_generation_rejects_bad_arguments(impl, kwargs, error, needle):
    call = {"params": _params(), "config": CONFIG, "prompt": np.array([1]),
            "max_new_tokens": 2, **kwargs}
    with pytest.raises(error) as info:
        impl("generate.generate")(**call)
    assert needle in str(info.value) and "generate.generate" in str(info.value), \
        str(info.value)


# ------------------------------------------------------------------ ties, boundaries, and a
# model whose logits are fixed

def _sorted_kept(z, k):
    """The k token ids first in the order (largest z first, then lowest id): Python's sort."""
    return sorted(sorted(range(len(z)), key=lambda i: (-z[i], i))[:k])


def test_ties_in_a_long_row_keep_the_lowest_ids(impl):
    """Top-k and top-p at ties in rows of 40 tokens taking three values (NumPy's default
    sort is not stable past 16 elements): top-k keeps the lowest ids among logits equal to
    the k-th largest; top-p, at a tie on its boundary, the lowest ids among equal
    probabilities."""
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 3, size=(3, 40)).astype(float)
    for k in (3, 7, 15, 20):
        probs = impl("generate.next_token_probs")(logits, 1.0, k)
        for row, z in zip(probs, logits, strict=True):
            assert np.flatnonzero(row > 0).tolist() == _sorted_kept(z, k), k
    full = impl("generate.next_token_probs")(logits, 1.0)
    for top_p in (0.1, 0.35, 0.6):
        probs = impl("generate.next_token_probs")(logits, 1.0, None, top_p)
        for row, f, z in zip(probs, full, logits, strict=True):
            order = sorted(range(40), key=lambda i: (-z[i], i))
            mass, n = 0.0, 0
            while mass < top_p:                  # the smallest prefix reaching top_p
                mass += f[order[n]]
                n += 1
            assert np.flatnonzero(row > 0).tolist() == sorted(order[:n]), top_p


def test_top_p_boundary_is_reached_not_passed(impl):
    """Four equal logits (probability 1/4 each, exactly): top-p 0.5 keeps two tokens, the
    first two reach 0.5 exactly, so the third is dropped; top-p 1 is allowed and keeps
    every token (the same as no top-p)."""
    logits = np.zeros((1, 4))
    np.testing.assert_array_equal(impl("generate.next_token_probs")(logits, 1.0, None, 0.5),
                                  [[0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_array_equal(impl("generate.next_token_probs")(logits, 1.0, None, 1.0),
                                  [[0.25] * 4])
    out = impl("generate.generate")(_params(), CONFIG, np.array([1, 2]), 3, top_p=1.0, seed=5)
    np.testing.assert_array_equal(out, impl("generate.generate")(_params(), CONFIG,
                                                                 np.array([1, 2]), 3, seed=5))


@pytest.mark.parametrize("temperature", [1e-3, 1e-308, 5e-324])
def test_a_tiny_temperature_raises_no_warning(impl, temperature):
    """(z - max) / tau overflowing to -inf for a tiny tau is expected and harmless: no
    RuntimeWarning reaches the caller."""
    logits = np.array([[1.0, 3.0, 2.0, -4.0], [5.0, 5.0, 1.0, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        impl("generate.next_token_probs")(logits, temperature)


def _fixed_logits(c, n_layers=1, context_len=8):
    """A GPT whose next-token logits are ``c`` whatever the input: the final layer norm
    with gamma = 0 outputs beta, and column i of the head is c_i beta / |beta|^2."""
    config = GPTConfig(vocab_size=len(c), context_len=context_len, d_model=4, n_heads=1,
                       n_layers=n_layers, tie_weights=False)
    params = hp.random_gpt(config, np.random.default_rng(0))
    beta = params["ln_f"]["beta"]
    params["ln_f"]["gamma"] = np.zeros(4)
    params["lm_head"]["W"] = np.outer(beta, np.asarray(c, float)) / (beta @ beta)
    return params, config


def test_an_empty_stop_list_stops_nothing(impl):
    """Token 0 is always the argmax: with no stop tokens (None or []), every step runs."""
    params, config = _fixed_logits([2.0, 0.0, 0.0, 0.0])
    for stops in (None, [], np.array([], dtype=np.int64)):
        out = impl("generate.generate")(params, config, np.array([1, 2]), 4, greedy=True,
                                        stop_tokens=stops)
        np.testing.assert_array_equal(out, [1, 2, 0, 0, 0, 0])


def test_a_stop_token_ends_a_row_with_left_padding(impl):
    """Rows of prompts [5], [1, 2, 3] and [3] (padded to length 3): token 0 is always the
    argmax and a stop token, so each row ends after one new token, padding included."""
    params, config = _fixed_logits([2.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    rows = impl("generate.generate")(params, config, [[5], [1, 2, 3], [3]], 4, greedy=True,
                                     stop_tokens=[0])
    for row, want in zip(rows, [[5, 0], [1, 2, 3, 0], [3, 0]], strict=True):
        np.testing.assert_array_equal(row, want)


def test_repetition_penalty_of_two_and_padding_is_no_repeat(impl):
    """Logits (1, 0.8, -1, ...): a penalty r = 2 halves token 0's logit where token 0 was
    seen (the prompt [0, 5]), so token 1 wins; in a row padded with pad_id = 0 the padding is
    not a token seen, so token 0 still wins."""
    params, config = _fixed_logits([1.0, 0.8, -1.0, -1.0, -1.0, -1.0, -1.0])
    rows = impl("generate.generate")(params, config, [[0, 5], [6]], 1, greedy=True,
                                     repetition_penalty=2.0, pad_id=0)
    np.testing.assert_array_equal(rows[0], [0, 5, 1])
    np.testing.assert_array_equal(rows[1], [6, 0])


def test_a_repetition_penalty_that_overflows_names_the_argument(impl):
    """A seen token with logit -4 times r = 1e308 overflows: a ValueError from generate
    naming 'repetition_penalty' and the penalized logits, never a silent -inf."""
    params, config = _fixed_logits([1.0, -4.0, 0.0])
    with pytest.raises(ValueError, match=r"^generate\.generate: argument 'repetition_penalty'"
                       r" = 1e\+308 makes the result overflow float64 \(the penalized logits"):
        impl("generate.generate")(params, config, np.array([1]), 1, greedy=True,
                                  repetition_penalty=1e308)


def test_sampled_tokens_lie_in_the_filtered_distribution(impl):
    """Logits (3, 0, 0, 0, 0): top-p 0.5 leaves token 0 alone (probability 0.83), so every
    sampled token is 0; top-k 2 keeps token 0 and token 1 (the lowest id of the ties)."""
    params, config = _fixed_logits([3.0, 0.0, 0.0, 0.0, 0.0])
    out = impl("generate.generate")(params, config, np.array([[1], [2], [3]]), 6, top_p=0.5)
    np.testing.assert_array_equal(out[:, 1:], 0)
    out = impl("generate.generate")(params, config, np.array([[1], [2], [3]]), 6, top_k=2,
                                    temperature=5.0)
    assert set(out[:, 1:].ravel()) == {0, 1}


@pytest.mark.parametrize("u", [0.0, LARGEST_DRAW], ids=["draw-0", "largest-draw"])
def test_sampling_never_draws_a_token_of_probability_zero(impl, monkeypatch, u):
    """Logits (-5, 0, 1, 2, -5) and top-k 3: tokens 0 and 4 have probability 0, and the
    kept probabilities sum to just below 1 in float64.  np.random.default_rng is replaced
    for this test by one whose first draw is 0, then the largest below 1 (the two draws
    where a sampler's comparison and its last bin matter): the new token is 1, 2 or 3."""
    params, config = _fixed_logits([-5.0, 0.0, 1.0, 2.0, -5.0])
    monkeypatch.setattr(np.random, "default_rng", lambda seed=None: generator_giving(u))
    out = impl("generate.generate")(params, config, np.array([[1]]), 1, top_k=3)
    assert out[0, -1] in (1, 2, 3), out


def test_the_rows_of_a_batch_are_sampled_independently(impl):
    """Two equal prompts in one batch, uniform logits over 17 tokens: each row draws its own
    tokens (8 equal draws in a row have probability 17**-8)."""
    params, config = _fixed_logits([0.0] * 17)
    out = impl("generate.generate")(params, config, np.array([[1, 2], [1, 2]]), 8, seed=3)
    assert not np.array_equal(out[0], out[1])


def test_padded_prompts_past_the_context_continue_as_each_would_alone(impl):
    """Prompts of lengths 1 and 6 with a context of 6: from the second new token on the
    window slides and still holds row 0's padding, which the window's mask and positions
    must hide (with and without the KV cache)."""
    params = _params(6)
    prompts = [[5], [1, 2, 3, 4, 5, 6]]
    for use_cache in (True, False):
        together = impl("generate.generate")(params, CONFIG, prompts, 3, greedy=True,
                                             use_cache=use_cache)
        for prompt, row in zip(prompts, together, strict=True):
            alone = impl("generate.generate")(params, CONFIG, np.array(prompt), 3,
                                              greedy=True, use_cache=use_cache)
            np.testing.assert_array_equal(row, alone)


def test_list_prompts_keep_every_id_whatever_the_pad_id_type(impl):
    """A list of prompts with id 0 and id 299 (vocabulary 300) and a pad_id given as
    np.uint8: the padded batch holds int64 ids, so every prompt comes back unchanged."""
    config = GPTConfig(vocab_size=300, context_len=4, d_model=4, n_heads=1, n_layers=1)
    params = hp.random_gpt(config, np.random.default_rng(0))
    rows = impl("generate.generate")(params, config, [[299, 0], [7]], 1, greedy=True,
                                     pad_id=np.uint8(0))
    np.testing.assert_array_equal(rows[0][:2], [299, 0])
    np.testing.assert_array_equal(rows[1][:1], [7])
    assert all(row.dtype == np.int64 for row in rows), [row.dtype for row in rows]


@pytest.mark.parametrize(("args", "error", "pattern"), [
    ((np.zeros((2, 5)), np.array([1, 2]), np.array([True, True]), 1.5), ValueError,
     r"argument 'ids' must have shape \(B, T\) with B = 2, got shape \(2,\)"),
    ((np.zeros((2, 5)), np.array([[1, 2]]), np.array([[True, True]]), 1.5), ValueError,
     r"argument 'ids' must have shape \(B, T\) with B = 2, got shape \(1, 2\)"),
    ((np.zeros((1, 5)), np.array([[1, 2]]), np.array([[True, True]]), np.inf), ValueError,
     r"argument 'penalty' must be finite, got inf"),
    ((np.array([[-4.0, 1.0]]), np.array([[0]]), np.array([[True]]), 1e308), ValueError,
     r"argument 'penalty' = 1e\+308 makes the result overflow float64 "
     r"\(the penalized logits"),
])
def test_penalize_repeats_rejects_bad_arguments(impl, args, error, pattern):
    with pytest.raises(error, match=r"^generate\.penalize_repeats: " + pattern):
        impl("generate.penalize_repeats")(*args)


def test_a_row_that_stops_early_stays_stopped(impl):
    """Logits (1, 0.9, -5, ...) with a repetition penalty of 2: a token already in the row
    has its logit halved.  Row [0] emits 1 at once (0.5 < 0.9), a stop token; row [5] emits
    0, then 1.  The first row must stay stopped (padding, never a new token) while the
    second goes on, and generation ends when both have stopped."""
    params, config = _fixed_logits([1.0, 0.9, -5.0, -5.0, -5.0, -5.0, -5.0])
    out = impl("generate.generate")(params, config, np.array([[0], [5]]), 4, greedy=True,
                                    repetition_penalty=2.0, stop_tokens=[1], pad_id=6)
    np.testing.assert_array_equal(out, [[0, 1, 6], [5, 0, 1]])


def test_a_penalty_that_is_not_finite_is_refused_with_its_value(impl):
    logits, ids = np.zeros((1, 4)), np.array([[1, 2]])
    for penalty in (np.inf, np.nan):
        with pytest.raises(ValueError) as info:
            impl("generate.penalize_repeats")(logits, ids, np.ones((1, 2), bool), penalty)
        assert "'penalty'" in str(info.value) and repr(penalty) in str(info.value), \
            str(info.value)
