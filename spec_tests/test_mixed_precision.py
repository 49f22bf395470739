"""Mixed precision: why each part exists (master weights, loss scaling, the dynamic scale),
the scale-update rule against torch's own kernel, and bfloat16 rounding against torch."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.transformer.gpt import GPTConfig


def _sgd(lr):
    def step(params, grads, state):
        return {k: params[k] - lr * grads[k] for k in params}, state
    return step


@pytest.mark.claim("L003-mixed-precision-parts")
def test_tiny_update_is_lost_in_fp16_weights_but_kept_by_fp32_master(impl, claim_figures):
    """Near 1.0, float16's spacing is 2^-10; an update of 1e-4 (under half of it) rounds away.
    Applied 100 times to float16 weights nothing changes; a float32 master copy moves by
    100 * 1e-4 = 0.01."""
    w16 = {"w": np.ones(4, dtype=np.float16)}
    master = {"w": np.ones(4, dtype=np.float32)}
    grad = np.full(4, 1e-4)
    state = impl("sgd.init")(w16)
    for _ in range(100):
        w16, state = impl("sgd.step")(w16, {"w": grad.astype(np.float16)}, state, lr=1.0)
        master, _, _, _ = impl("mixed_precision.train_step")(
            master, lambda p, dloss: (0.0, {"w": (grad * dloss).astype(p["w"].dtype)}),
            _sgd(1.0), None, None, dtype="float16")
    assert w16["w"].dtype == np.float16 and np.all(w16["w"] == 1.0)
    np.testing.assert_allclose(master["w"], 1.0 - 100 * 1e-4, rtol=1e-5)
    claim_figures.record(float16_weight_after_100_updates=w16["w"][0],
                         float32_master_after_100_updates=master["w"][0],
                         float16_moved_by=1.0 - float(w16["w"][0]),
                         float32_master_moved_by=1.0 - float(master["w"][0]))


def _linear_weight_grad(impl, dtype, dout_scale):
    """dW of a linear layer computed in ``dtype`` for a tiny upstream gradient (1e-8 scale)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 4))
    W = rng.standard_normal((4, 3))
    dout = rng.standard_normal((8, 3)) * 1e-8
    _, cache = impl("linear.forward")(x.astype(dtype), {"W": W.astype(dtype)})
    dW = impl("linear.backward")((dout * dout_scale).astype(dtype), cache)["W"]
    return dW.astype(np.float64) / dout_scale, x.T @ dout


@pytest.mark.claim("L003-mixed-precision-parts")
def test_small_gradients_underflow_in_fp16_without_loss_scaling(impl, claim_figures):
    """Gradients of size ~1e-8 are below float16's smallest subnormal (6e-8): they flush to
    zero.  Scaled by 2^16 first they survive and, unscaled in float32, are within float16's
    relative precision (about 1e-3) of the float64 truth."""
    unscaled, truth = _linear_weight_grad(impl, np.float16, 1.0)
    assert np.count_nonzero(unscaled) <= truth.size // 4        # (almost) everything is lost
    scaled, truth = _linear_weight_grad(impl, np.float16, 2.0**16)
    np.testing.assert_allclose(scaled, truth, rtol=1e-2, atol=1e-3 * np.abs(truth).max())
    claim_figures.record(
        gradient_elements=truth.size,
        nonzero_without_loss_scaling=np.count_nonzero(unscaled),
        **{"nonzero with loss scale 2¹⁶": np.count_nonzero(scaled),
           "largest error with loss scaling, relative to the largest gradient": (
               np.max(np.abs(scaled - truth)) / np.max(np.abs(truth)))})


def test_overflow_skips_the_step_and_halves_the_scale(impl):
    """A gradient of 10 scaled by 2^16 is 655360 > 65504, float16's largest value: the step is
    skipped (weights untouched) and the scale drops to 2^15."""
    master = {"w": np.ones(3, dtype=np.float32)}
    scaler = impl("mixed_precision.scaler_init")()

    def loss_and_grads(p, dloss):
        with np.errstate(over="ignore"):
            return 1.0, {"w": (np.full(3, 10.0) * dloss).astype(p["w"].dtype)}

    new, _, scaler, info = impl("mixed_precision.train_step")(
        master, loss_and_grads, _sgd(0.1), None, scaler, dtype="float16")
    assert info["skipped"] and new is master
    assert scaler["scale"] == 2.0**15
    new, _, scaler, info = impl("mixed_precision.train_step")(
        master, lambda p, dloss: (1.0, {"w": np.full(3, 1e-3 * dloss).astype(np.float16)}),
        _sgd(0.1), None, scaler, dtype="float16")
    assert not info["skipped"]
    np.testing.assert_allclose(new["w"], 1.0 - 0.1 * 1e-3, rtol=1e-4)


@given(st.lists(st.booleans(), min_size=1, max_size=40), st.integers(1, 5),
       st.sampled_from([2.0, 4.0]), st.sampled_from([0.5, 0.25]))
def test_scale_updates_match_torch_kernel(impl, found_infs, interval, growth, backoff):
    """Our scale and growth counter equal torch._amp_update_scale_ after any sequence of
    overflow / no-overflow steps."""
    state = impl("mixed_precision.scaler_init")(2.0**10, growth, backoff, interval)
    scale = torch.tensor([2.0**10])
    tracker = torch.tensor([0], dtype=torch.int32)
    for inf in found_infs:
        state = impl("mixed_precision.scaler_update")(state, inf)
        torch._amp_update_scale_(scale, tracker, torch.tensor([float(inf)]), growth, backoff,
                                 interval)
        assert state["scale"] == scale.item()
        assert state["growth_tracker"] == tracker.item()


@given(hs.seeds, st.integers(-45, 38))
def test_bfloat16_rounding_equals_torch(impl, seed, exponent):
    """Round-to-nearest-even onto bfloat16, bit for bit as torch's cast, including ties,
    subnormals, overflow to inf, inf and NaN."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(2000) * 10.0**exponent).astype(np.float32)
    ties = (np.arange(1, 200, dtype=np.uint32) << 16 | 0x8000).view(np.float32)   # halfway
    edge = np.array([np.inf, -np.inf, np.nan, 3.4e38, -3.39e38, 1e-45, 0.0, -0.0],
                    dtype=np.float32)
    x = np.concatenate([x, ties, edge])
    ours = impl("mixed_precision.to_bfloat16")(x)
    theirs = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(ours.view(np.uint32)[~np.isnan(x)],
                                  theirs.view(np.uint32)[~np.isnan(x)])
    assert np.all(np.isnan(ours[np.isnan(x)]))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_mixed_precision_training_of_the_gpt_tracks_float32(impl, dtype):
    """Twenty AdamW steps of a tiny GPT in float16 (with loss scaling) or bfloat16 (without)
    end within a few percent of the same steps in float32, and no step is skipped at a
    sensible scale."""
    config = GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=2, n_layers=1)
    rng = np.random.default_rng(0)
    master = _float32(hp.random_gpt(config, rng))
    ids = rng.integers(0, 11, size=(4, 8))
    targets = np.roll(ids, -1, axis=1)

    def loss_and_grads(p, dloss):
        return impl("gpt.loss_and_grads")(ids, targets, p, config, dloss=dloss)

    def opt(p, g, s):
        return impl("adamw.step")(p, g, s, lr=1e-2, weight_decay=0.0)

    results = {}
    for mode in ("float32", dtype):
        params, state = master, impl("adamw.init")(master)
        scaler = impl("mixed_precision.scaler_init")(2.0**8) if mode == "float16" else None
        for _ in range(20):
            params, state, scaler, info = impl("mixed_precision.train_step")(
                params, loss_and_grads, opt, state, scaler, dtype=mode)
            assert not info["skipped"]
        results[mode] = impl("gpt.loss_and_grads")(ids, targets, params, config)[0]
    assert abs(results[dtype] - results["float32"]) < 0.05 * results["float32"]


def _float32(tree):
    if isinstance(tree, np.ndarray):
        return tree.astype(np.float32)
    if isinstance(tree, dict):
        return {k: _float32(v) for k, v in tree.items()}
    return [_float32(v) for v in tree]


def test_nan_gradients_without_loss_scaling_raise(impl):
    """With loss scaling a NaN/inf gradient skips the step (above); without it there is no
    scale to lower, so the step refuses with a clear error instead of corrupting weights."""
    master = {"w": np.ones(2, dtype=np.float32)}
    with pytest.raises(ValueError, match="NaN or inf and loss scaling is off"):
        impl("mixed_precision.train_step")(
            master, lambda p, dloss: (1.0, {"w": np.array([np.nan, 1.0], np.float32)}),
            _sgd(0.1), None, None, dtype="float32")


@pytest.mark.parametrize("scale", [np.inf, np.nan, -2.0**8, 0.0, 1e39])
def test_loss_scale_outside_float32s_range_is_refused(impl, scale):
    """An infinite initial scale used to skip every step forever (inf * g overflows, inf / inf
    is NaN, and backing off inf stays inf); a negative one flipped the gradients' sign with
    found_inf False.  Both, zero, NaN and scales past float32's largest are refused."""
    with pytest.raises(ValueError, match="'init_scale'"):
        impl("mixed_precision.scaler_init")(scale)
    hand_made = {**impl("mixed_precision.scaler_init")(), "scale": scale}
    with pytest.raises(ValueError, match=r"scaler\['scale'\]"):
        impl("mixed_precision.train_step")(
            {"w": np.ones(2, np.float32)},
            lambda p, dloss: (1.0, {"w": (p["w"] * dloss).astype(p["w"].dtype)}),
            _sgd(0.1), None, hand_made, dtype="float16")


def test_scale_stops_growing_at_float32s_largest(impl):
    """torch's kernel keeps the scale when growing it would overflow float32; so does ours."""
    state = impl("mixed_precision.scaler_init")(2.0**127, 2.0, 0.5, 1)
    state = impl("mixed_precision.scaler_update")(state, False)
    assert state["scale"] == 2.0**127 and state["growth_tracker"] == 0


def test_cast_refuses_weights_that_overflow_the_format(impl):
    """A master weight of 1e5 is inf in float16 (largest 65504): refused, not cast to inf."""
    with pytest.raises(ValueError, match="beyond float16's range"):
        impl("mixed_precision.cast")(np.array([1.0, 1e5], np.float32), "float16")
    assert impl("mixed_precision.cast")(np.array([1e5], np.float32), "bfloat16")[0] > 9e4


def test_train_step_settings_and_defaults(impl):
    """Without a scaler the loss is not scaled (dloss 1, scale 1 reported); the default
    compute format is float16; in bfloat16 mode the gradients reach the optimizer rounded to
    bfloat16 (their low 16 bits are zero); to_bfloat16 takes float64 input through float32."""
    seen = {}

    def loss_and_grads(p, dloss):
        seen["dloss"], seen["dtype"] = dloss, p["w"].dtype
        return 1.0, {"w": (np.full(3, 1.0 + 2.0**-12) * dloss).astype(np.float32)}

    def record(p, g, s):
        seen["grad"] = g["w"]
        return p, s

    master = {"w": np.ones(3, dtype=np.float32)}
    *_, info = impl("mixed_precision.train_step")(master, loss_and_grads, record, None, None)
    assert seen["dloss"] == 1.0 and info["scale"] == 1.0 and seen["dtype"] == np.float16
    impl("mixed_precision.train_step")(master, loss_and_grads, record, None, None,
                                       dtype="bfloat16")
    assert np.all(seen["grad"].view(np.uint32) & 0xFFFF == 0), seen["grad"]
    assert seen["grad"][0] == 1.0                       # 1 + 2^-12 rounds to 1 in bfloat16
    x = np.random.default_rng(0).standard_normal(50) * 1e3
    ours = impl("mixed_precision.to_bfloat16")(x)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, impl("mixed_precision.to_bfloat16")(x.astype(np.float32)))


# The reference's messages in full (mutmut: a changed name, label, bound or wording survives
# tests that search for a fragment).
_W = {"w": np.ones(2, dtype=np.float32)}
_SCALER = {"scale": 2.0**16, "growth_tracker": 0, "growth_factor": 2.0, "backoff_factor": 0.5,
           "growth_interval": 2000}
_RANGE = "[1.17549e-38, 3.40282e+38]"


def _scaled(p, dloss):
    return 1.0, {"w": (p["w"] * dloss).astype(p["w"].dtype)}


def _step(impl, **changes):
    args = {"master": _W, "loss_and_grads": _scaled, "optimizer_step": _sgd(0.1),
            "opt_state": None, "scaler": None, **changes}
    return impl("mixed_precision.train_step")(**args)


REFUSED = {
    "growth factor 1": (lambda impl: impl("mixed_precision.scaler_init")(growth_factor=1.0),
                        ValueError, "mixed_precision.scaler_init: argument 'growth_factor' "
                                    "must be > 1, got 1.0"),
    "back-off 0": (lambda impl: impl("mixed_precision.scaler_init")(backoff_factor=0.0),
                   ValueError, "mixed_precision.scaler_init: argument 'backoff_factor' must "
                               "be in (0, 1), got 0.0"),
    "back-off 1": (lambda impl: impl("mixed_precision.scaler_init")(backoff_factor=1.0),
                   ValueError, "mixed_precision.scaler_init: argument 'backoff_factor' must "
                               "be in (0, 1), got 1.0"),
    "growth interval 0": (lambda impl: impl("mixed_precision.scaler_init")(growth_interval=0),
                          ValueError, "mixed_precision.scaler_init: argument 'growth_interval' "
                                      "must be an int >= 1, got 0"),
    "initial scale below float32's normals": (
        lambda impl: impl("mixed_precision.scaler_init")(1e-39), ValueError,
        f"mixed_precision.scaler_init: argument 'init_scale' must be in {_RANGE}, got 1e-39"),
    "growth tracker at the interval": (
        lambda impl: impl("mixed_precision.scaler_update")(
            {**_SCALER, "growth_tracker": 2000}, False), ValueError,
        "mixed_precision.scaler_update: argument state['growth_tracker'] must be < "
        "growth_interval = 2000, got 2000"),
    "growth tracker -1": (
        lambda impl: impl("mixed_precision.scaler_update")(
            {**_SCALER, "growth_tracker": -1}, False), ValueError,
        "mixed_precision.scaler_update: argument state['growth_tracker'] must be an int >= 0, "
        "got -1"),
    "state's growth interval 0": (
        lambda impl: impl("mixed_precision.scaler_update")(
            {**_SCALER, "growth_interval": 0}, False), ValueError,
        "mixed_precision.scaler_update: argument state['growth_interval'] must be an int >= 1, "
        "got 0"),
    "state's growth factor 1": (
        lambda impl: impl("mixed_precision.scaler_update")(
            {**_SCALER, "growth_factor": 1.0}, False), ValueError,
        "mixed_precision.scaler_update: argument state['growth_factor'] must be > 1, got 1.0"),
    "state's back-off 1": (
        lambda impl: impl("mixed_precision.scaler_update")(
            {**_SCALER, "backoff_factor": 1.0}, False), ValueError,
        "mixed_precision.scaler_update: argument state['backoff_factor'] must be in (0, 1), "
        "got 1.0"),
    "state's scale 0": (
        lambda impl: impl("mixed_precision.scaler_update")({**_SCALER, "scale": 0.0}, False),
        ValueError, f"mixed_precision.scaler_update: argument state['scale'] must be in "
                    f"{_RANGE}, got 0.0"),
    "found_inf an int": (
        lambda impl: impl("mixed_precision.scaler_update")(_SCALER, 1), TypeError,
        "mixed_precision.scaler_update: argument 'found_inf' must be True or False, got int 1"),
    "unscale by 0": (
        lambda impl: impl("mixed_precision.unscale")({"w": np.ones(2, np.float16)}, 0.0),
        ValueError, f"mixed_precision.unscale: argument 'scale' must be in {_RANGE}, got 0.0"),
    "bfloat16 of a list": (
        lambda impl: impl("mixed_precision.to_bfloat16")([1.0]), TypeError,
        "mixed_precision.to_bfloat16: argument 'x' must be a floating-point NumPy array, got "
        "list [1.0]"),
    "bfloat16 of ints": (
        lambda impl: impl("mixed_precision.to_bfloat16")(np.ones(2, dtype=np.int64)), TypeError,
        "mixed_precision.to_bfloat16: argument 'x' must be a floating-point NumPy array, got "
        "array of shape (2,) and dtype int64"),
    "cast past float16": (
        lambda impl: impl("mixed_precision.cast")(np.array([1.0, -1e5], np.float32), "float16"),
        ValueError, "mixed_precision.cast: argument 'x' holds values beyond float16's range "
                    "(largest |x| = 100000); they would become inf"),
    "cast past float32": (
        lambda impl: impl("mixed_precision.cast")(np.array([1.0, 1e39]), "float32"),
        ValueError, "mixed_precision.cast: argument 'x' holds values beyond float32's range "
                    "(largest |x| = 1e+39); they would become inf"),
    "cast past bfloat16": (
        lambda impl: impl("mixed_precision.cast")(np.array([1.0, 3.4e38], np.float32),
                                                  "bfloat16"),
        ValueError, "mixed_precision.cast: argument 'x' holds values beyond bfloat16's range "
                    "(largest |x| = 3.4e+38); they would become inf"),
    "float16 master weights": (
        lambda impl: _step(impl, master={"w": np.ones(2, np.float16)}), TypeError,
        "mixed_precision.train_step: argument master['w'] must be float32 or float64 (master "
        "weights keep the precision), got dtype float16"),
    "master weights past float16": (
        lambda impl: _step(impl, master={"w": np.full(2, 1e5, np.float32)}), ValueError,
        "mixed_precision.train_step: argument 'master' holds values beyond float16's range "
        "(largest |x| = 100000); they would become inf"),
    "gradients of another shape": (
        lambda impl: _step(impl, loss_and_grads=lambda p, d: (1.0, {"w": np.ones(3, np.float16)})),
        ValueError, "mixed_precision.train_step: argument 'loss_and_grads' returned bad "
                    "gradients: grads['w'] must have shape (2,) like master['w'], got (3,)"),
    "gradients of ints": (
        lambda impl: _step(impl, loss_and_grads=lambda p, d: (1.0, {"w": np.ones(2, np.int64)})),
        TypeError, "mixed_precision.train_step: argument 'loss_and_grads' returned bad "
                   "gradients: grads['w'] must have a floating-point dtype, got dtype int64"),
    "loss_and_grads without grads": (
        lambda impl: _step(impl, loss_and_grads=lambda p, d: 1.0), TypeError,
        "mixed_precision.train_step: argument 'loss_and_grads' must return a pair (loss, "
        "grads), got float 1.0"),
    "optimizer_step without a state": (
        lambda impl: _step(impl, optimizer_step=lambda p, g, s: 3), TypeError,
        "mixed_precision.train_step: argument 'optimizer_step' must return a pair (params, "
        "state), got int 3"),
    "optimizer_step's params of another shape": (
        lambda impl: _step(impl, optimizer_step=lambda p, g, s: ({"w": np.ones(3, np.float32)},
                                                                 s)), ValueError,
        "mixed_precision.train_step: argument 'optimizer_step' returned bad parameters: "
        "params['w'] must have shape (2,) like master['w'], got (3,)"),
    "optimizer_step's params in float64": (
        lambda impl: _step(impl, optimizer_step=lambda p, g, s: ({"w": np.ones(2)}, s)),
        TypeError, "mixed_precision.train_step: argument 'optimizer_step' returned bad "
                   "parameters: params['w'] must have dtype float32 like master['w'], got "
                   "float64"),
    "optimizer_step's params with an integer leaf": (
        lambda impl: _step(impl, optimizer_step=lambda p, g, s: ({"w": np.ones(2, np.int64)},
                                                                 s)), TypeError,
        "mixed_precision.train_step: argument 'optimizer_step' returned bad parameters: "
        "params['w'] must have a floating-point dtype, got dtype int64"),
    "optimizer_step's params as a list": (
        lambda impl: _step(impl, optimizer_step=lambda p, g, s: ([np.ones(2, np.float32)], s)),
        TypeError, "mixed_precision.train_step: argument 'optimizer_step' returned bad "
                   "parameters: 'params' must be a dict of arrays (a parameter tree), got list "
                   "[array([1., 1.], dtype=float32)]"),
    "optimizer_step's params with a NaN": (
        lambda impl: _step(impl, optimizer_step=lambda p, g, s: (
            {"w": np.array([np.nan, 1.0], np.float32)}, s)), ValueError,
        "mixed_precision.train_step: argument 'optimizer_step' returned bad parameters: "
        "params['w'] must be finite, got 1 NaN or inf value(s) in an array of shape (2,)"),
    "scaler's tracker at the interval": (
        lambda impl: _step(impl, scaler={**_SCALER, "growth_tracker": 2000}), ValueError,
        "mixed_precision.train_step: argument scaler['growth_tracker'] must be < "
        "growth_interval = 2000, got 2000"),
    "an inf gradient without scaling": (
        lambda impl: _step(impl, loss_and_grads=lambda p, d: (
            1.0, {"w": np.array([np.inf, 1.0], np.float16)})), ValueError,
        "mixed_precision.train_step: the gradients that argument 'loss_and_grads' returned "
        "hold NaN or inf and loss scaling is off, so the step cannot be skipped safely"),
}


@pytest.mark.reference_only
@pytest.mark.component("mixed_precision")
@pytest.mark.parametrize("case", list(REFUSED))
def test_refusals_in_the_references_words(impl, case):
    """The whole message: function, argument (a state or tree entry by its key), the rule
    and the value given."""
    call, error, message = REFUSED[case]
    with pytest.raises(error) as info:
        call(impl)
    assert str(info.value) == message


def test_the_scale_may_sit_at_either_end_of_float32s_range(impl):
    """MIN_SCALE (float32's smallest normal) and MAX_SCALE (its largest) are valid scales."""
    tiny, huge = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
    assert impl("mixed_precision.scaler_init")(tiny)["scale"] == tiny
    assert impl("mixed_precision.scaler_init")(huge)["scale"] == huge
    grads, found_inf = impl("mixed_precision.unscale")({"w": np.full(2, 2.0, np.float16)}, huge)
    assert not found_inf and grads["w"].dtype == np.float32


def test_the_scale_grows_to_exactly_float32s_largest(impl):
    """Growing onto MAX_SCALE itself is allowed (only past it is the scale kept)."""
    huge = float(np.finfo(np.float32).max)
    state = impl("mixed_precision.scaler_init")(huge / 2, 2.0, 0.5, 1)
    assert impl("mixed_precision.scaler_update")(state, False)["scale"] == huge


def test_unscale_divides_in_float32_and_reports_inf(impl):
    """Every leaf comes back float32, divided by the scale; one inf anywhere is reported."""
    grads = {"w": np.array([1.0, 3.0], np.float16), "b": [np.array([4.0], np.float16)]}
    out, found_inf = impl("mixed_precision.unscale")(grads, 2.0)
    assert not found_inf and out["w"].dtype == out["b"][0].dtype == np.float32
    np.testing.assert_array_equal(out["w"], [0.5, 1.5])
    np.testing.assert_array_equal(out["b"][0], [2.0])
    grads["b"] = [np.array([np.inf], np.float16)]
    assert impl("mixed_precision.unscale")(grads, 2.0)[1] is True


def test_overflows_are_reported_not_warned(impl):
    """A float16 overflow (or an inf - inf after one) inside loss_and_grads is a skipped
    step, an unscaling that overflows float32 is found_inf and a cast past the format's range
    a ValueError, all without a RuntimeWarning (the warnings filter makes one an error)."""
    import warnings

    master = {"w": np.ones(2, dtype=np.float32)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        *_, info = impl("mixed_precision.train_step")(
            master, lambda p, dloss: (1.0, {"w": (np.full(2, 10.0) * dloss).astype(np.float16)}),
            _sgd(0.1), None, impl("mixed_precision.scaler_init")(2.0**16))
        assert info["skipped"]

        def inf_minus_inf(p, dloss):                   # float16 overflow, then inf - inf
            g = np.full(2, 6e4, np.float16) * np.float16(2.0)
            return 1.0, {"w": g - g}

        *_, info = impl("mixed_precision.train_step")(
            master, inf_minus_inf, _sgd(0.1), None, impl("mixed_precision.scaler_init")(2.0))
        assert info["skipped"]
        tiny = float(np.finfo(np.float32).tiny)
        _, found_inf = impl("mixed_precision.unscale")({"w": np.full(2, 6e4, np.float16)}, tiny)
        assert found_inf
        for dtype, big in (("float16", 1e5), ("bfloat16", 3.4e38), ("float32", 1e39)):
            with pytest.raises(ValueError, match=f"beyond {dtype}'s range"):
                impl("mixed_precision.cast")(np.array([big]), dtype)


def test_bfloat16_keeps_every_nan_a_nan(impl):
    """NaN stays NaN whatever its payload: a NaN whose top seven fraction bits are 0 and
    whose low bits are not (0x7F800001) has its low bits rounded away to the bit pattern of
    inf, so the rounding must leave NaNs alone."""
    bits = np.array([0x7F800001, 0xFF800001, 0x7FBFFFFF, 0x7FC00001, 0x7FC00000], np.uint32)
    y = impl("mixed_precision.to_bfloat16")(bits.view(np.float32))
    assert y.dtype == np.float32 and np.isnan(y).all(), y


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_cast_of_an_empty_array(impl, dtype):
    """Any shape casts, an empty one too: an empty array of the format's storage dtype."""
    out = impl("mixed_precision.cast")(np.zeros((0, 3), np.float32), dtype)
    assert out.shape == (0, 3)
    assert out.dtype == (np.float16 if dtype == "float16" else np.float32)


def test_train_step_reports_and_passes_the_optimizer_state(impl):
    """info holds the loss loss_and_grads returned, whether the step was skipped and the
    scale it used (the scaler's state is updated after); the optimizer's state comes back
    from optimizer_step, or unchanged (the same object) when the step is skipped."""
    master = {"w": np.ones(2, dtype=np.float32)}
    before, after = {"n": 0}, {"n": 1}

    def opt(p, g, s):
        assert s is before
        return {"w": p["w"] - g["w"]}, after

    scaler = impl("mixed_precision.scaler_init")(2.0**4, 2.0, 0.5, 3)
    new, state, scaler, info = impl("mixed_precision.train_step")(
        master, lambda p, dloss: (2.5, {"w": (np.full(2, 0.25) * dloss).astype(p["w"].dtype)}),
        opt, before, scaler)
    assert info == {"loss": 2.5, "skipped": False, "scale": 2.0**4}
    assert isinstance(info["loss"], float) and state is after
    assert scaler["scale"] == 2.0**4 and scaler["growth_tracker"] == 1
    np.testing.assert_array_equal(new["w"], [0.75, 0.75])
    new, state, scaler, info = impl("mixed_precision.train_step")(
        master, lambda p, dloss: (3.0, {"w": np.array([np.inf, 0.0], np.float16)}), opt, before,
        scaler)
    assert info == {"loss": 3.0, "skipped": True, "scale": 2.0**4}
    assert new is master and state is before
    assert scaler["scale"] == 2.0**3 and scaler["growth_tracker"] == 0


def test_scale_stops_backing_off_at_float32s_smallest_normal(impl):
    """Backing off below MIN_SCALE used to hand back a state the next update refused (a scale
    of 5.9e-39 is out of the documented range); the scale now stays at MIN_SCALE."""
    tiny = float(np.finfo(np.float32).tiny)
    state = impl("mixed_precision.scaler_init")(tiny)
    for found_inf in (True, True, False):
        state = impl("mixed_precision.scaler_update")(state, found_inf)
        assert state["scale"] == tiny


def test_cast_to_each_compute_format(impl):
    """float32 is a plain cast (no bfloat16 rounding on the way), float16 NumPy's cast,
    bfloat16 the rounding torch does; values chosen with more bits than bfloat16 keeps."""
    x = np.array([[1.0 + 2.0**-20, -3.000123], [1e-3, 7.77]])
    np.testing.assert_array_equal(impl("mixed_precision.cast")(x, "float32"),
                                  x.astype(np.float32))
    np.testing.assert_array_equal(impl("mixed_precision.cast")(x, "float16"),
                                  x.astype(np.float16))
    bf16 = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(impl("mixed_precision.cast")(x, "bfloat16"), bf16)
