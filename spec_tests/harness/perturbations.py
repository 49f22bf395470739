"""Deliberately wrong versions of single reference functions, and which claim test each one
must make fail.

A claim test is only evidence if it can fail.  :data:`KILLED_BY` pairs every claim test with
at least one perturbation of a function it relies on (:data:`PERTURBATIONS`, applied by
:mod:`llmref.spec.perturbed`) or with ``value:<claim id>``, which hands the test a wrong
registry value.  ``spec_tests/test_claim_checks.py`` checks statically that every claim test
has a pairing, and (slow) runs each pairing and requires the test to fail with an assertion.

Each perturbation is a small, plausible mistake (a factor, a dropped term, an ignored
argument), not a crash: the test must notice the wrong number, not an exception.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Perturbation:
    target: str                          # dotted function name, "component.function"
    make: Callable[[Callable], Callable]  # reference function -> perturbed function
    why: str                             # the mistake, in words


def _map_arrays(value, fn):
    """Apply ``fn`` to every float array or float in a (nested) result, keeping the rest."""
    if isinstance(value, dict):
        return {k: _map_arrays(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_arrays(v, fn) for v in value]
    if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
        return fn(value)
    if isinstance(value, (float, np.floating)):
        return type(value)(fn(np.asarray(value)))
    return value


def scale_output(factor: float):
    """The first returned value (or the value itself) times ``factor``."""
    def make(f):
        @functools.wraps(f)
        def g(*args, **kwargs):
            out = f(*args, **kwargs)
            if isinstance(out, tuple):
                return (_map_arrays(out[0], lambda a: a * factor), *out[1:])
            return _map_arrays(out, lambda a: a * factor)
        return g
    return make


def shift_output(delta: float):
    def make(f):
        @functools.wraps(f)
        def g(*args, **kwargs):
            out = f(*args, **kwargs)
            if isinstance(out, tuple):
                return (_map_arrays(out[0], lambda a: a + delta), *out[1:])
            return _map_arrays(out, lambda a: a + delta)
        return g
    return make


def transform_output(fn):
    """The first returned value passed through ``fn``."""
    def make(f):
        @functools.wraps(f)
        def g(*args, **kwargs):
            out = f(*args, **kwargs)
            if isinstance(out, tuple):
                return (fn(out[0]), *out[1:])
            return fn(out)
        return g
    return make


def force_kwargs(**forced):
    """Call with these keyword arguments whatever the caller asked for."""
    def make(f):
        @functools.wraps(f)
        def g(*args, **kwargs):
            return f(*args, **{**kwargs, **forced})
        return g
    return make


def scale_kwarg(name: str, factor: float, default: float):
    """Keyword argument ``name`` (``default`` when not given) times ``factor``."""
    def make(f):
        @functools.wraps(f)
        def g(*args, **kwargs):
            return f(*args, **{**kwargs, name: kwargs.get(name, default) * factor})
        return g
    return make


def scale_grads(factor: float, only: str | None = None):
    """A backward whose gradients (or only the one named ``only``) are times ``factor``."""
    def make(f):
        @functools.wraps(f)
        def g(*args, **kwargs):
            grads = f(*args, **kwargs)
            if isinstance(grads, tuple):                  # (loss, grads) from loss_and_grads
                return (grads[0], _scaled(grads[1], factor, only), *grads[2:])
            return _scaled(grads, factor, only)
        return g
    return make


def _scaled(grads, factor, only):
    if only is None:
        return _map_arrays(grads, lambda a: a * factor)
    return {k: (_map_arrays(v, lambda a: a * factor) if k == only else v)
            for k, v in grads.items()}


def _p(target, make, why):
    return Perturbation(target, make, why)


#: name -> perturbation.  Names say what is wrong.
PERTURBATIONS: dict[str, Perturbation] = {}


def register(name: str, target: str, make, why: str) -> None:
    if name in PERTURBATIONS:
        raise ValueError(f"perturbation {name!r} registered twice")
    PERTURBATIONS[name] = _p(target, make, why)


#: claim test node id -> the perturbations (or ``value:<claim id>``) it must fail against
KILLED_BY: dict[str, list] = {}
