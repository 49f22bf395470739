"""Scaled dot-product attention: causal and padding masks, fully masked rows, the weights."""

import re

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


def _torch_allowed(T, S, causal, padding, offset=0):
    allowed = torch.ones(T, S, dtype=torch.bool)
    if causal:
        allowed = torch.tril(allowed, diagonal=offset)
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



# ------------------------------------------------- decoding with cached keys (offset > 0)

@st.composite
def cached_keys_case(draw, max_side=4):
    """T new queries after P cached keys (S = P + T, bottom-right alignment: offset = P),
    causal, sometimes with a padding mask that never hides key 0."""
    B, H, T, D = (draw(hs.sides(max_side)) for _ in range(4))
    P = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(hs.seeds))
    q, k, v = (rng.standard_normal((B, H, n, D)) for n in (T, P + T, P + T))
    padding = None
    if draw(st.booleans()):
        padding = rng.random((B, P + T)) < 0.5
        padding[:, 0] = False
    return {"q": q, "k": k, "v": v}, padding, P


@given(cached_keys_case(), hs.seeds)
def test_attention_with_cached_keys_matches_sdpa(impl, case, seed):
    """With P cached keys, ``offset=P`` lets new query i see keys j <= P + i: output and
    every gradient against torch with that mask (``tril(diagonal=P)``), and the weights
    against torch's masked softmax of the scaled scores."""
    inputs, padding, P = case
    T, S = inputs["q"].shape[2], inputs["k"].shape[2]
    mask = _torch_allowed(T, S, True, padding, offset=P)

    def fn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    check_against_torch(impl, "attention", inputs,
                        lambda a: ((a["q"], a["k"], a["v"]),
                                   {"causal": True, "key_padding_mask": padding, "offset": P}),
                        fn, seed)
    att = impl("attention.weights")(inputs["q"], inputs["k"], True, padding, P)
    assert_close(att, _torch_weights(inputs["q"], inputs["k"], mask), F64, name="weights")


def test_decoding_with_a_kv_cache_reproduces_the_full_pass(impl):
    """The last T rows of causal attention over the whole sequence equal attention of those
    T queries against every key with ``offset = S - T`` (what a KV cache computes)."""
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 3, 7, 4)) for _ in range(3))
    full, _ = impl("attention.forward")(q, k, v, causal=True)
    for T in (1, 3):
        step, _ = impl("attention.forward")(q[:, :, -T:], k, v, causal=True, offset=7 - T)
        assert_close(step, full[:, :, -T:], F64, name=f"{T} new queries after {7 - T} cached")


def _torch_weights(q, k, mask):
    s = torch.from_numpy(q) @ torch.from_numpy(k).transpose(-1, -2) / np.sqrt(q.shape[-1])
    return torch.softmax(s.masked_fill(~mask, -torch.inf), dim=-1).numpy()


# ------------------------------------------------------------- the public helpers

@pytest.mark.parametrize("T, S, causal, offset, padded", [
    (1, 1, False, 0, False), (1, 1, True, 0, True), (3, 5, True, 2, True),
    (4, 4, True, 0, False), (1, 6, True, 5, False), (2, 3, False, 3, True),
    (3, 2, True, 1, False)])
def test_allowed_mask_matches_torch(impl, T, S, causal, offset, padded):
    """``allowed_mask`` is the causal mask ``tril(diagonal=offset)`` and-ed with the kept
    keys, shape (B or 1, 1, T or 1, S) (T when causal); None when every key is allowed.
    Sizes of 1 included."""
    padding = None
    if padded:
        padding = np.random.default_rng(T * 7 + S).random((2, S)) < 0.5
        padding[0] = [True] * (S - 1) + [False]
    got = impl("attention.allowed_mask")(T, S, causal, padding, offset)
    if not causal and padding is None:
        assert got is None
        return
    want = _torch_allowed(T, S, causal, padding, offset).numpy()
    shape = (1 if padding is None else 2, 1, T if causal else 1, S)
    assert got.dtype == bool and got.shape == shape, (got.dtype, got.shape)
    np.testing.assert_array_equal(np.broadcast_to(got, want.shape), want)


def test_scores_match_torch(impl):
    """``scores`` is Q K^T / sqrt(D), (B, H, T, S), with T != S != D."""
    rng = np.random.default_rng(5)
    q, k = rng.standard_normal((2, 3, 4, 6)), rng.standard_normal((2, 3, 5, 6))
    want = (torch.from_numpy(q) @ torch.from_numpy(k).transpose(-1, -2)) / np.sqrt(6)
    assert_close(impl("attention.scores")(q, k), want.numpy(), F64, name="scores")


def _torch_masked_softmax(s, allowed):
    t = torch.from_numpy(s)
    if allowed is not None:
        keep = torch.from_numpy(np.array(np.broadcast_to(allowed, s.shape)))
        t = t.masked_fill(~keep, -torch.inf)
    out = torch.softmax(t, dim=-1)
    return torch.nan_to_num(out, nan=0.0).numpy()       # torch: NaN for a fully masked row


@pytest.mark.parametrize("masked", [False, True])
def test_masked_softmax_rows_far_apart(impl, masked):
    """Rows whose scores differ hugely (maxima 0, 800, -800, 1e4, -1e4) each get their own
    softmax: the shift is each row's own maximum over its allowed entries.  With a mask,
    one row has nothing allowed (all zeros) and masked entries are exactly 0."""
    rng = np.random.default_rng(6)
    s = rng.standard_normal((2, 5, 4))
    s -= s.max(axis=-1, keepdims=True)
    s += np.array([0.0, 800.0, -800.0, 1e4, -1e4])[None, :, None]
    allowed = None
    if masked:
        allowed = rng.random((2, 5, 4)) < 0.6
        allowed[..., 1] = True
        allowed[1, 3] = False
    got = impl("attention.masked_softmax")(s, allowed)
    want = _torch_masked_softmax(s, allowed)
    assert_close(got, want, F64, name="masked softmax")
    if masked:
        assert np.all(got[~allowed] == 0.0) and np.all(got[1, 3] == 0.0)


def test_masked_softmax_of_one_row_and_a_broadcast_mask(impl):
    """A 1-d score vector is one row; a (1, S) mask broadcasts over the rows of (T, S)."""
    s = np.array([0.5, -1.0, 2.0, 0.0])
    assert_close(impl("attention.masked_softmax")(s, None), _torch_masked_softmax(s, None),
                 F64, name="one row")
    s2 = np.random.default_rng(7).standard_normal((3, 4))
    allowed = np.array([[True, False, True, True]])
    assert_close(impl("attention.masked_softmax")(s2, allowed),
                 _torch_masked_softmax(s2, allowed), F64, name="broadcast mask")


def test_masked_softmax_leaves_allowed_scores_unshifted(impl):
    """Only differences of allowed scores matter, and the mask adds nothing to an allowed
    score: near 1e16 (float64 spacing 2) the scores 1e16 + (0, 2, 4, 6) give exactly what
    torch gives, the softmax of (0, 2, 4, 6); adding any constant there would round the
    differences."""
    s = 1e16 + np.array([[0.0, 2.0, 4.0, 6.0], [6.0, 0.0, 4.0, 2.0]])
    allowed = np.ones((2, 4), dtype=bool)
    want = _torch_masked_softmax(np.array([[0.0, 2, 4, 6], [6.0, 0, 4, 2]]), None)
    assert_close(impl("attention.masked_softmax")(s, allowed), want, F64, name="weights")


@given(attention_case(max_side=4))
def test_weights_match_torch(impl, case):
    """``weights`` against torch's softmax of the scaled, masked scores."""
    inputs, causal, padding = case
    T, S = inputs["q"].shape[2], inputs["k"].shape[2]
    att = impl("attention.weights")(inputs["q"], inputs["k"], causal, padding)
    assert_close(att, _torch_weights(inputs["q"], inputs["k"],
                                     _torch_allowed(T, S, causal, padding)), F64, name="weights")


# ------------------------------------------------------------- grouped-query attention

@pytest.mark.parametrize("H, H_kv", [(4, 2), (6, 2), (3, 1), (4, 4)])
def test_grouped_query_attention_matches_sdpa(impl, H, H_kv):
    """With H_kv key/value heads (dividing H), query head h uses key/value head
    h // (H / H_kv): output and every gradient (k and v summed over each group) against
    torch with the heads repeated (``repeat_interleave``)."""
    rng = np.random.default_rng(H * 10 + H_kv)
    inputs = {"q": rng.standard_normal((2, H, 3, 4)), "k": rng.standard_normal((2, H_kv, 5, 4)),
              "v": rng.standard_normal((2, H_kv, 5, 4))}
    padding = np.array([[False] * 5, [False, True, False, False, True]])
    mask = _torch_allowed(3, 5, True, padding, offset=2)

    def fn(q, k, v):
        group = H // H_kv
        return F.scaled_dot_product_attention(q, k.repeat_interleave(group, dim=1),
                                              v.repeat_interleave(group, dim=1), attn_mask=mask)

    check_against_torch(impl, "attention", inputs,
                        lambda a: ((a["q"], a["k"], a["v"]),
                                   {"causal": True, "key_padding_mask": padding, "offset": 2}),
                        fn, seed=H)


# ------------------------------------------------------------- bad input

def _raises(error, pattern, call):
    with pytest.raises(error, match=pattern):
        call()


def test_key_value_heads_must_divide_the_query_heads(impl):
    """forward: H_kv must divide H (4 query heads, 3 key heads refused, naming 'k', the
    expected shape and the given one); weights: k must have all H heads (no grouping)."""
    rng = np.random.default_rng(8)
    q = rng.standard_normal((2, 4, 3, 5))
    k3 = rng.standard_normal((2, 3, 6, 5))
    _raises(ValueError, r"^attention\.forward: argument 'k' .*\(2, 4, S, 5\).*\(2, 3, 6, 5\)",
            lambda: impl("attention.forward")(q, k3, k3))
    k2 = rng.standard_normal((2, 2, 6, 5))
    _raises(ValueError, r"^attention\.weights: argument 'k' .*\(2, 4, S, 5\).*\(2, 2, 6, 5\)",
            lambda: impl("attention.weights")(q, k2))


def test_values_must_have_the_keys_shape(impl):
    rng = np.random.default_rng(9)
    q, k = rng.standard_normal((2, 2, 3, 4)), rng.standard_normal((2, 2, 5, 4))
    v = rng.standard_normal((2, 2, 4, 4))
    _raises(ValueError, r"^attention\.forward: argument 'v' must have shape \(2, 2, 5, 4\), "
            r"got shape \(2, 2, 4, 4\)", lambda: impl("attention.forward")(q, k, v))


@pytest.mark.parametrize("k_shape", [(3, 2, 5, 4), (2, 3, 5, 4), (2, 2, 5, 6), (2, 2, 5),
                                     (2, 2, 5, 4, 1)])
def test_scores_refuse_keys_of_another_shape(impl, k_shape):
    """``scores`` needs k (B, H, S, D) with q's B = 2, H = 2 and D = 4 (the message names
    'k' and the given shape); a 3-d or 5-d k is refused too."""
    rng = np.random.default_rng(10)
    q, k = rng.standard_normal((2, 2, 3, 4)), rng.standard_normal(k_shape)
    with pytest.raises(ValueError, match=r"^attention\.scores: argument 'k'") as err:
        impl("attention.scores")(q, k)
    if len(k_shape) == 4:
        assert "(2, 2, S, 4)" in str(err.value) and str(k_shape) in str(err.value), err.value


def test_scores_expected_shape_names_each_size(impl):
    """The expected shape in the message is (B, H, S, D) from q: here (2, 3, S, 5)."""
    rng = np.random.default_rng(11)
    q, k = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 6))
    _raises(ValueError, r"^attention\.scores: argument 'k' .*\(2, 3, S, 5\).*\(2, 3, 4, 6\)",
            lambda: impl("attention.scores")(q, k))


@pytest.mark.parametrize("name", ["forward", "weights", "allowed_mask"])
def test_a_padding_mask_that_is_not_an_array_is_named(impl, name):
    """A list mask is refused with a TypeError that names the function, the argument and
    what was given (a list)."""
    rng = np.random.default_rng(12)
    q = rng.standard_normal((2, 2, 3, 4))
    mask = [[False, False, True], [False, False, False]]
    call = {"forward": lambda: impl("attention.forward")(q, q, q, True, mask),
            "weights": lambda: impl("attention.weights")(q, q, True, mask),
            "allowed_mask": lambda: impl("attention.allowed_mask")(3, 3, True, mask)}[name]
    _raises(TypeError, rf"^attention\.{name}: argument 'key_padding_mask' .*list", call)


@pytest.mark.parametrize("shape", [(2, 4), (5,), (2, 5, 1), (1, 6)])
def test_allowed_mask_refuses_a_padding_mask_of_another_width(impl, shape):
    """``allowed_mask`` has no batch size to check, but the mask must be (B, S) = (B, 5)."""
    mask = np.zeros(shape, dtype=bool)
    _raises(ValueError, r"^attention\.allowed_mask: argument 'key_padding_mask' must have "
            rf"shape \(B, S\) = \(B, 5\), got shape {re.escape(str(shape))}",
            lambda: impl("attention.allowed_mask")(3, 5, False, mask))


def test_masked_softmax_refuses_bad_scores_and_masks(impl):
    """A 0-d score, a mask that is not a boolean array (named: a list) and a mask that does
    not broadcast to the scores are refused, each naming the function and the argument."""
    fn = impl("attention.masked_softmax")
    s = np.zeros((3, 4))
    _raises(ValueError, r"^attention\.masked_softmax: argument 's'", lambda: fn(np.array(1.0),
                                                                               None))
    _raises(TypeError, r"^attention\.masked_softmax: argument 'allowed' .*list",
            lambda: fn(s, [[True] * 4] * 3))
    _raises(ValueError, r"^attention\.masked_softmax: argument 'allowed' .*\(3, 4\).*\(2, 4\)",
            lambda: fn(s, np.ones((2, 4), dtype=bool)))
