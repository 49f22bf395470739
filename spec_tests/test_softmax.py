"""Softmax and log-softmax over the last axis."""

import numpy as np
import pytest
import torch
from hypothesis import given

from llmref.spec.harness import strategies as hs
from llmref.spec.harness.checks import (
    check_against_finite_differences,
    check_against_torch,
    check_float32_forward,
)

ORACLES = {"softmax": lambda x: torch.softmax(x, dim=-1),
           "log_softmax": lambda x: torch.log_softmax(x, dim=-1)}
NAMES = sorted(ORACLES)


def _args(a):
    return (a["x"],), {}


@pytest.mark.parametrize("name", NAMES)
@given(x=hs.float_arrays(), seed=hs.seeds)
def test_matches_torch(impl, name, x, seed):
    check_against_torch(impl, name, {"x": x}, _args, ORACLES[name], seed)


@pytest.mark.parametrize("name", NAMES)
@given(x=hs.float_arrays(max_dims=2, max_side=5, scale=1.0), seed=hs.seeds)
def test_finite_differences(impl, name, x, seed):
    check_against_finite_differences(impl, name, {"x": x}, _args, ["x"], seed)


@pytest.mark.parametrize("name", NAMES)
@given(x=hs.float_arrays())
def test_float32(impl, name, x):
    check_float32_forward(impl, name, {"x": x}, _args, ORACLES[name])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("magnitude", [1e4, -1e4])
def test_huge_logits_are_finite_and_equal_torch(impl, name, magnitude):
    """Logits of +-1e4: finite and equal to torch in value and gradient (this is where a
    softmax without the max shift overflows)."""
    x = np.array([[magnitude, 0.0, -magnitude / 2, magnitude - 3.0],
                  [1.0, 2.0, 3.0, 4.0]])
    check_against_torch(impl, name, {"x": x}, _args, ORACLES[name], seed=1)


@pytest.mark.claim("L001-output-scores")
@given(x=hs.float_arrays())
def test_softmax_rows_are_distributions(impl, x):
    s, _ = impl("softmax.forward")(x)
    assert np.all(s >= 0)
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=1e-12)


def test_softmax_gradient_is_not_vacuous(impl):
    """With a random upstream gradient the softmax gradient is non-zero (an all-ones upstream
    would give exactly zero, which is why no test here uses one)."""
    rng = np.random.default_rng(3)
    s, cache = impl("softmax.forward")(rng.standard_normal((2, 5)))
    dx = impl("softmax.backward")(rng.standard_normal((2, 5)), cache)["x"]
    assert np.min(np.abs(dx)) > 0
    np.testing.assert_allclose(dx.sum(axis=-1), 0.0, atol=1e-12)
