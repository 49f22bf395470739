"""Layer norm (biased variance) and RMSNorm over the last axis."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import strategies as hs
from llmref.spec.harness.checks import (
    check_against_finite_differences,
    check_against_torch,
    check_float32_forward,
)
from llmref.spec.harness.tolerances import F64, assert_close

EPSILONS = st.sampled_from([1e-5, 1e-6, 1e-3])


def _ln_inputs(x, seed):
    rng = np.random.default_rng(seed)
    C = x.shape[-1]
    return {"x": x, "gamma": rng.standard_normal(C), "beta": rng.standard_normal(C)}


def _ln_args(eps):
    return lambda a: ((a["x"], {"gamma": a["gamma"], "beta": a["beta"]}), {"eps": eps})


def _ln_torch(eps):
    return lambda x, gamma, beta: F.layer_norm(x, gamma.shape, gamma, beta, eps)


def _ln_conditioning(x, gamma, eps):
    """How far rounding in ``x`` reaches the output, as the scale for the tolerance floor:
    x - mean carries an absolute error of up to C units of max|x| in the row (the mean of C
    copies of a value need not be that value), and x_hat multiplies it by
    rstd = 1/sqrt(var + eps), the output by gamma.  For an ordinary row this is about
    C^1.5 |gamma|; for a constant or nearly constant row (the edge arrays make them often)
    it grows to C max|x| / sqrt(eps) |gamma|.  The floor is this scale times the tolerance's
    own factor (1e-12 in float64, 2e-6 in float32), against an error of about one unit
    roundoff (1e-16 or 6e-8) times it."""
    rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
    rstd = 1.0 / np.sqrt(rows.var(axis=1) + eps)
    amplification = float(np.max(np.abs(rows).max(axis=1) * rstd)) * x.shape[-1]
    return amplification * float(np.max(np.abs(gamma)))


@given(hs.float_arrays(), EPSILONS, hs.seeds)
def test_layer_norm_matches_torch(impl, x, eps, seed):
    """Against torch on edge arrays, constant rows and rows of one element included; the
    tolerance floor follows each input's conditioning (see _ln_conditioning)."""
    inputs = _ln_inputs(x, seed)
    check_against_torch(impl, "layer_norm", inputs, _ln_args(eps), _ln_torch(eps), seed,
                        rounding_scale=_ln_conditioning(x, inputs["gamma"], eps))


@given(hs.float_arrays(max_dims=2, max_side=5, scale=1.0, edges=False), hs.seeds)
def test_layer_norm_finite_differences(impl, x, seed):
    check_against_finite_differences(impl, "layer_norm", _ln_inputs(x, seed), _ln_args(1e-5),
                                     ["x", "gamma", "beta"], seed)


@given(hs.float_arrays(dtype=np.float32), hs.seeds)
def test_layer_norm_float32(impl, x, seed):
    inputs = _ln_inputs(x, seed)
    check_float32_forward(impl, "layer_norm", inputs, _ln_args(1e-5), _ln_torch(1e-5),
                          rounding_scale=_ln_conditioning(x, inputs["gamma"], 1e-5))


@given(st.floats(-100, 100), hs.sides(), hs.seeds)
def test_layer_norm_constant_row(impl, value, C, seed):
    """A constant row (C = 1 included) has zero variance: the output is beta and the
    gradients match torch.  Both sides compute x_hat = (x - mean) * rstd with rstd =
    1/sqrt(eps) ~ 316, and the mean of C copies of a float is not always that float, so x_hat
    is a residue of about C * 1e-16 * |x| * rstd rather than 0; the tolerance floor is set at
    that scale and no looser."""
    eps = 1e-5
    x = np.full((2, C), value)
    inputs = _ln_inputs(x, seed)
    rounding = C * abs(value) / np.sqrt(eps) * float(np.max(np.abs(inputs["gamma"])))
    check_against_torch(impl, "layer_norm", inputs, _ln_args(eps), _ln_torch(eps), seed,
                        rounding_scale=rounding)
    out, _ = impl("layer_norm.forward")(x, {"gamma": inputs["gamma"], "beta": inputs["beta"]},
                                        eps=eps)
    assert_close(out, np.broadcast_to(inputs["beta"], x.shape), F64, name="constant row output",
                 reference_scale=rounding)


def test_layer_norm_uses_biased_variance(impl):
    """Normalised with gamma = 1, beta = 0, each row has mean 0 and variance (1/C) sum = 1
    (up to eps); with N-1 in the variance it would be C/(C-1)."""
    x = np.array([[1.0, 2.0, 4.0, 8.0]])
    out, _ = impl("layer_norm.forward")(x, {"gamma": np.ones(4), "beta": np.zeros(4)}, eps=1e-12)
    assert abs(out.mean()) < 1e-12
    assert abs(np.mean(out**2) - 1.0) < 1e-9


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
def test_norm_backward_in_the_promoted_dtype(impl, name):
    """A float16 input and upstream with a float64 gain: the result has the promoted dtype
    (float64, as the docstrings say), and so must every step of the gradient.  With
    gamma = (2e5, 0) the row term x_hat * mean(h x_hat) is 1e5, past float16's largest
    number (65504): a step computed in the input's float16 gives infinities.  The oracle is
    torch in float64 on the same (exactly representable) values."""
    x = np.array([[1.0, -1.0], [0.5, 2.0]], np.float16)
    dout = np.array([[1.0, 1.0], [0.75, -1.5]], np.float16)
    gamma = np.array([2e5, 0.0])
    params = {"gamma": gamma, "beta": np.zeros(2)} if name == "layer_norm" else {"gamma": gamma}
    out, cache = impl(f"{name}.forward")(x, params, eps=1e-5)
    grads = impl(f"{name}.backward")(dout, cache)
    assert out.dtype == np.float64 and grads["x"].dtype == np.float64
    assert np.all(np.isfinite(grads["x"])), grads["x"]
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    gt = torch.tensor(gamma)
    yt = (F.layer_norm(xt, (2,), gt, torch.zeros_like(gt), 1e-5) if name == "layer_norm"
          else F.rms_norm(xt, (2,), gt, 1e-5))
    yt.backward(torch.tensor(dout.astype(np.float64)))
    # the forward's x_hat is float16 (rounding of 2**-11 relative), the gradient's terms
    # are of size |gamma| |dout| ~ 3e5 before they cancel
    np.testing.assert_allclose(grads["x"], xt.grad.numpy(), rtol=0, atol=3e5 * 2.0**-9)


def _rms_inputs(x, seed):
    return {"x": x, "gamma": np.random.default_rng(seed).standard_normal(x.shape[-1])}


def _rms_args(eps):
    return lambda a: ((a["x"], {"gamma": a["gamma"]}), {"eps": eps})


def _rms_torch(eps):
    return lambda x, gamma: F.rms_norm(x, gamma.shape, gamma, eps)


@given(hs.float_arrays(), EPSILONS, hs.seeds)
def test_rms_norm_matches_torch(impl, x, eps, seed):
    check_against_torch(impl, "rms_norm", _rms_inputs(x, seed), _rms_args(eps), _rms_torch(eps),
                        seed)


@given(hs.float_arrays(max_dims=2, max_side=5, scale=1.0, edges=False), hs.seeds)
def test_rms_norm_finite_differences(impl, x, seed):
    check_against_finite_differences(impl, "rms_norm", _rms_inputs(x, seed), _rms_args(1e-6),
                                     ["x", "gamma"], seed)


def _rms_conditioning(x, gamma, eps):
    """The size, relative to the upstream gradient, of the two terms whose difference is the
    input gradient: gamma g / rms and x (x . gamma g) / (C rms^3), both up to max|gamma| / rms
    per unit of g.  Where |x| >> sqrt(eps) they nearly cancel (a single element: the gradient
    is gamma eps / rms^3, hypothesis found 9.4e-4 from terms of 0.13), so float32 keeps about
    one unit roundoff of the terms, not of the result."""
    rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
    rms = np.sqrt(np.mean(rows**2, axis=1) + eps)
    return float(np.max(np.abs(gamma)) / np.min(rms)) * x.shape[-1]


@given(hs.float_arrays(dtype=np.float32), hs.seeds)
def test_rms_norm_float32(impl, x, seed):
    inputs = _rms_inputs(x, seed)
    check_float32_forward(impl, "rms_norm", inputs, _rms_args(1e-6), _rms_torch(1e-6),
                          rounding_scale=_rms_conditioning(x, inputs["gamma"], 1e-6))
