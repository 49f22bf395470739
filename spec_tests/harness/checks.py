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
from llmref.spec.harness.tolerances import F32, F64, FD, assert_close, assert_grads_close


def _fn(impl, component: str, which: str):
    return impl(f"{component}_{which}" if "." in component else f"{component}.{which}")


def check_against_torch(impl, component: str, inputs: dict, to_args: Callable,
                        torch_fn: Callable, seed: int, differentiable=None,
                        rounding_scale: float = 0.0) -> None:
    """Output and every gradient of ``component`` against float64 autograd.

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
    out, cache = _fn(impl, component, "forward")(*args, **kwargs)
    assert_close(out, expected_out, F64, name=f"{component}.forward output",
                 reference_scale=rounding_scale)
    grads = _fn(impl, component, "backward")(upstream, cache)
    assert_grads_close(grads, expected_grads, F64, upstream * max(1.0, rounding_scale))


def check_against_finite_differences(impl, component: str, inputs: dict, to_args: Callable,
                                     wrt, seed: int) -> None:
    """Every gradient of ``component`` against central differences of its own forward."""
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
    assert set(wrt) <= set(grads), f"backward returned {sorted(grads)}, missing some of {wrt}"
    assert_grads_close({k: grads[k] for k in wrt}, expected, FD, upstream)


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
        f"{component}.forward on float32 input returned dtype {np.asarray(out).dtype}")
    assert_close(out, expected, F32, name=f"{component}.forward float32 output",
                 reference_scale=rounding_scale)
    upstream = oracles.random_upstream(np.random.default_rng(0), expected.shape)
    upstream = upstream.astype(np.float32)
    _, expected_grads = oracles.torch_vjp(torch_fn, inputs32, upstream.astype(np.float64))
    grads = _fn(impl, component, "backward")(upstream, cache)
    for name, g in grads.items():
        assert np.asarray(g).dtype == np.float32, (
            f"{component}.backward on float32 input and upstream returned gradient {name!r} "
            f"of dtype {np.asarray(g).dtype}")
    assert_grads_close(grads, expected_grads, F32, upstream * max(1.0, rounding_scale))


def flatten(tree, prefix: str = "") -> dict:
    """``{"a": {"b": x}, "c": [y]}`` -> ``{"a.b": x, "c.0": y}``: compare nested gradients."""
    if not isinstance(tree, (dict, list, tuple)):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    flat = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
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
    """A component with a parameter tree: output, input gradient (float ``x`` only) and every
    parameter gradient against float64 autograd of ``torch_fn(x_tensor, param_tensors)``.

    ``forward_kwargs`` go to the implementation's forward; ``torch_fn`` must apply the same
    options itself.
    """
    rng = np.random.default_rng(seed)
    x_t = torch.tensor(x, dtype=torch.float64, requires_grad=True) if x.dtype.kind == "f" \
        else torch.from_numpy(x)
    p_t = torch_twins.tensors(params)
    out_t = torch_fn(x_t, p_t)
    upstream = oracles.random_upstream(rng, tuple(out_t.shape))
    out_t.backward(torch.from_numpy(upstream))
    expected = {f"params.{k}": v for k, v in flatten(torch_twins.grads(p_t)).items()}
    if x_t.requires_grad:
        expected["x"] = x_t.grad.numpy()

    out, cache = _fn(impl, component, "forward")(x, params, **(forward_kwargs or {}))
    assert_close(out, out_t.detach().numpy(), F64, name=f"{component}.forward output",
                 reference_scale=rounding_scale)
    grads = dict(_fn(impl, component, "backward")(upstream, cache))
    got = {"x": grads.pop("x")} if "x" in grads else {}
    got.update({f"params.{k}": v for k, v in flatten(grads).items()})
    assert_grads_close(got, expected, F64, upstream * max(1.0, rounding_scale))
