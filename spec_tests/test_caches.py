"""Caches the caller cannot corrupt (the input-contract tier, like ``test_contract``).

A forward returns ``(out, cache)``.  Editing the returned ``out`` in place must never change
what the backward computes: no forward hands back an object its backward reads.  Inputs are
another matter: NumPy has no version counters, so a cache may hold the caller's inputs and
parameters by reference and the rule is that they must not change between forward and
backward (``llmref._checks``).  The reference's debug mode (``LLMREF_DEBUG_CACHE=1`` or
``llmref._checks.debug_caches(True)``) turns a broken rule into a ``ValueError`` instead of a
silently different gradient; these tests check both, for every forward/backward pair of the
stages listed in ``STAGES``, each called with its declared contract example.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import llmref
from llmref import _checks

pytestmark = pytest.mark.contract

#: stages whose public forwards guard their caches (the transformer and later stages join as
#: their forwards do)
STAGES = ("layers", "losses")
PAIRS = [c for stage in STAGES for c in llmref.STAGES[stage]
         if hasattr(getattr(llmref, c), "backward")]


@pytest.fixture(scope="module")
def graded(impl, request):
    if not impl.is_reference and not request.config.getoption("--llmspec-contract"):
        pytest.skip("the input contract is graded for your implementation with "
                    "--llmspec-contract (llmspec check --contract)")
    return impl


@pytest.fixture
def debug_on():
    previous = _checks.debug_caches(True)
    yield
    _checks.debug_caches(previous)


@pytest.fixture
def debug_off():
    previous = _checks.debug_caches(False)
    yield
    _checks.debug_caches(previous)


def _example(component: str, seed: int = 0) -> dict:
    """The contract example of ``component.forward`` (fresh arrays on every call)."""
    return getattr(llmref, component).forward.__contract__.example(np.random.default_rng(seed))


def _leaves(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, dict):
        for sub in value.values():
            yield from _leaves(sub)
    elif isinstance(value, (list, tuple)):
        for sub in value:
            yield from _leaves(sub)


def _upstream(out):
    """A random upstream gradient shaped like ``out`` (1.5 for a scalar loss)."""
    if isinstance(out, np.ndarray) and out.ndim:
        return np.random.default_rng(7).standard_normal(out.shape)
    return 1.5


def _same_grads(a: dict, b: dict) -> bool:
    la, lb = list(_leaves(a)), list(_leaves(b))
    return len(la) == len(lb) and all(x.shape == y.shape and np.array_equal(x, y)
                                      for x, y in zip(la, lb, strict=True))


def _edit_in_place(a: np.ndarray) -> None:
    """Change every element of ``a`` without replacing the array."""
    if np.issubdtype(a.dtype, np.floating):
        a *= -1.5
        a += 0.25
    else:
        a[...] = np.roll(a, 1)


@pytest.mark.parametrize("component", PAIRS)
def test_editing_the_output_in_place_leaves_the_gradient(graded, component, debug_off):
    """``out *= -1.5; out += 0.25`` between forward and backward changes no gradient, and the
    forward leaves the caller's arrays and their flags as they were."""
    forward, backward = graded(f"{component}.forward"), graded(f"{component}.backward")
    out, cache = forward(**_example(component))
    dout = _upstream(out)
    expected = backward(dout, cache)

    inputs = _example(component)
    flags = [(a.flags.writeable, a.flags.c_contiguous) for a in _leaves(inputs)]
    out, cache = forward(**inputs)
    assert [(a.flags.writeable, a.flags.c_contiguous) for a in _leaves(inputs)] == flags, \
        f"{component}.forward changed the flags of an input array"
    if not (isinstance(out, np.ndarray) and out.ndim):
        pytest.skip(f"{component}.forward returns a scalar: nothing to edit in place")
    _edit_in_place(out)
    assert _same_grads(backward(dout, cache), expected), (
        f"editing the output of {component}.forward in place changed its gradient: the "
        f"cache shares memory with the returned output")


@pytest.mark.parametrize("component", PAIRS)
def test_an_input_changed_before_the_backward_is_reported_in_debug_mode(impl, component,
                                                                         debug_on):
    """With the debug mode on, editing any input array in place between forward and backward
    either leaves the gradient exactly as it was (the cache does not depend on it) or makes
    the backward raise ``ValueError`` naming itself and ``'cache'``: never a silently
    different gradient."""
    if not impl.is_reference:
        pytest.skip("the cache debug mode is the reference's own tool")
    module = getattr(llmref, component)
    out, cache = module.forward(**_example(component))
    dout = _upstream(out)
    expected = module.backward(dout, cache)
    n_leaves = len(list(_leaves(_example(component))))
    reported = 0
    for i in range(n_leaves):
        inputs = _example(component)
        out, cache = module.forward(**inputs)
        _edit_in_place(list(_leaves(inputs))[i])
        try:
            got = module.backward(dout, cache)
        except ValueError as exc:
            assert f"{component}.backward" in str(exc) and "'cache'" in str(exc), str(exc)
            reported += 1
            continue
        assert _same_grads(got, expected), (
            f"input leaf {i} of {component}.forward was edited in place after the forward; "
            f"the gradient changed and the debug mode did not report it")
    held = {"linear", "relu", "gelu", "gelu_tanh", "layer_norm", "rms_norm", "embedding",
            "ffn", "cross_entropy", "silu", "swiglu"}
    assert (reported > 0) == (component in held), (
        f"{component}: {reported} edited input(s) reported; the docstrings say the cache "
        f"holds caller inputs by reference for exactly {sorted(held)}")


def test_the_debug_mode_wraps_only_when_on_and_is_transparent():
    """Off: a public forward's cache is its plain cache.  On: it is wrapped with checksums,
    the backward unwraps it, and the gradients are bit for bit those of the plain run.
    ``debug_caches`` returns the previous setting."""
    rng = np.random.default_rng(3)
    x, params = rng.standard_normal((4, 3)), {"W": rng.standard_normal((3, 2))}
    dout = rng.standard_normal((4, 2))
    previous = _checks.debug_caches(False)
    try:
        _, plain = llmref.linear.forward(x, params)
        assert isinstance(plain, tuple)
        expected = llmref.linear.backward(dout, plain)
        assert _checks.debug_caches(True) is False
        _, guarded = llmref.linear.forward(x, params)
        assert not isinstance(guarded, tuple)
        assert _same_grads(llmref.linear.backward(dout, guarded), expected)
        params["W"][0, 0] += 1.0
        with pytest.raises(ValueError, match=r"linear\.backward: argument 'cache'.*params\['W'\]"):
            llmref.linear.backward(dout, guarded)
        assert _checks.debug_caches(False) is True
        # a cache made with the mode on is still checked after it is switched off
        with pytest.raises(ValueError, match="changed in place"):
            llmref.linear.backward(dout, guarded)
    finally:
        _checks.debug_caches(previous)
    with pytest.raises(TypeError, match="'enabled'"):
        _checks.debug_caches("yes")


@pytest.mark.parametrize("value,expected", [("1", True), ("0", False), ("", False)])
def test_the_debug_mode_follows_the_environment_variable(value, expected):
    env = {k: v for k, v in os.environ.items() if k != "LLMREF_DEBUG_CACHE"}
    env["LLMREF_DEBUG_CACHE"] = value
    run = subprocess.run([sys.executable, "-c", "from llmref import _checks; "
                          "print(_checks._debug_caches)"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(expected)


@pytest.mark.parametrize("component", PAIRS)
def test_a_backward_refuses_what_is_not_its_forwards_cache(graded, component):
    """None, a number or a string as ``cache`` raises ``TypeError`` naming the backward and
    ``'cache'`` (not an AttributeError from deep inside)."""
    backward = graded(f"{component}.backward")
    example = getattr(llmref, component).backward.__contract__.example(
        np.random.default_rng(0))
    for bad in (None, 3, "cache"):
        with pytest.raises(TypeError) as info:
            backward(example["dout" if "dout" in example else "dloss"], bad)
        assert f"{component}.backward" in str(info.value) and "'cache'" in str(info.value), \
            str(info.value)
