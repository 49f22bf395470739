"""The FLOP counter against PyTorch's own counter (torch.utils.flop_counter.FlopCounterMode)
run on the torch twins, forward and backward, and the two scaling facts it is used for."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.spec.harness import torch_twins as tw
from llmref.spec.test_llama import any_config
from llmref.transformer.gpt import GPTConfig


def torch_flops(run_forward):
    """(forward FLOPs, backward FLOPs) that torch counts for ``run_forward()`` and its
    backward with a random upstream gradient.  The math attention backend decomposes
    attention into the matrix products it really performs (the fused CPU kernel would
    recompute the scores in its backward and count a fifth product)."""
    with sdpa_kernel(SDPBackend.MATH):
        with FlopCounterMode(display=False) as forward_counter:
            out = run_forward()
        with FlopCounterMode(display=False) as backward_counter:
            out.backward(torch.randn_like(out))
    return forward_counter.get_total_flops(), backward_counter.get_total_flops()


def _as_pair(cost):
    return cost.forward, cost.backward


def _leaf(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


@given(hs.sides(), hs.sides(), hs.sides())
def test_linear_flops(impl, n, d_in, d_out):
    x, W, b = _leaf(n, d_in), _leaf(d_out, d_in), _leaf(d_out)
    assert _as_pair(impl("flops.linear")(n, d_in, d_out)) == torch_flops(
        lambda: F.linear(x, W, b))


@given(hs.sides(3), hs.sides(3), hs.sides(5), hs.sides(5), hs.sides(4))
def test_attention_flops(impl, B, H, T, S, D):
    q, k, v = _leaf(B, H, T, D), _leaf(B, H, S, D), _leaf(B, H, S, D)
    assert _as_pair(impl("flops.attention")(B, H, T, S, D)) == torch_flops(
        lambda: F.scaled_dot_product_attention(q, k, v))


@given(hs.sides(3), hs.sides(5), st.integers(1, 3), st.integers(1, 3))
def test_mha_flops(impl, B, T, H, D):
    C = H * D
    p = tw.tensors(hp.random_mha(C, np.random.default_rng(0)))
    x = _leaf(B, T, C)
    assert _as_pair(impl("flops.mha")(B, T, C, H)) == torch_flops(lambda: tw.mha(x, p, H))


@given(st.integers(1, 3), st.integers(1, 2), st.integers(1, 6), st.integers(1, 3),
       st.integers(1, 2), st.integers(2, 9), st.booleans(), st.integers(1, 5))
def test_gpt_flops(impl, B, H, T, D, n_layers, vocab, tie, d_ff):
    """The whole model (blocks and head): matches torch's count exactly."""
    config = GPTConfig(vocab_size=vocab, context_len=T, d_model=H * D, n_heads=H,
                       n_layers=n_layers, d_ff=d_ff, tie_weights=tie)
    p = tw.tensors(hp.random_gpt(config, np.random.default_rng(0)))
    ids = torch.randint(0, vocab, (B, T))
    assert _as_pair(impl("flops.gpt")(config, B, T)) == torch_flops(
        lambda: tw.gpt_logits(ids, p, config))


@pytest.mark.claim("L003-backward-2x")
def test_backward_costs_twice_the_forward(impl, claim_figures):
    """Counting matrix products, a training step's backward is exactly 2x its forward, for
    every layer and so for the model (GPT-2 small's shape, batch 8 x 1024 tokens)."""
    config = GPTConfig(vocab_size=50257, context_len=1024, d_model=768, n_heads=12,
                       n_layers=12)
    cost = impl("flops.gpt")(config, 8, 1024)
    assert cost.backward == 2 * cost.forward
    claim_figures.record(forward_flops=cost.forward, backward_flops=cost.backward,
                         backward_over_forward=cost.backward / cost.forward)


@pytest.mark.claim("L003-attention-quadratic")
def test_attention_cost_grows_with_the_square_of_the_sequence(impl, claim_figures):
    """Doubling T quadruples the attention products and doubles everything else."""
    att = [impl("flops.attention")(1, 12, T, T, 64).forward for T in (512, 1024, 2048)]
    assert att[1] == 4 * att[0] and att[2] == 4 * att[1]
    proj = [impl("flops.linear")(T, 768, 768).forward for T in (512, 1024)]
    assert proj[1] == 2 * proj[0]
    claim_figures.record(**{f"attention forward FLOPs, T = {T}": a
                            for T, a in zip((512, 1024, 2048), att, strict=True)},
                         **{"attention, 1024 over 512": att[1] / att[0],
                            "attention, 2048 over 1024": att[2] / att[1],
                            "projection, 1024 over 512": proj[1] / proj[0]})


@pytest.mark.parametrize(("call", "args"), [
    ("flops.linear", (-2, 3, 4)), ("flops.attention", (1, 2, -3, 4, 5)),
    ("flops.mha", (1, 4, 0, 2)), ("flops.ffn", (4, 3, -1)), ("flops.block", (1, 4, 8, 2, 0)),
    ("memory.block_param_count", (-8, 32)),
    ("memory.block_activation_elements", (2, -4, 8, 2, 32)),
])
def test_negative_or_zero_sizes_are_refused(impl, call, args):
    """A negative size used to give negative FLOPs or bytes, silently; zero, a cost of 0."""
    with pytest.raises(ValueError, match=call.replace(".", r"\.")):
        impl(call)(*args)


def test_heads_must_divide_the_width(impl):
    """d_model // n_heads used to floor: 10 wide with 4 heads counted heads of width 2."""
    with pytest.raises(ValueError, match="'n_heads' must divide d_model = 10"):
        impl("flops.mha")(1, 4, 10, 4)


def test_numpy_sizes_count_exactly_beyond_int64(impl):
    """NumPy ints are accepted and the counts are Python ints: no int64 overflow (2^63 is
    about 9.2e18; this forward pass is 2 * 2^22 * 2^21 * 2^21 = 2^65 FLOPs)."""
    cost = impl("flops.linear")(np.int64(2**22), np.int64(2**21), np.int64(2**21))
    assert cost.forward == 2**65 and cost.backward == 2**66
    assert isinstance(cost.forward, int)


def test_gpt_flops_refuse_a_sequence_longer_than_the_context(impl):
    config = GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=2, n_layers=1)
    with pytest.raises(ValueError, match="'T' must be at most the context length 8"):
        impl("flops.gpt")(config, 1, 9)
    with pytest.raises(TypeError, match="'config' must be a GPTConfig"):
        impl("flops.gpt")({"d_model": 8}, 1, 4)


@given(any_config(), st.integers(1, 2), hs.seeds)
def test_gpt_flops_with_llama_options(impl, config, B, seed):
    """Any mix of the options (grouped-query K/V projections, three SwiGLU matrices, no
    biases, untied head): flops.gpt equals torch's count of the torch composition."""
    rng = np.random.default_rng(seed)
    p = tw.tensors(hp.random_gpt(config, rng))
    T = config.context_len
    ids = torch.from_numpy(rng.integers(0, config.vocab_size, size=(B, T)))
    assert _as_pair(impl("flops.gpt")(config, B, T)) == torch_flops(
        lambda: tw.gpt_any_logits(ids, p, config))


@given(hs.sides(3), hs.sides(4), st.integers(1, 3), st.integers(1, 3), hs.sides(5),
       st.booleans(), st.integers(1, 3))
def test_a_block_is_its_attention_plus_its_feed_forward(impl, B, T, H_kv, group, d_ff, gated,
                                                        D):
    """flops.block(B, T, C, H, F, H_kv, gated) = mha(B, T, C, H, H_kv) + ffn(BT, C, F, gated),
    and the feed-forward is 2 linear layers (3 gated) of (BT, C) x (C, F)."""
    H = H_kv * group
    C = H * D
    block = impl("flops.block")(B, T, C, H, d_ff, H_kv, gated)
    parts = impl("flops.mha")(B, T, C, H, H_kv) + impl("flops.ffn")(B * T, C, d_ff, gated)
    assert _as_pair(block) == _as_pair(parts)
    linear = impl("flops.linear")(B * T, C, d_ff)
    assert _as_pair(impl("flops.ffn")(B * T, C, d_ff, gated)) == (
        (3 if gated else 2) * linear.forward, (3 if gated else 2) * linear.backward)


def test_costs_add_and_scale_by_ints_only(impl):
    """Cost + Cost adds both passes, Cost * int (either side) scales them; a float, a bool or
    a plain number is refused by Python's operator protocol (TypeError); a count of 0 is a
    cost."""
    Cost = impl("flops.Cost")
    a, b = Cost(3, 6), Cost(np.int64(1), 2)
    assert _as_pair(a + b) == (4, 8) and (a + b).total == 12
    assert _as_pair(a * 4) == _as_pair(4 * a) == _as_pair(a * np.int64(4)) == (12, 24)
    assert _as_pair(Cost(0, 0)) == (0, 0) and Cost(0, 0).total == 0
    for bad in (1.5, True, np.bool_(True), np.float64(2.0)):
        with pytest.raises(TypeError):
            a * bad
        with pytest.raises(TypeError):
            bad * a
    with pytest.raises(TypeError):
        a + 1


_CONFIG = GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=2, n_layers=1)


@pytest.mark.reference_only
@pytest.mark.parametrize(("call", "args", "error", "message"), [
    ("flops.gpt", ({"d_model": 8}, 1, 4), TypeError,
     "flops.gpt: argument 'config' must be a GPTConfig, got dict {'d_model': 8}"),
    ("flops.gpt", (_CONFIG, 1, 9), ValueError,
     "flops.gpt: argument 'T' must be at most the context length 8, got 9"),
    ("flops.mha", (1, 4, 10, 4), ValueError,
     "flops.mha: argument 'n_heads' must divide d_model = 10, got n_heads = 4"),
    ("flops.mha", (1, 4, 12, 4, 3), ValueError,
     "flops.mha: argument 'n_kv_heads' must divide n_heads = 4, got n_kv_heads = 3"),
    ("flops.block", (1, 4, 10, 4, 8), ValueError,
     "flops.block: argument 'n_heads' must divide d_model = 10, got n_heads = 4"),
    ("flops.block", (1, 4, 12, 4, 8, 3), ValueError,
     "flops.block: argument 'n_kv_heads' must divide n_heads = 4, got n_kv_heads = 3"),
    ("flops.Cost", (-1, 0), ValueError, "flops.Cost: argument 'forward' must be an int >= 0, "
                                        "got -1"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else None)
def test_refusals_in_the_references_words(impl, call, args, error, message):
    """The whole message: function, argument, rule and the value given."""
    with pytest.raises(error) as info:
        impl(call)(*args)
    assert str(info.value) == message
