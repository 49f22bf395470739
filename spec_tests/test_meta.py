"""The suite can fail: every deliberately wrong implementation in the catalogue of
``llmref.spec.mutants`` is plugged in with ``--llmspec-impl`` and must make its named test fail.

These check the suite itself, so they run only when the implementation under test is the
reference (a learner's run skips them).  The catalogue's fit to the current source is checked
in the default run (fast); running every mutant takes a minute or two and carries the
``slow`` marker.  The mutants run in two child processes (one per core), each importing torch
once: ``python -m llmref.spec.mutants NAME ...``.
"""

import os
import subprocess
import sys
from collections import Counter

import pytest

from llmref.spec.mutants import CATALOGUE
from llmref.spec.mutants.build import problems

WORKERS = 2


@pytest.fixture(scope="module")
def reference_only(impl):
    if not impl.is_reference:
        pytest.skip("meta-tests check the suite, not the implementation under test")


def test_catalogue_fits_the_source(reference_only):
    """Every edit of every mutant finds its text in the reference exactly as often as it
    says, and every named test exists: a stale entry fails here, not as a survivor."""
    found = problems()
    assert not found, "\n".join(found)


def test_catalogue_covers_every_family(reference_only):
    """At least 30 mutants, and at least one in each component family."""
    families = Counter(m.family for m in CATALOGUE.values())
    assert len(CATALOGUE) >= 30
    assert set(families) >= {"activations", "softmax", "linear", "norms", "embeddings",
                             "attention", "transformer", "gpt", "generate", "losses",
                             "tokenizers", "accounting", "optimizers", "training",
                             "mixed_precision", "rlhf"}, families


@pytest.fixture(scope="module")
def mutant_exit_codes(reference_only, tmp_path_factory):
    names = list(CATALOGUE)
    cwd = tmp_path_factory.mktemp("mutants")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    runs = [subprocess.Popen([sys.executable, "-m", "llmref.spec.mutants", *names[i::WORKERS]],
                             cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for i in range(WORKERS)]
    outputs = [run.communicate(timeout=900) for run in runs]
    stdout = "\n".join(out for out, _ in outputs)
    codes = {}
    for line in stdout.splitlines():
        if line.startswith("MUTANT "):
            _, name, code = line.split()
            codes[name] = int(code)
    assert set(codes) == set(CATALOGUE), (
        "mutant runner output:\n" + stdout + "\n".join(err for _, err in outputs))
    return codes


@pytest.mark.slow
@pytest.mark.parametrize("mutant", list(CATALOGUE))
def test_spec_tests_catch_the_mutant(mutant_exit_codes, mutant):
    entry = CATALOGUE[mutant]
    assert mutant_exit_codes[mutant] == 1, (
        f"mutant {mutant} ({entry.bug}) survived: spec_tests/{entry.test} exited "
        f"{mutant_exit_codes[mutant]} against it; 1 (the test failed) means it was caught.  "
        f"Rerun: python -m llmref.spec.mutants {mutant} -v")
