"""Token embedding, learned positional embedding and sinusoidal positional encoding."""

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


def _embedding_args(a):
    return (a["ids"], {"W": a["W"]}), {}


@pytest.mark.claim("L001-embeddings-vectors")
@given(hs.token_ids(), st.integers(1, 6), hs.seeds)
def test_embedding_matches_torch(impl, ids_vocab, d_model, seed):
    """Lookup and the gradient of the table match F.embedding, repeated ids included."""
    ids, vocab = ids_vocab
    W = np.random.default_rng(seed).standard_normal((vocab, d_model))
    check_against_torch(impl, "embedding", {"ids": ids, "W": W}, _embedding_args,
                        lambda ids, W: F.embedding(ids, W), seed)


def test_embedding_backward_accumulates_repeated_ids(impl):
    """The same id at three positions: its row gets the sum of the three upstream rows."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 3))
    ids = np.array([[2, 0, 2], [4, 2, 1]])
    out, cache = impl("embedding.forward")(ids, {"W": W})
    dout = rng.standard_normal(out.shape)
    dW = impl("embedding.backward")(dout, cache)["W"]
    assert_close(dW[2], dout[0, 0] + dout[0, 2] + dout[1, 1], F64, name="row of the repeated id")
    assert_close(dW[3], np.zeros(3), F64, name="row of an unused id")


@given(hs.token_ids(shape=(2, 3), vocab_size=4), hs.seeds)
def test_embedding_finite_differences(impl, ids_vocab, seed):
    ids, vocab = ids_vocab
    W = np.random.default_rng(seed).standard_normal((vocab, 3))
    check_against_finite_differences(impl, "embedding", {"ids": ids, "W": W}, _embedding_args,
                                     ["W"], seed)


@given(hs.token_ids(), hs.seeds)
def test_embedding_float32(impl, ids_vocab, seed):
    ids, vocab = ids_vocab
    W = np.random.default_rng(seed).standard_normal((vocab, 4))
    check_float32_forward(impl, "embedding", {"ids": ids, "W": W}, _embedding_args,
                          lambda ids, W: F.embedding(ids, W))


@pytest.mark.claim("L004-positional-kinds")
@given(st.integers(1, 9), st.integers(1, 6), st.integers(0, 3), hs.seeds)
def test_positional_matches_torch(impl, seq_len, d_model, spare, seed):
    """Learned positions: rows 0..T-1 of the table, and their gradient (rows >= T get 0)."""
    W = np.random.default_rng(seed).standard_normal((seq_len + spare, d_model))
    check_against_torch(impl, "positional", {"W": W}, lambda a: ((seq_len, {"W": a["W"]}), {}),
                        lambda W: W[torch.arange(seq_len)], seed)


def _torch_sinusoidal(seq_len, d_model, base=10000.0):
    """An independent torch writing of the encoding table."""
    pos = torch.arange(seq_len, dtype=torch.float64)[:, None]
    i = torch.arange(d_model, dtype=torch.float64)[None, :]
    angle = pos / base ** (2 * torch.div(i, 2, rounding_mode="floor") / d_model)
    return torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))


@pytest.mark.claim("L004-positional-kinds")
@given(hs.shapes(min_dims=2, max_dims=3, max_side=9),
       st.sampled_from([10000.0, 100.0, 2.5, 0.5]), hs.seeds)
def test_sinusoidal_matches_formula(impl, shape, base, seed):
    """x + PE matches an independent torch writing of the formula, for the usual base and
    others (odd widths included); the gradient is dout."""
    x = np.random.default_rng(seed).standard_normal(shape)
    check_against_torch(impl, "sinusoidal", {"x": x}, lambda a: ((a["x"],), {"base": base}),
                        lambda x: x + _torch_sinusoidal(*shape[-2:], base), seed)


@given(hs.shapes(min_dims=2, max_dims=3, max_side=9), hs.seeds)
def test_sinusoidal_float32(impl, shape, seed):
    """float32 in, float32 out (the table is built in float64 and rounded once)."""
    x = np.random.default_rng(seed).standard_normal(shape)
    check_float32_forward(impl, "sinusoidal", {"x": x}, lambda a: ((a["x"],), {}),
                          lambda x: x + _torch_sinusoidal(*shape[-2:]))


@pytest.mark.parametrize(("seq_len", "d_model", "base", "dtype"),
                         [(5, 1, 10000.0, np.float64), (4, 3, 0.5, np.float32),
                          (6, 8, 50.0, np.float32)])
def test_sinusoidal_table_of_any_width_base_and_dtype(impl, seq_len, d_model, base, dtype):
    """The table on its own: one column (sin of the position), a base below 1, and float32
    (the float64 table rounded once) against the torch writing."""
    table = impl("sinusoidal.table")(seq_len, d_model, base, dtype=dtype)
    assert table.dtype == dtype and table.shape == (seq_len, d_model)
    expected = _torch_sinusoidal(seq_len, d_model, base).numpy().astype(dtype)
    np.testing.assert_allclose(table, expected, rtol=0, atol=np.finfo(dtype).eps * 4)


def test_sinusoidal_dot_product_depends_only_on_offset(impl):
    """PE[p] . PE[p + k] is the same for every p: the encoding of a shift is a rotation."""
    pe = impl("sinusoidal.table")(64, 16)
    for k in (1, 5, 17):
        dots = np.einsum("pc,pc->p", pe[:-k], pe[k:])
        assert np.ptp(dots) < 1e-9, f"offset {k}: dot products vary by {np.ptp(dots)}"
    assert np.all(np.abs(pe) <= 1.0)


@pytest.mark.parametrize("w_dtype,dout_dtype", [(np.float32, np.float64),
                                                (np.float64, np.float32)])
def test_embedding_gradient_takes_the_promoted_dtype(impl, w_dtype, dout_dtype):
    """embedding.backward's dW has the promoted dtype of W and dout, as its docstring says:
    float32 with float64, either way round, gives float64, with the float64 sums of the
    upstream rows (a repeated id adds its rows; no float32 rounding on the way)."""
    rng = np.random.default_rng(6)
    W = rng.standard_normal((5, 3)).astype(w_dtype)
    ids = np.array([[0, 1, 1], [4, 2, 1]])
    dout = rng.standard_normal((2, 3, 3)).astype(dout_dtype)
    _, cache = impl("embedding.forward")(ids, {"W": W})
    dW = impl("embedding.backward")(dout, cache)["W"]
    assert dW.dtype == np.float64
    expected = np.zeros((5, 3))
    np.add.at(expected, ids, dout.astype(np.float64))
    assert_close(dW, expected, F64, name="dW")
