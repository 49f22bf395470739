"""The examples' outcomes, on fixed seeds.  They run the reference itself, so a learner's
run (``--impl``) skips them."""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _reference_only(impl):
    if not impl.is_reference:
        pytest.skip("examples run the reference implementation")


@pytest.mark.claim("L003-kl-prevents-hacking")
def test_reward_hacking_without_penalty_and_its_prevention_with_one():
    """beta = 0: the proxy rises, the gold reward falls below the reference's and most
    outputs repeat a word ('.' aside) 3+ times in 6.  beta = 0.5: KL to the reference stays
    small and the gold reward does not collapse (it ends above the reference's)."""
    from llmref.examples import reward_hacking

    results = reward_hacking.run(betas=(0.0, 0.5), iterations=120, seed=0, log=lambda s: None)
    ref, free, penalised = results["reference"], results[0.0], results[0.5]
    assert free["proxy"] > ref["proxy"] + 2.0
    assert free["gold"] < ref["gold"] - 2.0
    assert free["repetitive"] > 0.5
    assert penalised["kl"] < 0.2 * free["kl"]
    assert penalised["gold"] > ref["gold"]
    assert penalised["repetitive"] < 0.2
    assert np.isfinite(penalised["proxy"])


@pytest.mark.claim("L001-about-100-parameters")
@pytest.mark.claim("L001-sat-reaches-99")
@pytest.mark.claim("L001-next-token")
def test_cat_sat_on_the_mat(claim_values):
    """About 100 parameters (101); the determined next words reach p >= 0.99, cat -> sat
    included; 'the -> cat' and 'the -> mat' level off at 50% each, the most one word of
    context allows; chance is 1/5."""
    from llmref.examples import cat_sat_mat

    result = cat_sat_mat.train(epochs=400, lr=0.5, seed=0, log=None)
    p_end = result["history"]["p_correct"][-1]
    pairs = result["pairs"]
    assert result["n_params"] == claim_values["L001-about-100-parameters"]["value"]
    assert result["chance"] == 0.2
    for i, pair in enumerate(pairs):
        if pair.startswith("the"):
            assert 0.45 < p_end[i] <= 0.5 + 1e-9, pair
        else:
            assert p_end[i] >= claim_values["L001-sat-reaches-99"]["value"], pair
    assert result["history"]["loss"][-1] < result["history"]["loss"][0]


def test_cat_sat_on_the_mat_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from llmref.examples import cat_sat_mat

    result = cat_sat_mat.train(epochs=20, log=None)
    path = cat_sat_mat.plot(result, tmp_path / "cat.png")
    assert path.stat().st_size > 10_000


@pytest.mark.claim("L002-calculator-scale")
@pytest.mark.slow
def test_word_calculator_generalises_to_held_out_problems(claim):
    """4000 steps (about 3 minutes on two cores): above 90% on the 1505 held-out problems."""
    from llmref.examples import word_calculator

    result = word_calculator.train(steps=4000, seed=0, log=None)
    assert result["test_acc"] > claim["value"]
    assert 90_000 < result["n_params"] < 150_000
    assert 13_000 < result["n_train"] < 16_000


def test_word_calculator_short_run_learns_something():
    """A 60-step run is far from done but already beats chance (1/199) on held-out data
    (measured: 3.7%)."""
    from llmref.examples import word_calculator

    result = word_calculator.train(steps=60, seed=0, log=None, log_every=60)
    assert result["test_acc"] > 0.02


@pytest.mark.parametrize("model", ["llama", "gpt2"])
def test_decode_benchmark_runs_and_its_paths_agree(model, capsys):
    """A tiny run of the decoding benchmark (without Hugging Face): with and without the KV
    cache the same tokens, and both rates and their ratio printed."""
    from llmref.examples import benchmark_decode

    result = benchmark_decode.main(["--model", model, "--d-model", "16", "--layers", "1",
                                    "--heads", "2", "--kv-heads", "1", "--vocab", "50",
                                    "--context", "16", "--prompt", "5", "--new", "6",
                                    "--batch", "2", "--repeats", "1", "--no-hf"])
    assert result["same_tokens"] == {"numpy, KV cache": 1.0, "numpy, no cache": 1.0}
    assert all(rate > 0 for rate in result["tokens_per_s"].values())
    assert "ratio cached / uncached (ours)" in capsys.readouterr().out
