"""Claims about what attention, the feed-forward network and positions do: attention's
connections depend on the input and reach any distance in one layer, its output is a
weighted sum of values, queries/keys/values are projections of each token; the FFN is
Linear-ReLU-Linear; the parameters, memory and cost of each; what a model without attention
or without positional information can and cannot tell apart."""

import math

import numpy as np
import pytest

from llmref.spec.harness import params as hp
from llmref.spec.harness.tolerances import F64, assert_close
from llmref.transformer.gpt import GPTConfig


def _split_heads(t, H):
    B, T, C = t.shape
    return t.reshape(B, T, H, C // H).transpose(0, 2, 1, 3)


def _qkv(impl, x, params, H):
    """Queries, keys and values: three slices of one linear map of each token, per head."""
    qkv, _ = impl("linear.forward")(x, params["qkv"])
    C = x.shape[-1]
    return tuple(_split_heads(qkv[..., i * C:(i + 1) * C], H) for i in range(3))


@pytest.mark.claim("L000-attention-dynamic")
def test_attention_connections_depend_on_the_input(impl, claim_figures):
    """How much each position draws on each other one is computed from the input: changing
    one token changes the attention weights of every later query, while a linear layer mixes
    features with the same fixed matrix whatever the input."""
    rng = np.random.default_rng(0)
    params = hp.random_mha(8, rng)
    x = rng.standard_normal((1, 5, 8))
    changed = x.copy()
    changed[0, 1] += rng.standard_normal(8)
    before = impl("attention.weights")(*_qkv(impl, x, params, 2)[:2], causal=True)
    after = impl("attention.weights")(*_qkv(impl, changed, params, 2)[:2], causal=True)
    shift = np.abs(np.asarray(after) - np.asarray(before)).sum(axis=-1)   # (B, H, T)
    assert np.all(shift[..., 1:] > 1e-3) and np.all(shift[..., 0] < 1e-15)
    lin = hp.random_linear(8, 8, rng)
    _, cache = impl("linear.forward")(x, lin)
    _, cache2 = impl("linear.forward")(changed, lin)
    g = rng.standard_normal((1, 5, 8))
    # the matrix that mixes features is the same for both inputs: the input gradient is g W^T
    assert_close(impl("linear.backward")(g, cache)["x"], impl("linear.backward")(g, cache2)["x"],
                 F64, name="linear layer's mixing")
    claim_figures.record(smallest_weight_change_after_the_token=shift[..., 1:].min())


@pytest.mark.claim("L000-attention-long-range")
def test_one_attention_layer_connects_any_two_positions(impl, claim_figures):
    """In a 64-token sequence, the last position's output after one causal attention layer
    depends on the first token directly: the gradient reaching token 0 from output 63 is as
    large as the one reaching token 62 (within a factor of 10 either way), one step away.
    (Whether this makes long-range patterns faster to learn is not measured here.)"""
    rng = np.random.default_rng(0)
    T, C = 64, 8
    params = {"qkv": hp.random_linear(C, 3 * C, rng, scale=0.2),
              "proj": hp.random_linear(C, C, rng)}
    x = rng.standard_normal((1, T, C))
    out, cache = impl("mha.forward")(x, params, 2, causal=True)
    upstream = np.zeros(out.shape)
    upstream[0, -1] = rng.standard_normal(C)
    dx = impl("mha.backward")(upstream, cache)["x"][0]
    reach = np.linalg.norm(dx, axis=-1)
    assert np.all(reach > 0)
    assert 0.1 < reach[0] / reach[-2] < 10
    claim_figures.record(gradient_at_distance_63=reach[0], gradient_at_distance_1=reach[-2])


@pytest.mark.claim("L003-weighted-sum")
@pytest.mark.claim("L004-attention-calc")
def test_attention_output_is_the_weighted_sum_of_the_values(impl, claim_figures):
    """Each output row is sum_j A_ij V_j with A = softmax(Q K^T / sqrt(d)): the forward equals
    the weights times the values, every row of weights sums to one, and a key that matches the
    query better (a higher score) always gets more weight."""
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    out, _ = impl("attention.forward")(q, k, v)
    A = np.asarray(impl("attention.weights")(q, k))
    assert_close(out, A @ v, F64, name="attention output vs weights @ values")
    assert_close(A.sum(axis=-1), np.ones(A.shape[:-1]), F64, name="row sums")
    s = np.asarray(impl("attention.scores")(q, k))
    assert_close(s, q @ np.swapaxes(k, -1, -2) / 2.0, F64, name="scores q.k / sqrt(4)")
    order_s, order_a = np.argsort(s, axis=-1), np.argsort(A, axis=-1)
    assert np.array_equal(order_s, order_a)
    claim_figures.record(rows_checked=int(np.prod(A.shape[:-1])))


@pytest.mark.claim("L003-qkv-projections")
@pytest.mark.claim("L004-qkv")
def test_queries_keys_and_values_are_projections_of_each_token(impl, claim_figures):
    """Multi-head attention equals: Q = x W_Q, K = x W_K, V = x W_V (three slices of one
    projection), scaled dot-product attention per head, heads side by side, output projection.
    The output projection W_O is a fourth matrix the lesson's description leaves out."""
    rng = np.random.default_rng(2)
    params = hp.random_mha(6, rng)
    x = rng.standard_normal((2, 4, 6))
    q, k, v = _qkv(impl, x, params, 3)
    heads, _ = impl("attention.forward")(q, k, v, causal=True)
    merged = heads.transpose(0, 2, 1, 3).reshape(2, 4, 6)
    expected, _ = impl("linear.forward")(merged, params["proj"])
    assert_close(impl("mha.forward")(x, params, 3)[0], expected, F64, name="MHA vs Q/K/V recipe")
    claim_figures.record(projection_matrices=len(params))


@pytest.mark.claim("L003-relu-example")
def test_relu_of_the_lessons_example(impl, claim_figures):
    """ReLU([0.6, -0.2, 0.9, 0.1]) = [0.6, 0.0, 0.9, 0.1]: negatives become 0, the rest pass."""
    out, _ = impl("relu.forward")(np.array([0.6, -0.2, 0.9, 0.1]))
    assert np.array_equal(out, [0.6, 0.0, 0.9, 0.1])
    claim_figures["relu"] = out


@pytest.mark.claim("L003-ffn-formula")
def test_feed_forward_is_expand_relu_compress(impl, claim_figures):
    """FFN(x) = Linear2(ReLU(Linear1(x))) with Linear1 C -> 4C and Linear2 4C -> C: the
    feed-forward module with the ReLU activation equals that composition of the linear and
    ReLU modules, and its output has the input's width."""
    rng = np.random.default_rng(3)
    C = 8
    params = hp.random_ffn(C, 4 * C, rng)
    x = rng.standard_normal((2, 3, C))
    out, _ = impl("ffn.forward")(x, params, activation="relu")
    h, _ = impl("linear.forward")(x, params["fc"])
    expected, _ = impl("linear.forward")(impl("relu.forward")(h)[0], params["proj"])
    assert_close(out, expected, F64, name="FFN vs Linear2(ReLU(Linear1(x)))")
    assert h.shape[-1] == 4 * C and out.shape == x.shape
    claim_figures.record(width=C, hidden_width=h.shape[-1])


@pytest.mark.claim("L003-attention-params")
def test_attention_has_four_weight_matrices_and_the_ffn_two(impl, claim_figures):
    """The implementation's own initialisation: attention holds W_Q, W_K, W_V (as one C x 3C
    matrix) and the output projection W_O, 4C^2 weights; the FFN holds two matrices, 8C^2 at
    the usual 4C hidden width, twice attention's."""
    C = 16
    rng = np.random.default_rng(0)
    attn = impl("mha.init")(C, 4, rng)
    ffn = impl("ffn.init")(C, 4 * C, rng)
    attn_w = sum(p["W"].size for p in attn.values())
    ffn_w = sum(p["W"].size for p in ffn.values())
    assert attn["qkv"]["W"].shape == (C, 3 * C) and attn["proj"]["W"].shape == (C, C)
    assert attn_w == 4 * C * C and ffn_w == 8 * C * C
    claim_figures.record(attention_weights=attn_w, ffn_weights=ffn_w, width=C)


@pytest.mark.claim("L003-attention-quadratic")
def test_attention_cost_is_quadratic_in_length_and_the_ffn_linear(impl, claim_figures):
    """Doubling the sequence doubles the FFN's FLOPs and the attention projections', and
    quadruples the score and weighted-sum part.  Below T = 2C (here C = 768: T = 1536) the
    linear projections still cost more than the quadratic part."""
    C, H = 768, 12
    cost = {T: (impl("flops.mha")(1, T, C, H).forward, impl("flops.ffn")(T, C, 4 * C).forward,
                impl("flops.attention")(1, H, T, T, C // H).forward)
            for T in (512, 1024, 1536, 2048)}
    assert cost[1024][1] == 2 * cost[512][1]
    assert cost[1024][2] == 4 * cost[512][2]
    projections = {T: c[0] - c[2] for T, c in cost.items()}
    assert projections[1024] == 2 * projections[512]
    assert cost[1536][2] == projections[1536]
    assert cost[1024][2] < projections[1024] and cost[2048][2] > projections[2048]
    claim_figures.record(crossover_length=1536, **{f"quadratic_share_at_{T}": c[2] / c[0]
                                                   for T, c in cost.items()})


@pytest.mark.claim("L003-attention-memory")
def test_attention_keeps_its_weights_and_the_ffn_its_hidden_activations(impl, claim_figures):
    """What each keeps for the backward pass (measured on the caches): attention holds its
    (B, H, T, T) weights, whose bytes grow with T^2; the FFN holds its (B, T, 4C) hidden
    activations, which grow with T."""
    rng = np.random.default_rng(4)
    C, H = 8, 2
    found = {}
    attn, ffn = hp.random_mha(C, rng), hp.random_ffn(C, 4 * C, rng)
    weights = [a for part in (*attn.values(), *ffn.values()) for a in part.values()]
    for T in (8, 16, 32):
        x = rng.standard_normal((1, T, C))
        _, att_cache = impl("mha.forward")(x, attn, H)
        _, ffn_cache = impl("ffn.forward")(x, ffn)
        found[T] = (impl("checkpoint.held_bytes")(att_cache, exclude=[x, *weights]),
                    impl("checkpoint.held_bytes")(ffn_cache, exclude=[x, *weights]))
    att_extra = [found[T][0] - found[8][0] * T / 8 for T in (16, 32)]
    assert found[16][1] == 2 * found[8][1] and found[32][1] == 4 * found[8][1]
    assert att_extra[0] > 0 and att_extra[1] > 0           # more than linear growth
    weights = [1 * H * T * T * 8 for T in (8, 16, 32)]
    assert all(found[T][0] >= w for T, w in zip((8, 16, 32), weights, strict=True))
    claim_figures.record(**{f"attention_cache_bytes_T{T}": a for T, (a, _) in found.items()},
                         **{f"ffn_cache_bytes_T{T}": f for T, (_, f) in found.items()})


def _context_free(params):
    """The GPT with every attention sublayer silenced (output projection 0): what remains is
    embeddings, norms and feed-forward networks."""
    out = {**params, "blocks": []}
    for p in params["blocks"]:
        proj = {"W": np.zeros_like(p["attn"]["proj"]["W"]),
                "b": np.zeros_like(p["attn"]["proj"]["b"])}
        out["blocks"].append({**p, "attn": {**p["attn"], "proj": proj}})
    return out


@pytest.mark.claim("L003-remove-attention")
@pytest.mark.claim("L001-self-attention-context")
def test_without_attention_a_word_means_the_same_in_every_context(impl, claim_figures):
    """'bank' at the same position after two different contexts ('river ... bank' and 'money
    ... bank'): the GPT's hidden state for it differs; with attention silenced it is the same
    to the last bit, because nothing else lets one position see another."""
    config = GPTConfig(vocab_size=10, context_len=4, d_model=8, n_heads=2, n_layers=2)
    params = hp.random_gpt(config, np.random.default_rng(5))
    river, money, bank = 1, 2, 7
    a = np.array([[river, 0, 3, bank]])
    b = np.array([[money, 0, 3, bank]])
    with_attn = [impl("gpt.hidden_forward")(ids, params, config)[0][0, -1] for ids in (a, b)]
    without = [impl("gpt.hidden_forward")(ids, _context_free(params), config)[0][0, -1]
               for ids in (a, b)]
    gap = np.abs(with_attn[0] - with_attn[1]).max()
    assert gap > 1e-3
    assert np.array_equal(without[0], without[1])
    claim_figures.record(bank_difference_with_attention=gap,
                         bank_difference_without_attention=0.0)


@pytest.mark.claim("L004-position-matters")
@pytest.mark.claim("L001-positional-encoding")
def test_word_order_with_and_without_positional_information(impl, claim_figures):
    """Without positions, one layer of attention cannot tell 'dog bites man' from 'man bites
    dog' at a position that sees both (reordering what it attends to leaves its output the
    same), and bidirectional attention only reorders its outputs.  Adding sinusoidal
    positions makes the order visible.  But a causal model learns order without positions
    once it has two layers: earlier positions see different prefixes, so the last output
    changes when the earlier words are swapped."""
    rng = np.random.default_rng(6)
    C, H = 8, 2
    dog, bites, man = (rng.standard_normal(C) for _ in range(3))
    one = np.stack([dog, bites, man, dog])[None]               # the last token sees all three
    two = np.stack([man, bites, dog, dog])[None]
    params = [hp.random_block(C, 16, rng) for _ in range(2)]

    def last(x, n_layers, positions=False):
        h = impl("sinusoidal.forward")(x)[0] if positions else x
        for p in params[:n_layers]:
            h = impl("block.forward")(h, p, H, causal=True)[0]
        return h[0, -1]

    one_layer = np.abs(last(one, 1) - last(two, 1)).max()
    with_positions = np.abs(last(one, 1, True) - last(two, 1, True)).max()
    two_layers = np.abs(last(one, 2) - last(two, 2)).max()
    assert one_layer < 1e-12
    assert with_positions > 1e-3 and two_layers > 1e-3
    table = impl("sinusoidal.table")(16, C)
    assert len({tuple(np.round(row, 12)) for row in table}) == 16    # every position distinct
    claim_figures.record(one_causal_layer_no_positions=one_layer,
                         one_causal_layer_with_positions=with_positions,
                         two_causal_layers_no_positions=two_layers)


@pytest.mark.claim("L001-output-scores")
def test_higher_scores_get_higher_probabilities_summing_to_one(impl, claim_figures):
    """The output layer's softmax ranks the words exactly as their scores do and gives
    probabilities that sum to 1."""
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((20, 9)) * 3
    probs, _ = impl("softmax.forward")(scores)
    assert np.array_equal(np.argsort(scores, axis=1), np.argsort(probs, axis=1))
    assert_close(probs.sum(axis=1), np.ones(20), F64, name="probabilities sum")
    claim_figures.record(rows=20, words=9)


@pytest.mark.claim("L003-second-bank-weights")
@pytest.mark.claim("L003-attention-weights-example")
@pytest.mark.claim("L002-probabilities-sum")
@pytest.mark.claim("L003-loss-005-and-095")
def test_the_lessons_distributions_are_what_a_softmax_can_give(impl, claim_figures):
    """A list of probabilities is a softmax output exactly when its entries are positive and
    sum to 1: taking their logarithms as scores, softmax gives them back unchanged then and
    only then.  The lessons' lists (47/42/11; the cat/mat example; the first 'bank') come
    back unchanged; the second 'bank' (0.50, 0.30, 0.10 named, 'others low') leaves 0.10 for
    the other five words."""
    lists = {"002 four/five/six": [0.47, 0.42, 0.11],
             "003 mat/cat/dog/chair/floor": [0.05, 0.60, 0.10, 0.15, 0.10],
             "003 first bank": [0.05, 0.10, 0.60, 0.15, 0.05, 0.02, 0.02, 0.01]}
    for name, p in lists.items():
        p = np.array(p)
        back, _ = impl("softmax.forward")(np.log(p)[None])
        assert_close(back[0], p, F64, name=name)
    named = np.array([0.50, 0.30, 0.10])
    others = 1 - named.sum()
    second = np.concatenate([named, np.full(5, others / 5)])
    back, _ = impl("softmax.forward")(np.log(second)[None])
    assert_close(back[0], second, F64, name="second bank")
    assert others / 5 < named.min()
    not_a_distribution = np.array([0.05, 0.60, 0.15])      # the attention example's three
    back, _ = impl("softmax.forward")(np.log(not_a_distribution)[None])
    assert np.abs(back[0] - not_a_distribution).max() > 0.01
    claim_figures.record(second_bank_others_each=others / 5)


@pytest.mark.claim("L003-score-example")
def test_attention_score_of_the_lessons_vectors(impl, claim, claim_figures):
    """Score = q . k / sqrt(d_k) for the lesson's first three entries of 512-wide vectors
    (the rest zero): 0.44 / 22.6 = 0.019."""
    q = np.zeros((1, 1, 1, 512))
    k = np.zeros((1, 1, 1, 512))
    q[..., :3] = [0.5, 0.3, 0.2]
    k[..., :3] = [0.6, 0.4, 0.1]
    score = float(np.asarray(impl("attention.scores")(q, k)).ravel()[0])
    assert abs(score * math.sqrt(512) - 0.44) < 1e-12
    assert abs(score - claim["value"]) <= claim["tolerance"]
    claim_figures.record(**{"score": score, "score × √512 (= q · k)": score * math.sqrt(512),
                            "√512": math.sqrt(512)})
