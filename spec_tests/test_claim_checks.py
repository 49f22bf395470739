"""Checks on the claim tests themselves: each one uses the implementation under test or the
registry (the run fails a claim test that uses neither, see ``fixtures.ClaimUse``), each is
paired with a deliberately wrong implementation it must fail against
(``harness/perturbations.py``), and the figures they record reach the status file.

These check the suite, so the ones that run it run only against the reference."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llmref.spec import fixtures
from llmref.spec.harness import registry
from llmref.spec.harness.impl import Implementation
from llmref.spec.harness.perturbations import KILLED_BY, PERTURBATIONS

ROOT = Path(__file__).resolve().parents[1]


def _claim_tests() -> dict:
    """``{node id: [claim ids]}`` of every test carrying a claim marker."""
    found: dict = {}
    for cid, nodes in registry.marked_tests().items():
        for node, _ in nodes:
            found.setdefault(node, []).append(cid)
    return found


def test_every_claim_test_is_paired_with_a_perturbation_it_must_fail_against():
    claim_tests = _claim_tests()
    missing = sorted(set(claim_tests) - set(KILLED_BY))
    assert not missing, f"claim tests without a perturbation pairing: {missing}"
    stale = sorted(set(KILLED_BY) - set(claim_tests))
    assert not stale, f"pairings for tests that carry no claim marker: {stale}"
    for test, names in KILLED_BY.items():
        assert names, test
        for name in names:
            if name.startswith("value:"):
                cid = name.removeprefix("value:")
                assert cid in claim_tests[test] and "value" in registry.claims()[cid], \
                    f"{test}: {name} names a claim without a value that the test carries"
            else:
                assert name in PERTURBATIONS, f"{test}: unknown perturbation {name!r}"


def test_every_perturbation_targets_a_function_of_the_reference():
    import llmref
    for name, p in PERTURBATIONS.items():
        component, _, function = p.target.rpartition(".")
        assert callable(getattr(getattr(llmref, component), function, None)), name
        assert p.why, name


def test_a_claim_test_that_uses_neither_the_implementation_nor_the_registry_is_refused():
    problem = fixtures.usage_problem(["L002-loss-042"], calls=set(), reads=set())
    assert problem and "L002-loss-042" in problem
    assert fixtures.usage_problem(["L002-loss-042"], {"cross_entropy.forward"}, set()) is None
    assert fixtures.usage_problem(["L002-loss-042"], set(), {"L002-loss-042.value"}) is None
    assert fixtures.usage_problem([], set(), set()) is None        # not a claim test


class _Item:
    """A pytest item as the ClaimUse hooks see it: markers and the run's implementation."""

    def __init__(self, claims):
        self.config = _Node()
        self.config._llmspec_impl = Implementation("llmref")
        self._markers = [pytest.mark.claim(c).mark for c in claims]

    def iter_markers(self, name):
        return (m for m in self._markers if m.name == name)


def _run_claim_use(item, body):
    """Drive ClaimUse's setup and call hooks around ``body`` (the test's own code), as pytest
    does; return the failure the hook raised, or None."""
    hooks = fixtures.ClaimUse()
    setup = hooks.pytest_runtest_setup(item)
    next(setup)
    with pytest.raises(StopIteration):
        setup.send(None)
    call = hooks.pytest_runtest_call(item)
    next(call)
    body(item)
    try:
        call.send(None)
    except StopIteration:
        return None
    except pytest.fail.Exception as exc:
        return str(exc)
    raise AssertionError("the call hook did not finish")


def test_the_run_fails_a_passing_claim_test_that_used_neither():
    """The hooks every run installs, around three passing test bodies: one that only restates
    a number fails; one that calls the implementation, or reads the registry, passes."""
    def restates(item):
        assert 0.87 == 0.87

    def calls(item):
        item.config._llmspec_impl("cross_entropy.forward")(np.zeros((1, 3)), np.array([0]))

    def reads(item):
        assert fixtures.Entry(registry.claims()["L002-loss-042"], item)["value"] > 0

    failure = _run_claim_use(_Item(["L002-loss-042"]), restates)
    assert failure and "L002-loss-042" in failure and "cannot tell" in failure
    assert _run_claim_use(_Item(["L002-loss-042"]), calls) is None
    assert _run_claim_use(_Item(["L002-loss-042"]), reads) is None
    assert _run_claim_use(_Item([]), restates) is None                  # not a claim test


def test_a_claim_test_without_figures_gets_what_its_comparisons_found():
    """A claim test that records nothing gets its passing comparisons as figures (values
    compared, the largest relative difference, measured as the tolerance measures it), also
    next to the values it notes with ``findings``; one that records figures through
    ``claim_figures`` keeps only those; a failed comparison is not counted."""
    from llmref.spec.harness import findings
    from llmref.spec.harness.tolerances import F64, FD, assert_close, compare

    def compares(item):
        s = item.config._llmspec_impl("softmax.forward")(np.zeros((2, 3)))[0]
        assert_close(s, np.full((2, 3), 1 / 3) * (1 + 1e-12), F64)
        assert compare(s, s + 1.0, F64) is not None              # a failed comparison
        assert_close(np.array([2.0]), np.array([2.0 + 2e-7]), FD)

    item = _Item(["L002-loss-042"])
    assert _run_claim_use(item, compares) is None
    figures = item._llmspec_figures
    assert figures["values_compared_(float64)"] == 6
    assert figures["arrays_compared_(finite differences)"] == 1
    assert 0.9e-12 < figures["largest_relative_difference_(float64)"] < 1.1e-12
    assert 0.9e-7 < figures["largest_relative_difference_(finite differences)"] < 1e-7
    assert figures["relative_tolerance_(float64)"] == F64.rtol

    def notes(item):
        compares(item)
        for value in (3.0, 1.0, 2.0):
            findings.smallest("least", value)
            findings.total("count", 1)

    item = _Item(["L002-loss-042"])
    assert _run_claim_use(item, notes) is None
    assert {k: item._llmspec_figures[k] for k in ("least", "count")} == {"least": 1.0,
                                                                           "count": 3}
    assert item._llmspec_figures["values_compared_(float64)"] == 6

    def records(item):
        fixtures.Figures(item)["measured"] = 0.5
        compares(item)

    item = _Item(["L002-loss-042"])
    assert _run_claim_use(item, records) is None
    assert item._llmspec_figures == {"measured": 0.5}
    findings.largest("outside a claim test", 1.0)                # does nothing


def test_the_implementation_records_the_functions_called_through_it():
    implementation = Implementation("llmref")
    implementation.reset_calls()
    softmax = implementation("softmax.forward")
    assert implementation.calls == set()                  # looking a function up is not using it
    softmax(np.zeros((1, 3)))
    implementation.lib.relu.forward(np.zeros(2))
    assert implementation.calls == {"softmax.forward", "relu.forward"}


class _Node:
    """Stands in for a pytest item (the fixtures keep their records on it)."""


def test_registry_entries_record_reads_of_their_value_and_tolerance():
    node = _Node()
    entry = fixtures.Entry(registry.claims()["L002-loss-042"], node)
    assert entry["claim"] and not getattr(node, "_llmspec_registry_reads", set())
    assert entry["value"] == 0.87
    assert node._llmspec_registry_reads == {"L002-loss-042.value"}


def test_a_value_perturbation_hands_the_test_a_wrong_value(monkeypatch):
    monkeypatch.setenv(fixtures.PERTURB_ENV, "value:L002-loss-042")
    entry = fixtures.Entry(registry.claims()["L002-loss-042"], _Node())
    assert abs(entry["value"] - 0.87) > 1


def test_figures_are_stored_as_json():
    node = _Node()
    figures = fixtures.Figures(node)
    figures["p"] = np.float64(0.25)
    figures.record(rows=np.int64(3), curve=np.array([1.0, 0.5]), nested={"a": np.float32(2)},
                   infinite=float("inf"))
    stored = json.loads(json.dumps(node._llmspec_figures))
    assert stored == {"p": 0.25, "rows": 3, "curve": [1.0, 0.5], "nested": {"a": 2.0},
                      "infinite": "inf"}


@pytest.mark.slow
def test_claim_figures_reach_the_status_file(impl, tmp_path):
    """A run of one claim test writes the figures it recorded and the functions it called into
    the status file."""
    if not impl.is_reference:
        pytest.skip("meta-tests check the suite, not the implementation under test")
    status = tmp_path / "status.json"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs",
         "llmref.spec.test_claims_loss::test_training_loss_is_the_mean_over_the_examples",
         "-n", "0", "-q", "-p", "no:cacheprovider", "--llmspec-status", str(status)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert run.returncode == 0, run.stdout + run.stderr
    test = json.loads(status.read_text())["tests"][
        "spec_tests/test_claims_loss.py::test_training_loss_is_the_mean_over_the_examples"]
    assert test["figures"]["examples"] == 10 and "cross_entropy.forward" in test["uses"]


@pytest.mark.slow
def test_every_claim_test_fails_against_the_perturbations_it_is_paired_with(impl):
    """Runs each pairing of KILLED_BY (``python -m llmref.spec.perturbed``): every claim test
    must fail (an assertion or pytest's own failure, not a crash) against every perturbation it
    is paired with.  Slow: it
    runs every claim test, the slow ones included, once per pairing."""
    if not impl.is_reference:
        pytest.skip("meta-tests check the suite, not the implementation under test")
    run = subprocess.run([sys.executable, "-m", "llmref.spec.perturbed"], cwd=ROOT,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True,
                         text=True, timeout=3600)
    lines = [ln.removeprefix("KILL ") for ln in run.stdout.splitlines()
             if ln.startswith("KILL ")]
    expected = sum(len(v) for v in KILLED_BY.values())
    assert len(lines) == expected, run.stdout[-4000:] + run.stderr[-4000:]
    survivors = [ln for ln in lines if not ln.endswith("| killed")]
    assert not survivors, "\n".join(survivors)
