"""Claims about gradients and backpropagation: what a gradient is (the local slope, the
steepest way down), what it reaches (every parameter), what its size does and does not mean,
and how it behaves through depth: vanishing in deep sigmoid stacks, exploding with too large
an initialisation, and even across the layers of a transformer.

Depth is measured by the norm of each layer's *weight* gradient, which is what sets how much
a layer learns; the gradient reaching a block's input can shrink or grow for reasons that
leave the weights' gradients alone (a layer norm's scale invariance, for one)."""

import numpy as np
import pytest
import torch
from torch.func import functional_call

from llmref.spec.harness import params as hp
from llmref.spec.harness import torch_twins as tw
from llmref.spec.harness.checks import flatten
from llmref.spec.harness.tolerances import F64, assert_close
from llmref.transformer.gpt import GPTConfig

SMALL = GPTConfig(vocab_size=11, context_len=6, d_model=8, n_heads=2, n_layers=2)


def _batch(seed, B=3, T=6, V=11):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(B, T))
    return ids, np.roll(ids, -1, axis=1)


def _add(tree, direction, step):
    flat = flatten(direction)
    return _map_flat(tree, lambda name, a: a + step * flat[name])


def _map_flat(tree, fn, prefix=""):
    if isinstance(tree, dict):
        return {k: _map_flat(v, fn, f"{prefix}{k}.")
                for k, v in tree.items()}
    if isinstance(tree, list):
        return [_map_flat(v, fn, f"{prefix}{i}.") for i, v in enumerate(tree)]
    return fn(prefix[:-1], tree)


def _dot(a, b):
    fa, fb = flatten(a), flatten(b)
    return float(sum(np.sum(fa[k] * fb[k]) for k in fa))


@pytest.mark.claim("L004-partial-derivatives")
@pytest.mark.claim("L002-backprop-exact")
@pytest.mark.claim("L004-backprop-exactly")
def test_gradient_is_the_local_slope_and_only_first_order(impl, claim_figures):
    """For a small GPT the gradient's component along any direction equals the slope of the
    loss along it (central differences, relative error < 1e-7): backprop gives the exact
    partial derivatives.  But 'how much each weight contributed' is first order only: the
    change the gradient predicts for a step (g . dw) matches the real change for a tiny step
    and misses it by more than the change itself (115%) at a learning rate of 1."""
    params = hp.random_gpt(SMALL, np.random.default_rng(0))
    ids, targets = _batch(0)

    def loss_at(p):
        return float(impl("gpt.loss_and_grads")(ids, targets, p, SMALL)[0])

    loss, grads = impl("gpt.loss_and_grads")(ids, targets, params, SMALL)
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(4):
        d = {k: rng.standard_normal(v.shape) for k, v in flatten(params).items()}
        d_tree = _map_flat(params, lambda name, a, d=d: d[name])
        h = 1e-5
        slope = (loss_at(_add(params, d_tree, h)) - loss_at(_add(params, d_tree, -h))) / (2 * h)
        worst = max(worst, abs(_dot(grads, d_tree) - slope) / abs(slope))
    assert worst < 1e-7
    errors = {}
    for lr in (1e-4, 1.0):
        step = _map_flat(grads, lambda name, a: -a)
        predicted = -lr * _dot(grads, grads)
        actual = loss_at(_add(params, step, lr)) - loss
        errors[lr] = abs(actual - predicted) / abs(predicted)
    assert errors[1e-4] < 1e-3 and errors[1.0] > 0.1
    claim_figures.record(slope_relative_error=worst, first_order_error_lr_1e_4=errors[1e-4],
                         first_order_error_lr_1=errors[1.0])


@pytest.mark.claim("L004-gradient-downhill")
@pytest.mark.claim("L002-gradient-direction")
def test_minus_the_gradient_is_the_steepest_way_down(impl, claim_figures):
    """Along -g/|g| the loss falls at rate |g|, faster than along any of 500 random unit
    directions; a small step lr * g downhill lowers the loss, and for a single weight with a
    positive gradient, lowering that weight lowers the loss ('positive = too high')."""
    params = hp.random_gpt(SMALL, np.random.default_rng(2))
    ids, targets = _batch(2)
    loss, grads = impl("gpt.loss_and_grads")(ids, targets, params, SMALL)
    g = np.concatenate([a.ravel() for a in flatten(grads).values()])
    rng = np.random.default_rng(3)
    dirs = rng.standard_normal((500, g.size))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    best_random = float(-(dirs @ g).max())          # steepest descent rate among them
    assert -np.linalg.norm(g) < best_random
    new, _ = impl("sgd.step")(params, grads, impl("sgd.init")(params), lr=1e-3)
    lower = float(impl("gpt.loss_and_grads")(ids, targets, new, SMALL)[0])
    assert lower < loss
    w = params["blocks"][0]["ffn"]["fc"]["W"]
    gw = grads["blocks"][0]["ffn"]["fc"]["W"]
    i = np.unravel_index(np.argmax(gw), gw.shape)
    nudged = _map_flat(params, lambda name, a: a)
    nudged["blocks"][0]["ffn"]["fc"]["W"] = w.copy()
    nudged["blocks"][0]["ffn"]["fc"]["W"][i] -= 1e-3
    assert gw[i] > 0
    assert float(impl("gpt.loss_and_grads")(ids, targets, nudged, SMALL)[0]) < loss
    claim_figures.record(gradient_norm=np.linalg.norm(g), best_of_500_random_rates=-best_random,
                         loss_before=loss, loss_after_step=lower)


@pytest.mark.claim("L000-gradient-pathways")
@pytest.mark.claim("L001-backprop-all-layers")
@pytest.mark.claim("L004-all-params-trained")
@pytest.mark.claim("L002-chain-rule-every-weight")
def test_every_parameter_receives_a_gradient(impl, claim_figures):
    """At GPT-2 initialisation (the implementation's own init) every leaf of the parameter
    tree (token and position embeddings, Q/K/V, attention output, feed-forward, norms, head)
    gets a non-zero gradient from one batch.  The exceptions are rows nothing touched: with an
    untied head, the token rows of words absent from the batch, and position rows beyond the
    sequence, get exactly zero."""
    config = GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=2, n_layers=2,
                       tie_weights=False)
    params = impl("gpt.init")(config, np.random.default_rng(0))
    ids, targets = _batch(4, T=6)
    ids[ids == 10] = 9                               # token 10 never appears
    _, grads = impl("gpt.loss_and_grads")(ids, targets, params, config)
    norms = {k: float(np.linalg.norm(v)) for k, v in flatten(grads).items()}
    assert set(norms) == set(flatten(params))
    assert all(n > 0 for n in norms.values()), norms
    assert np.all(grads["wte"]["W"][10] == 0) and np.all(grads["wpe"]["W"][6:] == 0)
    used = np.unique(ids)
    assert np.all(np.abs(grads["wte"]["W"][used]).sum(axis=1) > 0)
    claim_figures.record(parameter_tensors=len(norms), smallest_gradient_norm=min(norms.values()),
                         largest_gradient_norm=max(norms.values()))


@pytest.mark.claim("L003-gradient-size-meaning")
def test_a_zero_gradient_does_not_mean_the_weight_is_right(impl, claim_figures):
    """A ReLU unit that is off for every input (a 'dead' unit) gives its incoming weights a
    gradient of exactly zero, although the loss is far from its minimum and moving those
    weights (here: making the unit fire) lowers it a lot.  A small gradient says the loss is
    locally flat in that weight, not that the weight is fine."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3))
    y = np.maximum(x @ np.array([1.0, -2.0, 0.5]), 0.0)[:, None]
    first = {"W": np.array([[-1.0], [2.0], [-0.5]]), "b": np.array([-20.0])}   # never fires
    second = {"W": np.array([[1.0]]), "b": np.array([0.0])}

    def loss_and_first_grads(p1):
        z, c1 = impl("linear.forward")(x, p1)
        a, ca = impl("relu.forward")(z)
        out, c2 = impl("linear.forward")(a, second)
        loss, cm = impl("mse.forward")(out, y)
        d_out = impl("mse.backward")(1.0, cm)["pred"]
        d_a = impl("linear.backward")(d_out, c2)["x"]
        return float(loss), impl("linear.backward")(impl("relu.backward")(d_a, ca)["x"], c1)

    loss, g = loss_and_first_grads(first)
    assert np.all(g["W"] == 0) and np.all(g["b"] == 0)
    fixed = {"W": np.array([[1.0], [-2.0], [0.5]]), "b": np.array([0.0])}
    better, _ = loss_and_first_grads(fixed)
    assert better < 1e-20 < loss
    claim_figures.record(loss_with_dead_unit=loss, gradient_of_its_weights=0.0,
                         loss_after_moving_them=better)


def _stack_weight_grad_norms(impl, n_layers, norm_first, residual, seed=0, C=32, H=4):
    """Per block (index 0 = lowest), the norm of the gradient of its four weight matrices,
    for a stack at GPT-2 initialisation and a random upstream gradient; also the blocks'
    parameters, input and upstream for an oracle."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 8, C))
    blocks = [hp.gpt2_block(C, 4 * C, rng) for _ in range(n_layers)]
    h, caches = x, []
    for p in blocks:
        h, cache = impl("block.forward")(h, p, H, norm_first=norm_first, residual=residual)
        caches.append(cache)
    upstream = rng.standard_normal(h.shape)
    g, norms = upstream, []
    for cache in reversed(caches):
        grads = impl("block.backward")(g, cache)
        g = grads["x"]
        norms.append(_weight_norm(grads))
    return np.array(norms[::-1]), blocks, x, upstream


def _weight_norm(grads):
    return float(np.sqrt(sum(np.sum(grads[part][name]["W"] ** 2)
                             for part, name in (("attn", "qkv"), ("attn", "proj"),
                                                ("ffn", "fc"), ("ffn", "proj")))))


def _torch_weight_grad_norms(blocks, x, upstream, norm_first, H=4):
    """The same norms from torch autograd through nn.TransformerEncoderLayer (one module,
    loaded with each block's weights in turn)."""
    C = x.shape[-1]
    module = tw.block_module(C, H, 4 * C, norm_first, "gelu_tanh")
    mask = tw.causal_mask(x.shape[1])
    tensors = [tw.tensors(p) for p in blocks]
    h = torch.from_numpy(x)
    for p in tensors:
        h = functional_call(module, tw.block_state(p), (h,),
                            {"src_mask": mask, "is_causal": True})
    h.backward(torch.from_numpy(upstream))
    return np.array([_weight_norm(tw.grads(p)) for p in tensors])


@pytest.mark.claim("L000-output-layer-strongest")
@pytest.mark.claim("L000-residual-paths")
@pytest.mark.claim("L003-paris-layer-gradients")
@pytest.mark.claim("L003-vanishing-example")
@pytest.mark.claim("L004-layer-structure")
def test_transformer_weight_gradients_do_not_fade_with_depth(impl, claim_figures):
    """24 blocks at GPT-2 initialisation. With residual connections (pre- and post-norm) every
    block's weight gradient is within 10% of every other's (measured: 7%; the norms are the ones
    torch autograd finds, checked on 4 blocks); nothing is ordered from a strong top to a weak
    bottom. Without residual connections the layer norms still keep them from fading: the lowest
    block's weight gradient is 1.65 (pre-norm) and 0.92 (post-norm) times the top one's, though
    they vary by up to 7x in between."""
    found = {}
    for norm_first in (True, False):
        name = "pre" if norm_first else "post"
        short, blocks, x, upstream = _stack_weight_grad_norms(impl, 4, norm_first, True)
        assert_close(short, _torch_weight_grad_norms(blocks, x, upstream, norm_first), F64,
                     name=f"{name}-norm weight-gradient norms vs torch")
        norms, *_ = _stack_weight_grad_norms(impl, 24, norm_first, True)
        assert norms.min() / norms.max() > 0.9, norms
        plain, *_ = _stack_weight_grad_norms(impl, 24, norm_first, False)
        assert 0.5 < plain[0] / plain[-1] < 2.0 and plain.min() / plain.max() > 0.1, plain
        found[f"{name}_norm_residual_min_over_max"] = norms.min() / norms.max()
        found[f"{name}_norm_residual_bottom_over_top"] = norms[0] / norms[-1]
        found[f"{name}_norm_plain_bottom_over_top"] = plain[0] / plain[-1]
        found[f"{name}_norm_plain_min_over_max"] = plain.min() / plain.max()
    claim_figures.record(**found)


def _mlp_weight_grad_norms(impl, activation, n_layers, gain, residual, seed=0, width=64,
                           signals=False):
    """A stack of linear + activation layers, weights N(0, gain^2 / width) (gain 1: Xavier's
    variance for tanh, sqrt(2): He's for ReLU), with or without x + f(x) skips: the norm of
    every layer's weight gradient, bottom first.  ``signals=True``: also the norm of the
    gradient arriving at every layer's output (the backward signal) and of every layer's
    input (the forward signal), bottom first."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((32, width))
    caches, inputs = [], []
    for _ in range(n_layers):
        p = {"W": rng.standard_normal((width, width)) * gain / np.sqrt(width),
             "b": np.zeros(width)}
        inputs.append(float(np.linalg.norm(x)))
        z, lc = impl("linear.forward")(x, p)
        a, ac = impl(f"{activation}.forward")(z)
        caches.append((lc, ac))
        x = x + a if residual else a
    g, norms, arriving = rng.standard_normal(x.shape), [], []
    for lc, ac in reversed(caches):
        arriving.append(float(np.linalg.norm(g)))
        gl = impl("linear.backward")(impl(f"{activation}.backward")(g, ac)["x"], lc)
        norms.append(float(np.linalg.norm(gl["W"])))
        g = gl["x"] + g if residual else gl["x"]
    if signals:
        return np.array(norms[::-1]), np.array(arriving[::-1]), np.array(inputs)
    return np.array(norms[::-1])


@pytest.mark.claim("L003-vanishing-example")
@pytest.mark.claim("L000-residual-paths")
@pytest.mark.claim("L003-vanishing-fixes")
def test_sigmoid_stacks_lose_their_gradient_and_skips_or_relu_restore_it(impl, claim_figures):
    """Where vanishing is real: 24 sigmoid layers without skips keep 6e-15 of the top layer's
    weight gradient at the bottom (sigmoid' <= 1/4 at every layer).  Skip connections restore
    it to 0.23 of the top; ReLU with He's initialisation keeps 1.1 of it without any skip."""
    sigmoid = _mlp_weight_grad_norms(impl, "sigmoid", 24, 1.0, residual=False)
    skips = _mlp_weight_grad_norms(impl, "sigmoid", 24, 1.0, residual=True)
    relu = _mlp_weight_grad_norms(impl, "relu", 24, np.sqrt(2), residual=False)
    assert sigmoid[0] / sigmoid[-1] < 1e-12
    assert np.all(np.diff(sigmoid) > 0)                # weaker at every layer going down
    assert skips[0] / skips[-1] > 0.1
    assert 0.5 < relu[0] / relu[-1] < 2 and relu.min() / relu.max() > 0.2
    claim_figures.record(sigmoid_bottom_over_top=sigmoid[0] / sigmoid[-1],
                         sigmoid_with_skips_bottom_over_top=skips[0] / skips[-1],
                         relu_he_bottom_over_top=relu[0] / relu[-1])


@pytest.mark.claim("L003-vanishing-example")
def test_tanh_stacks_lose_the_backward_signal_not_the_weight_gradient(impl, claim_figures):
    """24 tanh layers without skips.  With small weights (gain 0.5) the gradient arriving at
    the bottom layer is 1e-7 of the one arriving at the top, the lesson's picture; but each
    layer's weight gradient is that signal times the layer's input, and the forward signal
    shrinks going up by the same factor, so the bottom layer's weight gradient is 1.03 times
    the top one's: what a layer learns does not fade.  At Xavier's gain 1 neither fades
    (bottom/top 0.22 for the signal, 1.13 for the weights)."""
    found = {}
    for gain in (0.5, 1.0):
        weights, arriving, inputs = _mlp_weight_grad_norms(impl, "tanh", 24, gain,
                                                           residual=False, signals=True)
        found[f"gain_{gain}_signal_bottom_over_top"] = arriving[0] / arriving[-1]
        found[f"gain_{gain}_weight_gradient_bottom_over_top"] = weights[0] / weights[-1]
        found[f"gain_{gain}_input_bottom_over_top"] = inputs[0] / inputs[-1]
        assert 0.5 < weights[0] / weights[-1] < 2
    assert found["gain_0.5_signal_bottom_over_top"] < 1e-5
    assert found["gain_0.5_input_bottom_over_top"] > 1e5
    assert found["gain_1.0_signal_bottom_over_top"] > 0.05
    claim_figures.record(**found)


@pytest.mark.claim("L000-careful-init")
def test_too_large_an_initialisation_explodes_the_gradient(impl, claim_figures):
    """24 tanh layers: with weights N(0, 1/width) the bottom layer's weight gradient is about
    the top one's (1.1x); doubling the scale makes it 32x the top's, and over 80 layers
    2e5x: the gradient explodes going down.  Initialisation sets which way it goes."""
    ratios = {gain: _mlp_weight_grad_norms(impl, "tanh", 24, gain, residual=False)
              for gain in (1.0, 2.0)}
    careful = ratios[1.0][0] / ratios[1.0][-1]
    large = ratios[2.0][0] / ratios[2.0][-1]
    assert 0.5 < careful < 2 and large > 10
    claim_figures.record(tanh_gain_1_bottom_over_top=careful,
                         tanh_gain_2_bottom_over_top=large)


@pytest.mark.slow
@pytest.mark.claim("L003-vanishing-example")
@pytest.mark.claim("L000-careful-init")
@pytest.mark.claim("L003-paris-layer-gradients")
def test_gradient_through_depth_over_a_sweep_of_activations_gains_and_depths(impl,
                                                                             claim_figures):
    """The sweep behind the verdicts: sigmoid, tanh and ReLU stacks at several initial scales,
    24 and 80 layers, with and without skips, over four seeds; and an 80-block transformer
    (the lesson's depth) with residual connections."""
    found = {}
    for seed in range(4):
        for depth in (24, 80):
            s = _mlp_weight_grad_norms(impl, "sigmoid", depth, 1.0, False, seed)
            assert s[0] / s[-1] < (1e-12 if depth == 24 else 1e-40)
            r = _mlp_weight_grad_norms(impl, "relu", depth, np.sqrt(2), False, seed)
            assert r.min() / r.max() > (0.2 if depth == 24 else 0.05)
            t2 = _mlp_weight_grad_norms(impl, "tanh", depth, 2.0, False, seed)
            assert t2[0] / t2[-1] > (10 if depth == 24 else 1e4)
            if seed == 0:
                found[f"sigmoid_{depth}"] = s[0] / s[-1]
                found[f"relu_he_{depth}_min_over_max"] = r.min() / r.max()
                found[f"tanh_gain2_{depth}"] = t2[0] / t2[-1]
        t1 = _mlp_weight_grad_norms(impl, "tanh", 24, 1.0, False, seed)
        assert 0.3 < t1[0] / t1[-1] < 3
    deep, *_ = _stack_weight_grad_norms(impl, 80, True, True)
    assert deep.min() / deep.max() > 0.8
    found["transformer_80_blocks_min_over_max"] = deep.min() / deep.max()
    claim_figures.record(**found)


def _squared_norm(tree):
    if isinstance(tree, dict):
        return sum(_squared_norm(v) for v in tree.values())
    if isinstance(tree, list):
        return sum(_squared_norm(v) for v in tree)
    return float(np.sum(tree ** 2))


@pytest.mark.claim("L002-blame-percentages")
def test_blame_is_not_split_among_stages_in_fixed_percentages(impl, claim_figures):
    """The word calculator's GPT at its initialisation, one batch of questions: the tokenizer
    has no weights at all (it is a lookup table of words; the gradient tree has no entry for
    it), so it cannot take 5% of the blame.  The squared gradient norm splits about 36%
    embeddings (which, tied, are also the output layer), 25% attention, 39% feed-forward:
    not 15/30/50, and a share of the squared norm is only one of many ways to count."""
    from llmref.examples import word_calculator
    vocab = word_calculator.Vocab()
    config = GPTConfig(vocab_size=len(vocab.words), context_len=4, d_model=64, n_heads=4,
                       n_layers=2)
    params = impl("gpt.init")(config, np.random.default_rng(0))
    rows, _ = word_calculator.dataset(vocab)
    rows = rows[:256]
    targets = np.full((256, 4), -100)
    targets[:, 3] = rows[:, 4]
    _, grads = impl("gpt.loss_and_grads")(rows[:, :4], targets, params, config)
    assert set(grads) == {"wte", "wpe", "blocks", "ln_f"}
    shares = {"embeddings_and_tied_output": _squared_norm(grads["wte"]) + _squared_norm(
                  grads["wpe"]),
              "attention": sum(_squared_norm(b["attn"]) for b in grads["blocks"]),
              "feed_forward": sum(_squared_norm(b["ffn"]) for b in grads["blocks"]),
              "norms": sum(_squared_norm(b["ln1"]) + _squared_norm(b["ln2"])
                           for b in grads["blocks"]) + _squared_norm(grads["ln_f"])}
    total = sum(shares.values())
    shares = {k: v / total for k, v in shares.items()}
    assert shares["embeddings_and_tied_output"] < 0.45 and shares["attention"] < 0.3
    claim_figures.record(tokenizer=0.0, **shares)
