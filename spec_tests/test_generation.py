"""Generation: greedy decoding, temperature, top-k, seeding."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.spec.harness.tolerances import F64, assert_close
from llmref.transformer.gpt import GPTConfig

CONFIG = GPTConfig(vocab_size=17, context_len=6, d_model=8, n_heads=2, n_layers=2)
#: a context of two tokens: the window slides from the second new token on
SHORT = GPTConfig(vocab_size=17, context_len=2, d_model=8, n_heads=2, n_layers=1)


def _params(seed=0, config=CONFIG):
    return hp.random_gpt(config, np.random.default_rng(seed))


@pytest.mark.claim("L003-answers-token-by-token")
@pytest.mark.parametrize("config", [CONFIG, SHORT], ids=["context-6", "context-2"])
def test_greedy_picks_the_argmax_every_step(impl, config):
    """Each new token is the argmax of the logits the model gives for the last context_len
    tokens (the window slides once the sequence is longer than the context)."""
    params = _params(0, config)
    prompt = np.random.default_rng(1).integers(0, 17, size=(6, 3))
    out = impl("generate.generate")(params, config, prompt, 8, greedy=True)
    assert out.shape == (6, 11)
    np.testing.assert_array_equal(out[:, :3], prompt)
    for t in range(3, 11):
        context = out[:, max(0, t - config.context_len):t]       # context window slides
        logits, _ = impl("gpt.forward")(context, params, config)
        np.testing.assert_array_equal(out[:, t], logits[:, -1].argmax(-1))


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
