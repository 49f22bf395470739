"""Choosing and reaching the implementation under test.

The implementation is a Python module or package named on the command line
(``pytest --llmspec-impl=my_package``) or in the environment variable ``LLMSPEC_IMPL``; the
default is ``llmref``, the reference.  It must offer the same components as ``llmref``: a
component ``softmax`` is found as an attribute of the top module (a submodule or any object
with ``forward``/``backward``), as the submodule ``<impl>.softmax``, or in a stage folder as
``llmref`` has them, ``<impl>.layers.softmax`` (the layout ``llmspec exercises`` writes).

A function the implementation does not have, or one whose body raises
``NotImplementedError``, makes the test that needs it skip with ``not implemented: <name>``
instead of failing, so a learner can work through the components one at a time.

Every call of a function reached this way is recorded (:attr:`Implementation.calls`): the
suite checks its map of which test grades which component against it, and the report names
the function a failure came from. It also
lets the suite check that a claim test computed what it judges from the implementation under
test.
"""

from __future__ import annotations

import functools
import importlib
import os
import traceback
from pathlib import Path

import pytest

ENV_VAR = "LLMSPEC_IMPL"
DEFAULT = "llmref"
#: module names the mutation runners give a mutated copy of the reference
MUTANT_PREFIX = "_llmspec_mutant_"
NOT_IMPLEMENTED = "not implemented: "
#: attribute set on an exception that left a function of the implementation
RAISED_IN = "_llmspec_raised_in"


def public_members(module) -> dict:
    """``{name: object}`` for the public functions and classes a module defines itself.

    Names starting with ``_`` are private; so are the copies a mutation tool adds next to
    each function it mutates (mutmut's ``x_forward__mutmut_3``), which are not part of the
    module's interface (``python -m llmref.spec.mutants.run_mutmut`` runs the suite on them).
    """
    import inspect
    import re

    return {name: obj for name, obj in vars(module).items()
            if not name.startswith("_") and not re.match(r"x_\w*__mutmut_", name)
            and getattr(obj, "__module__", None) == module.__name__
            and (inspect.isfunction(obj) or inspect.isclass(obj))}


def chosen_name(option_value: str | None) -> str:
    """The module name from ``--llmspec-impl``, else ``$LLMSPEC_IMPL``, else ``llmref``."""
    return option_value or os.environ.get(ENV_VAR) or DEFAULT


def where(exc: BaseException, package: str | None = None) -> str:
    """``file:line`` of the place an exception points at: a syntax error's own position,
    else the innermost frame in ``package``'s files (or the innermost frame at all)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    if package:
        root = package.split(".")[0]
        ours = [f for f in frames if f"/{root}/" in f.filename.replace(os.sep, "/")
                or Path(f.filename).stem == root]
        frames = ours or frames
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def describe_import_error(name: str, exc: BaseException) -> str:
    """One sentence for a module that failed to import: what, where, why."""
    if isinstance(exc, SyntaxError):
        return (f"cannot import {name}: syntax error at {where(exc)}: {exc.msg}")
    return (f"cannot import {name}: {type(exc).__name__} at {where(exc, name)}: {exc}")


class ImplementationError(Exception):
    """A module of the implementation under test cannot be imported (the tests that need it
    fail with this one sentence instead of a traceback into the import system)."""


class Implementation:
    """The module under test; call it with a dotted name to get a function from it."""

    def __init__(self, name: str):
        self.name = name
        #: dotted names of the functions called since the last :meth:`reset_calls`
        self.calls: set = set()
        try:
            self.module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and not (name == exc.name or name.startswith(exc.name + ".")):
                raise pytest.UsageError(
                    f"--llmspec-impl / {ENV_VAR}: {describe_import_error(name, exc)}") from None
            raise pytest.UsageError(
                f"--llmspec-impl / {ENV_VAR}: there is no module {name!r} to import. "
                "Give an importable module name (run from the folder that contains it, "
                "or install it).") from None
        except Exception as exc:       # noqa: BLE001  (any error in the user's package)
            raise pytest.UsageError(
                f"--llmspec-impl / {ENV_VAR}: {describe_import_error(name, exc)}") from None

    @property
    def is_reference(self) -> bool:
        return self.name == DEFAULT

    @property
    def speaks_as_reference(self) -> bool:
        """The reference, or the reference with one mutation (``llmref.spec.mutants``): its
        own wording, contracts and tooling are graded (``reference_only`` tests, the
        contract tier), though it writes no status file or artefacts for the docs."""
        return self.is_reference or self.name.startswith(MUTANT_PREFIX)

    def reset_calls(self) -> None:
        self.calls = set()

    def _import(self, dotted: str):
        try:
            return importlib.import_module(dotted)
        except ModuleNotFoundError as exc:
            if exc.name and (dotted == exc.name or dotted.startswith(exc.name + ".")):
                return None                       # not there: not written yet
            raise ImplementationError(describe_import_error(dotted, exc)) from None
        except Exception as exc:       # noqa: BLE001
            raise ImplementationError(describe_import_error(dotted, exc)) from None

    @property
    def lib(self) -> Library:
        """The implementation as a module-like object, ``impl.lib.softmax.forward(x)``, for
        code written against a module of components (the examples take one as ``lib``)."""
        return Library(self)

    def _component(self, component: str):
        found = getattr(self.module, component, None)
        if found is not None:
            return found
        found = self._import(f"{self.name}.{component}")
        if found is not None:
            return found
        from llmref.spec.harness.components import stage_of
        stage = stage_of(component) if "." not in component else None
        if stage and stage != "helpers" and getattr(self.module, "__path__", None):
            return self._import(f"{self.name}.{stage}.{component}")
        return None

    def _missing(self, dotted: str, exc: NotImplementedError) -> str:
        """The function that raised NotImplementedError: ``dotted`` itself, or one of the
        implementation's own functions it called (``linear.forward`` inside ``gpt``)."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            module = tb.tb_frame.f_globals.get("__name__", "")
            if module.startswith(self.name + ".") and not self.is_reference:
                inner = f"{module.rpartition('.')[2]}.{tb.tb_frame.f_code.co_name}"
                if inner != dotted:
                    return f"{inner} (called by {dotted})"
        return dotted

    def __call__(self, dotted: str):
        """``impl("softmax.forward")``: the function, wrapped so that NotImplementedError skips."""
        component, _, function = dotted.rpartition(".")
        owner = self._component(component) if component else self.module
        fn = getattr(owner, function, None) if owner is not None else None
        if not callable(fn):
            pytest.skip(NOT_IMPLEMENTED + dotted)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            self.calls.add(dotted)
            try:
                return fn(*args, **kwargs)
            except NotImplementedError as exc:
                pytest.skip(NOT_IMPLEMENTED + self._missing(dotted, exc))
            except Exception as exc:
                if getattr(exc, RAISED_IN, None) is None:
                    try:
                        setattr(exc, RAISED_IN, dotted)
                    except (AttributeError, TypeError):
                        pass
                raise

        return call


class Library:
    """``lib.softmax.forward``: attribute access that goes through :class:`Implementation`
    (so missing functions skip and calls are recorded)."""

    def __init__(self, impl: Implementation):
        self._impl = impl

    def __getattr__(self, component: str) -> _Component:
        if component.startswith("__"):
            raise AttributeError(component)
        return _Component(self._impl, component)


class _Component:
    def __init__(self, impl: Implementation, name: str):
        self._impl, self._name = impl, name

    def __getattr__(self, function: str):
        if function.startswith("__"):
            raise AttributeError(function)
        return self._impl(f"{self._name}.{function}")
