"""The examples' outcomes, on fixed seeds.  They run the reference itself, so a learner's
run (``--impl``) skips them."""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _reference_only(impl):
    if not impl.is_reference:
        pytest.skip("examples run the reference implementation")


def test_reward_hacking_without_penalty_and_its_prevention_with_one():
    """beta = 0: the proxy rises, the gold reward falls below the reference's and most
    outputs repeat a word ('.' aside) 3+ times in 6.  beta = 0.5: KL to the reference stays
    small and the gold reward does not collapse (it ends above the reference's)."""
    from examples import reward_hacking

    results = reward_hacking.run(betas=(0.0, 0.5), iterations=120, seed=0, log=lambda s: None)
    ref, free, penalised = results["reference"], results[0.0], results[0.5]
    assert free["proxy"] > ref["proxy"] + 2.0
    assert free["gold"] < ref["gold"] - 2.0
    assert free["repetitive"] > 0.5
    assert penalised["kl"] < 0.2 * free["kl"]
    assert penalised["gold"] > ref["gold"]
    assert penalised["repetitive"] < 0.2
    assert np.isfinite(penalised["proxy"])
