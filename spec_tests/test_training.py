"""Gradient accumulation, the training loop, gradient checkpointing and the memory
calculator."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.spec.harness.checks import flatten
from llmref.spec.harness.tolerances import F64, assert_close, assert_grads_close
from llmref.spec.test_llama import any_config
from llmref.transformer.gpt import GPTConfig

TINY = GPTConfig(vocab_size=13, context_len=8, d_model=8, n_heads=2, n_layers=2)


def _data(seed, n, T=8, vocab=13):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=(n, T))
    return ids, np.roll(ids, -1, axis=1)


@pytest.mark.claim("L003-accumulation")
@given(st.sampled_from([1, 2, 4]), hs.seeds)
def test_accumulated_gradient_equals_the_big_batch_gradient(impl, k, seed):
    """k micro-batches of equal token count, each loss divided by k: the same loss and
    gradients as one batch k times larger, and so the same AdamW update."""
    params = hp.random_gpt(TINY, np.random.default_rng(seed))
    ids, targets = _data(seed, 8)

    def fn(idx):
        return impl("gpt.loss_and_grads")(ids[idx], targets[idx], params, TINY)

    loss, grads = impl("accumulate.loss_and_grads")(fn, np.array_split(np.arange(8), k))
    big_loss, big_grads = fn(np.arange(8))
    assert_close(loss, big_loss, F64, name="loss")
    assert_grads_close(flatten(grads), flatten(big_grads), F64, np.array(1.0))
    state = impl("adamw.init")(params)
    after_acc, _ = impl("adamw.step")(params, grads, state, lr=1e-2)
    after_big, _ = impl("adamw.step")(params, big_grads, state, lr=1e-2)
    assert_grads_close(flatten(after_acc), flatten(after_big), F64, np.array(1.0))


@pytest.mark.claim("L003-accumulation")
def test_accumulation_with_unequal_token_counts_is_not_the_big_batch(impl, claim_figures):
    """With padding (ignore_index) the micro-batches count different numbers of tokens, the
    mean of their means is not the big batch's mean, and neither are the gradients."""
    params = hp.random_gpt(TINY, np.random.default_rng(0))
    ids, targets = _data(0, 4)
    targets[:2, 2:] = -100                       # the first micro-batch counts 4 tokens, not 16

    def fn(idx):
        return impl("gpt.loss_and_grads")(ids[idx], targets[idx], params, TINY)

    loss, _ = impl("accumulate.loss_and_grads")(fn, [np.arange(2), np.arange(2, 4)])
    big_loss, _ = fn(np.arange(4))
    assert abs(loss - big_loss) > 1e-3
    claim_figures.record(mean_of_the_micro_batch_losses=loss, big_batch_loss=big_loss,
                         tokens_counted_per_micro_batch=[
                             int(np.sum(targets[idx] != -100))
                             for idx in (np.arange(2), np.arange(2, 4))])


@pytest.mark.claim("L004-epoch")
@pytest.mark.claim("L002-training-loop")
@pytest.mark.claim("L000-training-cycle")
def test_training_loop_sees_every_example_once_per_epoch_in_a_seeded_order(impl,
                                                                           claim_figures):
    ids, targets = _data(1, 10)
    params = hp.random_gpt(TINY, np.random.default_rng(1))

    def lg(x, y, p):
        return impl("gpt.loss_and_grads")(x, y, p, TINY)

    def run(seed):
        return impl("train.train")(params, lg, ids, targets, epochs=3, batch_size=4,
                                   optimizer=_module(impl, "adamw"), lr=1e-2, seed=seed,
                                   micro_batches=2, max_grad_norm=1.0, log_every=0)

    _, history = run(seed=5)
    for epoch in range(3):
        seen = np.concatenate([h["examples"] for h in history if h["epoch"] == epoch])
        assert sorted(seen.tolist()) == list(range(10))
    orders = [np.concatenate([h["examples"] for h in history if h["epoch"] == e])
              for e in range(3)]
    assert not np.array_equal(orders[0], orders[1])          # reshuffled each epoch
    _, again = run(seed=5)
    assert all(np.array_equal(a["examples"], b["examples"]) and a["loss"] == b["loss"]
               for a, b in zip(history, again, strict=True))
    _, other = run(seed=6)
    assert not all(np.array_equal(a["examples"], b["examples"])
                   for a, b in zip(history, other, strict=True))
    assert all(h["grad_norm"] >= 0 for h in history)
    assert history[-1]["loss"] < history[0]["loss"]
    claim_figures.record(
        examples=len(ids), epochs=1 + max(h["epoch"] for h in history), steps=len(history),
        distinct_examples_seen_per_epoch=[len(set(np.concatenate(
            [h["examples"] for h in history if h["epoch"] == e]).tolist())) for e in range(3)],
        first_loss=history[0]["loss"], last_loss=history[-1]["loss"])


def test_training_loop_logs_progress(impl):
    """A line after every log_every-th step (steps 2 and 4 of 4, then 2, 4, 6, 8 over two
    epochs), naming the epoch out of all, the step, the loss and the learning rate of that
    step, and a positive speed in steps per second."""
    import re

    ids, targets = _data(2, 8)
    lines = []
    _, history = impl("train.train")(
        hp.random_gpt(TINY, np.random.default_rng(2)),
        lambda x, y, p: impl("gpt.loss_and_grads")(x, y, p, TINY), ids, targets, epochs=2,
        batch_size=2, optimizer=_module(impl, "sgd"), lr=0.1, log_every=2, log=lines.append)
    assert len(lines) == 4
    for line, step, epoch in zip(lines, (2, 4, 6, 8), (1, 1, 2, 2), strict=True):
        assert line.startswith(f"epoch {epoch}/2  step {step}  "), line
        assert f"loss {history[step - 1]['loss']:.4f}" in line, line
        speed = float(re.search(r"([0-9.]+) steps/s", line).group(1))
        assert speed > 0, line


def test_training_loop_follows_the_schedule_and_clips(impl):
    """The loop against a hand-written replay on a quadratic loss whose gradient is known in
    closed form: a schedule given as a function, clipping, an optimizer keyword
    (weight_decay), 10 examples in batches of 4 (a last batch of 2) and 3 micro-batches (parts
    of 2, 1, 1; the last batch, smaller than 3, in one-example parts), all over 2 epochs.
    Loss of a part: mean over its rows of 0.5 |w - x_i|^2, gradient w - mean(x); a batch's
    gradient is the mean of its parts' gradients (each part weighs the same, as in
    accumulate)."""
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((10, 3)) * 4
    w0 = {"w": rng.standard_normal(3)}

    def loss_and_grads(x, y, p):
        assert len(x) > 0, "a micro-batch with no examples"
        diff = p["w"] - x
        return 0.5 * float(np.mean(np.sum(diff**2, axis=1))), {"w": diff.mean(axis=0)}

    def schedule(step):
        return 0.3 / (1 + step)

    params, history = impl("train.train")(
        w0, loss_and_grads, xs, np.zeros(10), epochs=2, batch_size=4,
        optimizer=_module(impl, "sgd"), lr=schedule, micro_batches=3, max_grad_norm=0.5,
        seed=3, weight_decay=0.1)
    assert [len(h["examples"]) for h in history] == [4, 4, 2] * 2
    w = w0["w"].copy()
    for step, h in enumerate(history):
        parts = [p for p in np.array_split(h["examples"], 3) if len(p)]
        g = np.mean([w - xs[p].mean(axis=0) for p in parts], axis=0)
        norm = float(np.linalg.norm(g))
        assert_close(h["grad_norm"], norm, F64, name=f"step {step}: gradient norm")
        assert h["lr"] == schedule(step)
        g = g * min(1.0, 0.5 / (norm + 1e-6)) + 0.1 * w
        w = w - schedule(step) * g
    assert_close(params["w"], w, F64, name="parameters after two epochs")


def test_defaults_of_the_loop_and_the_memory_calculator(impl):
    """The documented defaults: train runs one micro-batch per batch (the whole batch goes to
    loss_and_grads), never logs, does not clip (the norm is still reported) and accepts a
    batch exactly as large as micro_batches; training_bytes counts AdamW, 4-byte parameters,
    activations at the parameters' item size and no master copy."""
    calls, lines = [], []

    def lg(x, y, p):
        calls.append(len(x))
        return 0.5 * float(np.sum(p["w"] ** 2)), {"w": p["w"] * 100.0}

    _, history = impl("train.train")({"w": np.ones(2)}, lg, np.zeros((6, 1)), np.zeros(6),
                                     epochs=1, batch_size=3, optimizer=_module(impl, "sgd"),
                                     lr=0.01, log=lines.append)
    assert calls == [3, 3] and lines == []
    assert history[0]["grad_norm"] == np.sqrt(2) * 100.0           # not clipped
    _, history = impl("train.train")({"w": np.ones(2)}, lg, np.zeros((6, 1)), np.zeros(6),
                                     epochs=1, batch_size=2, micro_batches=2,
                                     optimizer=_module(impl, "sgd"), lr=0.01)
    assert len(history) == 3
    config = GPTConfig(vocab_size=50, context_len=16, d_model=16, n_heads=2, n_layers=3)
    assert impl("memory.training_bytes")(config, 2, 16) == impl("memory.training_bytes")(
        config, 2, 16, optimizer="adamw", param_bytes=4, activation_itemsize=4,
        master_weights=False)


def test_training_one_example_at_a_time(impl):
    """batch_size = 1 (with the default single micro-batch) is a step per example."""
    _, history = _train(impl, batch_size=1, epochs=1)
    assert [len(h["examples"]) for h in history] == [1, 1, 1, 1]


def test_memory_counts_are_python_ints(impl):
    """Counts of elements, parameters and bytes are exact Python ints (no float creeps in
    from a division), for full and grouped-query heads."""
    config = GPTConfig(vocab_size=50, context_len=16, d_model=16, n_heads=4, n_layers=2,
                       n_kv_heads=2)
    results = {
        "block_activation_elements, full heads": impl("memory.block_activation_elements")(
            2, 8, 16, 4, 64),
        "block_activation_elements, grouped": impl("memory.block_activation_elements")(
            2, 8, 16, 4, 64, n_kv_heads=2),
        "param_count": impl("memory.param_count")(config),
        "activation_bytes": impl("memory.activation_bytes")(config, 2, 8),
    }
    results.update({f"training_bytes[{k!r}]": v
                    for k, v in impl("memory.training_bytes")(config, 2, 8).items()})
    for name, value in results.items():
        assert type(value) is int, f"{name} returned {type(value).__name__} {value!r}"


def test_training_bytes_options(impl):
    """Every option of the memory calculator against its closed form: bytes per parameter
    for the compute copy and the gradients, 0/1/2 float32 optimizer states per parameter,
    the float32 master copy, and activations at their own item size."""
    config = GPTConfig(vocab_size=50, context_len=16, d_model=16, n_heads=2, n_layers=3)
    n = impl("memory.param_count")(config)
    act8 = impl("memory.activation_bytes")(config, 2, 16, itemsize=8)
    act2 = impl("memory.activation_bytes")(config, 2, 16, itemsize=2)
    assert act8 > act2
    for optimizer, states in (("sgd", 0), ("momentum", 1), ("adam", 2), ("adamw", 2)):
        for param_bytes, act_itemsize, master in ((4, None, False), (2, 8, True)):
            mem = impl("memory.training_bytes")(config, 2, 16, optimizer=optimizer,
                                                param_bytes=param_bytes,
                                                activation_itemsize=act_itemsize,
                                                master_weights=master)
            expected = {"params": n * param_bytes, "grads": n * param_bytes,
                        "optimizer_state": 4 * states * n,
                        "master_weights": 4 * n if master else 0,
                        "activations": act8 if act_itemsize == 8 else
                        impl("memory.activation_bytes")(config, 2, 16, itemsize=param_bytes)}
            expected["total"] = sum(expected.values())
            assert mem == expected, (optimizer, param_bytes, act_itemsize, master)
    with pytest.raises(ValueError, match="'optimizer' must be one of"):
        impl("memory.training_bytes")(config, 2, 16, optimizer="lion")


def _module(impl, name):
    class Optimizer:
        init = staticmethod(impl(f"{name}.init"))
        step = staticmethod(impl(f"{name}.step"))
    return Optimizer


@pytest.mark.claim("L003-checkpointing")
@pytest.mark.parametrize("segment", [1, 2, 3, 4, 6, 7])
def test_checkpointed_gradients_are_identical(impl, segment, claim_figures):
    """Recomputing inside segments repeats the same arithmetic: bit-for-bit equal gradients,
    also when the segment length does not divide the 6 blocks (4: a partial last segment of
    2 blocks; 7: one segment longer than the stack)."""
    config = GPTConfig(vocab_size=13, context_len=8, d_model=8, n_heads=2, n_layers=6)
    params = hp.random_gpt(config, np.random.default_rng(3))
    ids, targets = _data(3, 3)
    targets[:, -1] = -1                                     # ignored, by a non-default index
    loss, grads = impl("gpt.loss_and_grads")(ids, targets, params, config, ignore_index=-1)
    c_loss, c_grads, stats = impl("checkpoint.loss_and_grads")(ids, targets, params, config,
                                                               segment, ignore_index=-1)
    assert stats["segments"] == -(-6 // segment)
    assert c_loss == loss
    for name, g in flatten(grads).items():
        np.testing.assert_array_equal(flatten(c_grads)[name], g, err_msg=name)
    claim_figures.record(
        blocks=config.n_layers, segments=stats["segments"],
        gradient_arrays_compared=len(flatten(grads)),
        gradient_values_compared=sum(np.size(g) for g in flatten(grads).values()),
        largest_difference=max(float(np.max(np.abs(flatten(c_grads)[n] - g), initial=0.0))
                               for n, g in flatten(grads).items()),
        loss_difference=c_loss - loss)



@given(st.integers(2, 40), st.integers(1, 9), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 3), st.integers(1, 12), st.booleans(), hs.seeds)
def test_memory_calculator_matches_measurement(impl, vocab, ctx, H, D, L, d_ff, tie, seed):
    """Parameter count equals the leaves of a real parameter tree; activation bytes equal
    the bytes the reference's caches actually hold (measured, float64)."""
    config = GPTConfig(vocab_size=vocab, context_len=ctx, d_model=H * D, n_heads=H,
                       n_layers=L, d_ff=d_ff, tie_weights=tie)
    params = hp.random_gpt(config, np.random.default_rng(seed))
    assert impl("memory.param_count")(config) == sum(v.size for v in flatten(params).values())
    ids, targets = _data(seed, 2, T=ctx, vocab=vocab)
    targets[0, 0] = -1                                     # the ignored-index path too
    measured = impl("checkpoint.plain_activation_bytes")(ids, targets, params, config,
                                                         ignore_index=-1)
    assert impl("memory.activation_bytes")(config, 2, ctx, itemsize=8) == measured


@pytest.mark.claim("L001-gpt3-scale")
def test_memory_calculator_reproduces_published_model_sizes(impl, claim_figures):
    """GPT-2 small (124,439,808 parameters with position embeddings, tied head) and GPT-3
    175B (96 layers of width 12288, context 2048): 174.6e9, which the paper rounds to 175B."""
    gpt2 = GPTConfig(vocab_size=50257, context_len=1024, d_model=768, n_heads=12, n_layers=12)
    assert impl("memory.param_count")(gpt2) == 124_439_808
    gpt3 = GPTConfig(vocab_size=50257, context_len=2048, d_model=12288, n_heads=96,
                     n_layers=96)
    n = impl("memory.param_count")(gpt3)
    assert abs(n - 175e9) / 175e9 < 0.005
    mem = impl("memory.training_bytes")(gpt3, 1, 2048, optimizer="adamw", param_bytes=2,
                                        master_weights=True)
    assert mem["optimizer_state"] == 8 * n and mem["master_weights"] == 4 * n
    assert mem["params"] + mem["grads"] + mem["optimizer_state"] + mem["master_weights"] \
        == 16 * n                                         # the "16 bytes per parameter" rule
    claim_figures.record(gpt2_small_parameters=impl("memory.param_count")(gpt2),
                         gpt3_parameters=n, gpt3_model_state_bytes_per_parameter=(
                             mem["params"] + mem["grads"] + mem["optimizer_state"]
                             + mem["master_weights"]) / n)


def test_memory_calculator_refuses_bad_sizes(impl):
    """Negative sizes used to give negative bytes; an unknown optimizer or a non-bool
    master_weights are refused by name."""
    with pytest.raises(ValueError, match=r"memory\.activation_bytes: argument 'B'"):
        impl("memory.activation_bytes")(TINY, -2, 8)
    with pytest.raises(ValueError, match=r"memory\.training_bytes: argument 'param_bytes'"):
        impl("memory.training_bytes")(TINY, 1, 8, param_bytes=-4)
    with pytest.raises(ValueError, match="'optimizer' must be one of"):
        impl("memory.training_bytes")(TINY, 1, 8, optimizer="lion")
    with pytest.raises(TypeError, match="'master_weights' must be True or False"):
        impl("memory.training_bytes")(TINY, 1, 8, master_weights=1)


def test_accumulation_checks_what_fn_returns(impl):
    """A NaN loss, a NaN gradient or gradients of another shape from one micro-batch are
    refused with the micro-batch named, instead of spreading into the sum."""
    acc = impl("accumulate.loss_and_grads")

    def fn(batch):
        return float(batch[0]), {"w": np.full(2, batch[0]) if batch[0] != 3 else np.ones(3)}

    assert acc(fn, [np.array([1.0]), np.array([2.0])])[0] == 1.5
    with pytest.raises(ValueError, match=r"'fn' returned the loss nan for micro-batch 1"):
        acc(fn, [np.array([1.0]), np.array([np.nan])])
    with pytest.raises(ValueError, match=r"micro-batch 1: grads\['w'\] must have shape \(2,\)"):
        acc(fn, [np.array([1.0]), np.array([3.0])])
    with pytest.raises(ValueError, match="'micro_batches' must hold at least one"):
        acc(fn, [])
    with pytest.raises(TypeError, match="'fn' must return a pair"):
        acc(lambda b: 1.0, [np.array([1.0])])


def test_training_loop_refuses_a_schedule_that_returns_a_bad_rate(impl):
    """A schedule returning 0, a negative or NaN rate at some step stops the loop at that
    step with the step named."""
    ids, targets = _data(4, 4)
    params = hp.random_gpt(TINY, np.random.default_rng(4))

    def lg(x, y, p):
        return impl("gpt.loss_and_grads")(x, y, p, TINY)

    with pytest.raises(ValueError, match=r"'lr' \(a schedule\) must return .* at step 1"):
        impl("train.train")(params, lg, ids, targets, epochs=1, batch_size=2,
                            optimizer=_module(impl, "sgd"), lr=lambda s: 0.1 - 0.2 * s)


def test_checkpointing_names_itself_for_bad_ids(impl):
    """Bad ids are reported by checkpoint.loss_and_grads, the function the caller called,
    not by the GPT's forward inside it."""
    params = hp.random_gpt(TINY, np.random.default_rng(5))
    ids, targets = _data(5, 2)
    ids[0, 0] = 13
    with pytest.raises(ValueError, match=r"checkpoint\.loss_and_grads: argument 'ids'"):
        impl("checkpoint.loss_and_grads")(ids, targets, params, TINY, 1)


# The reference's messages in full (mutmut: a changed name, label, bound or wording survives
# tests that search for a fragment).
def _ones(batch):
    return 1.0, {"w": np.ones(2)}


def _second(bad):
    """fn for accumulate whose second micro-batch returns the gradient ``bad``."""
    return lambda b: (1.0, {"w": np.ones(2) if b == 1 else bad})


def _train(impl, **changes):
    args = {"params": {"w": np.ones(2)}, "loss_and_grads": lambda x, y, p: (1.0, {"w": p["w"]}),
            "inputs": np.zeros((4, 1)), "targets": np.zeros(4), "epochs": 1, "batch_size": 2,
            "optimizer": _module(impl, "sgd"), "lr": 0.1, **changes}
    return impl("train.train")(**args)


def _batch(impl, call, ids=None, targets=None, **changes):
    params = hp.random_gpt(TINY, np.random.default_rng(0))
    ids = np.zeros((2, 8), dtype=np.int64) if ids is None else ids
    targets = np.ones((2, 8), dtype=np.int64) if targets is None else targets
    args = {"ids": ids, "targets": targets, "params": params, "config": TINY, **changes}
    if call == "checkpoint.loss_and_grads":
        args.setdefault("segment_size", 1)
    return impl(call)(**args)


class _InitOnly:
    init = staticmethod(lambda params: None)

    def __repr__(self):
        return "an optimizer without step"


_ACC = "accumulate.loss_and_grads: argument"
REFUSED = {
    "accumulate, fn an int": (
        lambda impl: impl("accumulate.loss_and_grads")(3, [1]), TypeError,
        f"{_ACC} 'fn' must be a function, got int 3"),
    "accumulate over a string": (
        lambda impl: impl("accumulate.loss_and_grads")(_ones, "ab"), TypeError,
        f"{_ACC} 'micro_batches' must be a list (or another iterable) of micro-batches, got "
        f"str 'ab'"),
    "accumulate over a dict": (
        lambda impl: impl("accumulate.loss_and_grads")(_ones, {"a": 1}), TypeError,
        f"{_ACC} 'micro_batches' must be a list (or another iterable) of micro-batches, got "
        f"dict {{'a': 1}}"),
    "accumulate over bytes": (
        lambda impl: impl("accumulate.loss_and_grads")(_ones, b"ab"), TypeError,
        f"{_ACC} 'micro_batches' must be a list (or another iterable) of micro-batches, got "
        f"bytes b'ab'"),
    "accumulate over an int": (
        lambda impl: impl("accumulate.loss_and_grads")(_ones, 3), TypeError,
        f"{_ACC} 'micro_batches' must be a list (or another iterable) of micro-batches, got "
        f"int 3"),
    "accumulate over nothing": (
        lambda impl: impl("accumulate.loss_and_grads")(_ones, iter([])), ValueError,
        f"{_ACC} 'micro_batches' must hold at least one micro-batch, got none"),
    "an infinite loss": (
        lambda impl: impl("accumulate.loss_and_grads")(
            lambda b: (np.inf if b == 2 else 1.0, {"w": np.ones(2)}), [1, 2]), ValueError,
        f"{_ACC} 'fn' returned the loss inf for micro-batch 1; it must be finite"),
    "a second gradient of another shape": (
        lambda impl: impl("accumulate.loss_and_grads")(_second(np.ones(3)), [1, 2]), ValueError,
        f"{_ACC} 'fn' returned bad gradients for micro-batch 1: grads['w'] must have shape "
        f"(2,) like the first micro-batch's['w'], got (3,)"),
    "a second gradient of ints": (
        lambda impl: impl("accumulate.loss_and_grads")(_second(np.ones(2, np.int64)), [1, 2]),
        TypeError, f"{_ACC} 'fn' returned bad gradients for micro-batch 1: grads['w'] must "
                   f"have a floating-point dtype, got dtype int64"),
    "a second gradient NaN": (
        lambda impl: impl("accumulate.loss_and_grads")(_second(np.full(2, np.nan)), [1, 2]),
        ValueError, f"{_ACC} 'fn' returned bad gradients for micro-batch 1: grads['w'] must "
                    f"be finite, got 2 NaN or inf value(s) in an array of shape (2,)"),
    "fn returning no pair": (
        lambda impl: impl("accumulate.loss_and_grads")(lambda b: "x", [1, 2]), TypeError,
        f"{_ACC} 'fn' must return a pair (loss, grads), got str 'x' for micro-batch 0"),
    "epoch without a generator": (
        lambda impl: impl("train.epoch_batches")(10, 4, 3), TypeError,
        "train.epoch_batches: argument 'rng' must be a numpy.random.Generator "
        "(np.random.default_rng(seed)), got int 3"),
    "train on a list": (
        lambda impl: _train(impl, inputs=[1, 2]), TypeError,
        "train.train: argument 'inputs' must be a NumPy array with one example per row, got "
        "list [1, 2]"),
    "train on a 0-d array": (
        lambda impl: _train(impl, targets=np.array(1.0)), TypeError,
        "train.train: argument 'targets' must be a NumPy array with one example per row, got "
        "array of shape () and dtype float64"),
    "train on no targets": (
        lambda impl: _train(impl, targets=np.zeros(0)), ValueError,
        "train.train: argument 'targets' must hold at least one example, got shape (0,)"),
    "train on no inputs": (
        lambda impl: _train(impl, inputs=np.zeros((0, 1))), ValueError,
        "train.train: argument 'inputs' must hold at least one example, got shape (0, 1)"),
    "train on fewer targets": (
        lambda impl: _train(impl, targets=np.zeros(3)), ValueError,
        "train.train: arguments 'inputs' and 'targets' must have the same number of "
        "examples, got 4 and 3"),
    "train, more parts than examples": (
        lambda impl: _train(impl, micro_batches=3), ValueError,
        "train.train: argument 'batch_size' must be >= micro_batches = 3, got 2"),
    "train without an optimizer": (
        lambda impl: _train(impl, optimizer=3), TypeError,
        "train.train: argument 'optimizer' must have a function init() (a module such as "
        "llmref.adamw), got 3"),
    "train, optimizer without step": (
        lambda impl: _train(impl, optimizer=_InitOnly()), TypeError,
        "train.train: argument 'optimizer' must have a function step() (a module such as "
        "llmref.adamw), got an optimizer without step"),
    "train at a rate of 0": (
        lambda impl: _train(impl, lr=0.0), ValueError,
        "train.train: argument 'lr' must be > 0, got 0.0"),
    "train clipped to 0": (
        lambda impl: _train(impl, max_grad_norm=0.0), ValueError,
        "train.train: argument 'max_grad_norm' must be > 0, got 0.0"),
    "a schedule returning a string": (
        lambda impl: _train(impl, lr=lambda s: "a"), TypeError,
        "train.train: argument 'lr' (a schedule) must return a number, got str 'a' at step 0"),
    "a schedule returning True": (
        lambda impl: _train(impl, lr=lambda s: True), TypeError,
        "train.train: argument 'lr' (a schedule) must return a number, got bool True at step 0"),
    "a schedule returning NaN": (
        lambda impl: _train(impl, lr=lambda s: np.nan), ValueError,
        "train.train: argument 'lr' (a schedule) must return a finite number > 0 at every "
        "step, got nan at step 0"),
    "a schedule returning inf": (
        lambda impl: _train(impl, lr=lambda s: np.inf), ValueError,
        "train.train: argument 'lr' (a schedule) must return a finite number > 0 at every "
        "step, got inf at step 0"),
    "a schedule returning 0 at step 1": (
        lambda impl: _train(impl, lr=lambda s: 0.1 * (1 - s)), ValueError,
        "train.train: argument 'lr' (a schedule) must return a finite number > 0 at every "
        "step, got 0.0 at step 1"),
    "train in batches of 0": (
        lambda impl: _train(impl, batch_size=0), ValueError,
        "train.train: argument 'batch_size' must be an int >= 1, got 0"),
    "a NaN loss in training": (
        lambda impl: _train(impl, loss_and_grads=lambda x, y, p: (np.nan, {"w": np.ones(2)})),
        ValueError, "train.train: argument 'loss_and_grads' returned the loss nan for "
                    "micro-batch 0; it must be finite"),
    "gradients of another tree": (
        lambda impl: _train(impl, loss_and_grads=lambda x, y, p: (1.0, {"v": np.ones(2)})),
        ValueError, "train.train: argument 'loss_and_grads' returned bad gradients at step 0: "
                    "'grads' must have the structure of 'params', got missing leaves ['w']; "
                    "unknown leaves ['v']"),
    "gradients in float32": (
        lambda impl: _train(impl, loss_and_grads=lambda x, y, p: (
            1.0, {"w": np.ones(2, np.float32)})), TypeError,
        "train.train: argument 'loss_and_grads' returned bad gradients at step 0: grads['w'] "
        "must have dtype float64 like params['w'], got float32"),
    "held bytes of an int": (
        lambda impl: impl("checkpoint.held_bytes")(3), TypeError,
        "checkpoint.held_bytes: argument 'objects' must be an array, a list, a tuple or a "
        "dict of them, got int 3"),
    "held bytes excluding an int": (
        lambda impl: impl("checkpoint.held_bytes")([np.ones(2)], exclude=3), TypeError,
        "checkpoint.held_bytes: argument 'exclude' must be a list or tuple, got int 3"),
    "held bytes excluding a list with an int": (
        lambda impl: impl("checkpoint.held_bytes")([np.ones(2)], exclude=[np.ones(1), 3]),
        TypeError, "checkpoint.held_bytes: argument exclude[1] must be a NumPy array, got "
                   "int 3"),
    "checkpointing without a GPTConfig": (
        lambda impl: _batch(impl, "checkpoint.loss_and_grads", config={"a": 1}), TypeError,
        "checkpoint.loss_and_grads: argument 'config' must be a GPTConfig, got dict "
        "{'a': 1}"),
    "checkpointing past the context": (
        lambda impl: _batch(impl, "checkpoint.loss_and_grads",
                            ids=np.zeros((2, 9), np.int64), targets=np.ones((2, 9), np.int64)),
        ValueError, "checkpoint.loss_and_grads: argument 'ids' must have shape (B, T) with "
                    "T <= context_len = 8, got shape (2, 9)"),
    "checkpointing one sequence": (
        lambda impl: _batch(impl, "checkpoint.loss_and_grads",
                            ids=np.zeros(8, np.int64), targets=np.ones(8, np.int64)),
        ValueError, "checkpoint.loss_and_grads: argument 'ids' must have shape (B, T) with "
                    "T <= context_len = 8, got shape (8,)"),
    "checkpointing short targets": (
        lambda impl: _batch(impl, "checkpoint.loss_and_grads",
                            targets=np.ones((2, 7), np.int64)), ValueError,
        "checkpoint.loss_and_grads: argument 'targets' must have shape (2, 8), got shape "
        "(2, 7)"),
    "checkpointing a target past the vocabulary": (
        lambda impl: _batch(impl, "checkpoint.loss_and_grads",
                            targets=np.full((2, 8), 13, np.int64)), ValueError,
        "checkpoint.loss_and_grads: argument 'targets' must hold values in [0, 13), got 13 "
        "(and 16 out-of-range value(s) in all)"),
    "checkpointing with every target ignored": (
        lambda impl: _batch(impl, "checkpoint.loss_and_grads",
                            targets=np.full((2, 8), 5, np.int64), ignore_index=5), ValueError,
        "checkpoint.loss_and_grads: argument 'targets' has no target to average: all 16 "
        "equal ignore_index=5"),
    "checkpointing in segments of 0": (
        lambda impl: _batch(impl, "checkpoint.loss_and_grads", segment_size=0), ValueError,
        "checkpoint.loss_and_grads: argument 'segment_size' must be an int >= 1, got 0"),
    "measuring with every target ignored": (
        lambda impl: _batch(impl, "checkpoint.plain_activation_bytes",
                            targets=np.full((2, 8), -100, np.int64)), ValueError,
        "checkpoint.plain_activation_bytes: argument 'targets' has no target to average: all "
        "16 equal ignore_index=-100"),
    "an unknown activation": (
        lambda impl: impl("memory.block_activation_elements")(2, 4, 8, 2, 32,
                                                              activation="tanh"), ValueError,
        "memory.block_activation_elements: argument 'activation' must be one of ['gelu', "
        "'gelu_tanh', 'relu', 'swiglu'], got 'tanh'"),
    "heads not dividing the width": (
        lambda impl: impl("memory.block_activation_elements")(2, 4, 8, 3, 32), ValueError,
        "memory.block_activation_elements: argument 'n_heads' must divide d_model = 8, got "
        "n_heads = 3"),
    "parameters without a GPTConfig": (
        lambda impl: impl("memory.param_count")({"a": 1}), TypeError,
        "memory.param_count: argument 'config' must be a GPTConfig, got dict {'a': 1}"),
    "activations past the context": (
        lambda impl: impl("memory.activation_bytes")(TINY, 2, 9), ValueError,
        "memory.activation_bytes: argument 'T' must be at most the context length 8, got 9"),
    "training bytes past the context": (
        lambda impl: impl("memory.training_bytes")(TINY, 2, 9), ValueError,
        "memory.training_bytes: argument 'T' must be at most the context length 8, got 9"),
    "activations of 0 bytes": (
        lambda impl: impl("memory.training_bytes")(TINY, 2, 8, activation_itemsize=0),
        ValueError, "memory.training_bytes: argument 'activation_itemsize' must be an int "
                    ">= 1, got 0"),
}


@pytest.mark.reference_only
@pytest.mark.parametrize("case", [
    pytest.param(case, id=case, marks=pytest.mark.component(
        *{"train": ("train", "sgd")}.get(message.split(".")[0], (message.split(".")[0],))))
    for case, (_, _, message) in REFUSED.items()])
def test_refusals_in_the_references_words(impl, case):
    """The whole message: function, argument (an entry by its index), rule, value given and,
    for what a callback returned, the micro-batch or step."""
    call, error, message = REFUSED[case]
    with pytest.raises(error) as info:
        call(impl)
    assert str(info.value) == message


@pytest.mark.parametrize("segment", [1, 2, 3, 4, 5, 6, 7])
def test_checkpointing_peak_memory_and_recompute(impl, segment):
    """The stats against the memory calculator's own numbers (float64): while segment j of
    S is rerun (last first), the boundaries 0..j are still held, each a (B, T, C) array, plus
    that segment's block caches; the rest (norm, probabilities, mask, position ids) is what
    the plain pass holds beyond its L block caches.  Every block is rerun once, so the extra
    work is L forward passes of a block."""
    config = GPTConfig(vocab_size=13, context_len=8, d_model=8, n_heads=2, n_layers=6)
    B, T, C, L = 3, 8, 8, 6
    params = hp.random_gpt(config, np.random.default_rng(6))
    ids, targets = _data(6, B)
    _, _, stats = impl("checkpoint.loss_and_grads")(ids, targets, params, config, segment)
    block = 8 * impl("memory.block_activation_elements")(B, T, C, 2, 4 * C)
    rest = impl("memory.activation_bytes")(config, B, T) - L * block
    starts = range(0, L, segment)
    expected = rest + max((j + 1) * B * T * C * 8 + min(segment, L - s) * block
                          for j, s in enumerate(starts))
    assert stats["peak_activation_bytes"] == expected
    assert stats["segments"] == len(starts)
    assert stats["recompute_flops"] == L * impl("flops.block")(B, T, C, 2, 4 * C).forward


def test_measured_activations_are_the_same_in_the_cache_debug_mode(impl):
    """In the cache debug mode a public forward's cache comes wrapped (with checksums of the
    inputs it holds); the measurement walks into the wrapper and counts the same bytes."""
    from llmref import _checks

    params = hp.random_gpt(TINY, np.random.default_rng(8))
    ids, targets = _data(8, 2)
    plain = impl("checkpoint.plain_activation_bytes")(ids, targets, params, TINY)
    previous = _checks.debug_caches(True)
    try:
        debug = impl("checkpoint.plain_activation_bytes")(ids, targets, params, TINY)
    finally:
        _checks.debug_caches(previous)
    assert debug == plain == impl("memory.activation_bytes")(TINY, 2, 8)


@given(any_config(), st.integers(1, 2), hs.seeds)
def test_memory_calculator_matches_measurement_for_any_options(impl, config, B, seed):
    """Every activation (FFN_ELEMENTS: relu 2, the GELUs 3 with the exact GELU's float64
    factor, SwiGLU 5), grouped-query keys and values repeated to every head, rotary tables
    instead of position ids, RMS or layer norm: the predicted bytes equal the measured ones,
    in float64 and in float32 (where the exact GELU still keeps its float64 factor), and the
    parameter count equals the leaves of a real tree."""
    rng = np.random.default_rng(seed)
    params = hp.random_gpt(config, rng)
    T = config.context_len
    ids = rng.integers(0, config.vocab_size, size=(B, T))
    assert impl("memory.param_count")(config) == sum(v.size for v in flatten(params).values())
    measured = impl("checkpoint.plain_activation_bytes")(ids, np.roll(ids, -1, axis=1), params,
                                                         config)
    assert impl("memory.activation_bytes")(config, B, T, itemsize=8) == measured
    params32 = impl("params.map_tree")(lambda a: a.astype(np.float32), params)
    measured = impl("checkpoint.plain_activation_bytes")(ids, np.roll(ids, -1, axis=1),
                                                         params32, config)
    assert impl("memory.activation_bytes")(config, B, T, itemsize=4) == measured


def test_accumulation_takes_any_iterable_and_weighs_parts_equally(impl):
    """A generator, a tuple or a list of micro-batches give the same mean loss and mean
    gradient; parts of different sizes weigh the same (the mean of the parts' values); the
    gradient tree comes back with its nesting and the input gradients are not changed."""
    acc = impl("accumulate.loss_and_grads")
    seen = []

    def fn(batch):
        g = {"w": np.full(2, float(np.sum(batch))), "blocks": [{"b": np.array([len(batch)],
                                                                               float)}]}
        seen.append(g)
        return float(np.sum(batch)), g

    batches = [np.array([1.0, 2.0]), np.array([4.0]), np.array([8.0, 16.0, 32.0])]
    for given_as in (list, tuple, iter):
        seen.clear()
        loss, grads = acc(fn, given_as(batches))
        assert loss == (3.0 + 4.0 + 56.0) / 3
        np.testing.assert_allclose(grads["w"], np.full(2, 63.0 / 3), rtol=1e-15)
        np.testing.assert_allclose(grads["blocks"][0]["b"], [2.0], rtol=1e-15)
        assert [g["w"][0] for g in seen] == [3.0, 4.0, 56.0]


@given(st.integers(1, 30), st.integers(1, 12), hs.seeds)
def test_epoch_batches_cut_one_permutation(impl, n, batch_size, seed):
    """ceil(n / batch_size) int arrays, all of batch_size but the last (the remainder), that
    together hold every index once; the same seed gives the same batches."""
    rng = np.random.default_rng(seed)
    batches = impl("train.epoch_batches")(n, batch_size, rng)
    assert len(batches) == -(-n // batch_size)
    assert [len(b) for b in batches[:-1]] == [batch_size] * (len(batches) - 1)
    assert len(batches[-1]) == n - batch_size * (len(batches) - 1)
    assert all(np.issubdtype(b.dtype, np.integer) for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(n))
    again = impl("train.epoch_batches")(n, batch_size, np.random.default_rng(seed))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh", "swiglu"])
@pytest.mark.parametrize("n_kv_heads", [4, 2])
def test_one_block_adds_what_block_activation_elements_counts(impl, activation, n_kv_heads):
    """A second block adds exactly block_activation_elements(...) float64 elements to the
    measured activations, for every activation and with grouped-query attention."""
    configs = [GPTConfig(vocab_size=11, context_len=6, d_model=8, n_heads=4, n_layers=L,
                         d_ff=5, activation=activation, n_kv_heads=n_kv_heads)
               for L in (1, 2)]
    rng = np.random.default_rng(9)
    ids = rng.integers(0, 11, size=(2, 6))
    measured = [impl("checkpoint.plain_activation_bytes")(
        ids, np.roll(ids, -1, axis=1), hp.random_gpt(c, rng), c) for c in configs]
    assert measured[1] - measured[0] == 8 * impl("memory.block_activation_elements")(
        2, 6, 8, 4, 5, n_kv_heads=n_kv_heads, activation=activation)


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 9))
def test_block_param_count_counts_a_real_block(impl, H, D, d_ff):
    """block_param_count(C, F) is the number of scalars in block.init(C, H, F)."""
    C = H * D
    block = impl("block.init")(C, H, d_ff, np.random.default_rng(0))
    assert impl("memory.block_param_count")(C, d_ff) == sum(
        v.size for v in flatten(block).values())


def test_training_history_records_every_step(impl):
    """Each history entry: the epoch, the step counted across epochs, the batch's mean loss
    over its parts, the rate used and the examples of the batch."""
    xs = np.arange(5.0)[:, None]

    def lg(x, y, p):
        return float(np.mean(x)), {"w": np.zeros(1)}

    _, history = impl("train.train")({"w": np.zeros(1)}, lg, xs, np.zeros(5), epochs=2,
                                     batch_size=3, micro_batches=2,
                                     optimizer=_module(impl, "sgd"), lr=lambda s: 0.1 + s)
    assert [(h["epoch"], h["step"]) for h in history] == [(0, 0), (0, 1), (1, 2), (1, 3)]
    for h in history:
        parts = [p for p in np.array_split(h["examples"], 2) if len(p)]
        assert h["loss"] == pytest.approx(np.mean([float(np.mean(xs[p])) for p in parts]),
                                          rel=1e-14)
        assert h["lr"] == 0.1 + h["step"] and h["grad_norm"] == 0.0


def test_held_bytes_counts_each_buffer_once(impl):
    """A view (even a view of a view) counts with the array that owns the memory, once; the
    excluded arrays' buffers (reached through a view too) not at all; numbers, strings and
    configurations are skipped; dicts, lists and tuples are walked to any depth."""
    held = impl("checkpoint.held_bytes")
    x, y, z = np.zeros((4, 8)), np.ones(16), np.ones(3, dtype=np.float32)
    assert held(x) == x.nbytes
    assert held([x[1:][:, ::2], {"a": (x.T, [x])}]) == x.nbytes
    assert held({"x": x, "y": [y.reshape(4, 4)], "z": (z, 3, "s", TINY)}) == \
        x.nbytes + y.nbytes + z.nbytes
    assert held([x, y, z], exclude=[y[2:][::2]]) == x.nbytes + z.nbytes
    assert held((x, y), exclude=(x, y)) == 0
    assert held([]) == 0


def test_accumulated_loss_is_a_python_float(impl):
    """Losses returned as NumPy float32 scalars are averaged as Python floats (float64): the
    mean of 1/3 and 2/3 in float32 comes back as a float with float64 rounding."""
    thirds = [np.float32(1) / np.float32(3), np.float32(2) / np.float32(3)]
    loss, _ = impl("accumulate.loss_and_grads")(
        lambda b: (thirds[b], {"w": np.ones(1)}), [0, 1])
    assert type(loss) is float
    assert loss == pytest.approx((float(thirds[0]) + float(thirds[1])) / 2, rel=1e-15)


@pytest.mark.parametrize("segment", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_checkpointing_a_llama_is_exact(impl, segment, dtype):
    """Rotary positions, grouped-query attention, SwiGLU and RMS norm (the rotary tables are
    passed to every rerun block, in the parameters' dtype): the same loss and gradients, bit
    for bit, in float64 and float32."""
    from llmref.spec.test_llama import LLAMA

    params = impl("params.map_tree")(lambda a: a.astype(dtype),
                                     hp.random_gpt(LLAMA, np.random.default_rng(10)))
    ids, targets = _data(10, 2, T=8, vocab=11)
    loss, grads = impl("gpt.loss_and_grads")(ids, targets, params, LLAMA)
    c_loss, c_grads, stats = impl("checkpoint.loss_and_grads")(ids, targets, params, LLAMA,
                                                               segment)
    assert c_loss == loss and stats["segments"] == 2 // segment
    for name, g in flatten(grads).items():
        assert g.dtype == dtype and flatten(c_grads)[name].dtype == dtype, name
        np.testing.assert_array_equal(flatten(c_grads)[name], g, err_msg=name)
