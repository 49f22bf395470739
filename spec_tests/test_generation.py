"""Generation: greedy decoding, temperature, top-k, seeding."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.transformer.gpt import GPTConfig

CONFIG = GPTConfig(vocab_size=17, context_len=6, d_model=8, n_heads=2, n_layers=2)


def _params(seed=0):
    return hp.random_gpt(CONFIG, np.random.default_rng(seed))


@pytest.mark.claim("L001-one-token-at-a-time")
@pytest.mark.claim("L003-answers-token-by-token")
def test_greedy_picks_the_argmax_every_step(impl):
    params = _params()
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    out = impl("generate.generate")(params, CONFIG, prompt, 8, greedy=True)
    assert out.shape == (2, 11)
    np.testing.assert_array_equal(out[:, :3], prompt)
    for t in range(3, 11):
        context = out[:, max(0, t - CONFIG.context_len):t]       # context window slides
        logits, _ = impl("gpt.forward")(context, params, CONFIG)
        np.testing.assert_array_equal(out[:, t], logits[:, -1].argmax(-1))


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
