"""Turning a catalogue entry into an implementation that ``--llmspec-impl`` can load.

A *patch* mutant names a component (its flat name, ``"softmax"``) and one or more exact text
edits of that component's source file.  :func:`install` reads the reference module's source,
checks that every ``find`` text occurs exactly as often as the entry says (once by default),
applies the edits, executes the result as a fresh module object and registers a top-level
implementation module in ``sys.modules`` that offers every reference component with the
mutated one in its place.  Only the mutated component changes: other reference modules keep
calling the original (a mutant of ``softmax`` is caught by the softmax tests, not by the
attention tests that use softmax internally).

A *module* mutant is an importable module written by hand (``llmref.spec.mutants.gelu_is_tanh``)
and is used as it is.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

from llmref.spec.harness.impl import DEFAULT, MUTANT_PREFIX

PREFIX = MUTANT_PREFIX


class StaleMutant(Exception):
    """The reference changed under a catalogue entry: a text to find is not there (or is
    there a different number of times), so the entry must be updated."""


def reference_module(component: str) -> types.ModuleType:
    """The reference's module for a flat component name (``llmref.layers.softmax``)."""
    package = importlib.import_module(DEFAULT)
    module = getattr(package, component, None)
    if not isinstance(module, types.ModuleType):
        module = importlib.import_module(f"{DEFAULT}.{component}")
    return module


def mutated_source(name: str, mutant) -> str:
    """The component's source with the mutant's edits applied; raises :class:`StaleMutant`
    if an edit does not find its text the expected number of times."""
    module = reference_module(mutant.component)
    source = Path(module.__file__).read_text()
    for edit in mutant.edits:
        find, replace = edit[0], edit[1]
        count = edit[2] if len(edit) > 2 else 1
        found = source.count(find)
        if found != count:
            raise StaleMutant(f"mutant {name}: {module.__name__} contains {find!r} {found} "
                              f"time(s), expected {count}")
        source = source.replace(find, replace)
    return source


def install(name: str, mutant) -> str:
    """Build the mutant's implementation; returns the module name for ``--llmspec-impl``."""
    if mutant.module is not None:
        return mutant.module
    impl_name = PREFIX + name
    if impl_name in sys.modules:
        return impl_name
    original = reference_module(mutant.component)
    source = mutated_source(name, mutant)
    mutated = types.ModuleType(original.__name__, original.__doc__)
    mutated.__file__ = original.__file__
    mutated.__package__ = original.__package__
    exec(compile(source, f"<mutant {name} of {original.__file__}>", "exec"), mutated.__dict__)
    _keep_unchanged_classes(mutated, original, source)
    package = importlib.import_module(DEFAULT)
    impl = types.ModuleType(impl_name, f"the reference with mutant {name}")
    impl.__dict__.update({k: v for k, v in vars(package).items() if not k.startswith("__")})
    setattr(impl, mutant.component, mutated)
    sys.modules[impl_name] = impl
    return impl_name


def _keep_unchanged_classes(mutated, original, source: str) -> None:
    """Re-executing a module defines its classes anew, so an ``isinstance`` check inside the
    mutant (``gpt``'s ``GPTConfig``) would refuse the instances the tests build from the
    reference's class and the mutant would be "caught" by a TypeError, not by its bug.  Every
    class whose source the edits left unchanged is therefore the reference's own class."""
    import ast

    def classes(text):
        return {node.name: ast.get_source_segment(text, node)
                for node in ast.parse(text).body if isinstance(node, ast.ClassDef)}

    before = classes(Path(original.__file__).read_text())
    for cls, text in classes(source).items():
        if before.get(cls) == text and isinstance(getattr(original, cls, None), type):
            mutated.__dict__[cls] = getattr(original, cls)


TESTS = Path(__file__).resolve().parents[1]          # spec_tests/: node ids are relative to it


def problems() -> list:
    """Every catalogue entry that no longer fits the code, as sentences: an edit whose text is
    not found as often as it says, a named test file or test function that does not exist."""
    import ast

    from llmref.spec.mutants import CATALOGUE

    out = []
    functions = {}
    for name, mutant in CATALOGUE.items():
        if mutant.module is None:
            try:
                mutated_source(name, mutant)
            except StaleMutant as exc:
                out.append(str(exc))
        path, _, test = mutant.test.partition("::")
        file = TESTS / path
        if not file.exists():
            out.append(f"mutant {name}: test file {path} does not exist")
            continue
        if file not in functions:
            functions[file] = {n.name for n in ast.parse(file.read_text()).body
                               if isinstance(n, ast.FunctionDef)}
        if test.split("[")[0] not in functions[file]:
            out.append(f"mutant {name}: {path} has no test function {test.split('[')[0]}")
    return out
