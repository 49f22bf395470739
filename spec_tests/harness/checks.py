"""The comparisons almost every spec test makes, written once.

A component ``"softmax"`` is reached as ``softmax.forward`` / ``softmax.backward``; a dotted
one such as ``"ppo.policy"`` as ``ppo.policy_forward`` / ``ppo.policy_backward`` (a module
with several losses).

A test names the component, gives its inputs as a dict of named arrays (names match the keys
``backward`` must return), says how to turn that dict into the forward's arguments, and, for
the torch check, gives the same computation as torch operations.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from llmref.spec.harness import oracles, torch_twins
from llmref.spec.harness.tolerances import (
    F32,
    F64,
    FD,
    FD_STEP,
    assert_close,
    assert_grads_close,
    compare,
    grad_errors,
    grads_message,
)


def _name(component: str, which: str) -> str:
    return f"{component}_{which}" if "." in component else f"{component}.{which}"


def _fn(impl, component: str, which: str):
    return impl(_name(component, which))


def _reference(component: str, which: str):
    """The reference's own function (for hints: what the right answer is at this input)."""
    import llmref
    owner, _, function = _name(component, which).rpartition(".")
    return getattr(getattr(llmref, owner), function)


# ---------------------------------------------------------------- hints for wrong gradients

def _directional(objective: Callable, perturb: Callable, direction: np.ndarray,
                 scale: float) -> float:
    """Central difference of ``objective`` along ``direction`` (unit L2 norm):
    ``(objective(+h) - objective(-h)) / 2h`` with ``h = FD_STEP * max(1, scale)``."""
    h = FD_STEP * max(1.0, scale)
    return (objective(perturb(h * direction)) - objective(perturb(-h * direction))) / (2 * h)


def gradient_hint(errors: dict, got: dict, correct: dict, along: Callable) -> list:
    """Hint lines for each wrong gradient: by how much it is wrong, and whether finite
    differences of the implementation's forward agree with the correct gradient (the forward
    is right, the backward wrong) or with the implementation's own gradient (the backward
    follows the forward, so the forward is what differs).

    ``along(key, u)`` is the central difference of ``sum(upstream * forward(...))`` when input
    ``key`` moves along the unit vector ``u``.  ``u`` is chosen as the direction of the error
    itself, ``got - correct``, where the two candidate answers are furthest apart: they predict
    ``<correct, u>`` and ``<got, u>``, which differ by ``|got - correct|``."""
    lines = []
    for key in errors:
        if key not in got or key not in correct:
            continue
        g = np.asarray(got[key], dtype=np.float64)
        c = np.asarray(correct[key], dtype=np.float64)
        if g.shape != c.shape:
            lines.append(f"hint: {key!r} has shape {g.shape}; the gradient of an input always "
                         f"has the input's shape {c.shape}")
            continue
        if not np.all(np.isfinite(g)):
            lines.append(f"hint: {key!r} holds NaN or inf: look for a division by zero or an "
                         f"overflowing exp in the backward")
            continue
        diff = g - c
        gap = float(np.linalg.norm(diff))
        if gap == 0.0:
            continue
        largest = float(np.max(np.abs(c))) if c.size else 0.0
        off = float(np.max(np.abs(diff)))
        share = f" ({off / largest:.0%} of the correct gradient's largest element)" \
            if largest > 0 else ""
        text = f"hint: the gradient of {key!r} is off by up to {off:.4g}{share}"
        if largest > 0 and off < 1e-6 * largest:
            lines.append(text + "; an error this small is below what finite differences "
                         "resolve: usually rounding (a formula evaluated in another order, a "
                         "float32 step, a cancellation)")
            continue
        try:
            fd = along(key, diff / gap)
        except Exception:              # noqa: BLE001  (a hint must never hide the failure)
            fd = None
        if fd is not None and np.isfinite(fd):
            at_correct, at_got = float(np.vdot(c, diff / gap)), float(np.vdot(g, diff / gap))
            if abs(fd - at_correct) <= 0.1 * gap:
                text += ("; finite differences of your forward agree with the correct "
                         "gradient, so at this input your forward is right (its output was "
                         "checked first) and your backward is wrong")
            elif abs(fd - at_got) <= 0.1 * gap:
                text += ("; finite differences of your forward agree with your own gradient, "
                         "so the backward matches your forward and it is the forward that "
                         "differs from the reference")
            else:
                text += ("; finite differences of your forward agree with neither gradient "
                         "(forward and backward both differ from the reference here)")
        lines.append(text)
    return lines


def _flat_along(forward: Callable, to_args: Callable, inputs: dict, upstream) -> Callable:
    """``along(key, u)`` for a component whose inputs are a flat dict of arrays."""
    upstream = np.asarray(upstream, dtype=np.float64)

    def along(key, u):
        base = np.asarray(inputs[key], dtype=np.float64)

        def perturb(delta):
            return {**inputs, key: base + delta}

        def objective(named):
            args, kwargs = to_args(named)
            return float(np.sum(upstream * np.asarray(forward(*args, **kwargs)[0], np.float64)))

        return _directional(objective, perturb, u, float(np.max(np.abs(base), initial=0.0)))

    return along


def check_against_torch(impl, component: str, inputs: dict, to_args: Callable,
                        torch_fn: Callable, seed: int, differentiable=None,
                        rounding_scale: float = 0.0) -> None:
    """The forward output and every gradient agree with float64 PyTorch autograd.

    ``to_args(inputs) -> (args, kwargs)`` builds the forward call; ``torch_fn(**tensors)`` is
    the oracle.  The upstream gradient is random, drawn with the oracle's output shape.
    ``rounding_scale`` raises the tolerance floor for an ill-conditioned input, where the test
    states the size of the intermediate values whose rounding reaches the result.
    """
    rng = np.random.default_rng(seed)
    expected_out, _ = oracles.torch_vjp(torch_fn, inputs, None)
    upstream = oracles.random_upstream(rng, expected_out.shape)
    _, expected_grads = oracles.torch_vjp(torch_fn, inputs, upstream, differentiable)
    args, kwargs = to_args(inputs)
    forward = _fn(impl, component, "forward")
    out, cache = forward(*args, **kwargs)
    message = compare(out, expected_out, F64, name=f"{_name(component, 'forward')}: output",
                      reference_scale=rounding_scale)
    if message:
        raise AssertionError(message + "\nhint: the forward output is wrong, so the gradients "
                             "were not compared yet; fix the forward first")
    grads = _fn(impl, component, "backward")(upstream, cache)
    errors = grad_errors(grads, expected_grads, F64, upstream * max(1.0, rounding_scale),
                         label=_name(component, "backward"))
    if errors:
        hint = gradient_hint(errors, grads if isinstance(grads, dict) else {}, expected_grads,
                             _flat_along(forward, to_args, inputs, upstream))
        raise AssertionError("\n".join([grads_message(errors, list(expected_grads)), *hint]))


def check_against_finite_differences(impl, component: str, inputs: dict, to_args: Callable,
                                     wrt, seed: int) -> None:
    """Every gradient agrees with central finite differences of the implementation's own
    forward."""
    rng = np.random.default_rng(seed)
    forward = _fn(impl, component, "forward")

    def output(**named):
        args, kwargs = to_args(named)
        return forward(*args, **kwargs)[0]

    args, kwargs = to_args(inputs)
    out, cache = forward(*args, **kwargs)
    upstream = oracles.random_upstream(rng, np.shape(out))
    grads = _fn(impl, component, "backward")(upstream, cache)
    expected = oracles.numerical_vjp(output, inputs, upstream, wrt)
    if not isinstance(grads, dict) or not set(wrt) <= set(grads):
        got = sorted(grads) if isinstance(grads, dict) else type(grads).__name__
        raise AssertionError(f"{_name(component, 'backward')}: returned {got}, expected "
                             f"gradients for {sorted(wrt)}")
    label = f"{_name(component, 'backward')} vs finite differences of your forward"
    errors = grad_errors({k: grads[k] for k in wrt}, expected, FD, upstream, label=label)
    if errors:
        raise AssertionError("\n".join([grads_message(errors, list(wrt)),
                                        *_finite_difference_hint(component, inputs, to_args,
                                                                 upstream, grads, expected,
                                                                 errors, out)]))


def _finite_difference_hint(component, inputs, to_args, upstream, grads, numerical,
                            errors, out=None) -> list:
    """Tell a wrong backward from a wrong forward with the reference's gradient at the same
    input: finite differences of your forward equal it (backward wrong), or your gradient
    equals it (forward wrong), or neither.  Agreeing slopes prove nothing about a forward
    whose output differs (a one-element softmax is constant whatever it computes), so the
    forward is called right only when its output ``out`` also matches the reference's."""
    try:
        args, kwargs = to_args(inputs)
        expected_out, cache = _reference(component, "forward")(*args, **kwargs)
        correct = _reference(component, "backward")(upstream, cache)
        same_out = out is None or compare(out, expected_out, F64) is None
    except Exception:                  # noqa: BLE001  (a hint must never hide the failure)
        return []
    lines = []
    for key in errors:
        if key not in correct or key not in grads:
            continue
        fd_ok = compare(numerical[key], correct[key], FD, reference_scale=float(
            np.max(np.abs(upstream), initial=0.0))) is None
        yours_ok = compare(grads[key], correct[key], F64, reference_scale=float(
            np.max(np.abs(upstream), initial=0.0))) is None
        if fd_ok and not same_out:
            lines.append(f"hint: your forward's output differs from the reference's at this "
                         f"input (though its finite differences match the reference gradient "
                         f"of {key!r} here): fix the forward first, its own test shows how")
        elif fd_ok:
            lines.append(f"hint: finite differences of your forward agree with the reference "
                         f"gradient of {key!r}: your forward is right, your backward is wrong")
        elif yours_ok:
            lines.append(f"hint: your gradient of {key!r} equals the reference's, but finite "
                         f"differences of your forward do not: the forward is wrong")
        else:
            lines.append(f"hint: neither your gradient of {key!r} nor finite differences of "
                         f"your forward agree with the reference: the forward differs (and the "
                         f"backward follows something else again)")
    return lines


def check_float32_forward(impl, component: str, inputs: dict, to_args: Callable,
                          torch_fn: Callable, rounding_scale: float = 0.0) -> None:
    """On float32 inputs the forward's output and, for a float32 upstream gradient, every
    gradient stay float32 and agree with the float64 oracle run on the same (float32-rounded)
    inputs and upstream, so only float32 arithmetic is measured.  ``rounding_scale`` raises
    the tolerance floor for an ill-conditioned input, as in :func:`check_against_torch`."""
    inputs32 = {k: v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float64
                else v for k, v in inputs.items()}
    expected, _ = oracles.torch_vjp(torch_fn, inputs32, None)
    args, kwargs = to_args(inputs32)
    out, cache = _fn(impl, component, "forward")(*args, **kwargs)
    assert np.asarray(out).dtype == np.float32, (
        f"{_name(component, 'forward')}: float32 input gave a {np.asarray(out).dtype} output\n"
        f"hint: the dtype rule is float32 in, float32 out (compute in the input's dtype; a "
        f"float64 constant array or np.float64 scalar in the formula upcasts)")
    assert_close(out, expected, F32, name=f"{_name(component, 'forward')}: float32 output",
                 reference_scale=rounding_scale)
    upstream = oracles.random_upstream(np.random.default_rng(0), expected.shape)
    upstream = upstream.astype(np.float32)
    _, expected_grads = oracles.torch_vjp(torch_fn, inputs32, upstream.astype(np.float64))
    grads = _fn(impl, component, "backward")(upstream, cache)
    for name, g in grads.items():
        assert np.asarray(g).dtype == np.float32, (
            f"{_name(component, 'backward')} on float32 input and upstream returned gradient "
            f"{name!r} of dtype {np.asarray(g).dtype}")
    assert_grads_close(grads, expected_grads, F32, upstream * max(1.0, rounding_scale),
                       label=_name(component, "backward"))


def flatten(tree, prefix: str = "", keep_tuples: bool = False) -> dict:
    """``{"a": {"b": x}, "c": [y]}`` -> ``{"a.b": x, "c.0": y}``: compare nested gradients.
    ``keep_tuples``: tuples are leaves (a tree of shapes)."""
    if not isinstance(tree, (dict, list) if keep_tuples else (dict, list, tuple)):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    flat = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key), keep_tuples))
    return flat


def assert_same_tree(got, want, path: str = "params") -> None:
    """Two parameter trees are identical: the same structure (lists stay lists, the same
    keys), dtypes and shapes, and bit-identical values (NaN equal to NaN)."""
    assert type(got) is type(want), f"{path}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        assert set(got) == set(want), f"{path}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_same_tree(got[key], want[key], f"{path}[{key!r}]")
    elif isinstance(want, list):
        assert len(got) == len(want), f"{path}: {len(got)} items, not {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_tree(g, w, f"{path}[{i}]")
    else:
        assert got.dtype == want.dtype and got.shape == want.shape, (
            f"{path}: {got.dtype} {got.shape} != {want.dtype} {want.shape}")
        assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f"), path


def check_model_against_torch(impl, component: str, x, params, torch_fn: Callable, seed: int,
                              forward_kwargs=None, rounding_scale: float = 0.0) -> None:
    """The forward output, the input gradient and every parameter gradient agree with float64
    PyTorch autograd (a component with a parameter tree).

    The oracle is ``torch_fn(x_tensor, param_tensors)``; ``x`` gets a gradient when it is a
    float array.

    ``forward_kwargs`` go to the implementation's forward; ``torch_fn`` must apply the same
    options itself.
    """
    rng = np.random.default_rng(seed)
    x_t = torch.tensor(x, dtype=torch.float64, requires_grad=True) if x.dtype.kind == "f" \
        else torch.from_numpy(x)
    p_t = torch_twins.tensors(params)
    out_t = torch_fn(x_t, p_t)
    upstream = oracles.random_upstream(rng, tuple(out_t.shape))
    oracles.backward(out_t, upstream)
    expected = {f"params.{k}": v for k, v in flatten(torch_twins.grads(p_t)).items()}
    if x_t.requires_grad:
        expected["x"] = x_t.grad.numpy()

    forward = _fn(impl, component, "forward")
    out, cache = forward(x, params, **(forward_kwargs or {}))
    message = compare(out, out_t.detach().numpy(), F64,
                      name=f"{_name(component, 'forward')}: output",
                      reference_scale=rounding_scale)
    if message:
        raise AssertionError(message + "\nhint: the forward output is wrong, so the gradients "
                             "were not compared yet; fix the forward first")
    grads = _fn(impl, component, "backward")(upstream, cache)
    if not isinstance(grads, dict):
        raise AssertionError(f"{_name(component, 'backward')}: must return a dict of "
                             f"gradients, got {type(grads).__name__}")
    grads = dict(grads)
    got = {"x": grads.pop("x")} if "x" in grads else {}
    got.update({f"params.{k}": v for k, v in flatten(grads).items()})
    errors = grad_errors(got, expected, F64, upstream * max(1.0, rounding_scale),
                         label=_name(component, "backward"))
    if errors:
        along = _model_along(forward, x, params, upstream, forward_kwargs or {})
        raise AssertionError("\n".join([grads_message(errors, list(expected)),
                                        *gradient_hint(errors, got, expected, along)]))


def _replace_leaf(tree, path: list, leaf):
    """A copy of the containers on ``path`` with the leaf there replaced (others shared)."""
    if not path:
        return leaf
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {**tree, head: _replace_leaf(tree[head], rest, leaf)}
    i = int(head)
    return [*tree[:i], _replace_leaf(tree[i], rest, leaf), *tree[i + 1:]]


def _model_along(forward: Callable, x, params, upstream, kwargs: dict) -> Callable:
    """``along(key, u)`` for a component with a parameter tree (keys ``x``, ``params.a.b``)."""
    upstream = np.asarray(upstream, dtype=np.float64)

    def along(key, u):
        if key == "x":
            base = np.asarray(x, dtype=np.float64)

            def perturb(delta):
                return base + delta, params
        else:
            path = key.split(".")[1:]
            base = np.asarray(flatten(params)[".".join(path)], dtype=np.float64)

            def perturb(delta):
                return x, _replace_leaf(params, path, base + delta)

        def objective(xp):
            return float(np.sum(upstream * np.asarray(forward(*xp, **kwargs)[0], np.float64)))

        return _directional(objective, perturb, u, float(np.max(np.abs(base), initial=0.0)))

    return along
