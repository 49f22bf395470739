"""Choosing and reaching the implementation under test.

The implementation is a Python module or package named on the command line
(``pytest --llmspec-impl=my_package``) or in the environment variable ``LLMSPEC_IMPL``; the
default is ``llmref``, the reference.  It must offer the same components as ``llmref``: a
component ``softmax`` is found either as an attribute of the top module (a submodule or any
object with ``forward``/``backward``) or as the submodule ``<impl>.softmax``.

A function the implementation does not have, or one whose body raises
``NotImplementedError``, makes the test that needs it skip with ``not implemented: <name>``
instead of failing, so a learner can work through the components one at a time.

Every call of a function reached this way is recorded (:attr:`Implementation.calls`), so the
suite can check that a claim test computed what it judges from the implementation under test.
"""

from __future__ import annotations

import functools
import importlib
import os

import pytest

ENV_VAR = "LLMSPEC_IMPL"
DEFAULT = "llmref"
NOT_IMPLEMENTED = "not implemented: "


def chosen_name(option_value: str | None) -> str:
    """The module name from ``--llmspec-impl``, else ``$LLMSPEC_IMPL``, else ``llmref``."""
    return option_value or os.environ.get(ENV_VAR) or DEFAULT


class Implementation:
    """The module under test; call it with a dotted name to get a function from it."""

    def __init__(self, name: str):
        self.name = name
        #: dotted names of the functions called since the last :meth:`reset_calls`
        self.calls: set = set()
        try:
            self.module = importlib.import_module(name)
        except ImportError as exc:
            raise pytest.UsageError(
                f"--llmspec-impl / {ENV_VAR}: cannot import the implementation module "
                f"{name!r}: {exc}. "
                "Give an importable module name (run pytest from the folder that contains it, "
                "or install it)."
            ) from exc

    @property
    def is_reference(self) -> bool:
        return self.name == DEFAULT

    def reset_calls(self) -> None:
        self.calls = set()

    @property
    def lib(self) -> Library:
        """The implementation as a module-like object, ``impl.lib.softmax.forward(x)``, for
        code written against a module of components (the examples take one as ``lib``)."""
        return Library(self)

    def _component(self, component: str):
        found = getattr(self.module, component, None)
        if found is not None:
            return found
        try:
            return importlib.import_module(f"{self.name}.{component}")
        except ModuleNotFoundError as exc:
            if exc.name not in (f"{self.name}.{component}", self.name):
                raise
            return None

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
            except NotImplementedError:
                pytest.skip(NOT_IMPLEMENTED + dotted)

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
