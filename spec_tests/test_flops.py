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
def test_backward_costs_twice_the_forward(impl):
    """Counting matrix products, a training step's backward is exactly 2x its forward, for
    every layer and so for the model (GPT-2 small's shape, batch 8 x 1024 tokens)."""
    config = GPTConfig(vocab_size=50257, context_len=1024, d_model=768, n_heads=12,
                       n_layers=12)
    cost = impl("flops.gpt")(config, 8, 1024)
    assert cost.backward == 2 * cost.forward


@pytest.mark.claim("L003-attention-quadratic")
def test_attention_cost_grows_with_the_square_of_the_sequence(impl):
    """Doubling T quadruples the attention products and doubles everything else."""
    att = [impl("flops.attention")(1, 12, T, T, 64).forward for T in (512, 1024, 2048)]
    assert att[1] == 4 * att[0] and att[2] == 4 * att[1]
    proj = [impl("flops.linear")(T, 768, 768).forward for T in (512, 1024)]
    assert proj[1] == 2 * proj[0]
