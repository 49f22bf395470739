"""What the plugin switches on when the suite runs: markers, hypothesis profiles, the
implementation under test, fixtures, the per-section summary and the status file.

Imported by :mod:`llmref.spec.plugin` only once the suite is asked for, so hypothesis, yaml
and torch are never imported in an unrelated project's test run.
"""

from __future__ import annotations

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
    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow],
                  database=database)
    settings.register_profile("dev", max_examples=8, **common)
    settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True,
                              **{**common, "database": None})
    settings.register_profile("thorough", max_examples=400, print_blob=True, **common)
    # used by the meta-tests: fail fast and deterministically, skip shrinking
    settings.register_profile("catch", max_examples=8, derandomize=True, database=None,
                              phases=[Phase.explicit, Phase.generate],
                              **{k: v for k, v in common.items() if k != "database"})
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
    config.pluginmanager.register(Summary(), "llmref-summary")


def test_id(nodeid: str) -> str:
    """A report's node id in the registry's spelling, ``spec_tests/test_x.py::name``,
    wherever the suite was collected from (checkout or site-packages)."""
    path, _, rest = nodeid.partition("::")
    return f"spec_tests/{Path(path).name}::{rest}"


def claim_ids(node) -> list:
    return [m.args[0] for m in node.iter_markers("claim")]


class Summary:
    """Marks claim tests with their lesson, keeps claim ids on reports, prints the per-section
    summary."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config, items):
        for item in items:
            for lesson in sorted({cid[1:4] for cid in claim_ids(item)}):
                item.add_marker(f"lesson_{lesson}")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        report.user_properties.append(("claims", claim_ids(item)))
        figures = getattr(item, "_llmspec_figures", None)
        if figures and report.when == "call":
            report.user_properties.append(("figures", figures))
        used = getattr(item, "_llmspec_used", None)
        if used and report.when == "call" and claim_ids(item):
            report.user_properties.append(("uses", used))

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        from llmref.spec.harness.impl import NOT_IMPLEMENTED
        counts: dict[str, Counter] = defaultdict(Counter)
        missing: Counter = Counter()
        for outcome in ("passed", "failed", "error", "skipped", "xfailed"):
            for report in terminalreporter.stats.get(outcome, []):
                nodeid = getattr(report, "nodeid", "")
                if not nodeid or (outcome == "passed" and report.when != "call"):
                    continue
                counts[_section(nodeid)][outcome] += 1
                if outcome == "skipped" and isinstance(report.longrepr, tuple):
                    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
                    if reason.startswith(NOT_IMPLEMENTED):
                        missing[reason.removeprefix(NOT_IMPLEMENTED)] += 1
        if not counts:
            return
        tr = terminalreporter
        tr.section(f"llm-reference-spec: implementation under test = "
                   f"{config._llmspec_impl.name}")
        tr.write_line(f"{'section':<22}{'passed':>8}{'failed':>8}{'skipped':>9}")
        for section in sorted(counts):
            c = counts[section]
            tr.write_line(f"{section:<22}{c['passed']:>8}{c['failed'] + c['error']:>8}"
                          f"{c['skipped']:>9}")
        if missing:
            tr.write_line("not implemented yet (their tests were skipped): " + ", ".join(
                f"{name} ({n})" for name, n in sorted(missing.items())))


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
