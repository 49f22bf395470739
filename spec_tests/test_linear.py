"""The linear layer y = x W + b, with and without bias."""

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


def _inputs(lead, d_in, d_out, scale, seed, bias):
    rng = np.random.default_rng(seed)
    inputs = {"x": rng.standard_normal(lead + (d_in,)) * scale,
              "W": rng.standard_normal((d_in, d_out))}
    if bias:
        inputs["b"] = rng.standard_normal(d_out)
    return inputs


def _args(a):
    return (a["x"], {k: a[k] for k in ("W", "b") if k in a}), {}


def _torch(x, W, b=None):
    return F.linear(x, W.T, b)


@pytest.mark.claim("L004-forward-layer")
@given(hs.shapes(0, 2), hs.sides(), hs.sides(), hs.scales, st.booleans(), hs.seeds)
def test_linear_matches_torch(impl, lead, d_in, d_out, scale, bias, seed):
    check_against_torch(impl, "linear", _inputs(lead, d_in, d_out, scale, seed, bias), _args,
                        _torch, seed)


@given(hs.shapes(1, 2, max_side=3), hs.sides(3), hs.sides(3), st.booleans(), hs.seeds)
def test_linear_finite_differences(impl, lead, d_in, d_out, bias, seed):
    inputs = _inputs(lead, d_in, d_out, 1.0, seed, bias)
    check_against_finite_differences(impl, "linear", inputs, _args,
                                     [k for k in ("x", "W", "b") if k in inputs], seed)


@given(hs.shapes(1, 2), hs.sides(), hs.sides(), hs.seeds)
def test_linear_float32(impl, lead, d_in, d_out, seed):
    check_float32_forward(impl, "linear", _inputs(lead, d_in, d_out, 1.0, seed, True), _args,
                          _torch)
