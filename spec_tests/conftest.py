"""pytest wiring: the ``--impl`` option, hypothesis profiles and the closing summary."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from spec_tests.harness import registry
from spec_tests.harness.impl import ENV_VAR, NOT_IMPLEMENTED, Implementation, chosen_name

STATUS_ENV = "LLMSPEC_STATUS"

# Hypothesis profiles: pick one with --hypothesis-profile=NAME or LLMSPEC_PROFILE=NAME.
_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=8, **_common)
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=400, print_blob=True, **_common)
# used by the meta-tests: fail fast and deterministically, skip shrinking the counterexample
settings.register_profile("catch", max_examples=8, derandomize=True,
                          phases=[Phase.explicit, Phase.generate], **_common)
settings.load_profile(os.environ.get("LLMSPEC_PROFILE", "dev"))


def pytest_addoption(parser):
    parser.addoption(
        "--impl", default=None, metavar="MODULE",
        help=f"importable module to test instead of 'reference' (also ${ENV_VAR})")


def pytest_configure(config):
    # Import it now so that a wrong name is one clear usage error, not hundreds of failures.
    config._llmspec_impl = Implementation(chosen_name(config.getoption("--impl")))
    config.pluginmanager.register(StatusFile(config), "llmspec-status")
    for lesson in LESSONS:
        config.addinivalue_line("markers", f"lesson_{lesson}: tests of lesson {lesson}'s claims")


LESSONS = ("000", "001", "002", "003", "004")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark each claim test with its lesson, so ``-m lesson_002`` selects a lesson's tests."""
    for item in items:
        for lesson in sorted({cid[1:4] for cid in _claim_ids(item)}):
            item.add_marker(f"lesson_{lesson}")


@pytest.fixture(scope="session")
def impl(request) -> Implementation:
    """The implementation under test; ``impl("softmax.forward")`` gives a function."""
    return request.config._llmspec_impl


def _claim_ids(node) -> list:
    return [m.args[0] for m in node.iter_markers("claim")]


@pytest.fixture
def claim(request) -> dict:
    """The registry entry of the claim this test backs (numeric claims read their value and
    tolerance from it, so the number lives in one place)."""
    ids = _claim_ids(request.node)
    entries = [registry.claims()[i] for i in ids if i in registry.claims()]
    with_value = [e for e in entries if "value" in e]
    if not with_value:
        raise pytest.UsageError(f"{request.node.nodeid} asks for 'claim' but carries no "
                                f"numeric claim marker (markers: {ids})")
    return with_value[0]


@pytest.fixture
def claim_values(request) -> dict:
    """``{claim id: registry entry}`` for every claim this test carries."""
    return {i: registry.claims()[i] for i in _claim_ids(request.node) if i in registry.claims()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.user_properties.append(("claims", _claim_ids(item)))


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
    """Collects every test's outcome and writes ``.llmspec/status.json`` (or
    ``$LLMSPEC_STATUS``) at the end: outcome per test and per claim, commit, date, versions.
    Only the controlling process writes it; xdist workers send it their reports."""

    def __init__(self, config):
        self.config = config
        self.results = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            reason = str(report.longrepr[2]) if report.skipped and \
                isinstance(report.longrepr, tuple) else ""
            self.results.append((report.nodeid, report.when, report.outcome,
                                 dict(report.user_properties).get("claims", []), reason))

    def pytest_sessionfinish(self, session, exitstatus):
        config = self.config
        if hasattr(config, "workerinput"):
            return
        tests: dict = {}
        for nodeid, when, outcome, claims, reason in self.results:
            entry = tests.setdefault(nodeid, {"outcome": "passed", "claims": claims})
            if outcome == "failed":
                entry["outcome"] = "failed" if when == "call" else "error"
            elif outcome == "skipped" and entry["outcome"] == "passed":
                entry["outcome"], entry["reason"] = "skipped", reason
        claims_status = registry.claim_statuses(tests)
        root = Path(str(config.rootpath))
        out = Path(os.environ.get(STATUS_ENV, root / ".llmspec" / "status.json"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "commit": _commit(root), "date": datetime.now(timezone.utc).isoformat(),
            "implementation": config._llmspec_impl.name, "versions": _versions(),
            "exit_status": int(exitstatus), "tests": tests, "claims": claims_status,
        }, indent=1, sort_keys=True))


def _section(nodeid: str) -> str:
    return Path(nodeid.split("::")[0]).stem.removeprefix("test_")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
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
    tr.section(f"llm-reference-spec: implementation under test = {config._llmspec_impl.name}")
    tr.write_line(f"{'section':<22}{'passed':>8}{'failed':>8}{'skipped':>9}")
    for section in sorted(counts):
        c = counts[section]
        tr.write_line(f"{section:<22}{c['passed']:>8}{c['failed'] + c['error']:>8}"
                      f"{c['skipped']:>9}")
    if missing:
        tr.write_line("not implemented yet (their tests were skipped): " + ", ".join(
            f"{name} ({n})" for name, n in sorted(missing.items())))
