"""The suite can fail: each deliberately wrong implementation in ``llmref.spec.mutants`` is
plugged in with ``--llmspec-impl`` and must make the spec tests for its component fail.

These check the suite itself, so they run only when the implementation under test is the
reference (a learner's run skips them).  All mutants run in one child process
(``python -m llmref.spec.mutants``) to pay for importing torch once.
"""

import os
import subprocess
import sys

import pytest

from llmref.spec.mutants import MUTANTS


@pytest.fixture(scope="module")
def mutant_exit_codes(impl, tmp_path_factory):
    if not impl.is_reference:
        pytest.skip("meta-tests check the suite, not the implementation under test")
    run = subprocess.run([sys.executable, "-m", "llmref.spec.mutants"],
                         cwd=tmp_path_factory.mktemp("mutants"),
                         env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True,
                         text=True, timeout=600)
    codes = {}
    for line in run.stdout.splitlines():
        if line.startswith("MUTANT "):
            _, name, code = line.split()
            codes[name] = int(code)
    assert set(codes) == set(MUTANTS), f"mutant runner output:\n{run.stdout}\n{run.stderr}"
    return codes, run.stdout


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_spec_tests_catch_the_mutant(mutant_exit_codes, mutant):
    codes, output = mutant_exit_codes
    assert codes[mutant] == 1, (
        f"pytest against llmref.spec.mutants.{mutant} exited {codes[mutant]}; 1 (tests failed) "
        f"means the bug was caught:\n{output[-4000:]}")
