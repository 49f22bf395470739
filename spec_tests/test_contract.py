"""The input-contract tier: every public function of the reference, discovered (not listed),
is called with its declared valid example, then with every kind of bad variant of every
argument (:data:`llmref._contract.VARIANTS`); each must raise the catalogue's exception type
with a message that names the function and the argument.  NumPy scalars must be accepted
where Python ones are, and a valid call must leave the caller's arrays unchanged.

The exact wording of the reference's messages is its own test (``test_bad_input.py``); this
tier checks only the exception type and the names.  It runs by default against the reference
and, for another implementation, with ``--llmspec-contract``.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmref
from llmref._contract import ACCEPTED, VARIANTS, kind_of
from llmref.spec.harness.impl import public_members

pytestmark = pytest.mark.contract


def public_functions() -> list:
    """``(component, name, object)`` for every public function and class of every component
    module, in teaching order."""
    found = []
    for component in llmref.__all__:
        module = getattr(llmref, component)
        found += [(component, name, obj) for name, obj in public_members(module).items()]
    return found


FUNCTIONS = public_functions()
EXCEPTIONS = {"TypeError": TypeError, "ValueError": ValueError}


def bad_value(value, variant: str, index: int):
    """The bad (or, for :data:`ACCEPTED`, equivalent) variant ``variant`` of ``value``."""
    if variant == "none":
        return None
    if isinstance(value, np.ndarray):
        i = index % max(value.size, 1)
        if variant in ("nan", "inf"):
            out = value.astype(np.float64 if value.dtype.itemsize > 4 else value.dtype)
            out.flat[i] = np.nan if variant == "nan" else np.inf
            return out
        if variant in ("negative", "too_large"):
            out = value.copy()
            out.flat[i] = -1 if variant == "negative" else np.iinfo(value.dtype).max
            return out
        return {"int_dtype": lambda: value.astype(np.int64),
                "bool_dtype": lambda: value > 0,
                "float_dtype": lambda: value.astype(np.float64),
                "list": value.tolist,
                "empty": lambda: np.zeros((0, *value.shape[1:]), dtype=value.dtype),
                "rank_up": lambda: value[None],
                "rank_down": lambda: value[0] if value.ndim else value}[variant]()
    if isinstance(value, dict):
        keys = list(value)
        if variant == "missing_key":
            return {k: v for k, v in value.items() if k != keys[0]} if keys else value
        if variant == "extra_key":
            return {**value, "not_a_key": next(iter(value.values()), 0.0)}
        if variant == "list":
            return list(value.values())
    return {"negative": lambda: -abs(value) - 1 if isinstance(value, (int, np.integer))
            else -abs(float(value)) - 1.0,
            "zero": lambda: 0, "huge": lambda: 2**70, "float": lambda: 1.5, "bool": lambda: True,
            "str": lambda: "2", "int": lambda: 1 if isinstance(value, (bool, np.bool_)) else 3,
            "nan": lambda: float("nan"), "inf": lambda: float("inf"),
            "empty": lambda: type(value)(),
            "np_int": lambda: np.int64(value), "np_float": lambda: np.float64(value),
            "int_dtype": lambda: np.int64,
            }[variant]()


def _snapshot(kwargs: dict) -> dict:
    return {k: copy.deepcopy(v) for k, v in kwargs.items()
            if isinstance(v, (np.ndarray, dict, list))}


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype \
            and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


def _names_it(message: str, label: str, argument: str, exact: bool = False) -> bool:
    """Whether the message names the function (or class) and the argument; ``exact``: in
    the reference's own form, starting with ``"<function>: "`` (``"<component>.<class>: "``
    or ``"<class>: "`` for a class), as ``test_bad_input.py`` requires of the cases it lists,
    here for every argument and variant."""
    named = (message.split(": ", 1)[0].split(".")[-1] == label.split(".")[-1]
             and label in message.split(": ", 1)[0]) if exact else label in message
    return named and (f"'{argument}'" in message or f"{argument}[" in message)


@pytest.fixture(scope="module")
def graded(impl, request):
    if not impl.speaks_as_reference and not request.config.getoption("--llmspec-contract"):
        pytest.skip("the input contract is graded for your implementation with "
                    "--llmspec-contract (llmspec check --contract)")
    return impl


CASES = [pytest.param(c, n, o, id=f"{c}.{n}") for c, n, o in FUNCTIONS]


@pytest.mark.parametrize("component,name,obj", CASES)
@settings(max_examples=2)
@given(seed=st.integers(0, 2**16), index=st.integers(0, 2**10))
def test_input_contract(graded, component, name, obj, seed, index):
    """Each bad variant of each argument raises the declared exception type naming the
    function and the argument; NumPy scalars are accepted; valid calls modify nothing."""
    declared = getattr(obj, "__contract__", None)
    assert declared is not None, (
        f"{component}.{name} declares no input contract: decorate it with "
        f"llmref._contract.contract(example=...)")
    fn = graded(f"{component}.{name}")
    label = name if inspect.isclass(obj) else f"{component}.{name}"
    example = declared.example(np.random.default_rng(seed))
    before = _snapshot(example)
    fn(**example)
    problems = [f"a valid call changed the caller's argument {k!r}"
                for k, v in before.items() if k not in declared.mutates and not
                _same(v, example[k])]
    for argument, value in declared.example(np.random.default_rng(seed)).items():
        kind = kind_of(value)
        if argument in declared.opaque or kind is None:
            continue
        for variant, (error_name, meaning) in VARIANTS[kind].items():
            if declared.allows(argument, variant):
                continue
            call = declared.example(np.random.default_rng(seed))
            bad = bad_value(call[argument], variant, index)
            if bad is call[argument]:
                continue
            call[argument] = bad
            try:
                fn(**call)
            except (TypeError, ValueError) as exc:
                if not isinstance(exc, EXCEPTIONS[error_name]):
                    problems.append(f"{argument} = {meaning} ({variant}): raised "
                                    f"{type(exc).__name__}, expected {error_name}: {exc}")
                elif not _names_it(str(exc), label, argument, graded.speaks_as_reference):
                    problems.append(f"{argument} = {meaning} ({variant}): the message does "
                                    f"not name {label} and {argument!r}: {exc}")
            except Exception as exc:            # noqa: BLE001  (any other error is a finding)
                problems.append(f"{argument} = {meaning} ({variant}): raised "
                                f"{type(exc).__name__}, expected {error_name}: {exc}")
            else:
                problems.append(f"{argument} = {meaning} ({variant}): accepted, expected "
                                f"{error_name}")
        for variant in ACCEPTED.get(kind, ()):
            if declared.allows(argument, variant):
                continue
            call = declared.example(np.random.default_rng(seed))
            call[argument] = bad_value(call[argument], variant, index)
            try:
                fn(**call)
            except Exception as exc:            # noqa: BLE001
                problems.append(f"{argument} as {variant}: rejected ({type(exc).__name__}: "
                                f"{exc}); NumPy scalars must be accepted where Python ones are")
    assert not problems, f"{label}:\n  " + "\n  ".join(problems)


def _finite(value, depth: int = 0) -> bool:
    """Whether every float in a returned value (arrays, numbers, dicts, lists, tuples and
    dataclasses such as a Cost, a few levels deep) is finite."""
    import dataclasses

    if depth > 6:
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind != "f" or bool(np.isfinite(value).all())
    if isinstance(value, (float, np.floating)):
        return bool(np.isfinite(value))
    if isinstance(value, dict):
        return all(_finite(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v, depth + 1) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(_finite(getattr(value, f.name), depth + 1)
                   for f in dataclasses.fields(value))
    return True


@pytest.mark.parametrize("component,name,obj",
                         [c for c in CASES if any(kind_of(v) == "float" for v in (
                             getattr(c.values[2], "__contract__", None) and
                             c.values[2].__contract__.example(np.random.default_rng(0))
                             or {}).values())])
def test_a_huge_finite_number_is_refused_or_gives_a_finite_result(graded, component, name,
                                                                     obj):
    """1e308 for each float argument either raises TypeError/ValueError naming the function
    and the argument, or gives a result without a RuntimeWarning and without NaN or inf:
    never an overflow passed on silently (issue 14)."""
    import warnings

    declared = obj.__contract__
    fn = graded(f"{component}.{name}")
    label = name if inspect.isclass(obj) else f"{component}.{name}"
    problems = []
    for argument, value in declared.example(np.random.default_rng(0)).items():
        if kind_of(value) != "float" or argument in declared.opaque:
            continue
        call = declared.example(np.random.default_rng(0))
        call[argument] = 1e308
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                out = fn(**call)
            except (TypeError, ValueError) as exc:
                if not _names_it(str(exc), label, argument, graded.speaks_as_reference):
                    problems.append(f"{argument} = 1e308: the message does not name {label} "
                                    f"and {argument!r}: {exc}")
                continue
            except Exception as exc:            # noqa: BLE001  (a RuntimeWarning included)
                problems.append(f"{argument} = 1e308: raised {type(exc).__name__}: {exc}")
                continue
        if not _finite(out):
            problems.append(f"{argument} = 1e308: accepted, and the result holds NaN or inf")
    assert not problems, f"{label}:\n  " + "\n  ".join(problems)


def _shown(value) -> str:
    """A default as a docstring states it: ``repr`` of a number, string, tuple, bool or None;
    the name of a dtype or a function (``float64``, ``print``)."""
    if isinstance(value, (type, np.dtype)) or (callable(value) and not isinstance(
            value, (bool, int, float, str, tuple))):
        return getattr(value, "__name__", str(value))
    return repr(value)


@pytest.mark.reference_only
@pytest.mark.parametrize("component,name,obj", [c for c in CASES
                                                if inspect.isfunction(c.values[2])])
def test_the_docstring_states_every_default(impl, component, name, obj):
    """A parameter with a default says so in its numpy-style docstring entry
    (``eps : float, default 1e-05``), and the value stated is the one the function uses: the
    docstring is what a reader (and the docs site) takes the default from.  Entries shared
    by several parameters (``a, b : ndarray, optional``) only need ``optional``."""
    import re

    obj = inspect.unwrap(impl(f"{component}.{name}"))
    doc = inspect.getdoc(obj) or ""
    if "\nParameters\n---" not in doc:
        pytest.skip(f"{component}.{name} has a prose docstring")
    problems = []
    for p in inspect.signature(obj).parameters.values():
        if p.default is inspect.Parameter.empty or p.name.startswith("_"):
            continue
        line = re.search(rf"^{p.name} : (.*)$", doc, re.M)
        shared = re.search(rf"^(\w+, )*{p.name}(, \w+)* : .*optional$", doc, re.M)
        if line is None:
            if shared is None:
                problems.append(f"{p.name}: no docstring entry states its default")
            continue
        stated = re.search(r", default (.+)$", line.group(1))
        if stated is None:
            problems.append(f"{p.name}: the entry {line.group(0)!r} does not state the default "
                            f"({_shown(p.default)})")
        elif stated.group(1) != _shown(p.default):
            problems.append(f"{p.name}: the docstring states default {stated.group(1)}, the "
                            f"function uses {_shown(p.default)}")
    assert not problems, f"{component}.{name}:\n  " + "\n  ".join(problems)


def _documented_default(doc: str, parameter: str):
    """``(found, value)``: the default a numpy docstring states for ``parameter``
    (``eps : float, default 1e-05``) as a value: a literal, or a NumPy dtype or function
    named by ``_shown``."""
    import ast
    import re

    line = re.search(rf"^{parameter} : .*, default (.+)$", doc, re.M)
    if line is None:
        return False, None
    text = line.group(1)
    try:
        return True, ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return (True, getattr(np, text)) if hasattr(np, text) else (False, None)


def _alike(a, b, depth: int = 0) -> bool:
    """Two results hold the same values: arrays (dtype, shape, entries), numbers, strings,
    containers and the fields of plain objects, a few levels deep (caches and other opaque
    parts are compared as far as they are made of these)."""
    import dataclasses

    if depth > 6:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _alike(a[k], b[k], depth + 1) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(
            _alike(x, y, depth + 1) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            _alike(getattr(a, f.name), getattr(b, f.name), depth + 1)
            for f in dataclasses.fields(a))
    if isinstance(a, (bool, int, float, str, complex, np.generic, type(None))):
        return type(a) is type(b) and (a == b or (a != a and b != b))
    if callable(a) or not hasattr(a, "__dict__"):
        return True                             # a function or token: not compared
    return type(a) is type(b) and _alike(vars(a), vars(b), depth + 1)


@pytest.mark.parametrize("component,name,obj", [c for c in CASES
                                                if inspect.isfunction(c.values[2])])
def test_an_omitted_argument_acts_as_its_documented_default(graded, component, name, obj):
    """Leaving out an argument gives what passing the default the docstring states gives
    (the contract's example call, with and without each such argument): a function whose
    signature default differs from its documentation fails here."""
    declared = getattr(obj, "__contract__", None)
    doc = inspect.getdoc(inspect.unwrap(obj)) or ""
    fn = graded(f"{component}.{name}")
    problems = []
    for p in inspect.signature(obj).parameters.values():
        if p.default is inspect.Parameter.empty or p.name.startswith("_"):
            continue
        found, value = _documented_default(doc, p.name)
        if not found:
            continue
        given = declared.example(np.random.default_rng(3))
        given[p.name] = value
        omitted = declared.example(np.random.default_rng(3))
        omitted.pop(p.name, None)
        if not _alike(_outcome(fn, given), _outcome(fn, omitted)):
            problems.append(f"{p.name}: leaving it out does not give what {p.name}={value!r} "
                            f"(the documented default) gives")
    assert not problems, f"{component}.{name}:\n  " + "\n  ".join(problems)


def _outcome(fn, call: dict):
    """What a call gives: its result, or the type and message of the error it raises (an
    argument whose default only works with another's).  A file the call writes (the
    example's ``path`` of a function with ``overwrite``) is removed first and after."""
    import os

    writes = "overwrite" in inspect.signature(fn).parameters
    path = call.get("path") if writes else None
    if isinstance(path, (str, os.PathLike)) and os.path.exists(path):
        os.remove(path)
    try:
        return fn(**call)
    except (TypeError, ValueError) as exc:
        return (type(exc).__name__, str(exc))
    finally:
        if isinstance(path, (str, os.PathLike)) and os.path.exists(path):
            os.remove(path)
