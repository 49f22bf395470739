"""Caches the caller cannot corrupt (the input-contract tier, like ``test_contract``).

A forward returns ``(out, cache)``.  Editing the returned ``out`` in place must never change
what the backward computes: no forward hands back an object its backward reads.  Inputs are
another matter: NumPy has no version counters, so a cache may hold the caller's inputs and
parameters by reference and the rule is that they must not change between forward and
backward (``llmref._checks``).  The reference's debug mode (the environment variable
``LLMREF_DEBUG_CACHE=1``, read at every call, or ``llmref._checks.debug_caches(True)``, which
sets it) turns a broken rule into a ``ValueError`` instead of a silently different gradient;
these tests check both, for every forward/backward pair (discovered) of the stages listed in
``STAGES``, each called with its declared contract example.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import llmref
from llmref import _checks
from llmref.spec.harness.impl import public_members

pytestmark = pytest.mark.contract

#: the stages whose forward/backward pairs are checked: every stage that has any
STAGES = ("layers", "losses", "transformer", "rlhf")


def forward_backward_pairs() -> list:
    """``(component, forward name, backward name)`` for every public backward of the stages
    in ``STAGES``, discovered: ``backward`` goes with ``forward``, ``X_backward`` with
    ``X_forward`` or ``X`` (``ppo.policy_backward``, ``gpt_policy.logits_backward``)."""
    pairs = []
    for stage in STAGES:
        for component in llmref.STAGES[stage]:
            module = getattr(llmref, component)
            names = {n for n, o in public_members(module).items() if inspect.isfunction(o)}
            for name in sorted(n for n in names if n.endswith("backward") and "cache" in
                               inspect.signature(getattr(module, n)).parameters):
                base = name[:-len("backward")].rstrip("_")
                for forward in ((f"{base}_forward", base) if base else ("forward",)):
                    if forward in names:
                        pairs.append((component, forward, name))
                        break
    return pairs


PAIRS = [pytest.param(c, f, b, id=f"{c}.{f}") for c, f, b in forward_backward_pairs()]


@pytest.fixture(scope="module")
def graded(impl, request):
    if not impl.speaks_as_reference and not request.config.getoption("--llmspec-contract"):
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


def _example(component: str, forward: str = "forward", seed: int = 0) -> dict:
    """The contract example of ``component.forward`` (fresh arrays on every call)."""
    return getattr(getattr(llmref, component), forward).__contract__.example(
        np.random.default_rng(seed))


def _leaves(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, dict):
        for sub in value.values():
            yield from _leaves(sub)
    elif isinstance(value, (list, tuple)):
        for sub in value:
            yield from _leaves(sub)


def _labelled(name: str, value):
    """``(label, array)`` for every array in ``value``, labelled as the reference's messages
    name them: ``'x'`` for an argument, ``params['attn']['W']`` for a part of one."""
    if isinstance(value, np.ndarray):
        yield (f"'{name}'" if name.isidentifier() else name), value
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _labelled(f"{name}[{key!r}]", sub)
    elif isinstance(value, (list, tuple)):
        for i, sub in enumerate(value):
            yield from _labelled(f"{name}[{i}]", sub)


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


@pytest.mark.parametrize("component,forward_name,backward_name", PAIRS)
def test_editing_the_output_in_place_leaves_the_gradient(graded, component, forward_name,
                                                         backward_name, debug_off):
    """``out *= -1.5; out += 0.25`` between forward and backward changes no gradient, and the
    forward leaves the caller's arrays and their flags as they were."""
    forward = graded(f"{component}.{forward_name}")
    backward = graded(f"{component}.{backward_name}")
    out, cache = forward(**_example(component, forward_name))
    dout = _upstream(out)
    expected = backward(dout, cache)

    inputs = _example(component, forward_name)
    flags = [(a.flags.writeable, a.flags.c_contiguous) for a in _leaves(inputs)]
    out, cache = forward(**inputs)
    assert [(a.flags.writeable, a.flags.c_contiguous) for a in _leaves(inputs)] == flags, \
        f"{component}.{forward_name} changed the flags of an input array"
    if not (isinstance(out, np.ndarray) and out.ndim):
        pytest.skip(f"{component}.{forward_name} returns a scalar: nothing to edit in place")
    _edit_in_place(out)
    assert _same_grads(backward(dout, cache), expected), (
        f"editing the output of {component}.{forward_name} in place changed its gradient: "
        f"the cache shares memory with the returned output")


#: the forwards whose cache holds caller arrays (inputs or parameters) by reference, as
#: their docstrings say under Cache; the debug mode must report an edit of those
HELD = {"linear.forward", "relu.forward", "gelu.forward", "gelu_tanh.forward",
        "layer_norm.forward", "rms_norm.forward", "embedding.forward", "ffn.forward",
        "cross_entropy.forward", "silu.forward", "swiglu.forward",
        "attention.forward", "mha.forward", "block.forward", "gpt.embed_forward",
        "gpt.hidden_forward", "gpt.forward", "reward_model.forward", "value_model.forward",
        "gpt_policy.logits", "gpt_policy.logprobs"}


@pytest.mark.parametrize("component,forward_name,backward_name", PAIRS)
def test_an_input_changed_before_the_backward_is_reported_in_debug_mode(
        impl, component, forward_name, backward_name, debug_on):
    """With the debug mode on, editing any input array in place between forward and backward
    either leaves the gradient exactly as it was (the cache does not depend on it) or makes
    the backward raise ``ValueError`` naming itself and ``'cache'``: never a silently
    different gradient."""
    if not impl.speaks_as_reference:
        pytest.skip("the cache debug mode is the reference's own tool")
    forward = impl(f"{component}.{forward_name}")
    backward = impl(f"{component}.{backward_name}")
    out, cache = forward(**_example(component, forward_name))
    dout = _upstream(out)
    expected = backward(dout, cache)
    n_leaves = len(list(_leaves(_example(component, forward_name))))
    reported = 0
    for i in range(n_leaves):
        inputs = _example(component, forward_name)
        out, cache = forward(**inputs)
        label, leaf = [pair for k, v in inputs.items() for pair in _labelled(k, v)][i]
        _edit_in_place(leaf)
        try:
            got = backward(dout, cache)
        except ValueError as exc:
            assert str(exc).startswith(f"{component}.{backward_name}: argument 'cache' "), \
                str(exc)
            assert f"the input {label} given to {component}.{forward_name} was changed in " \
                   f"place" in str(exc), str(exc)
            reported += 1
            continue
        assert _same_grads(got, expected), (
            f"input leaf {i} of {component}.{forward_name} was edited in place after the "
            f"forward; the gradient changed and the debug mode did not report it")
    label = f"{component}.{forward_name}"
    assert (reported > 0) == (label in HELD), (
        f"{label}: {reported} edited input(s) reported; the docstrings say the cache holds "
        f"caller arrays by reference for exactly {sorted(HELD)}")


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
                          "print(_checks._debug_on())"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(expected)


@pytest.mark.parametrize("component,forward_name,backward_name", PAIRS)
def test_a_backward_refuses_what_is_not_its_forwards_cache(graded, component, forward_name,
                                                           backward_name):
    """None, a number or a string as ``cache`` raises ``TypeError`` naming the backward and
    ``'cache'`` (not an AttributeError from deep inside)."""
    backward = graded(f"{component}.{backward_name}")
    example = getattr(getattr(llmref, component), backward_name).__contract__.example(
        np.random.default_rng(0))
    upstream = next(v for k, v in example.items() if k != "cache")
    for bad in (None, 3, "cache"):
        with pytest.raises(TypeError) as info:
            backward(upstream, bad)
        message = str(info.value)
        assert f"{component}.{backward_name}" in message and "'cache'" in message, message
        if graded.speaks_as_reference:      # the reference's own wording names the forward
            assert message.startswith(f"{component}.{backward_name}: argument 'cache' must "
                                      f"be the cache {component}.{forward_name} returned"), \
                message


def test_the_debug_mode_is_read_at_call_time(monkeypatch):
    """The switch is the environment variable itself, read by each forward: setting it in a
    running program turns the check on, removing it turns it off, and the module keeps no
    copy of it."""
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((1, 2, 3, 4)) for _ in range(3))
    monkeypatch.delenv("LLMREF_DEBUG_CACHE", raising=False)
    assert isinstance(llmref.attention.forward(q, k, v)[1], tuple)
    monkeypatch.setenv("LLMREF_DEBUG_CACHE", "1")
    _, guarded = llmref.attention.forward(q, k, v)
    assert not isinstance(guarded, tuple)
    k[0, 0, 0, 0] += 1.0
    with pytest.raises(ValueError, match=r"attention\.backward: argument 'cache'.*'k'"):
        llmref.attention.backward(rng.standard_normal((1, 2, 3, 4)), guarded)
    monkeypatch.setenv("LLMREF_DEBUG_CACHE", "0")
    assert isinstance(llmref.attention.forward(q, k, v)[1], tuple)
    assert not [name for name, value in vars(_checks).items()
                if "debug" in name.lower() and isinstance(value, bool)], \
        "llmref._checks keeps the debug switch as module state"



#: inputs whose in-place edit the docstrings promise the debug mode reports, even where the
#: backward happens not to read them again (the tables of the embeddings, the masks and
#: position ids of the trunk, a pre-norm block's input): the promise is about what the cache
#: holds, not what it uses
PROMISED = [("gpt", "embed_forward", "embed_backward", "params"),
            ("gpt", "hidden_forward", "hidden_backward", "attention_mask"),
            ("gpt", "hidden_forward", "hidden_backward", "position_ids"),
            ("gpt", "forward", "backward", "attention_mask"),
            ("gpt", "forward", "backward", "position_ids"),
            ("block", "forward", "backward", "x")]


@pytest.mark.parametrize(("component", "forward_name", "backward_name", "argument"), PROMISED,
                         ids=[f"{c}.{f}-{a}" for c, f, _, a in PROMISED])
def test_the_debug_mode_reports_each_input_its_docstring_names(
        impl, component, forward_name, backward_name, argument, debug_on):
    """With the debug mode on, editing the named input in place between forward and
    backward makes the backward raise, naming itself, the forward and the input."""
    if not impl.speaks_as_reference:
        pytest.skip("the cache debug mode is the reference's own tool")
    inputs = _example(component, forward_name)
    out, cache = impl(f"{component}.{forward_name}")(**inputs)
    label, leaf = next(_labelled(argument, inputs[argument]))
    _edit_in_place(leaf)
    if leaf.dtype == bool:
        np.logical_not(leaf, out=leaf)              # a roll can leave a mask as it was
    with pytest.raises(ValueError) as info:
        impl(f"{component}.{backward_name}")(_upstream(out), cache)
    message = str(info.value)
    assert message.startswith(f"{component}.{backward_name}: argument 'cache' "), message
    assert f"the input {label} given to {component}.{forward_name} was changed in place" \
        in message, message

