"""Softmax and log-softmax over the last axis."""

import numpy as np
import pytest
import torch
from hypothesis import given

from llmref.spec.harness import findings
from llmref.spec.harness import strategies as hs
from llmref.spec.harness.checks import (
    check_against_finite_differences,
    check_against_torch,
    check_float32_forward,
)
from llmref.spec.harness.tolerances import F64, assert_close

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
@given(x=hs.float_arrays(max_dims=2, max_side=5, scale=1.0, edges=False), seed=hs.seeds)
def test_finite_differences(impl, name, x, seed):
    check_against_finite_differences(impl, name, {"x": x}, _args, ["x"], seed)


@pytest.mark.parametrize("name", NAMES)
@given(x=hs.float_arrays(dtype=np.float32))
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
    findings.total("rows checked", s.sum(axis=-1).size)
    findings.smallest("smallest probability", np.min(s, initial=np.inf))
    findings.largest("largest |row sum - 1|", np.max(np.abs(s.sum(axis=-1) - 1.0), initial=0.0))


@given(x=hs.float_arrays())
def test_equal_logits_get_equal_probabilities(impl, x):
    """The convention at ties: equal logits in a row get exactly equal probabilities (and
    log-probabilities), so a row of V equal logits is uniform, 1/V each, whatever their
    value; a row's largest logits keep the largest probabilities."""
    s = impl("softmax.forward")(x)[0]
    y = impl("log_softmax.forward")(x)[0]
    rows, s_rows, y_rows = (a.reshape(-1, x.shape[-1]) for a in (x, s, y))
    for row, s_row, y_row in zip(rows, s_rows, y_rows, strict=True):
        for value in np.unique(row):
            tied = row == value
            assert np.all(s_row[tied] == s_row[tied][0]), (row, s_row)
            assert np.all(y_row[tied] == y_row[tied][0]), (row, y_row)
        assert s_row.argmax() == row.argmax() or s_row[row.argmax()] == s_row.max()
    uniform = impl("softmax.forward")(np.full((2, 7), 1e4))[0]
    assert_close(uniform, np.full((2, 7), 1 / 7), F64, name="softmax of equal logits")


def test_softmax_gradient_is_not_vacuous(impl):
    """With a random upstream gradient the softmax gradient is non-zero (an all-ones upstream
    would give exactly zero, which is why no test here uses one)."""
    rng = np.random.default_rng(3)
    s, cache = impl("softmax.forward")(rng.standard_normal((2, 5)))
    dx = impl("softmax.backward")(rng.standard_normal((2, 5)), cache)["x"]
    assert np.min(np.abs(dx)) > 0
    np.testing.assert_allclose(dx.sum(axis=-1), 0.0, atol=1e-12)


def test_the_hint_does_not_call_a_wrong_forward_right():
    """The finite-difference failure names the forward when its output is wrong, even where
    its slopes match (a one-element softmax is constant: any constant forward has the right
    zero gradient), and the backward when the forward's output is right."""
    from llmref.spec.harness.checks import check_against_finite_differences

    def fake(forward_out):
        def forward(x):
            return np.full_like(x, forward_out), x.copy()

        def backward(dout, cache):
            return {"x": np.full_like(cache, 0.5)}          # wrong: the gradient is zero
        fns = {"softmax.forward": forward, "softmax.backward": backward}
        return lambda name: fns[name]

    inputs = {"x": np.array([[0.3]])}
    for value, blamed in ((2.0, "fix the forward first"), (1.0, "your backward is wrong")):
        with pytest.raises(AssertionError) as info:
            check_against_finite_differences(fake(value), "softmax", inputs,
                                             lambda a: ((a["x"],), {}), ["x"], seed=0)
        assert blamed in str(info.value), str(info.value)
