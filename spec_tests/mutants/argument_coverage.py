"""Which arguments of the reference's public functions the suite ever sets to a non-default
value: a pytest plugin, run outside the default suite.

    python -m pytest -p llmref.spec.mutants.argument_coverage -n 0 -m "" -q

wraps every public function of every reference module (and the ``__post_init__`` of its
dataclasses, for their fields) before the tests run, records each call's arguments, and at
the end writes ``.llmspec/argument_coverage.md``: the functions no test calls, and for every
argument with a default value whether some test gave it another value.  An argument only
ever seen at its default is an option whose effect no test could notice.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import types
from collections import defaultdict
from pathlib import Path

from llmref.spec.harness.impl import DEFAULT

CALLS: dict = defaultdict(int)
NON_DEFAULT: dict = defaultdict(set)
SIGNATURES: dict = {}


def _differs(value, default) -> bool:
    if value is default:
        return False
    try:
        return bool(type(value) is not type(default) or value != default)
    except (TypeError, ValueError):            # arrays and other values without a truth
        return True


def _wrap(qualname: str, fn):
    signature = inspect.signature(fn)
    SIGNATURES[qualname] = signature

    @functools.wraps(fn)
    def recorded(*args, **kwargs):
        CALLS[qualname] += 1
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return fn(*args, **kwargs)
        for name, value in bound.arguments.items():
            default = signature.parameters[name].default
            if default is not inspect.Parameter.empty and _differs(value, default):
                NON_DEFAULT[qualname].add(name)
        return fn(*args, **kwargs)

    return recorded


def _wrap_dataclass(qualname: str, cls) -> None:
    fields = {f.name: f.default for f in dataclasses.fields(cls)
              if f.default is not dataclasses.MISSING}
    SIGNATURES[qualname] = inspect.signature(cls)
    original = getattr(cls, "__post_init__", None)

    def post_init(self):
        CALLS[qualname] += 1
        for name, default in fields.items():
            if _differs(getattr(self, name), default):
                NON_DEFAULT[qualname].add(name)
        if original is not None:
            original(self)

    cls.__post_init__ = post_init


def pytest_configure(config):
    package = importlib.import_module(DEFAULT)
    for name in package.__all__:
        module = getattr(package, name)
        for attr, value in list(vars(module).items()):
            if attr.startswith("_") or getattr(value, "__module__", None) != module.__name__:
                continue
            qualname = f"{name}.{attr}"
            if dataclasses.is_dataclass(value):
                if hasattr(value, "__post_init__"):      # its __init__ calls the wrapper
                    _wrap_dataclass(qualname, value)
            elif isinstance(value, types.FunctionType):
                setattr(module, attr, _wrap(qualname, value))


def pytest_sessionfinish(session, exitstatus):
    lines = ["# Argument coverage of the reference's public functions", "",
             "| function | calls | arguments with a default never given another value |",
             "| --- | --- | --- |"]
    uncalled, gaps = [], 0
    for qualname, signature in sorted(SIGNATURES.items()):
        optional = [p for p, v in signature.parameters.items()
                    if v.default is not inspect.Parameter.empty]
        missing = [p for p in optional if p not in NON_DEFAULT[qualname]]
        gaps += len(missing)
        if not CALLS[qualname]:
            uncalled.append(qualname)
        lines.append(f"| `{qualname}` | {CALLS[qualname]} | {', '.join(missing) or '-'} |")
    lines += ["", f"Never called: {', '.join(uncalled) or 'none'}.",
              f"Arguments never set to a non-default value: {gaps}."]
    out = Path(str(session.config.rootpath)) / ".llmspec" / "argument_coverage.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
