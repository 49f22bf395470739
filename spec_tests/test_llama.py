"""The pieces that make the GPT a Llama, each against PyTorch in float64 (random upstream
gradients, every gradient) and central finite differences: SwiGLU, RoPE (Hugging Face's
split-half layout), grouped-query attention, multi-head attention with separate projections
and rotary positions, RMSNorm pre-norm blocks without biases, and the whole GPT in every
combination of its options.  SiLU is with the other activations (test_activations.py)."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.spec.harness import torch_twins as tw
from llmref.spec.harness.checks import (
    check_against_finite_differences,
    check_against_torch,
    check_float32_forward,
    check_model_against_torch,
    flatten,
)
from llmref.spec.harness.oracles import numerical_vjp
from llmref.spec.harness.tolerances import F64, FD, assert_close, assert_grads_close
from llmref.transformer.gpt import GPTConfig

# ------------------------------------------------------------------ SwiGLU


@given(hs.sides(3), hs.sides(4), hs.sides(5), hs.sides(6), st.booleans(), hs.seeds)
def test_swiglu_matches_torch(impl, B, T, C, d_ff, bias, seed):
    """silu(x W_gate) * (x W_up) W_down against F.silu and F.linear: output, x and every
    weight (and bias, when there are biases)."""
    rng = np.random.default_rng(seed)
    params = hp.random_swiglu(C, d_ff, rng, scale=1.0, bias=bias)
    check_model_against_torch(impl, "swiglu", rng.standard_normal((B, T, C)), params,
                              lambda x, p: tw.feed_forward(x, p, "swiglu"), seed)


@given(hs.seeds)
def test_swiglu_finite_differences(impl, seed):
    rng = np.random.default_rng(seed)
    inputs = {"x": rng.standard_normal((2, 3, 4)), "g": rng.standard_normal((4, 5)),
              "u": rng.standard_normal((4, 5)), "d": rng.standard_normal((5, 4))}

    def to_args(n):
        return (n["x"], {"gate": {"W": n["g"]}, "up": {"W": n["u"]}, "down": {"W": n["d"]}}), {}

    out, cache = impl("swiglu.forward")(*to_args(inputs)[0])
    upstream = rng.standard_normal(out.shape)
    grads = impl("swiglu.backward")(upstream, cache)
    got = {"x": grads["x"], "g": grads["gate"]["W"], "u": grads["up"]["W"],
           "d": grads["down"]["W"]}
    expected = numerical_vjp(lambda **n: impl("swiglu.forward")(*to_args(n)[0])[0], inputs,
                             upstream, list(inputs))
    assert_grads_close(got, expected, FD, upstream)


@given(hs.seeds)
def test_swiglu_acts_on_each_position_alone(impl, seed):
    """Like the plain feed-forward: output t depends on input t only."""
    rng = np.random.default_rng(seed)
    params = hp.random_swiglu(4, 6, rng)
    x = rng.standard_normal((2, 5, 4))
    out, cache = impl("swiglu.forward")(x, params)
    for t in range(5):
        upstream = np.zeros(out.shape)
        upstream[:, t] = rng.standard_normal(4)
        dx = impl("swiglu.backward")(upstream, cache)["x"]
        per_position = np.abs(dx).sum(axis=(0, 2))
        assert per_position[t] > 0 and np.all(np.delete(per_position, t) == 0.0)


# ------------------------------------------------------------------ RoPE

@st.composite
def rope_case(draw):
    B, H, T = draw(hs.sides(3)), draw(hs.sides(3)), draw(hs.sides(6))
    D = 2 * draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(hs.seeds))
    per_row = draw(st.booleans())
    positions = rng.integers(0, 5000, size=(B, T) if per_row else (T,))
    theta = draw(st.sampled_from([10000.0, 500000.0, 10.0]))
    return {"x": rng.standard_normal((B, H, T, D)) * draw(hs.scales)}, positions, theta


def _torch_rope(positions, theta):
    def fn(x):
        pos = torch.from_numpy(positions)
        pos = pos.expand(x.shape[0], -1) if pos.dim() == 1 else pos
        return tw.rotary(x, pos, theta)
    return fn


def _rope_args(positions, theta):
    return lambda a: ((a["x"], positions), {"theta": theta})


@given(rope_case(), hs.seeds)
def test_rope_matches_torch(impl, case, seed):
    """Hugging Face's layout, x * cos + rotate_half(x) * sin with rotate_half([a, b]) =
    [-b, a], written in torch: output and input gradient (the backward rotates back)."""
    inputs, positions, theta = case
    check_against_torch(impl, "rope", inputs, _rope_args(positions, theta),
                        _torch_rope(positions, theta), seed)


@given(rope_case(), hs.seeds)
def test_rope_finite_differences(impl, case, seed):
    inputs, positions, theta = case
    inputs = {"x": inputs["x"][:2, :2, :4]}
    positions = positions[..., :4] if positions.ndim == 1 else positions[:2, :4]
    check_against_finite_differences(impl, "rope", inputs, _rope_args(positions, theta),
                                     ["x"], seed)


@given(rope_case())
def test_rope_float32(impl, case):
    inputs, positions, theta = case
    check_float32_forward(impl, "rope", inputs, _rope_args(positions, theta),
                          _torch_rope(positions, theta))


@given(st.integers(0, 3000), st.integers(0, 3000), st.integers(0, 3000), hs.seeds)
def test_rope_scores_depend_on_relative_position_only(impl, i, j, shift, seed):
    """q rotated at i and k rotated at j have the same dot product as at i + s and j + s;
    rotations keep every vector's length."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((1, 1, 1, 8)), rng.standard_normal((1, 1, 1, 8))

    def rot(x, p):
        return impl("rope.forward")(x, np.array([p]))[0]

    a = float(np.sum(rot(q, i) * rot(k, j)))
    b = float(np.sum(rot(q, i + shift) * rot(k, j + shift)))
    assert abs(a - b) <= 1e-12 * max(1.0, abs(a)) * (1 + (i + j + 2 * shift) / 100)
    assert_close(np.linalg.norm(rot(q, i)), np.linalg.norm(q), F64, name="norm")


def test_rope_pairs_dimension_j_with_j_plus_half(impl):
    """The split-half layout: a vector with only coordinate 0 set turns into coordinates 0
    and D/2 (the interleaved layout of the paper would use 0 and 1)."""
    x = np.zeros((1, 1, 1, 8))
    x[..., 0] = 1.0
    out = impl("rope.forward")(x, np.array([1]))[0][0, 0, 0]
    assert_close(out, [np.cos(1.0), 0, 0, 0, np.sin(1.0), 0, 0, 0], F64, name="rotated e_0")


# ------------------------------------------------------------------ grouped-query attention

@st.composite
def gqa_case(draw):
    B, T, D = draw(hs.sides(3)), draw(hs.sides(5)), draw(hs.sides(4))
    H_kv = draw(st.integers(1, 3))
    H = H_kv * draw(st.integers(1, 3))
    past = draw(st.integers(0, 4))                       # cached keys before the queries
    rng = np.random.default_rng(draw(hs.seeds))
    S = T + past
    q, k, v = (rng.standard_normal(s) for s in ((B, H, T, D), (B, H_kv, S, D),
                                                   (B, H_kv, S, D)))
    padding = None
    if draw(st.booleans()):                              # left padding, never the last key
        n_pad = rng.integers(0, S, size=B)
        padding = np.arange(S)[None, :] < n_pad[:, None]
    return {"q": q, "k": k, "v": v}, past, padding


@given(gqa_case(), hs.seeds)
def test_grouped_query_attention_with_cached_keys_matches_torch(impl, case, seed):
    """k and v with H_kv heads (H_kv dividing H), T queries after ``past`` cached keys: the
    causal mask aligned bottom-right (offset = past), against SDPA with enable_gqa and
    torch's own lower-right causal bias; output and the gradients of q, k and v."""
    inputs, past, padding = case

    def sdpa(q, k, v):
        T, S = q.shape[2], k.shape[2]
        allowed = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)[None, None]
        if padding is not None:
            allowed = allowed & ~torch.from_numpy(padding)[:, None, None, :]
        allowed = allowed | ~allowed.any(dim=-1, keepdim=True)   # no NaN rows (see below)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                              enable_gqa=q.shape[1] != k.shape[1])

    T, S = inputs["q"].shape[2], inputs["k"].shape[2]
    keys_seen = np.tril(np.ones((T, S), bool), k=S - T)[None] & \
        (True if padding is None else ~padding[:, None, :])
    if not keys_seen.any(axis=-1).all():
        # A query with no key it may see is defined as output 0 here, NaN in torch;
        # those cases are covered by test_attention.py.  Keep to the others.
        return
    check_against_torch(impl, "attention", inputs,
                        lambda a: ((a["q"], a["k"], a["v"]),
                                   {"causal": True, "key_padding_mask": padding,
                                    "offset": past}), sdpa, seed)


def test_causal_mask_alignment_trap(impl):
    """One new query against 6 keys (5 cached): top-left alignment (offset 0, PyTorch's
    is_causal) lets it see key 0 only, bottom-right (offset 5) all six, which torch's
    causal_lower_right agrees with."""
    from torch.nn.attention.bias import causal_lower_right

    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((1, 2, 1, 4)), rng.standard_normal((1, 2, 6, 4)), \
        rng.standard_normal((1, 2, 6, 4))
    top_left = impl("attention.weights")(q, k, causal=True)
    bottom_right = impl("attention.weights")(q, k, causal=True, offset=5)
    assert np.count_nonzero(top_left[0, 0, 0]) == 1 and top_left[0, 0, 0, 0] == 1.0
    assert np.count_nonzero(bottom_right[0, 0, 0]) == 6
    expected = F.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (q, k, v)), attn_mask=causal_lower_right(1, 6))
    assert_close(impl("attention.forward")(q, k, v, causal=True, offset=5)[0],
                 expected.numpy(), F64, name="bottom-right causal attention")


# ------------------------------------------------------------------ attention layer, block

@st.composite
def heads(draw):
    H_kv = draw(st.integers(1, 2))
    H = H_kv * draw(st.integers(1, 3))
    return H, H_kv, H * 2 * draw(st.integers(1, 2))      # even head dimension for RoPE


@given(heads(), hs.sides(3), hs.sides(5), st.booleans(), st.booleans(), st.booleans(),
       hs.seeds)
def test_mha_options_match_torch(impl, h, B, T, fused, bias, rotary, seed):
    """Fused or separate q/k/v, grouped-query heads, biases or none, rotary positions or
    none (each row at its own positions), causal: output, x and every parameter."""
    H, H_kv, C = h
    rng = np.random.default_rng(seed)
    params = hp.random_mha(C, rng, H, H_kv, fused, bias)
    positions = rng.integers(0, 100, size=(B, T))
    pos_t = torch.from_numpy(positions)
    theta = 10000.0 if rotary else None
    allowed = torch.ones(T, T, dtype=torch.bool).tril()[None, None]
    kwargs = {"n_heads": H, "n_kv_heads": H_kv, "rope_theta": theta,
              "positions": positions if rotary else None}
    check_model_against_torch(
        impl, "mha", rng.standard_normal((B, T, C)), params,
        lambda x, p: tw.attention_layer(x, p, H, H_kv, allowed, pos_t, theta), seed, kwargs)


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-norm", "post-norm"])
@given(h=heads(), B=hs.sides(2), T=hs.sides(4), d_ff=hs.sides(5), seed=hs.seeds)
def test_llama_block_matches_torch(impl, norm_first, h, B, T, d_ff, seed):
    """A Llama block: RMSNorm, separate q/k/v with grouped-query heads and RoPE, SwiGLU, no
    biases, against the torch composition (F.rms_norm, SDPA, F.silu)."""
    H, H_kv, C = h
    config = GPTConfig(vocab_size=5, context_len=8, d_model=C, n_heads=H, n_layers=1,
                       d_ff=d_ff, activation="swiglu", norm="rms", position="rope",
                       n_kv_heads=H_kv, bias=False, fused_qkv=False, norm_first=norm_first)
    rng = np.random.default_rng(seed)
    params = hp.random_block(C, d_ff, rng, config)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()[None, None]
    pos = torch.arange(T).expand(B, T)

    def torch_block(x, p):
        def attend(a):
            return tw.attention_layer(a, p["attn"], H, H_kv, allowed, pos, 10000.0)

        def norm(a, name):
            return F.rms_norm(a, (C,), p[name]["gamma"], 1e-5)

        if norm_first:
            h = x + attend(norm(x, "ln1"))
            return h + tw.feed_forward(norm(h, "ln2"), p["ffn"], "swiglu")
        h = norm(x + attend(x), "ln1")
        return norm(h + tw.feed_forward(h, p["ffn"], "swiglu"), "ln2")

    check_model_against_torch(
        impl, "block", rng.standard_normal((B, T, C)), params, torch_block, seed,
        {"n_heads": H, "norm_first": norm_first, "activation": "swiglu", "norm": "rms",
         "n_kv_heads": H_kv, "rope_theta": 10000.0})


# ------------------------------------------------------------------ the GPT, every option

@st.composite
def any_config(draw, max_layers=2):
    """A GPTConfig with any combination of the GPT-2 and Llama options."""
    H_kv = draw(st.integers(1, 2))
    H = H_kv * draw(st.integers(1, 2))
    return GPTConfig(vocab_size=draw(st.integers(2, 9)), context_len=draw(st.integers(1, 6)),
                     d_model=H * 2 * draw(st.integers(1, 2)), n_heads=H,
                     n_layers=draw(st.integers(1, max_layers)), d_ff=draw(st.integers(1, 6)),
                     activation=draw(st.sampled_from(["relu", "gelu", "gelu_tanh", "swiglu"])),
                     norm_first=draw(st.booleans()), tie_weights=draw(st.booleans()),
                     norm=draw(st.sampled_from(["layer", "rms"])),
                     position=draw(st.sampled_from(["learned", "rope"])),
                     n_kv_heads=H_kv, bias=draw(st.booleans()),
                     fused_qkv=draw(st.booleans()))


LLAMA = GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=4, n_layers=2, d_ff=12,
                  activation="swiglu", tie_weights=False, norm="rms", position="rope",
                  n_kv_heads=2, bias=False, fused_qkv=False)


def _rounding(config):
    return 10.0 if config.activation.startswith("gelu") else 0.0


@given(any_config(), hs.seeds)
def test_gpt_with_any_options_matches_torch(impl, config, seed):
    """Logits and every parameter gradient of the one GPT in any configuration (GPT-2 and
    Llama options mixed freely) against the torch composition of the same options."""
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(config, rng)
    ids = rng.integers(0, config.vocab_size, size=(rng.integers(1, 3),
                                                   rng.integers(1, config.context_len + 1)))
    check_model_against_torch(impl, "gpt", ids, params,
                              lambda ids, p: tw.gpt_any_logits(ids, p, config), seed,
                              {"config": config}, rounding_scale=_rounding(config))


@given(any_config())
def test_shapes_describe_the_parameter_tree(impl, config):
    """gpt.shapes gives the tree of shapes that gpt.init fills (same paths, same shapes, in
    the harness' independent layout too), flat=True the same as a dict of dotted paths, and
    memory.param_count counts it."""
    shapes = flatten(impl("gpt.shapes")(config), keep_tuples=True)
    made = {k: v.shape for k, v in flatten(impl("gpt.init")(config,
                                                            np.random.default_rng(0))).items()}
    harness = {k: v.shape for k, v in flatten(hp.random_gpt(config,
                                                            np.random.default_rng(0))).items()}
    assert shapes == made == harness == impl("gpt.shapes")(config, flat=True)
    assert impl("memory.param_count")(config) == sum(int(np.prod(s)) for s in shapes.values())


def test_llama_2_70b_shapes_allocate_nothing(impl):
    """The Llama 2 70B configuration's shape tree: 80 blocks, q (8192, 8192), k and v
    (8192, 1024) (8 key/value heads of 128), SwiGLU (8192, 28672) x 2 and (28672, 8192), no
    biases, no position table, an untied head, 68,976,648,192 parameters, and a tree of
    plain tuples (no arrays)."""
    config = GPTConfig(vocab_size=32000, context_len=4096, d_model=8192, n_heads=64,
                       n_layers=80, d_ff=28672, activation="swiglu", tie_weights=False,
                       norm="rms", position="rope", n_kv_heads=8, bias=False, fused_qkv=False)
    tree = impl("gpt.shapes")(config)
    flat = flatten(tree, keep_tuples=True)
    assert all(isinstance(s, tuple) for s in flat.values())
    assert flat["blocks.0.attn.k.W"] == (8192, 1024) and flat["blocks.79.attn.q.W"] == (8192,
                                                                                       8192)
    assert flat["blocks.0.ffn.gate.W"] == (8192, 28672) == flat["blocks.0.ffn.up.W"]
    assert not any(k.endswith(".b") or k.endswith("beta") or k.startswith("wpe")
                   for k in flat)
    assert flat["lm_head.W"] == (8192, 32000)
    assert sum(int(np.prod(s)) for s in flat.values()) == 68_976_648_192
    assert impl("memory.param_count")(config) == 68_976_648_192


@given(any_config(), st.integers(1, 3), hs.seeds)
def test_memory_calculator_matches_measurement_for_any_options(impl, config, B, seed):
    """Parameter count from the shapes and activation bytes from the formula equal, for any
    configuration, the leaves of a real tree and the bytes the caches hold (measured)."""
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(config, rng)
    assert impl("memory.param_count")(config) == sum(v.size for v in flatten(params).values())
    T = config.context_len
    ids = rng.integers(0, config.vocab_size, size=(B, T))
    targets = rng.integers(0, config.vocab_size, size=(B, T))
    measured = impl("checkpoint.plain_activation_bytes")(ids, targets, params, config)
    assert impl("memory.activation_bytes")(config, B, T, itemsize=8) == measured


@pytest.mark.parametrize("segment", [1, 2])
def test_checkpointing_a_llama_gives_the_same_gradients(impl, segment):
    """Gradient checkpointing with rotary positions, RMSNorm and SwiGLU: bit-identical."""
    rng = np.random.default_rng(0)
    params = hp.random_gpt(LLAMA, rng)
    ids, targets = rng.integers(0, 11, size=(2, 8)), rng.integers(0, 11, size=(2, 8))
    loss, grads = impl("gpt.loss_and_grads")(ids, targets, params, LLAMA)
    c_loss, c_grads, _ = impl("checkpoint.loss_and_grads")(ids, targets, params, LLAMA, segment)
    assert c_loss == loss
    for name, g in flatten(grads).items():
        np.testing.assert_array_equal(flatten(c_grads)[name], g, err_msg=name)


# ------------------------------------------------------------------ the public helpers and
# the initialiser

def test_rope_angles_closed_form(impl):
    """``angles``: cos and sin of p * theta**(-2j/D) for j < D/2, the two halves equal,
    float64, shape positions.shape + (D,); a theta other than the default (500)."""
    positions = np.array([[0, 3, 17], [1, 2, 4096]])
    cos, sin = impl("rope.angles")(positions, 6, 500.0)
    freq = 500.0 ** (-np.arange(3) * 2 / 6)
    a = positions[..., None] * freq
    a = np.concatenate([a, a], axis=-1)
    for got, want, name in ((cos, np.cos(a), "cos"), (sin, np.sin(a), "sin")):
        assert got.shape == (2, 3, 6) and got.dtype == np.float64, (got.shape, got.dtype)
        assert_close(got, want, F64, name=name)
    default = impl("rope.angles")(positions, 6)
    assert_close(default[0], impl("rope.angles")(positions, 6, 10000.0)[0], F64, name="cos")


@pytest.mark.parametrize("shape", [(4,), (3, 6), (2, 1, 2), (0, 4)])
def test_rotate_half_swaps_and_negates(impl, shape):
    """rotate_half([a, b]) = [-b, a] on the last axis, any rank (an empty array too)."""
    x = np.arange(np.prod(shape), dtype=float).reshape(shape) + 1.0
    half = shape[-1] // 2
    want = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    got = impl("rope.rotate_half")(x)
    assert got.shape == shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("name", "args", "pattern"), [
    ("rope.rotate_half", (np.zeros((2, 3)),),
     r"argument 'x' must have an even last dimension, got shape \(2, 3\)"),
    ("rope.angles", (np.arange(3), 5), r"argument 'head_dim' must be even .*got 5"),
    ("rope.forward", (np.zeros((2, 1, 3, 4)), np.arange(4)),
     r"argument 'positions' must have shape \(T,\) = \(3,\) or \(B, T\) = \(2, 3\), got "
     r"shape \(4,\)"),
    ("rope.forward", (np.zeros((2, 1, 3, 4)), np.zeros((3, 3), dtype=np.int64)),
     r"argument 'positions' must have shape .*got shape \(3, 3\)"),
    ("rope.forward", (np.zeros((2, 1, 3, 5)), np.arange(3)),
     r"argument 'x' must have an even last dimension .*got shape \(2, 1, 3, 5\)"),
])
def test_rope_refuses_odd_widths_and_other_position_shapes(impl, name, args, pattern):
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}: " + pattern):
        impl(name)(*args)


def _swiglu_params(gate=(6, 4), up=(6, 4), down=(4, 6)):
    return {"gate": {"W": np.zeros(gate)}, "up": {"W": np.zeros(up)},
            "down": {"W": np.zeros(down)}}


_SWIGLU_REFUSALS = {
    "gate of another input width": (
        (np.zeros((1, 2, 6)), _swiglu_params(gate=(5, 4))), ValueError,
        "swiglu.forward: argument params['gate']['W'] must have shape (6, any), got shape "
        "(5, 4)"),
    "x of another width": (
        (np.zeros((1, 2, 5)), _swiglu_params()), ValueError,
        "swiglu.forward: argument params['gate']['W'] must have shape (5, any), got shape "
        "(6, 4)"),
    "up of another hidden width": (
        (np.zeros((1, 2, 6)), _swiglu_params(up=(6, 3))), ValueError,
        "swiglu.forward: argument params['up']['W'] must have shape (6, 4), got shape (6, 3)"),
    "up of another input width": (
        (np.zeros((1, 2, 6)), _swiglu_params(up=(5, 4))), ValueError,
        "swiglu.forward: argument params['up']['W'] must have shape (6, 4), got shape (5, 4)"),
    "down of another hidden width": (
        (np.zeros((1, 2, 6)), _swiglu_params(down=(3, 6))), ValueError,
        "swiglu.forward: argument params['down']['W'] must have shape (4, 6), got shape "
        "(3, 6)"),
    "down of another output width": (
        (np.zeros((1, 2, 6)), _swiglu_params(down=(4, 5))), ValueError,
        "swiglu.forward: argument params['down']['W'] must have shape (4, 6), got shape "
        "(4, 5)"),
    "an unknown key": (
        (np.zeros((1, 2, 6)), {**_swiglu_params(), "w3": {"W": np.zeros((6, 4))}}), ValueError,
        "swiglu.forward: argument 'params' has unknown key(s) ['w3']; allowed keys ['down', "
        "'gate', 'up']"),
    "a 0-d x": (
        (np.array(1.0), _swiglu_params()), ValueError,
        "swiglu.forward: argument 'x' must have at least 1 dimension(s), got shape ()"),
}


@pytest.mark.parametrize("case", list(_SWIGLU_REFUSALS), ids=list(_SWIGLU_REFUSALS))
def test_swiglu_refuses_parameters_that_do_not_fit_word_for_word(impl, case):
    """Each projection is checked against the input width and the gate's hidden width, and
    the message names the function, the projection and both shapes."""
    args, error, message = _SWIGLU_REFUSALS[case]
    with pytest.raises(error) as info:
        impl("swiglu.forward")(*args)
    assert str(info.value) == message


def test_swiglu_of_one_position_and_rotate_half_of_a_vector(impl):
    """x of shape (C,) is one position: the same output and gradient as the row (1, C); the
    rotation of a vector is defined, of a 0-d array refused."""
    rng = np.random.default_rng(3)
    params = hp.random_swiglu(6, 4, rng)
    x, dout = rng.standard_normal(6), rng.standard_normal(6)
    out, cache = impl("swiglu.forward")(x, params)
    row, row_cache = impl("swiglu.forward")(x[None], params)
    np.testing.assert_array_equal(out, row[0])
    np.testing.assert_array_equal(impl("swiglu.backward")(dout, cache)["x"],
                                  impl("swiglu.backward")(dout[None], row_cache)["x"][0])
    np.testing.assert_array_equal(impl("rope.rotate_half")(np.arange(4.0)), [-2, -3, 0, 1])
    with pytest.raises(ValueError) as info:
        impl("rope.rotate_half")(np.array(1.0))
    assert str(info.value) == ("rope.rotate_half: argument 'x' must have at least 1 "
                               "dimension(s), got shape ()")


def test_swiglu_init_shapes_scales_and_biases(impl):
    """``swiglu.init``: gate and up (C, d_ff) at std, down (d_ff, C) at proj_std (std when
    not given), biases only when asked (zeros), float64; the default std is 0.02."""
    init = impl("swiglu.init")
    p = init(64, 96, np.random.default_rng(0), std=0.5, proj_std=0.1, bias=True)
    assert p["gate"]["W"].shape == p["up"]["W"].shape == (64, 96)
    assert p["down"]["W"].shape == (96, 64)
    for part, std in (("gate", 0.5), ("up", 0.5), ("down", 0.1)):
        assert p[part]["W"].dtype == np.float64
        assert abs(p[part]["W"].std() / std - 1) < 0.05, (part, p[part]["W"].std())
        np.testing.assert_array_equal(p[part]["b"], np.zeros(p[part]["W"].shape[1]))
    q = init(64, 96, np.random.default_rng(0))
    assert all(set(q[part]) == {"W"} for part in ("gate", "up", "down"))
    for part in ("gate", "up", "down"):
        assert abs(q[part]["W"].std() / 0.02 - 1) < 0.05, (part, q[part]["W"].std())
    assert abs(init(64, 96, np.random.default_rng(0), std=0.3)["down"]["W"].std() / 0.3 - 1) \
        < 0.05
