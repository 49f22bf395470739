"""Optimizers against torch.optim, clipping against clip_grad_norm_, schedules against
torch.optim.lr_scheduler: same parameters after every step, in float64."""

import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import strategies as hs
from llmref.spec.harness.checks import flatten
from llmref.spec.harness.tolerances import F64, adam_step_floor, assert_close

N_STEPS = 25
LRS = st.floats(1e-4, 0.5)
BETAS = st.tuples(st.floats(0.0, 0.99), st.floats(0.0, 0.9999))
DECAYS = st.sampled_from([0.0, 0.0, 1e-3, 0.1])


def _problem(seed):
    """A parameter tree and N_STEPS gradient trees of mixed magnitudes."""
    rng = np.random.default_rng(seed)
    params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4),
              "blocks": [{"g": rng.standard_normal(2)}]}
    scales = rng.choice([1e-3, 1.0, 10.0], size=N_STEPS)
    grads = [{"W": rng.standard_normal((3, 4)) * s, "b": rng.standard_normal(4) * s,
              "blocks": [{"g": rng.standard_normal(2) * s}]} for s in scales]
    return params, grads


def _run_both(impl, module, seed, torch_opt, param_groups=None, **hyper):
    """Step our optimizer and torch's side by side; compare every parameter each step.

    For Adam and AdamW each element may also differ by the rounding its trajectory allows
    (:func:`~llmref.spec.harness.tolerances.adam_step_floor`, summed over the steps so far),
    computed from torch's own moments."""
    params, grads = _problem(seed)
    names = sorted(flatten(params))
    leaves = {n: torch.nn.Parameter(torch.tensor(flatten(params)[n])) for n in names}
    groups = param_groups(leaves) if param_groups else [{"params": list(leaves.values())}]
    opt = torch_opt(groups)
    adam_like = module in ("adam", "adamw")
    floors = {n: 0.0 for n in names}
    state = impl(f"{module}.init")(params)
    for t, g in enumerate(grads):
        flat_g = flatten(g)
        before = {n: (leaves[n].detach().numpy().copy(),
                      opt.state[leaves[n]]["exp_avg"].numpy().copy()
                      if adam_like and leaves[n] in opt.state else 0.0) for n in names}
        for n in names:
            leaves[n].grad = torch.tensor(flat_g[n])
        opt.step()
        params, state = impl(f"{module}.step")(params, g, state, **hyper)
        ours = flatten(params)
        for n in names:
            if adam_like:
                theta, m_prev = before[n]
                seen = flat_g[n] + (hyper.get("weight_decay", 0.0) * theta
                                    if module == "adam" else 0.0)
                floors[n] = floors[n] + adam_step_floor(
                    theta, m_prev, seen, opt.state[leaves[n]]["exp_avg_sq"].numpy(), t + 1,
                    hyper["lr"], hyper["betas"], hyper.get("eps", 1e-8))
            assert_close(ours[n], leaves[n].detach().numpy(), F64, name=f"step {t + 1}: {n}",
                         floor=floors[n])


@pytest.mark.claim("L004-update-rule")
@given(LRS, st.sampled_from([0.0, 0.5, 0.9]), st.sampled_from([0.0, 0.3]), DECAYS, hs.seeds)
def test_sgd_and_momentum_match_torch(impl, lr, momentum, dampening, wd, seed):
    _run_both(impl, "sgd", seed,
              lambda g: torch.optim.SGD(g, lr=lr, momentum=momentum, dampening=dampening,
                                        weight_decay=wd),
              lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd)


@given(LRS, st.sampled_from([0.5, 0.9]), DECAYS, hs.seeds)
def test_nesterov_matches_torch(impl, lr, momentum, wd, seed):
    _run_both(impl, "sgd", seed,
              lambda g: torch.optim.SGD(g, lr=lr, momentum=momentum, nesterov=True,
                                        weight_decay=wd),
              lr=lr, momentum=momentum, nesterov=True, weight_decay=wd)


@given(LRS, BETAS, st.sampled_from([1e-8, 1e-3]), DECAYS, hs.seeds)
def test_adam_matches_torch(impl, lr, betas, eps, wd, seed):
    _run_both(impl, "adam", seed,
              lambda g: torch.optim.Adam(g, lr=lr, betas=betas, eps=eps, weight_decay=wd),
              lr=lr, betas=betas, eps=eps, weight_decay=wd)


@given(LRS, BETAS, st.sampled_from([0.0, 0.01, 0.1]), st.booleans(),
       st.sampled_from([1e-8, 1e-3]), hs.seeds)
def test_adamw_matches_torch(impl, lr, betas, wd, matrices_only, eps, seed):
    """Decoupled decay; with matrices_only, biases and gains go in a no-decay param group."""
    def groups(leaves):
        if not matrices_only:
            return [{"params": list(leaves.values())}]
        return [{"params": [p for p in leaves.values() if p.ndim >= 2]},
                {"params": [p for p in leaves.values() if p.ndim < 2], "weight_decay": 0.0}]
    decay = impl("adamw.matrices_only") if matrices_only else None
    _run_both(impl, "adamw", seed,
              lambda g: torch.optim.AdamW(g, lr=lr, betas=betas, eps=eps, weight_decay=wd),
              groups, lr=lr, betas=betas, eps=eps, weight_decay=wd, decay=decay)


def test_adamw_decays_only_what_the_predicate_selects(impl):
    """A zero gradient isolates the decay: selected leaves shrink by exactly (1 - lr wd)."""
    params = {"W": np.full((2, 2), 2.0), "b": np.full(2, 2.0)}
    zero = {"W": np.zeros((2, 2)), "b": np.zeros(2)}
    new, _ = impl("adamw.step")(params, zero, impl("adamw.init")(params), lr=0.1,
                                weight_decay=0.5, decay=lambda path, p: path == "W")
    np.testing.assert_allclose(new["W"], 2.0 * (1 - 0.1 * 0.5), rtol=1e-15)
    np.testing.assert_array_equal(new["b"], params["b"])


@pytest.mark.claim("L000-clipping")
@given(st.floats(1e-3, 10.0), st.sampled_from([1e-3, 1.0, 100.0]), hs.seeds)
def test_clip_by_global_norm_matches_torch(impl, max_norm, scale, seed):
    """Same clipped gradients and reported norm as clip_grad_norm_; the clipped norm is at
    most max_norm and every gradient keeps its direction."""
    _, grads = _problem(seed)
    g = {k: v * scale for k, v in flatten(grads[0]).items()}
    tensors = {k: torch.nn.Parameter(torch.zeros(v.shape, dtype=torch.float64))
               for k, v in g.items()}
    for k, t in tensors.items():
        t.grad = torch.tensor(g[k])
    torch_norm = torch.nn.utils.clip_grad_norm_(list(tensors.values()), max_norm)
    clipped, norm = impl("clip.clip_by_global_norm")(g, max_norm)
    assert_close(norm, torch_norm.item(), F64, name="norm before clipping")
    for k in g:
        assert_close(clipped[k], tensors[k].grad.numpy(), F64, name=f"clipped {k}")
    after = np.sqrt(sum(np.sum(c**2) for c in clipped.values()))
    assert after <= max_norm * (1 + 1e-12)
    ratios = [clipped[k] / g[k] for k in g]
    factor = ratios[0].flat[0]
    assert all(np.allclose(r, factor, rtol=1e-12) for r in ratios)


def test_clip_at_its_edges(impl):
    """All-zero gradients come back unchanged with norm 0 (the 1e-6 keeps 0/0 away); a norm
    exactly at max_norm is scaled by max_norm / (max_norm + 1e-6), as torch does; the input
    tree is not modified."""
    zero = {"W": np.zeros((2, 2)), "b": np.zeros(3)}
    clipped, norm = impl("clip.clip_by_global_norm")(zero, 1.0)
    assert norm == 0.0 and all(np.all(v == 0.0) for v in clipped.values())
    g = {"W": np.array([[3.0, 0.0], [0.0, 0.0]]), "b": np.array([4.0, 0.0, 0.0])}   # norm 5
    clipped, norm = impl("clip.clip_by_global_norm")(g, 5.0)
    t = {k: torch.nn.Parameter(torch.zeros(v.shape, dtype=torch.float64)) for k, v in g.items()}
    for k in t:
        t[k].grad = torch.tensor(g[k])
    torch.nn.utils.clip_grad_norm_(list(t.values()), 5.0)
    assert norm == 5.0
    for k in g:
        assert_close(clipped[k], t[k].grad.numpy(), F64, name=f"clipped {k} at the edge")
    assert g["W"][0, 0] == 3.0 and g["b"][0] == 4.0


def _torch_lrs(make_scheduler, base_lr, n):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@given(st.floats(1e-4, 1.0), st.integers(1, 20), st.integers(1, 60), st.floats(0.0, 0.5))
def test_schedules_match_torch(impl, base_lr, warmup, extra, min_frac):
    total = warmup + extra
    min_lr = base_lr * min_frac
    n = total + 5
    S = torch.optim.lr_scheduler
    expected_warmup = _torch_lrs(
        lambda o: S.LinearLR(o, start_factor=1 / warmup, end_factor=1.0,
                             total_iters=max(warmup - 1, 1)) if warmup > 1
        else S.ConstantLR(o, factor=1.0, total_iters=0), base_lr, n)
    expected_cosine = _torch_lrs(lambda o: S.CosineAnnealingLR(o, T_max=total, eta_min=min_lr),
                                 base_lr, total + 1)
    expected_both = _torch_lrs(lambda o: S.SequentialLR(o, [
        S.LinearLR(o, start_factor=1 / warmup, end_factor=1.0, total_iters=max(warmup - 1, 1)),
        S.CosineAnnealingLR(o, T_max=extra, eta_min=min_lr)], milestones=[warmup]),
        base_lr, total + 1)
    for t in range(n):
        assert_close(impl("schedules.linear_warmup")(t, base_lr, warmup), expected_warmup[t],
                     F64, name=f"warmup at step {t}")
    for t in range(total + 1):
        assert_close(impl("schedules.cosine")(t, base_lr, total, min_lr), expected_cosine[t],
                     F64, name=f"cosine at step {t}", reference_scale=base_lr)
        assert_close(impl("schedules.warmup_cosine")(t, base_lr, warmup, total, min_lr),
                     expected_both[t], F64, name=f"warmup+cosine at step {t}",
                     reference_scale=base_lr)


@given(st.floats(1e-4, 1.0), st.integers(1, 10), st.integers(1, 30), st.floats(0.0, 0.5),
       st.integers(1, 50))
def test_cosine_stays_at_min_lr_after_the_end(impl, base_lr, warmup, extra, min_frac, after):
    """Past total_steps the cosine schedule (alone or after a warmup) stays at min_lr; at
    t = warmup_steps the warmup has ended and the cosine starts at base_lr."""
    total = warmup + extra
    min_lr = base_lr * min_frac
    assert impl("schedules.cosine")(total + after, base_lr, total, min_lr) == \
        impl("schedules.cosine")(total, base_lr, total, min_lr)
    assert_close(impl("schedules.cosine")(total + after, base_lr, total, min_lr), min_lr, F64,
                 name="cosine after the end", reference_scale=base_lr)
    assert_close(impl("schedules.warmup_cosine")(total + after, base_lr, warmup, total, min_lr),
                 min_lr, F64, name="warmup+cosine after the end", reference_scale=base_lr)
    assert impl("schedules.warmup_cosine")(warmup, base_lr, warmup, total, min_lr) == base_lr
    assert impl("schedules.warmup_cosine")(warmup - 1, base_lr, warmup, total, min_lr) == \
        impl("schedules.linear_warmup")(warmup - 1, base_lr, warmup)


@pytest.mark.parametrize(("call", "args", "kwargs", "needle"), [
    ("sgd.step", "lr=0", {"lr": 0.0}, "'lr' must be > 0"),
    ("adam.step", "beta1=1", {"betas": (1.0, 0.9)}, "betas[0] must be in [0, 1), got 1.0"),
    ("adamw.step", "beta2<0", {"betas": (0.9, -0.1)}, "betas[1] must be in [0, 1)"),
    ("adam.step", "eps=0", {"eps": 0.0}, "'eps' must be > 0"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_optimizers_reject_bad_hyperparameters(impl, call, args, kwargs, needle):
    params = {"W": np.ones((2, 2))}
    state = impl(call.replace("step", "init"))(params)
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)").replace("]", r"\]")):
        impl(call)(params, {"W": np.ones((2, 2))}, state, **{"lr": 0.1, **kwargs})


@pytest.mark.parametrize("module", ["sgd", "adam", "adamw"])
def test_optimizers_reject_mismatched_or_nan_gradients(impl, module):
    params = {"W": np.ones((2, 2)), "b": np.ones(2)}
    state = impl(f"{module}.init")(params)
    step = impl(f"{module}.step")
    with pytest.raises(ValueError, match=r"structure of 'params', got missing leaves \['b'\]"):
        step(params, {"W": np.ones((2, 2))}, state, lr=0.1)
    with pytest.raises(ValueError, match=r"grads\['b'\] must have shape \(2,\).*got \(3,\)"):
        step(params, {"W": np.ones((2, 2)), "b": np.ones(3)}, state, lr=0.1)
    with pytest.raises(ValueError, match=r"grads\['W'\] must be finite"):
        step(params, {"W": np.full((2, 2), np.nan), "b": np.ones(2)}, state, lr=0.1)


@pytest.mark.parametrize("dampening", [-0.5, 1.5, np.nan])
def test_sgd_refuses_dampening_outside_0_1(impl, dampening):
    """dampening was not checked: 1.5 flipped the sign of every later gradient in the buffer
    (1 - 1.5 = -0.5), a negative one amplified it."""
    params = {"W": np.ones((2, 2))}
    with pytest.raises(ValueError, match=r"sgd\.step: argument 'dampening'"):
        impl("sgd.step")(params, {"W": np.ones((2, 2))}, impl("sgd.init")(params), lr=0.1,
                         momentum=0.9, dampening=dampening)


@pytest.mark.parametrize("module", ["sgd", "adam", "adamw"])
def test_optimizers_refuse_nan_in_params_and_state(impl, module):
    """NaN in the parameters or in the optimizer state used to spread silently into every
    later step; now the step names the leaf."""
    params = {"W": np.ones((2, 2)), "b": np.ones(2)}
    grads = {"W": np.full((2, 2), 0.5), "b": np.full(2, 0.5)}
    step = impl(f"{module}.step")
    hyper = {"lr": 0.1, "momentum": 0.9} if module == "sgd" else {"lr": 0.1}
    _, state = step(params, grads, impl(f"{module}.init")(params), **hyper)
    bad = {**params, "b": np.array([1.0, np.nan])}
    with pytest.raises(ValueError, match=r"params\['b'\] must be finite"):
        step(bad, grads, state, **hyper)
    key = "buffer" if module == "sgd" else "m"
    state_bad = {**state, key: {**state[key], "W": np.full((2, 2), np.inf)}}
    with pytest.raises(ValueError, match=rf"state\['{key}'\]\['W'\] must be finite"):
        step(params, grads, state_bad, **hyper)


@pytest.mark.parametrize("module", ["adam", "adamw"])
def test_adam_refuses_a_negative_second_moment(impl, module):
    """v is a running mean of squares; a negative entry would make sqrt(v) NaN."""
    params = {"W": np.ones(3)}
    state = impl(f"{module}.init")(params)
    state = {**state, "v": {"W": np.array([0.0, -1e-3, 0.0])}}
    with pytest.raises(ValueError, match=r"state\['v'\]\['W'\] must be >= 0"):
        impl(f"{module}.step")(params, {"W": np.ones(3)}, state, lr=0.1)


def test_optimizers_keep_the_parameters_dtype(impl):
    """A float64 gradient for a float32 parameter is refused (as torch does) instead of
    silently turning the parameter into float64."""
    params = {"W": np.ones(2, np.float32)}
    with pytest.raises(TypeError, match=r"grads\['W'\] must have dtype float32"):
        impl("adam.step")(params, {"W": np.ones(2)}, impl("adam.init")(params), lr=0.1)
    new, _ = impl("adam.step")(params, {"W": np.ones(2, np.float32)},
                               impl("adam.init")(params), lr=0.1)
    assert new["W"].dtype == np.float32


@pytest.mark.parametrize(("call", "args", "error", "needle"), [
    ("schedules.warmup_cosine", (0, 0.1, -5, 10), ValueError, "'warmup_steps' must be an int >= 0"),
    ("schedules.linear_warmup", (0, 0.1, 0), ValueError, "'warmup_steps' must be an int >= 1"),
    ("schedules.cosine", (1.0, 0.1, 10), TypeError, "'t' must be an int"),
    ("schedules.cosine", (-1, 0.1, 10), ValueError, "'t' must be an int >= 0"),
    ("schedules.cosine", (0, 0.1, 10, 0.2), ValueError, "'min_lr' must be in [0, 0.1]"),
    ("schedules.warmup_cosine", (0, np.inf, 2, 10), ValueError, "'base_lr' must be a finite"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_schedules_refuse_bad_arguments(impl, call, args, error, needle):
    """A negative warm-up used to stretch the cosine silently (t - W > t); each argument is
    now checked by the function the caller called."""
    with pytest.raises(error, match=re.escape(needle)):
        impl(call)(*args)


def test_schedules_accept_numpy_steps(impl):
    """np.int64 step numbers (from np.arange, say) give the same rate as Python ints."""
    for t in range(12):
        assert impl("schedules.warmup_cosine")(np.int64(t), 0.1, np.int64(3), 10) == \
            impl("schedules.warmup_cosine")(t, 0.1, 3, 10)
    assert impl("schedules.warmup_cosine")(5, 0.1, 0, 10) == impl("schedules.cosine")(5, 0.1, 10)


# The reference's messages in full, and the bounds they state (mutmut: a changed function
# name, argument label, bound or wording survived tests that only searched for a fragment).
_P = {"W": np.ones((2, 2))}
_G = {"W": np.full((2, 2), 0.5)}
_BIG_G = {"W": np.full((2, 2), 10.0)}


def _state(impl, module, **changes):
    return {**impl(f"{module}.init")(_P), **changes}


REFUSED = {
    "betas not a pair": (
        lambda impl: impl("adam.step")(_P, _G, _state(impl, "adam"), lr=0.1, betas=0.9),
        TypeError, "adam.step: argument 'betas' must be a pair (beta1, beta2), got float 0.9"),
    "beta1 of 1": (
        lambda impl: impl("adam.step")(_P, _G, _state(impl, "adam"), lr=0.1, betas=(1.0, 0.9)),
        ValueError, "adam.step: argument betas[0] must be in [0, 1), got 1.0"),
    "adam step count -1": (
        lambda impl: impl("adam.step")(_P, _G, _state(impl, "adam", step=-1), lr=0.1),
        ValueError, "adam.step: argument state['step'] must be an int >= 0, got -1"),
    "adam step count 1.5": (
        lambda impl: impl("adam.step")(_P, _G, _state(impl, "adam", step=1.5), lr=0.1),
        TypeError, "adam.step: argument state['step'] must be an int, got float 1.5"),
    "adam first moment NaN": (
        lambda impl: impl("adam.step")(_P, _G, _state(impl, "adam",
                                                      m={"W": np.full((2, 2), np.nan)}), lr=0.1),
        ValueError, "adam.step: argument state['m']['W'] must be finite, got 4 NaN or inf "
                    "value(s) in an array of shape (2, 2)"),
    "adam second moment of another shape": (
        lambda impl: impl("adam.step")(_P, _G, _state(impl, "adam", v={"W": np.ones(3)}),
                                       lr=0.1),
        ValueError, "adam.step: argument state['v']['W'] must have shape (2, 2) like "
                    "params['W'], got (3,)"),
    "adam second moment inf": (
        lambda impl: impl("adam.step")(_P, _G, _state(impl, "adam",
                                                      v={"W": np.full((2, 2), np.inf)}), lr=0.1),
        ValueError, "adam.step: argument state['v']['W'] must be finite, got 4 NaN or inf "
                    "value(s) in an array of shape (2, 2)"),
    "adam overflow from lr": (
        lambda impl: impl("adam.step")(_P, _G, _state(impl, "adam"), lr=1e308),
        ValueError, "adam.step: argument 'lr' = 1e+308 (or a huge gradient) makes the result "
                    "overflow float64 (the new params['W'] came out NaN or inf from finite "
                    "inputs); use a smaller value"),
    "adamw overflow from lr": (
        lambda impl: impl("adamw.step")(_P, _G, _state(impl, "adamw"), lr=1e308,
                                        weight_decay=0.0),
        ValueError, "adamw.step: argument 'lr' = 1e+308 (or a huge gradient) makes the result "
                    "overflow float64 (the new params['W'] came out NaN or inf from finite "
                    "inputs); use a smaller value"),
    "adamw decay product 1.5": (
        lambda impl: impl("adamw.step")(_P, _G, _state(impl, "adamw"), lr=0.5,
                                        weight_decay=3.0),
        ValueError, "adamw.step: arguments 'lr' and 'weight_decay' must have a product "
                    "lr * weight_decay <= 1 (the decay factor 1 - lr * weight_decay would be "
                    "negative), got 0.5 * 3.0"),
    "adamw decay predicate returning 1": (
        lambda impl: impl("adamw.step")(_P, _G, _state(impl, "adamw"), lr=0.1,
                                        decay=lambda path, leaf: 1),
        TypeError, "adamw.step: argument 'decay' must return True or False, got int 1 for 'W'"),
    "matrices_only of an int path": (
        lambda impl: impl("adamw.matrices_only")(3, np.ones(2)),
        TypeError, "adamw.matrices_only: argument 'path' must be a string, got int 3"),
    "matrices_only of an int leaf": (
        lambda impl: impl("adamw.matrices_only")("W", np.ones(2, dtype=np.int64)),
        TypeError, "adamw.matrices_only: argument 'leaf' must be a floating-point NumPy array, "
                   "got array of shape (2,) and dtype int64"),
    "sgd overflow from lr": (
        lambda impl: impl("sgd.step")(_P, _BIG_G, _state(impl, "sgd"), lr=1e308),
        ValueError, "sgd.step: argument 'lr' = 1e+308 (or a huge gradient) makes the result "
                    "overflow float64 (the new params['W'] came out NaN or inf from finite "
                    "inputs); use a smaller value"),
    "sgd momentum of 1": (
        lambda impl: impl("sgd.step")(_P, _G, _state(impl, "sgd"), lr=0.1, momentum=1.0),
        ValueError, "sgd.step: argument 'momentum' must be in [0, 1), got 1.0"),
    "nesterov without momentum": (
        lambda impl: impl("sgd.step")(_P, _G, _state(impl, "sgd"), lr=0.1, nesterov=True),
        ValueError, "sgd.step: argument 'nesterov' needs momentum > 0 and dampening 0, got "
                    "momentum=0.0, dampening=0.0"),
    "sgd step count -1": (
        lambda impl: impl("sgd.step")(_P, _G, _state(impl, "sgd", step=-1), lr=0.1),
        ValueError, "sgd.step: argument state['step'] must be an int >= 0, got -1"),
    "sgd step count 1.5": (
        lambda impl: impl("sgd.step")(_P, _G, _state(impl, "sgd", step=1.5), lr=0.1),
        TypeError, "sgd.step: argument state['step'] must be an int, got float 1.5"),
    "sgd buffer of another shape": (
        lambda impl: impl("sgd.step")(_P, _G, _state(impl, "sgd", step=1,
                                                     buffer={"W": np.ones(3)}),
                                      lr=0.1, momentum=0.5),
        ValueError, "sgd.step: argument state['buffer']['W'] must have shape (2, 2) like "
                    "params['W'], got (3,)"),
    "sgd buffer NaN": (
        lambda impl: impl("sgd.step")(_P, _G, _state(impl, "sgd", step=1,
                                                     buffer={"W": np.full((2, 2), np.nan)}),
                                      lr=0.1, momentum=0.5),
        ValueError, "sgd.step: argument state['buffer']['W'] must be finite, got 4 NaN or inf "
                    "value(s) in an array of shape (2, 2)"),
    "clip to a norm of 0": (
        lambda impl: impl("clip.clip_by_global_norm")(_G, 0.0),
        ValueError, "clip.clip_by_global_norm: argument 'max_norm' must be > 0, got 0.0"),
    "warmup to a rate of 0": (
        lambda impl: impl("schedules.linear_warmup")(0, 0.0, 10),
        ValueError, "schedules.linear_warmup: argument 'base_lr' must be > 0, got 0.0"),
    "cosine from a rate of 0": (
        lambda impl: impl("schedules.cosine")(0, 0.0, 10),
        ValueError, "schedules.cosine: argument 'base_lr' must be > 0, got 0.0"),
    "warmup and cosine from a rate of 0": (
        lambda impl: impl("schedules.warmup_cosine")(0, 0.0, 2, 10),
        ValueError, "schedules.warmup_cosine: argument 'base_lr' must be > 0, got 0.0"),
    "warmup and cosine over 0 steps": (
        lambda impl: impl("schedules.warmup_cosine")(0, 0.1, 0, 0),
        ValueError, "schedules.warmup_cosine: argument 'total_steps' must be an int >= 1, got 0"),
    "warmup and cosine over -3 steps": (
        lambda impl: impl("schedules.warmup_cosine")(0, 0.1, 0, -3),
        ValueError, "schedules.warmup_cosine: argument 'total_steps' must be an int >= 1, "
                    "got -3"),
    "warmup as long as the schedule": (
        lambda impl: impl("schedules.warmup_cosine")(0, 0.1, 5, 5),
        ValueError, "schedules.warmup_cosine: argument 'total_steps' must be > warmup_steps = "
                    "5, got 5"),
    "warmup and cosine to a floor above the peak": (
        lambda impl: impl("schedules.warmup_cosine")(0, 0.1, 2, 10, 0.2),
        ValueError, "schedules.warmup_cosine: argument 'min_lr' must be in [0, 0.1], got 0.2"),
}


@pytest.mark.reference_only
@pytest.mark.parametrize("case", [
    pytest.param(case, marks=pytest.mark.component(re.match(r"\w+", message).group()), id=case)
    for case, (_, _, message) in REFUSED.items()])
def test_refusals_in_the_references_words(impl, case):
    """Each refusal gives the exception type and the reference's whole message: the function,
    the argument (a state entry by its key), the rule and the value given."""
    call, error, message = REFUSED[case]
    with pytest.raises(error) as info:
        call(impl)
    assert str(info.value) == message


def test_an_overflowing_momentum_step_is_refused_without_a_warning(impl):
    """With dampening 1 an overflowing decayed gradient enters the buffer as 0 * inf: the
    step refuses with ValueError (naming lr and weight_decay) instead of warning about an
    invalid value."""
    params = {"W": np.full((2, 2), 10.0)}
    state = {"step": 1, "buffer": {"W": np.ones((2, 2))}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"'lr' = 0\.1 with 'weight_decay' = 1e\+308"):
            impl("sgd.step")(params, _G, state, lr=0.1, momentum=0.5, dampening=1.0,
                             weight_decay=1e308)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_counts_its_steps(impl, momentum):
    """init starts the count at 0 and each step adds 1, with or without momentum."""
    state = impl("sgd.init")(_P)
    assert state == {"step": 0, "buffer": None}
    params = _P
    for n in range(1, 4):
        params, state = impl("sgd.step")(params, _G, state, lr=0.1, momentum=momentum)
        assert state["step"] == n


def test_adamw_accepts_a_decay_product_of_exactly_1(impl):
    """lr * weight_decay = 1 is the largest decay allowed: the decayed weights go to 0 (with a
    zero gradient nothing else moves them)."""
    zero = {"W": np.zeros((2, 2))}
    new, _ = impl("adamw.step")(_P, zero, impl("adamw.init")(_P), lr=0.5, weight_decay=2.0)
    np.testing.assert_array_equal(new["W"], np.zeros((2, 2)))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_matrices_only_takes_every_float_dtype(impl, dtype):
    assert impl("adamw.matrices_only")("W", np.ones((2, 2), dtype=dtype)) is True
    assert impl("adamw.matrices_only")("b", np.ones(2, dtype=dtype)) is False


def test_global_norm_of_float16_gradients_sums_float64_squares(impl):
    """float16 gradients of 1e-4: their squares (1e-8) lie below float16's smallest
    subnormal (6e-8), so a norm summed in float16 would be 0 and clipping would stop.  The
    norm, alone and in clip_by_global_norm, is the float64 norm of the float16 values."""
    g = {"W": np.full(3, 1e-4, dtype=np.float16), "b": np.array([2e-4], dtype=np.float16)}
    expected = float(np.sqrt(3 * np.float64(g["W"][0]) ** 2 + np.float64(g["b"][0]) ** 2))
    assert impl("clip.global_norm")(g) == pytest.approx(expected, rel=1e-12)
    clipped, norm = impl("clip.clip_by_global_norm")(g, 1e-5)
    assert norm == pytest.approx(expected, rel=1e-12)
    assert clipped["W"].dtype == np.float16 and 0 < float(clipped["W"][0]) < 1e-4


def test_global_norm_past_float64_squares(impl):
    """Gradients near 1e200 square past float64's range; the norm is rescaled by the
    largest element and still exact to rounding (3-4-5), with an empty leaf in the tree."""
    grads = {"W": np.array([3e200, 0.0, 4e200]), "empty": np.zeros(0)}
    np.testing.assert_allclose(impl("clip.global_norm")(grads), 5e200, rtol=1e-15)
    clipped, norm = impl("clip.clip_by_global_norm")(grads, 1.0)
    np.testing.assert_allclose(norm, 5e200, rtol=1e-15)
    np.testing.assert_allclose(clipped["W"], [0.6, 0.0, 0.8], rtol=1e-14)


def test_schedules_at_their_smallest_lengths(impl):
    """A one-step cosine (base_lr at t = 0, min_lr from t = 1), a warmup-and-cosine without
    warmup that starts at base_lr, and one of a single cosine step."""
    assert impl("schedules.cosine")(0, 0.1, 1, 0.01) == 0.1
    assert impl("schedules.cosine")(1, 0.1, 1, 0.01) == 0.01
    assert impl("schedules.warmup_cosine")(0, 0.1, 0, 10) == 0.1
    assert impl("schedules.warmup_cosine")(0, 0.1, 0, 1, 0.01) == 0.1
    assert impl("schedules.warmup_cosine")(1, 0.1, 0, 1, 0.01) == 0.01
