"""pytest wiring: the ``--impl`` option, hypothesis profiles and the closing summary."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from spec_tests.harness.impl import ENV_VAR, NOT_IMPLEMENTED, Implementation, chosen_name

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


@pytest.fixture(scope="session")
def impl(request) -> Implementation:
    """The implementation under test; ``impl("softmax.forward")`` gives a function."""
    return request.config._llmspec_impl


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
