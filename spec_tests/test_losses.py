"""Cross-entropy from logits (mean, ignore_index) and mean squared error."""

import numpy as np
import pytest
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import strategies as hs
from llmref.spec.harness.checks import (
    check_against_finite_differences,
    check_against_torch,
    check_float32_forward,
)


def _ce_inputs(lead, vocab, scale, seed, ignore_some):
    rng = np.random.default_rng(seed)
    targets = np.asarray(rng.integers(0, vocab, size=lead))
    if ignore_some and targets.size > 1:
        targets.flat[rng.integers(1, targets.size)] = -100        # never ignore them all
    return {"logits": rng.standard_normal(lead + (vocab,)) * scale, "targets": targets}


def _ce_args(a, ignore_index=-100):
    return (a["logits"], a["targets"]), {"ignore_index": ignore_index}


def _ce_torch(logits, targets, ignore_index=-100):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=ignore_index)


@pytest.mark.claim("L004-ce-for-lm")
@given(hs.shapes(0, 2), hs.sides(9), st.booleans(), st.sampled_from([-100, -1, 0]), hs.seeds,
       st.data())
def test_cross_entropy_matches_torch(impl, lead, vocab, ignore_some, ignore_index, seed, data):
    """Loss and gradient against torch on edge logits (ties, zeros, +-1e4), some targets
    ignored anywhere in the batch, with the default ignore_index and others (0: a real class
    id that is then skipped); any number of leading dimensions, none included (one
    prediction: logits of shape (V,) and a 0-d target)."""
    inputs = _ce_inputs(lead, vocab, 1.0, seed, ignore_some)
    inputs["logits"] = data.draw(hs.float_arrays(shape=lead + (vocab,)))
    if vocab == 1:
        ignore_index = -1                                 # id 0 is the only class there
    targets = inputs["targets"]
    targets[targets == -100] = ignore_index
    if np.all(targets == ignore_index):                   # every target was id 0
        targets.flat[0] = 1
    # the oracle subtracts two numbers of the logits' size (logsumexp - x_y), so a loss far
    # below them (a confident right answer: 4e-8 from logits [0, 17]) is exact in torch only
    # to about 1e-16 of the logits; our log1p form is exact there, the oracle is not
    check_against_torch(impl, "cross_entropy", inputs, lambda a: _ce_args(a, ignore_index),
                        lambda logits, targets: _ce_torch(logits, targets, ignore_index), seed,
                        rounding_scale=float(np.max(np.abs(inputs["logits"]), initial=0.0)))


@given(hs.shapes(1, 2, max_side=3), hs.sides(4), st.booleans(), hs.seeds)
def test_cross_entropy_finite_differences(impl, lead, vocab, ignore_some, seed):
    check_against_finite_differences(impl, "cross_entropy",
                                     _ce_inputs(lead, vocab, 1.0, seed, ignore_some), _ce_args,
                                     ["logits"], seed)


@given(hs.shapes(1, 2), hs.sides(9), hs.seeds)
def test_cross_entropy_float32(impl, lead, vocab, seed):
    check_float32_forward(impl, "cross_entropy", _ce_inputs(lead, vocab, 1.0, seed, False),
                          _ce_args, _ce_torch)


@pytest.mark.parametrize("magnitude", [1e4, -1e4])
def test_cross_entropy_huge_logits(impl, magnitude):
    """Logits of +-1e4 give a finite loss and gradient equal to torch's."""
    inputs = {"logits": np.array([[magnitude, 0.0, -magnitude], [0.0, magnitude, 1.0]]),
              "targets": np.array([2, 1])}
    check_against_torch(impl, "cross_entropy", inputs, _ce_args, _ce_torch, seed=2)


def test_cross_entropy_ignored_rows_get_zero_gradient(impl):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((3, 5))
    loss, cache = impl("cross_entropy.forward")(logits, np.array([1, -100, 3]))
    grad = impl("cross_entropy.backward")(1.0, cache)["logits"]
    assert np.all(grad[1] == 0.0)
    assert np.all(grad[[0, 2]] != 0.0)


def _mse_inputs(shape, scale, seed):
    rng = np.random.default_rng(seed)
    return {"pred": rng.standard_normal(shape) * scale,
            "target": rng.standard_normal(shape) * scale}


def _mse_args(a):
    return (a["pred"], a["target"]), {}


def _mse_torch(pred, target):
    return F.mse_loss(pred, target)


@pytest.mark.claim("L004-mse")
@given(hs.shapes(), hs.seeds, st.data())
def test_mse_matches_torch(impl, shape, seed, data):
    """Edge arrays (zeros, ties, +-1e4, pred equal to target in places) against torch."""
    pred = data.draw(hs.float_arrays(shape=shape))
    target = np.where(data.draw(hs.float_arrays(shape=shape, scale=1.0)) > 0, pred,
                      data.draw(hs.float_arrays(shape=shape)))
    check_against_torch(impl, "mse", {"pred": pred, "target": target}, _mse_args, _mse_torch,
                        seed)


@given(hs.shapes(max_dims=2, max_side=4), hs.seeds)
def test_mse_finite_differences(impl, shape, seed):
    check_against_finite_differences(impl, "mse", _mse_inputs(shape, 1.0, seed), _mse_args,
                                     ["pred", "target"], seed)


@given(hs.shapes(), hs.seeds)
def test_mse_float32(impl, shape, seed):
    check_float32_forward(impl, "mse", _mse_inputs(shape, 1.0, seed), _mse_args, _mse_torch)
