"""Structural properties of attention, the feed-forward network, blocks and the GPT:
causality, position-wise action, permutation equivariance, heads as slices and tied-embedding
gradients.  (Gradient flow through deep stacks: spec_tests/test_claims_gradients.py.)"""

import numpy as np
import pytest
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import findings
from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.spec.harness.checks import check_model_against_torch
from llmref.spec.harness.oracles import numerical_vjp
from llmref.spec.harness.tolerances import F64, FD, assert_close, assert_grads_close
from llmref.transformer.gpt import GPTConfig


def _input_gradient_at(impl, component, x, params, position, seed, **kwargs):
    """Gradient of x for an upstream gradient that is random at ``position`` and 0 elsewhere:
    one block row of the Jacobian, seen through a random direction."""
    out, cache = impl(f"{component}.forward")(x, params, **kwargs)
    upstream = np.zeros(out.shape)
    upstream[:, position] = np.random.default_rng(seed).standard_normal(out.shape[-1])
    return impl(f"{component}.backward")(upstream, cache)["x"]


@pytest.mark.claim("L003-attention-weights-example")
@pytest.mark.claim("L004-attend-to-all")
@pytest.mark.parametrize("norm_first", [True, False], ids=["pre-norm", "post-norm"])
@given(T=st.integers(2, 6), seed=hs.seeds)
def test_causal_block_jacobian_is_lower_triangular(impl, norm_first, T, seed):
    """d out_i / d x_j is exactly zero for j > i and not zero for j <= i."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, T, 4))
    params = hp.random_block(4, 5, rng)
    for i in range(T):
        dx = _input_gradient_at(impl, "block", x, params, i, seed, n_heads=2,
                                norm_first=norm_first, causal=True)
        per_position = np.abs(dx).sum(axis=(0, 2))
        assert np.all(per_position[i + 1:] == 0.0), f"output {i} depends on later inputs"
        assert np.all(per_position[: i + 1] > 0.0), f"output {i} ignores an earlier input"
        findings.total("(output, input) position pairs checked", T)
        findings.largest("largest dependence on a later input", np.max(per_position[i + 1:],
                                                                      initial=0.0))
        findings.smallest("smallest dependence on an earlier or the same input",
                          np.min(per_position[: i + 1]))


@given(st.integers(2, 6), st.integers(0, 5), hs.seeds)
def test_gpt_logits_ignore_later_tokens(impl, T, j, seed):
    """Changing the token at position j leaves every logit before j bit-for-bit unchanged."""
    j = min(j, T - 1)
    config = GPTConfig(vocab_size=7, context_len=6, d_model=4, n_heads=2, n_layers=2)
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(config, rng)
    ids = rng.integers(0, 7, size=(2, T))
    changed = ids.copy()
    changed[:, j] = (ids[:, j] + 1) % 7
    before, _ = impl("gpt.forward")(ids, params, config)
    after, _ = impl("gpt.forward")(changed, params, config)
    np.testing.assert_array_equal(before[:, :j], after[:, :j])
    assert np.all(np.abs(before[:, j] - after[:, j]).sum(axis=-1) > 0)


@pytest.mark.claim("L004-ffn-per-token")
@pytest.mark.claim("L003-ffn-per-position")
@given(st.integers(2, 6), hs.seeds)
def test_ffn_acts_on_each_position_alone(impl, T, seed):
    """The FFN Jacobian is block-diagonal: position i's output depends on position i only."""
    rng = np.random.default_rng(seed)
    params = hp.random_ffn(4, 6, rng, scale=1.0)
    x = rng.standard_normal((2, T, 4))
    for i in range(T):
        dx = _input_gradient_at(impl, "ffn", x, params, i, seed, activation="gelu")
        per_position = np.abs(dx).sum(axis=(0, 2))
        assert per_position[i] > 0
        assert np.all(np.delete(per_position, i) == 0.0)
        findings.total("(output, input) position pairs checked", T)
        findings.smallest("smallest dependence on the same position", per_position[i])
        findings.largest("largest dependence on another position",
                         np.max(np.delete(per_position, i), initial=0.0))


@pytest.mark.claim("L003-ffn-per-position")
@pytest.mark.claim("L004-attend-to-all")
@given(st.integers(2, 6), hs.seeds)
def test_attention_mixes_positions(impl, T, seed):
    """Without a causal mask, every output position depends on every input position."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, T, 4))
    params = hp.random_mha(4, rng)
    for i in range(T):
        dx = _input_gradient_at(impl, "mha", x, params, i, seed, n_heads=2, causal=False)
        assert np.all(np.abs(dx).sum(axis=(0, 2)) > 0)
        findings.total("(output, input) position pairs checked", T)
        findings.smallest("smallest dependence of an output on an input position",
                          np.min(np.abs(dx).sum(axis=(0, 2))))


@pytest.mark.claim("L004-position-matters")
@given(st.integers(2, 7), hs.seeds)
def test_self_attention_is_permutation_equivariant_without_positions(impl, T, seed):
    """Permuting the positions of the input permutes the output the same way; once sinusoidal
    positions are added, it no longer does."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, T, 4))
    params = hp.random_mha(4, rng)
    perm = np.roll(np.arange(T), 1)
    mha = impl("mha.forward")
    out = mha(x, params, 2, causal=False)[0]
    out_perm = mha(x[:, perm], params, 2, causal=False)[0]
    assert_close(out_perm, out[:, perm], F64, name="attention of permuted input")

    add_pe = impl("sinusoidal.forward")
    with_pos = mha(add_pe(x)[0], params, 2, causal=False)[0]
    with_pos_perm = mha(add_pe(x[:, perm])[0], params, 2, causal=False)[0]
    assert np.max(np.abs(with_pos_perm - with_pos[:, perm])) > 1e-3
    findings.smallest("with positions added: largest difference from equivariance (smallest "
                      "over the examples)", np.max(np.abs(with_pos_perm - with_pos[:, perm])))


@pytest.mark.claim("L004-heads-fused")
@pytest.mark.claim("L003-heads-concatenated")
@given(st.sampled_from([1, 2, 3, 4]), hs.seeds)
def test_multi_head_attention_is_concatenated_single_heads(impl, H, seed):
    """MHA(x) = concat_h(head_h(x)) W_o + b_o, head h being single-head attention on the
    columns of W_qkv that belong to it."""
    D = 2
    C = H * D
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 5, C))
    params = hp.random_mha(C, rng)
    W, b = params["qkv"]["W"], params["qkv"]["b"]
    heads = []
    for h in range(H):
        cols = np.concatenate([np.arange(part * C + h * D, part * C + (h + 1) * D)
                               for part in range(3)])
        single = {"qkv": {"W": W[:, cols], "b": b[cols]},
                  "proj": {"W": np.eye(D), "b": np.zeros(D)}}
        heads.append(impl("mha.forward")(x, single, 1)[0])
    expected = np.concatenate(heads, axis=-1) @ params["proj"]["W"] + params["proj"]["b"]
    assert_close(impl("mha.forward")(x, params, H)[0], expected, F64, name="MHA vs heads")


def _torch_mha_any_width(x, p, n_heads, causal):
    """Multi-head attention from torch operations for any inner width: fused projection to
    3 C_inner, heads of C_inner / H columns, F.scaled_dot_product_attention, merge, output
    projection to C_out."""
    B, T, _ = x.shape
    qkv = F.linear(x, p["qkv"]["W"].T, p["qkv"]["b"])
    q, k, v = (t.reshape(B, T, n_heads, -1).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
    heads = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return F.linear(heads.transpose(1, 2).reshape(B, T, -1), p["proj"]["W"].T, p["proj"]["b"])


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.booleans(), hs.seeds)
def test_mha_with_an_inner_width_other_than_d_model(impl, H, D, C_out, causal, seed):
    """Q/K/V may map C to 3 C_inner (C_inner = H D, here unrelated to C) and the output
    projection C_inner to any C_out (the single heads above do): output and every gradient
    against torch, and the input gradient against central differences too.  (C = 6 so that
    every H drawn also divides C, which mha.forward requires of x's width.)"""
    rng = np.random.default_rng(seed)
    C = 6
    x = rng.standard_normal((2, 3, C))
    params = {"qkv": hp.random_linear(C, 3 * H * D, rng), "proj": hp.random_linear(H * D, C_out,
                                                                                    rng)}
    check_model_against_torch(impl, "mha", x, params,
                              lambda x, p: _torch_mha_any_width(x, p, H, causal), seed,
                              {"n_heads": H, "causal": causal})
    out, cache = impl("mha.forward")(x, params, H, causal=causal)
    assert out.shape == (2, 3, C_out)
    upstream = rng.standard_normal(out.shape)
    grads = impl("mha.backward")(upstream, cache)
    expected = numerical_vjp(lambda x: impl("mha.forward")(x, params, H, causal=causal)[0],
                             {"x": x}, upstream, ["x"])
    assert_grads_close({"x": grads["x"]}, expected, FD, upstream)


@given(hs.seeds)
def test_tied_embedding_gradient_is_the_sum_of_both_uses(impl, seed):
    """With tied weights, W_te's gradient equals the untied model's token-table gradient plus
    the transpose of its head gradient, when the untied head starts as W_te^T."""
    rng = np.random.default_rng(seed)
    tied = GPTConfig(vocab_size=6, context_len=4, d_model=4, n_heads=2, n_layers=1)
    untied = GPTConfig(**{**tied.__dict__, "tie_weights": False})
    params = hp.random_gpt(tied, rng)
    untied_params = {**params, "lm_head": {"W": params["wte"]["W"].T.copy()}}
    ids = rng.integers(0, 6, size=(3, 4))
    targets = rng.integers(0, 6, size=(3, 4))
    loss_t, g_t = impl("gpt.loss_and_grads")(ids, targets, params, tied)
    loss_u, g_u = impl("gpt.loss_and_grads")(ids, targets, untied_params, untied)
    assert_close(loss_t, loss_u, F64, name="loss")
    assert_close(g_t["wte"]["W"], g_u["wte"]["W"] + g_u["lm_head"]["W"].T, F64,
                 name="tied table gradient")
    assert np.max(np.abs(g_u["lm_head"]["W"])) > 0 and np.max(np.abs(g_u["wte"]["W"])) > 0
