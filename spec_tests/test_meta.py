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


# --- run_mutmut, the mutation tool's driver (outside CI) --------------------------------------
# Its verdicts are recorded on the docs' mutation page, so the helpers that decide them are
# checked here: one of them once counted empty diff lines as edits, and every rerun fell back
# to a patch unnoticed.

def test_run_mutmut_compares_edits_without_context_or_empty_lines(reference_only):
    from llmref.spec.mutants.run_mutmut import _changed_lines

    shown = ("--- a.py\n+++ a.py\n@@ -1,3 +1,3 @@\n def f(x):\n\n"
             "-    return x + 1\n+    return x - 1\n")
    assert _changed_lines(shown) == ["-    return x + 1", "+    return x - 1"]
    assert _changed_lines(shown.replace("\n\n", "\n \n")) == _changed_lines(shown)
    assert _changed_lines(shown.replace("x - 1", "x * 1")) != _changed_lines(shown)


def test_run_mutmut_tells_code_changes_from_docstring_changes(reference_only):
    from llmref.spec.mutants.run_mutmut import _functions

    before = _functions('def f(x):\n    """Add one."""\n    return x + 1\n')
    assert before == _functions('def f(x):\n    """Add one, documented anew."""\n'
                                '    return x + 1  # a comment\n')
    assert before != _functions('def f(x):\n    """Add one."""\n    return x + 2\n')
    assert before != _functions('def f(x, y=1):\n    """Add one."""\n    return x + 1\n')


@pytest.mark.parametrize("old, new, equivalent", [
    ("y = x.astype(np.float32, copy=False)", "y = x.astype(np.float32, copy=True)", True),
    ("y = np.zeros(3, dtype=np.float64)", "y = np.zeros(3, dtype=None)", True),
    ("y = x.reshape(-1, 4)", "y = x.reshape(-2, 4)", True),
    ('y = np.asarray(x, order="C")', 'y = np.asarray(x, order="c")', True),
    ("y = np.exp(x, out=np.empty_like(x))", "y = np.exp(x, out=None)", True),
    ("y = np.exp(x, out=buf)", "y = np.exp(x, )", True),
    ("y = x.astype(np.float32, copy=False)", "y = x.astype(np.float16, copy=False)", False),
    ('y = np.array(v, order="C", copy=True)', 'y = np.array(v, order="C", copy=None)', False),
    ('y = np.array(v.T, copy=True)', 'y = np.array(v.T, copy=False)', False),
    ("y = (d * c).astype(np.result_type(d, x), copy=False)",
     "y = (d * c).astype(np.result_type(d, x), copy=True)", True),
    ("y = np.zeros(3, dtype=np.float64)", "y = np.zeros(3, dtype=np.float32)", False),
    ("y = np.asarray(x, dtype=np.float64)", "y = np.asarray(x, dtype=None)", False),
    ("y = np.asarray(x.astype(np.float64))", "y = np.asarray(x.astype(None))", True),
    ("y = np.asarray(x.astype(np.float64), dtype=np.float64)",
     "y = np.asarray(x.astype(None), dtype=np.float64)", True),
    ("s = np.sum(np.square(g, dtype=np.float64))", "s = np.sum(np.square(g, dtype=None))",
     False),
    ("s = np.sum(np.square(g, dtype=np.float64))", "s = np.sum(np.square(g, ))", False),
    ("p = np.arange(n, dtype=np.float64)", "p = np.arange(n, dtype=None)", False),
    ("pe = np.empty((n, d), dtype=np.float64)", "pe = np.empty((n, d), )", True),
    ("y = x.reshape(-1, 4)", "y = x.reshape(-1, 5)", False),
    ("y = np.exp(x, out=buf)", "y = np.log(x, out=buf)", False),
    ("return x + 1", "return x - 1", False),
    ("g = np.zeros(s, dtype=np.result_type(a.dtype, b.dtype))",
     "g = np.zeros(s, dtype=np.result_type(b.dtype))", True),
    ("g = np.zeros(s, dtype=np.result_type(a.dtype, b.dtype))",
     "g = np.zeros(s, dtype=np.result_type(None, b.dtype))", False),
])
def test_run_mutmut_equivalence_rules_accept_only_what_they_say(reference_only, old, new,
                                                                   equivalent):
    from llmref.spec.mutants.run_mutmut import equivalent_reason

    reason = equivalent_reason(((old, new),), "llmref.layers.linear.x_forward__mutmut_1")
    assert bool(reason) is equivalent, reason
    assert equivalent_reason(((old, new),), "llmref.layers.gpt.x__example_config__mutmut_3")


def test_run_mutmut_explains_itself_and_refuses_unknown_groups(reference_only, capsys):
    """--help prints the usage (every mode, --every-test included) and exits 0; an unknown
    group or option exits 2 with one line naming it and listing the modes and groups, before
    anything runs."""
    from llmref.spec.mutants import run_mutmut

    assert run_mutmut.main(["--help"]) == 0
    usage = capsys.readouterr().out
    assert all(mode in usage for mode in run_mutmut.OPTIONS)
    for argv, needle in ((["--list", "nogroup"], "unknown group 'nogroup'"),
                         (["--bogus"], "unknown option '--bogus'")):
        assert run_mutmut.main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and "groups: activations" in err and err.count("\n") == 1


def test_run_mutmut_resume_forgets_reruns_of_mutants_it_ran_anew(reference_only, tmp_path,
                                                                 monkeypatch):
    import json

    from llmref.spec.mutants import run_mutmut

    monkeypatch.setattr(run_mutmut, "OUT", tmp_path)
    (tmp_path / "g.verify.json").write_text(json.dumps(
        {"commit": "abc", "results": {"m_1": "killed", "m_2": "survived", "m_3": "stale"}}))
    run_mutmut._forget_reruns("g", keep={"m_1", "m_3", "m_9"})
    assert json.loads((tmp_path / "g.verify.json").read_text()) == {
        "commit": "abc", "results": {"m_1": "killed", "m_3": "stale"}}
    run_mutmut._forget_reruns("absent", keep=set())       # no rerun yet: nothing to forget
    assert not (tmp_path / "absent.verify.json").exists()


@pytest.mark.slow
def test_run_mutmut_verifies_each_patch_in_a_new_interpreter(reference_only):
    """A catalogue bug is killed and a change of spacing survives, each verified in its own
    interpreter (in one process the runs used to pile up state until a RecursionError
    counted as a kill)."""
    from llmref.spec.mutants.run_mutmut import _verify_one

    bug = CATALOGUE["relu_grad_at_zero"]
    harmless = (("return np.maximum(x, 0)", "return  np.maximum(x, 0)"),)
    assert _verify_one("activations", "relu_bug", "relu", bug.edits) == "killed"
    assert _verify_one("activations", "relu_same", "relu", harmless) == "survived"
