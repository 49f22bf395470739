"""Scaled dot-product attention: causal and padding masks, fully masked rows, the weights."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import findings
from llmref.spec.harness import strategies as hs
from llmref.spec.harness.checks import (
    check_against_finite_differences,
    check_against_torch,
    check_float32_forward,
)
from llmref.spec.harness.tolerances import F64, assert_close


@st.composite
def attention_case(draw, max_side=5):
    """q (B, H, T, D), k and v (B, H, S, D), a causal flag and a padding mask of any pattern
    (holes in the middle of a sequence included) that never hides key 0, so no query is left
    with nothing to attend to.  Sometimes with exact ties: a repeated key (two equal scores
    in every row) and a zero query (a row of equal scores: uniform weights)."""
    B, H, T, D = (draw(hs.sides(max_side)) for _ in range(4))
    causal = draw(st.booleans())
    S = T if causal and draw(st.booleans()) else draw(hs.sides(max_side))
    rng = np.random.default_rng(draw(hs.seeds))
    scale = draw(st.sampled_from([1.0, 0.1, 3.0]))
    q, k, v = (rng.standard_normal((B, H, n, D)) * scale for n in (T, S, S))
    if draw(st.booleans()):
        k[:, :, -1] = k[:, :, 0]
        q[:, :, 0] = 0.0
    padding = None
    if draw(st.booleans()):
        padding = rng.random((B, S)) < 0.5
        padding[:, 0] = False
    return {"q": q, "k": k, "v": v}, causal, padding


def _args(causal, padding):
    return lambda a: ((a["q"], a["k"], a["v"]), {"causal": causal, "key_padding_mask": padding})


def _torch_allowed(T, S, causal, padding):
    allowed = torch.ones(T, S, dtype=torch.bool)
    if causal:
        allowed = torch.tril(allowed)
    allowed = allowed[None, None]
    if padding is not None:
        allowed = allowed & ~torch.from_numpy(padding)[:, None, None, :]
    return allowed


def _sdpa(causal, padding):
    def fn(q, k, v):
        mask = _torch_allowed(q.shape[2], k.shape[2], causal, padding)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return fn


@pytest.mark.claim("L004-attention-calc")
@given(attention_case(), hs.seeds)
def test_attention_matches_sdpa(impl, case, seed):
    """Output and the gradients of q, k and v against F.scaled_dot_product_attention."""
    inputs, causal, padding = case
    check_against_torch(impl, "attention", inputs, _args(causal, padding),
                        _sdpa(causal, padding), seed)


@given(attention_case(max_side=3), hs.seeds)
def test_attention_finite_differences(impl, case, seed):
    inputs, causal, padding = case
    check_against_finite_differences(impl, "attention", inputs, _args(causal, padding),
                                     ["q", "k", "v"], seed)


@given(attention_case())
def test_attention_float32(impl, case):
    inputs, causal, padding = case
    check_float32_forward(impl, "attention", inputs, _args(causal, padding),
                          _sdpa(causal, padding))


def _fully_masked_case(seed):
    """Batch row 0 has every key padded, so each of its queries has nothing to attend to."""
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((2, 2, 3, 4)) for _ in range(3))
    padding = np.array([[True, True, True], [False, False, True]])
    return {"q": q, "k": k, "v": v}, padding


def test_fully_masked_rows_output_zero_and_pass_no_gradient(impl):
    """The definition for a query with no visible key: zero weights, zero output, zero
    gradient; every other row still equals torch (which returns NaN for the masked rows)."""
    inputs, padding = _fully_masked_case(0)
    out, cache = impl("attention.forward")(inputs["q"], inputs["k"], inputs["v"],
                                           key_padding_mask=padding)
    assert np.all(out[0] == 0.0)
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    grads = impl("attention.backward")(upstream, cache)
    for name in ("q", "k", "v"):
        assert np.all(grads[name][0] == 0.0), f"gradient of {name} leaks through masked rows"
    # row 1 alone is an ordinary case
    t = {n: torch.tensor(a[1:], requires_grad=True) for n, a in inputs.items()}
    mask = _torch_allowed(3, 3, False, padding[1:])
    ref = F.scaled_dot_product_attention(t["q"], t["k"], t["v"], attn_mask=mask)
    ref.backward(torch.from_numpy(upstream[1:]))
    assert_close(out[1:], ref.detach().numpy(), F64, name="unmasked rows")
    for name in ("q", "k", "v"):
        assert_close(grads[name][1:], t[name].grad.numpy(), F64, name=f"gradient of {name}",
                     reference_scale=1.0)


def test_fully_masked_rows_finite_differences(impl):
    """Torch has no twin for fully masked rows, so the second oracle checks them."""
    inputs, padding = _fully_masked_case(2)
    check_against_finite_differences(impl, "attention", inputs, _args(False, padding),
                                     ["q", "k", "v"], seed=3)


@pytest.mark.claim("L003-attention-weights-example")
@given(attention_case())
def test_attention_weights_are_distributions(impl, case):
    """Weights are >= 0, exactly 0 where masked, and each row sums to 1."""
    inputs, causal, padding = case
    att = impl("attention.weights")(inputs["q"], inputs["k"], causal, padding)
    T, S = inputs["q"].shape[2], inputs["k"].shape[2]
    allowed = _torch_allowed(T, S, causal, padding).numpy()
    allowed = np.broadcast_to(allowed, att.shape)
    assert np.all(att >= 0)
    assert np.all(att[~allowed] == 0.0)
    np.testing.assert_allclose(att.sum(axis=-1), 1.0, rtol=1e-12)
    findings.total("rows checked", att.sum(axis=-1).size)
    findings.smallest("smallest weight", np.min(att, initial=np.inf))
    findings.largest("largest masked weight", np.max(att[~allowed], initial=0.0))
    findings.largest("largest |row sum - 1|", np.max(np.abs(att.sum(axis=-1) - 1.0),
                                                     initial=0.0))


@pytest.mark.parametrize("name", ["weights", "allowed_mask"])
def test_an_integer_padding_mask_is_refused(impl, name):
    """``~1`` is -2 (truthy), so an int 0/1 mask would silently keep every padding key."""
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 2, 3, 4)), rng.standard_normal((2, 2, 3, 4))
    mask = np.array([[0, 0, 1], [0, 0, 0]])
    call = {"weights": lambda: impl("attention.weights")(q, k, True, mask),
            "allowed_mask": lambda: impl("attention.allowed_mask")(3, 3, True, mask)}[name]
    with pytest.raises(TypeError, match=f"attention.{name}.*'key_padding_mask'"):
        call()


@pytest.mark.claim("L003-scaling-sqrt-dk")
def test_sqrt_dk_scaling_keeps_score_variance_near_one(impl, claim_figures):
    """For queries and keys with unit-variance entries, q . k has variance D; dividing by
    sqrt(D) brings it back to about 1, whatever D is."""
    rng = np.random.default_rng(0)
    for D in (16, 64, 256):
        q = rng.standard_normal((8, 4, 64, D))
        k = rng.standard_normal((8, 4, 64, D))
        var = impl("attention.scores")(q, k).var()
        assert 0.9 < var < 1.1, f"D={D}: scaled score variance {var:.3f}"
        assert 0.9 * D < (var * D) < 1.1 * D      # the unscaled variance is D times larger
        claim_figures[f"variance of the scaled scores, D = {D}"] = var
        claim_figures[f"variance of q · k unscaled, D = {D}"] = (
            np.einsum("bhtd,bhsd->bhts", q, k).var())
