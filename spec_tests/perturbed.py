"""The reference with one function deliberately wrong, chosen by ``$LLMSPEC_PERTURB``.

``LLMSPEC_PERTURB=NAME pytest --llmspec-impl=llmref.spec.perturbed ...`` runs the suite
against the reference in which the function named by the perturbation ``NAME``
(:data:`llmref.spec.harness.perturbations.PERTURBATIONS`) is replaced by a perturbed
version; every other component is the reference's.  The claim meta-test uses it to show that
each claim test fails against a wrong implementation of what it judges.  With the variable
unset (or naming a registry value, ``value:<claim id>``), this module is the reference.

The variable is read at every attribute access, so one process can run the suite against
several perturbations in turn.
"""

from __future__ import annotations

import os

import llmref
from llmref.spec.harness.perturbations import PERTURBATIONS

ENV_VAR = "LLMSPEC_PERTURB"


class _Patched:
    """``component`` with its function ``name`` replaced by ``replacement``."""

    def __init__(self, component, name: str, replacement):
        self._component, self._name, self._replacement = component, name, replacement

    def __getattr__(self, attr):
        if attr == self._name:
            return self._replacement
        return getattr(self._component, attr)


def __getattr__(component: str):
    if component.startswith("__"):
        raise AttributeError(component)
    real = getattr(llmref, component)
    chosen = PERTURBATIONS.get(os.environ.get(ENV_VAR, ""))
    if chosen is not None:
        owner, _, function = chosen.target.rpartition(".")
        if owner == component:
            return _Patched(real, function, chosen.make(getattr(real, function)))
    return real


def _run_pairings(selected=None) -> int:
    """Run every claim test against each perturbation it is paired with (``KILLED_BY``), in
    this one process; print one line per pairing, ``KILL <test> | <perturbation> | <outcome>``
    with the outcome ``killed`` (every collected item failed with an assertion),
    ``survived`` or ``error: <exception>``.  Exits 0 when every pairing was a kill."""
    import sys
    import tempfile
    from pathlib import Path

    import pytest

    from llmref.spec.harness.perturbations import KILLED_BY

    class Outcomes:
        def __init__(self):
            self.items = {}

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_makereport(self, item, call):
            report = yield
            if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
                exc = call.excinfo.type.__name__ if call.excinfo is not None else None
                self.items[item.nodeid] = (report.outcome, exc)
            return report

    os.environ["LLMSPEC_PROFILE"] = "catch"
    os.environ.pop("LLMSPEC_IMPL", None)
    status = Path(tempfile.mkdtemp()) / "status.json"
    results = []
    for test, perturbations in KILLED_BY.items():
        if selected and not any(s in test for s in selected):
            continue
        path, _, name = test.partition("::")
        module = "llmref.spec." + Path(path).stem
        for perturbation in perturbations:
            os.environ[ENV_VAR] = perturbation
            outcomes = Outcomes()
            pytest.main(["--pyargs", f"{module}::{name}", "--llmspec-impl=llmref.spec.perturbed",
                         "-q", "-p", "no:cacheprovider", "-n", "0", "-W", "ignore",
                         "-m", "slow or not slow or parity", "--llmspec-status", str(status),
                         "--no-header", "-rN", "--tb=no"], plugins=[outcomes])
            found = list(outcomes.items.values())
            if not found:
                verdict = "error: no test collected"
            elif all(o == "failed" and exc == "AssertionError" for o, exc in found):
                verdict = "killed"
            elif any(o == "failed" and exc != "AssertionError" for o, exc in found):
                verdict = "error: " + ", ".join(sorted({exc for _, exc in found if exc}))
            else:
                verdict = "survived"
            results.append((test, perturbation, verdict))
    os.environ.pop(ENV_VAR, None)
    print("\nclaim-test pairings (killed = the test failed with an assertion):")
    for test, perturbation, verdict in results:
        print(f"KILL {test} | {perturbation} | {verdict}")
    sys.stdout.flush()
    return 0 if all(v == "killed" for *_, v in results) else 1


if __name__ == "__main__":
    import sys
    sys.exit(_run_pairings(sys.argv[1:]))
