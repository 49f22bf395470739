"""The pytest plugin of llm-reference-spec (entry point ``pytest11: llmref``).

It is the one place that registers the suite's options, markers and hypothesis profiles, and
it stays inert unless asked: in a project that merely has the package installed, pytest
behaves exactly as before (no output, no files, no profiles, nothing deselected, and nothing
but NumPy imported).  It is asked when the run collects the suite, by module name or by path::

    pytest --pyargs llmref.spec --llmspec-impl=mynet      # from any folder
    python -m pytest                                        # in the repository (testpaths)

or when ``--llmspec-impl`` is given.  Then, for the items under ``llmref.spec`` only: the test
modules are imported under their package name (``llmref.spec.test_softmax``, never a second
name), slow and parity tests are left out unless ``-m`` asks for them, hypothesis profiles
are loaded (its example database in the user cache folder), unimplemented functions skip,
and a summary per section and a status file close the run.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

SPEC_DIR = Path(__file__).resolve().parent
PACKAGE = __name__.rpartition(".")[0]                    # "llmref.spec"
LESSONS = ("000", "001", "002", "003", "004")
DEFAULT_MARKEXPR = "not slow and not parity"
MARKERS = (
    "slow: heavier checks left out of the default run (run them with -m slow)",
    "parity: checks against transformers, tokenizers and safetensors (run with -m parity)",
    "claim(id): the test decides the lesson claim with this id in llmref/spec/claims.yaml",
    "contract: the input-contract tier (which exception, which argument named); graded for "
    "the reference by default and for your implementation with --llmspec-contract",
    "reference_only: checks the reference's own wording or tooling; skipped for other "
    "implementations (set on every test that asserts pytest.raises)",
    "component(name, ...): the components the test grades, where its source cannot tell "
    "(see llmref.spec.harness.components)",
) + tuple(f"lesson_{n}: tests of lesson {n}'s claims" for n in LESSONS)


def pytest_addoption(parser):
    group = parser.getgroup("llmref", "llm-reference-spec (active only when the suite runs)")
    group.addoption("--llmspec-impl", metavar="MODULE", default=None,
                    help="importable module to test instead of the reference (also "
                         "$LLMSPEC_IMPL); giving it activates the plugin")
    group.addoption("--llmspec-status", metavar="PATH", default=None,
                    help="write the run's status file here (also $LLMSPEC_STATUS); default: "
                         "the user cache folder")
    group.addoption("--llmspec-profile", metavar="NAME", default=None,
                    choices=("dev", "ci", "thorough", "catch"),
                    help="hypothesis profile: dev (default), ci, thorough (also "
                         "$LLMSPEC_PROFILE; --hypothesis-profile works too)")
    group.addoption("--llmspec-contract", action="store_true", default=False,
                    help="also grade the input contract of an implementation other than the "
                         "reference (exception types and argument names)")
    group.addoption("--llmspec-component", metavar="NAMES", action="append", default=[],
                    help="run only the tests of these components (comma-separated, "
                         "repeatable), e.g. softmax,linear: each test belongs to the "
                         "component it grades that the lessons teach last")
    parser.addini("llmspec_docs_status", default="",
                  help="where complete runs against the reference write the status file the "
                       "docs site is built from (relative to the ini file; repository only)")


def in_spec(path) -> bool:
    """Whether ``path`` is the suite's folder or inside it."""
    try:
        p = Path(path).resolve()
    except (OSError, ValueError):
        return False
    return p == SPEC_DIR or SPEC_DIR in p.parents


def _asked(config) -> bool:
    if config.getoption("--llmspec-impl"):
        return True
    for arg in config.args:
        target = str(arg).split("::")[0]
        if target == PACKAGE or target.startswith(PACKAGE + "."):
            return True
        if in_spec(Path(config.invocation_params.dir, target)):
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config._llmspec_active = _asked(config)
    if not config._llmspec_active:
        return
    from llmref.spec import session  # hypothesis, yaml: only now
    session.configure(config)


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path, parent):
    if getattr(parent.config, "_llmspec_active", False) and in_spec(path) \
            and (path / "__init__.py").is_file():
        return SpecPackage.from_parent(parent, path=path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path, parent):
    if getattr(parent.config, "_llmspec_active", False) and in_spec(module_path):
        return SpecModule.from_parent(parent, path=module_path)
    return None


def module_name(path: Path) -> str:
    """``.../spec_tests/test_softmax.py`` -> ``llmref.spec.test_softmax``."""
    parts = Path(path).resolve().relative_to(SPEC_DIR).with_suffix("").parts
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def _import(path: Path):
    """Import a file of the suite by its package name (pytest would otherwise name it after
    the folder, ``spec_tests.test_softmax``, and put the repository on ``sys.path``)."""
    try:
        return importlib.import_module(module_name(path))
    except SyntaxError as exc:
        raise pytest.Collector.CollectError(
            f"syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}") from exc
    except ImportError as exc:
        raise pytest.Collector.CollectError(
            f"cannot import {module_name(path)}: {exc}") from exc


class SpecPackage(pytest.Package):
    def setup(self) -> None:
        _import(self.path / "__init__.py")


class SpecModule(pytest.Module):
    def _getobj(self):
        return _import(self.path)


def foreign_modules() -> list:
    """Modules whose file lies in one of our folders but whose name is not under ``llmref``
    (a file imported under two names), plus any bare ``reference``, ``spec_tests``,
    ``examples`` or ``cli`` module of ours."""
    import llmref
    ours = [Path(p).resolve() for p in llmref.__path__]
    ours += [SPEC_DIR]
    ours += [Path(m.__file__).resolve().parent for name in ("llmref.examples", "llmref.cli")
             if (m := sys.modules.get(name)) is not None and m.__file__]
    found = []
    for name, module in list(sys.modules.items()):
        if name == "llmref" or name.startswith("llmref."):
            continue
        file = getattr(module, "__file__", None)
        if not file:
            continue
        try:
            path = Path(file).resolve()
        except (OSError, ValueError):
            continue
        if any(path == d or d in path.parents for d in ours):
            found.append(name)
    return sorted(found)


def status_dir() -> Path:
    """The user cache folder for run-time files (status, hypothesis examples)."""
    override = os.environ.get("LLMSPEC_CACHE")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir
    return Path(user_cache_dir("llmref", appauthor=False))
