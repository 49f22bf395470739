"""What the plugin switches on when the suite runs: markers, hypothesis profiles, the
implementation under test, fixtures, the per-section summary and the status file.

Imported by :mod:`llmref.spec.plugin` only once the suite is asked for, so hypothesis, yaml
and torch are never imported in an unrelated project's test run.
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import re
import subprocess
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pytest

from llmref.spec import plugin

STATUS_ENV = "LLMSPEC_STATUS"
PROFILE_ENV = "LLMSPEC_PROFILE"


def _require_test_extra() -> None:
    missing = []
    for name in ("hypothesis", "yaml", "platformdirs"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise pytest.UsageError(
            f"llm-reference-spec: the suite needs {', '.join(missing)}; install the test extra "
            "(with the CPU build of torch first, see the README): "
            "pip install 'llm-reference-spec[test]'")


def _profiles(config) -> None:
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.database import DirectoryBasedExampleDatabase

    database = DirectoryBasedExampleDatabase(str(plugin.status_dir() / "hypothesis"))
    # no "explain" phase: it reruns a failing test hundreds of times to annotate the shrunk
    # example ("# or any other generated value"), most of the time a learner waits for a
    # failure report, for a note the report does not use
    phases = [p for p in Phase if p is not Phase.explain]
    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow],
                  database=database, phases=phases)
    settings.register_profile("dev", max_examples=8, **common)
    settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True,
                              **{**common, "database": None})
    settings.register_profile("thorough", max_examples=400, print_blob=True, **common)
    # used by the meta-tests: fail fast and deterministically, skip shrinking
    settings.register_profile("catch", max_examples=8, derandomize=True, database=None,
                              phases=[Phase.explicit, Phase.generate],
                              **{k: v for k, v in common.items()
                                 if k not in ("database", "phases")})
    if config.getoption("hypothesis_profile", None) is None:
        settings.load_profile(config.getoption("--llmspec-profile")
                              or os.environ.get(PROFILE_ENV) or "dev")


def configure(config) -> None:
    _require_test_extra()
    for line in plugin.MARKERS:
        config.addinivalue_line("markers", line)
    _profiles(config)
    if not config.option.markexpr:
        config.option.markexpr = plugin.DEFAULT_MARKEXPR
    from llmref.spec.harness.impl import Implementation, chosen_name
    config._llmspec_impl = Implementation(chosen_name(config.getoption("--llmspec-impl")))
    from llmref.spec import fixtures
    config.pluginmanager.register(fixtures, "llmref-fixtures")
    config.pluginmanager.register(fixtures.ClaimUse(), "llmref-claim-use")
    config.pluginmanager.register(StatusFile(config), "llmref-status")
    config.pluginmanager.register(Summary(config), "llmref-summary")


def test_id(nodeid: str) -> str:
    """A report's node id in the registry's spelling, ``spec_tests/test_x.py::name``,
    wherever the suite was collected from (checkout or site-packages)."""
    path, _, rest = nodeid.partition("::")
    return f"spec_tests/{Path(path).name}::{rest}"


def claim_ids(node) -> list:
    return [m.args[0] for m in node.iter_markers("claim")]


class Summary:
    """Marks claim tests with their lesson, maps every test to the components it grades (and
    selects by component), sorts tests into tiers, checks the map against what each test of
    the reference really calls, attaches the learner's failure details to reports, and prints
    the summary per component."""

    def __init__(self, config):
        self.config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config, items):
        from llmref.spec.harness import components
        for item in items:
            if not plugin.in_spec(getattr(item, "path", "")):
                continue
            for lesson in sorted({cid[1:4] for cid in claim_ids(item)}):
                item.add_marker(f"lesson_{lesson}")
            try:
                item._llmspec_components = components.of_item(item)
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None
            impl = getattr(config, "_llmspec_impl", None)
            if claim_ids(item) and getattr(impl, "is_reference", True):
                # the suite's self-check of the lesson map: in its own runs, not a learner's
                item._llmspec_lesson_problem = _lesson_map_problem(item)
            if item.get_closest_marker("contract") is None and _checks_errors(item):
                # a test of which error is raised (and what it says) grades the reference's
                # input contract, not the math: the learner's contract is test_contract's
                item.add_marker("contract")
                item.add_marker("reference_only")
        if not any("::" in str(arg) for arg in config.args):   # whole modules collected
            components.note_module_owners(items)
        components.save_answers()
        chosen = selected_components(config)
        if chosen is None:
            return
        keep, drop = [], []
        for item in items:
            owner = components.owner(getattr(item, "_llmspec_components", ()))
            (keep if owner in chosen else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        impl = self.config._llmspec_impl
        impl.reset_calls()
        if item.get_closest_marker("reference_only") and not impl.speaks_as_reference:
            pytest.skip("checks the reference's own error messages; your input contract is "
                        "graded by test_contract (llmspec check --contract)")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        report.user_properties.append(("claims", claim_ids(item)))
        graded = list(getattr(item, "_llmspec_components", ()))
        report.user_properties.append((report_mod().COMPONENTS, graded))
        report.user_properties.append(
            (report_mod().TIER, "contract" if item.get_closest_marker("contract") else "math"))
        figures = getattr(item, "_llmspec_figures", None)
        if figures and report.when == "call":
            report.user_properties.append(("figures", figures))
        impl = self.config._llmspec_impl
        if report.when == "call" and report.passed and impl.is_reference:
            problem = _map_problem(item, graded, impl.calls) \
                or getattr(item, "_llmspec_lesson_problem", None)
            if problem:
                report.outcome, report.longrepr = "failed", problem
        if report.failed and report.when in ("call", "setup"):
            try:
                details = report_mod().failure_details(item, call.excinfo, impl)
            except Exception as exc:          # noqa: BLE001  (never lose the failure itself)
                details = {"test": item.nodeid, "message": [f"(no details: {exc!r})"],
                           "property": None, "links": []}
            report.user_properties.append((report_mod().DETAILS, details))
        used = getattr(item, "_llmspec_used", None)
        if used and report.when == "call" and claim_ids(item):
            report.user_properties.append(("uses", used))

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        from llmref.spec.harness import components
        rows: dict = defaultdict(Counter)
        missing: Counter = Counter()
        for outcome in ("passed", "failed", "error", "skipped"):
            for report in terminalreporter.stats.get(outcome, []):
                nodeid = getattr(report, "nodeid", "")
                if not nodeid or (outcome == "passed" and report.when != "call"):
                    continue
                props = dict(getattr(report, "user_properties", ()))
                owner = components.owner(props.get(report_mod().COMPONENTS, ())) \
                    or f"({_section(nodeid)})"
                rows[owner][outcome] += 1
                if outcome == "skipped" and isinstance(report.longrepr, tuple):
                    name = report_mod().missing_function(str(report.longrepr[2]))
                    if name:
                        missing[name] += 1
        if not rows:
            return
        tr = terminalreporter
        tr.section(f"llm-reference-spec: implementation under test = "
                   f"{config._llmspec_impl.name}")
        tr.write_line(f"{'component':<24}{'passed':>8}{'failed':>8}{'skipped':>9}")
        order = {n: i for i, n in enumerate(components.names())}
        for name in sorted(rows, key=lambda n: (order.get(n, len(order)), n)):
            c = rows[name]
            tr.write_line(f"{name:<24}{c['passed']:>8}{c['failed'] + c['error']:>8}"
                          f"{c['skipped']:>9}")
        if missing:
            tr.write_line("not implemented yet (their tests were skipped): " + ", ".join(
                f"{name} ({n})" for name, n in sorted(missing.items())))


def report_mod():
    from llmref.spec import report
    return report


def selected_components(config):
    """The components ``--llmspec-component`` names (None: no selection)."""
    raw = config.getoption("--llmspec-component")
    if not raw:
        return None
    from llmref.spec.harness import components
    chosen = {n.strip() for value in raw for n in value.split(",") if n.strip()}
    unknown = sorted(chosen - set(components.names()))
    if unknown:
        raise pytest.UsageError(f"--llmspec-component: unknown component(s) {unknown}; known: "
                                f"{', '.join(components.names())}")
    return chosen


def _checks_errors(item) -> bool:
    """Whether the test's own source asserts that something raises (``pytest.raises``)."""
    from llmref.spec.harness import components
    if getattr(item, "function", None) is None:
        return False
    try:
        path = inspect.getsourcefile(item.module)
    except (TypeError, AttributeError):
        return False
    return components.raises_checked(path, getattr(item, "originalname", item.name))


def _map_problem(item, graded, calls) -> str | None:
    """A test of the reference that calls other components than the map says (the map
    decides what ``llmspec check NAME`` runs, so it must be right)."""
    from llmref.spec.harness import components
    called = {c for dotted in calls if (c := components.component_of(dotted))}
    if called <= set(graded):            # a component the map names but this run's path
        return None                      # did not reach (a cached result) is harmless
    return (f"the component map (llmref.spec.harness.components) says this test grades "
            f"{sorted(graded)}, but it called {sorted(called)} of the implementation "
            f"({sorted(calls)}).  Mark it with @pytest.mark.component(...) naming the "
            f"components it grades, or pass the component name as a string literal to impl(...)")


def _lesson_map_problem(item) -> str | None:
    """A claim test whose owner, as collected, differs from the one the static lesson map
    (``components.lessons``, which ``llmspec check --list`` and ``--lesson`` read) gives."""
    from llmref.spec.harness import components
    collected = components.owner(getattr(item, "_llmspec_components", ()))
    key = (Path(str(item.path)).name, getattr(item, "originalname", item.name))
    static = components.claim_tests().get(key, (None, ()))[0]
    if collected == static:
        return None
    return (f"the lesson map (llmref.spec.harness.components.lessons, read from the source) "
            f"gives this claim test to {static!r}, but collected it belongs to {collected!r}, "
            f"so llmspec check --list and --lesson would disagree.  Mark it with "
            f"@pytest.mark.component(...) on the function itself")


def _section(nodeid: str) -> str:
    return Path(nodeid.split("::")[0]).stem.removeprefix("test_")


def _versions() -> dict:
    import numpy
    versions = {"python": platform.python_version(), "numpy": numpy.__version__}
    try:
        import torch
        versions["torch"] = torch.__version__
    except ImportError:
        pass
    return versions


def _commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class StatusFile:
    """Collects every test's outcome and writes a status file at the end: outcome per test and
    per claim, the figures claim tests recorded, commit, date, versions.

    Where: ``--llmspec-status PATH`` (or ``$LLMSPEC_STATUS``) if given, else
    ``<user cache>/status/last-run.json``.  A complete run against the reference itself (no
    ``-k``, no file or test selection, not ``--collect-only``, not interrupted) also writes
    the docs' status file named by the ``llmspec_docs_status`` ini option (the repository sets
    it; ``status.json`` for the default markers, ``status-<markers>.json`` for ``-m ...``).
    Only the controlling process writes; xdist workers send it their reports."""

    def __init__(self, config):
        self.config = config
        self.results = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            reason = str(report.longrepr[2]) if report.skipped and \
                isinstance(report.longrepr, tuple) else ""
            props = dict(report.user_properties)
            self.results.append((test_id(report.nodeid), report.when, report.outcome,
                                 props.get("claims", []), reason, props.get("figures"),
                                 props.get("uses")))

    def _docs_status(self, exitstatus) -> Path | None:
        config = self.config
        name = config.getini("llmspec_docs_status")
        if not name or config.inipath is None or not config._llmspec_impl.is_reference:
            return None
        if config.option.collectonly or config.option.keyword or config.option.deselect \
                or config.getoption("--llmspec-component") \
                or getattr(config.option, "lf", False) \
                or exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR,
                                  pytest.ExitCode.INTERNAL_ERROR):
            return None
        if any(a not in config.getini("testpaths") for a in config.args):
            return None                           # a file or test was chosen: not complete
        path = Path(config.inipath).parent / name
        markexpr = config.option.markexpr
        if markexpr != plugin.DEFAULT_MARKEXPR:
            slug = re.sub(r"[^a-z0-9]+", "-", markexpr.lower()).strip("-")
            path = path.with_name(f"{path.stem}-{slug}{path.suffix}")
        return path

    def pytest_sessionfinish(self, session, exitstatus):
        config = self.config
        if hasattr(config, "workerinput"):
            return
        from llmref.spec.harness import registry
        tests: dict = {}
        for nodeid, when, outcome, claims, reason, figures, uses in self.results:
            entry = tests.setdefault(nodeid, {"outcome": "passed", "claims": claims})
            if outcome == "failed":
                entry["outcome"] = "failed" if when == "call" else "error"
            elif outcome == "skipped" and entry["outcome"] == "passed":
                entry["outcome"], entry["reason"] = "skipped", reason
            if figures:
                entry["figures"] = figures
            if uses:
                entry["uses"] = uses
        root = Path(str(config.rootpath))
        text = json.dumps({
            "commit": _commit(root), "date": datetime.now(timezone.utc).isoformat(),
            "implementation": config._llmspec_impl.name, "versions": _versions(),
            "exit_status": int(exitstatus), "markers": config.option.markexpr,
            "tests": tests, "claims": registry.claim_statuses(tests),
        }, indent=1, sort_keys=True)
        chosen = config.getoption("--llmspec-status") or os.environ.get(STATUS_ENV)
        targets = [Path(chosen) if chosen else plugin.status_dir() / "status" / "last-run.json"]
        docs = self._docs_status(exitstatus)
        if docs is not None:
            targets.append(docs)
        for out in targets:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
        config._llmspec_status_paths = targets
