"""The learner's command line, driven as a learner drives it: a skeleton with nothing written,
a correct softmax without input checks, a softmax with a wrong backward, and (slow) every
component taken from the reference; plus every mistake a user can make getting one clear
sentence and an exit code from the table, never a traceback.

Most scenarios run in one child process (``_DRIVER``) that calls ``llmspec``'s ``main`` once
per command line, so torch is imported once for all of them; the exit codes and output are
exactly those of the console script (``sys.exit(main())``).  Ctrl-C and a whole run against the
reference get their own processes.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmref.cli import cli, skeleton
from llmref.spec import anchors

pytestmark = pytest.mark.reference_only

CORRECT_SOFTMAX = '''
def forward(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    return s, s.copy()


def backward(dout, cache):
    return {"x": cache * (dout - np.sum(dout * cache, axis=-1, keepdims=True))}
'''
WRONG_BACKWARD = CORRECT_SOFTMAX.replace(
    "cache * (dout - np.sum(dout * cache, axis=-1, keepdims=True))", "cache * dout")

# (name, working folder relative to the scenario root, argv).  LEARNER runs the suite (torch,
# pytest); MISTAKES never gets that far (no torch import), so it costs about a second.
LEARNER = [
    ("nothing", ".", ["check", "softmax", "--impl", "impl_a"]),
    ("correct", ".", ["check", "softmax", "--impl", "impl_b"]),
    ("correct_contract", ".", ["check", "softmax", "--impl", "impl_b", "--contract"]),
    ("wrong_backward", ".", ["check", "softmax", "--impl", "impl_c"]),
    ("dry_softmax", ".", ["check", "softmax", "--dry-run", "--impl", "impl_a"]),
    ("dry_all", ".", ["check", "--dry-run", "--impl", "impl_a"]),
    ("list", ".", ["check", "--list"]),
    ("dry_lesson", ".", ["check", "--lesson", "002", "--dry-run", "--impl", "impl_a"]),
    ("dry_stage", ".", ["check", "losses", "--dry-run", "--impl", "impl_a"]),
    ("component_syntax_error", ".", ["check", "softmax", "--impl", "impl_e"]),
]
MISTAKES = [
    ("unknown", ".", ["check", "sofmax"]),
    ("unknown_lesson", ".", ["check", "--lesson", "007"]),
    ("syntax_error", ".", ["check", "softmax", "--impl", "impl_syntax"]),
    ("raises_on_import", ".", ["check", "softmax", "--impl", "impl_raises"]),
    ("no_such_module", ".", ["check", "softmax", "--impl", "impl_nowhere"]),
    ("exercises_again", ".", ["exercises", ".", "--package", "impl_b"]),
    ("exercises_missing", ".", ["exercises", ".", "--package", "impl_d"]),
    ("exercises_into_file", ".", ["exercises", "a_file.txt"]),
    ("exercises_bad_name", ".", ["exercises", "new", "--package", "my-impl"]),
    ("exercises_keyword", ".", ["exercises", "new", "--package", "class"]),
    ("exercises_shadows", ".", ["exercises", "new", "--package", "numpy"]),
    ("run_negative_steps", ".", ["run", "word_calculator", "--steps", "-5"]),
    ("run_unknown", ".", ["run", "word_calculater"]),
    *[(f"help_{c}", ".", [c, "--help"]) for c in ("check", "exercises", "run", "docs")],
]

_DRIVER = r"""
import contextlib, io, json, os, sys
from llmref.cli.cli import main
root, scenarios = sys.argv[1], json.loads(sys.argv[2])
results = {}
for name, folder, argv in scenarios:
    os.chdir(os.path.join(root, folder))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:                 # argparse's own refusals
            code = exc.code
    results[name] = [code, out.getvalue(), err.getvalue()]
print("RESULTS " + json.dumps(results))
"""


def _env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMSPEC_")}
    env.update(LLMSPEC_CACHE=str(tmp / "cache"), PYTHONWARNINGS="ignore")
    return env


def _skeleton(root: Path, package: str, softmax: str | None = None) -> Path:
    skeleton.write(root, package)
    if softmax is not None:
        path = root / package / "layers" / "softmax.py"
        path.write_text("import numpy as np\n" + softmax)
    return root / package


def _workspace(root: Path) -> dict:
    """Skeletons for every scenario: untouched, a correct softmax, a wrong backward, one with
    a file removed, and packages that cannot be imported."""
    _skeleton(root, "impl_a")
    _skeleton(root, "impl_b", CORRECT_SOFTMAX)
    _skeleton(root, "impl_c", WRONG_BACKWARD)
    (_skeleton(root, "impl_d", CORRECT_SOFTMAX) / "layers" / "gelu.py").unlink()
    _skeleton(root, "impl_e", CORRECT_SOFTMAX.replace("def backward(dout, cache):",
                                                      "def backward(dout, cache)"))
    (root / "impl_syntax").mkdir()
    (root / "impl_syntax" / "__init__.py").write_text("x = 1\ndef broken(:\n    pass\n")
    (root / "impl_raises").mkdir()
    (root / "impl_raises" / "__init__.py").write_text(
        "import numpy as np\n\n\nraise RuntimeError('my package cannot start')\n")
    (root / "a_file.txt").write_text("not a folder\n")
    return {p: p.read_bytes() for name in ("impl_b", "impl_d")
            for p in (root / name).rglob("*.py")}


def _drive(root: Path, scenarios: list) -> dict:
    """Run the scenarios in one child process: ``{name: (exit code, stdout, stderr)}``."""
    run = subprocess.run([sys.executable, "-c", _DRIVER, str(root), json.dumps(scenarios)],
                         cwd=root, env=_env(root), capture_output=True, text=True, timeout=900)
    line = next((ln for ln in run.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert line, f"driver failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    results = json.loads(line[len("RESULTS "):])
    for name, (_, out, err) in results.items():
        assert "Traceback" not in out + err and "INTERNALERROR" not in out + err, \
            f"{name}:\n{out}\n{err}"
    return results


@pytest.mark.slow          # about 30 s of CLI runs: the default run stays under 20 s
def test_the_learner_loop_on_a_skeleton(tmp_path):
    """(a) nothing written: exit 3 and a plain sentence; (b) a correct softmax without input
    checks passes the math tier and fails the contract tier; (c) a wrong backward gets one
    block with the function, the property, the shrunk input, expected and got, the hint and
    the link; selection is exact (softmax, not log_softmax) and every listed component owns
    at least one math test; check leaves the docs' status file alone."""
    _workspace(tmp_path)
    docs_status = cli.CHECKOUT / ".llmspec" / "status.json" if cli.CHECKOUT else None
    before = docs_status.read_bytes() if docs_status and docs_status.exists() else None
    results = _drive(tmp_path, LEARNER)
    after = docs_status.read_bytes() if docs_status and docs_status.exists() else None
    assert before == after, "llmspec check --impl changed the docs' status file"
    status = json.loads((tmp_path / "cache" / "status" / "last-run.json").read_text())
    assert status["implementation"].startswith("impl_")
    _nothing_written(*results["nothing"])
    _correct_math_no_checks(*results["correct"])
    _contract_tier_fails(*results["correct_contract"])
    _wrong_backward_block(*results["wrong_backward"])
    _selects_only_softmax(*results["dry_softmax"])
    _every_component_selects_a_test(results["list"], results["dry_all"])
    _lesson_and_stage_select(results["dry_lesson"], results["dry_stage"])
    _broken_component_file(tmp_path, *results["component_syntax_error"])


def _dry_rows(out):
    return [ln.split(None, 1) for ln in out.splitlines()[1:] if ln and "tests would run" not in ln]


def _lesson_and_stage_select(lesson, stage):
    from llmref.spec.harness import registry
    code, out, err = lesson
    assert code == cli.OK, out + err
    decided = {t.split("::", 1)[1] for c, e in registry.claims().items()
               if c.startswith("L002") for t in e["tests"]}
    chosen = {t.split("::", 1)[1] for _, t in _dry_rows(out)}
    assert chosen and chosen <= decided, sorted(chosen - decided)
    code, out, err = stage
    assert code == cli.OK, out + err
    import llmref
    assert {owner for owner, _ in _dry_rows(out)} == set(llmref.STAGES["losses"])


def _broken_component_file(root, code, out, err):
    assert code == cli.FAILED, out + err
    assert "[!] softmax" in out
    path = root / "impl_e" / "layers" / "softmax.py"
    joined = " ".join(ln.strip() for ln in out.splitlines())
    assert f"cannot import impl_e.layers.softmax: syntax error at {path}:" in joined, out
    assert out.count("--- ") == 1 and re.search(r"the same failure in \d+ more test", joined)
    assert "  input " not in out, out             # a file that does not import: no input


def _nothing_written(code, out, err):
    assert code == cli.NOTHING_YET, out + err
    assert "[ ] softmax" in out and "to do" in out
    assert "to write: softmax.forward, softmax.backward" in out
    assert "Nothing is implemented yet" in out
    assert "[x]" not in out


def _correct_math_no_checks(code, out, err):
    assert code == cli.OK, out + err
    assert "[x] softmax" in out and "done" in out and "failures" not in out


def _contract_tier_fails(code, out, err):
    assert code == cli.FAILED, out + err
    assert "test_contract.py::test_input_contract[softmax.forward]" in out
    assert "accepted, expected ValueError" in out            # NaN goes through unchecked
    assert "  input " not in out and "seed=" not in out, out  # its draws are not an input


def _wrong_backward_block(code, out, err):
    assert code == cli.FAILED, out + err
    assert "[!] softmax" in out and "failing" in out
    block = out.split("--- 1. ", 1)[1].split("\n--- 2. ", 1)[0]
    lines = block.splitlines()
    assert lines[0].startswith("softmax.backward "), block                    # function
    assert "test_softmax.py::test_matches_torch[softmax]" in block
    prop = next(ln for ln in lines if ln.startswith("  property"))
    assert "gradient" in prop and "PyTorch autograd" in prop                   # property
    assert any(ln.startswith("  input     x=array(") for ln in lines)          # shrunk input
    assert "smallest failing input" in block
    assert "gradient of 'x'" in block and "got " in block and "expected " in block
    assert "worst at index" in block and "shape (" in block                    # expected/got
    hint = " ".join(ln.strip() for ln in lines if ln.startswith(("  hint", "      ")))
    assert "off by up to" in hint                                              # by how much
    assert "finite differences of your forward agree with the correct gradient" in hint
    assert "your backward is wrong" in hint                                    # which side
    link = anchors.url(anchors.function_page("softmax.backward"))
    assert f"  docs      {link}" in block                                      # link
    assert len(lines) <= 40                                                    # one screen


def _selects_only_softmax(code, out, err):
    assert code == cli.OK, out + err
    rows = _dry_rows(out)
    assert rows and {owner for owner, _ in rows} == {"softmax"}, out
    tests = [t for _, t in rows]
    assert any("test_matches_torch[softmax]" in t for t in tests)
    assert not any("log_softmax" in t for t in tests), tests


def _every_component_selects_a_test(listing, dry_all):
    code, out, _ = listing
    assert code == cli.OK
    listed = [ln.split()[1] for ln in out.splitlines()[1:]
              if len(ln.split()) > 1 and ln.split()[1].isidentifier()
              and not ln.split()[0].isdigit()]
    import llmref
    assert listed == list(llmref.__all__), listed
    code, out, err = dry_all
    assert code == cli.OK, out + err
    owners = {ln.split()[0] for ln in out.splitlines()[1:] if ln and "tests would run" not in ln}
    assert set(listed) <= owners, sorted(set(listed) - owners)


def test_every_user_mistake_gets_one_sentence_and_an_exit_code(tmp_path):
    """Unknown names (with the closest ones), a package with a syntax error or an exception
    at import (file and line, no INTERNALERROR), no such module, exercises refusals, exercises
    into a folder with work (byte-for-byte unchanged, only missing files written), run's
    option validation, and --help documenting the exit codes."""
    filled = _workspace(tmp_path)
    results = _drive(tmp_path, MISTAKES)

    def one_sentence(name, code, needle):
        got, out, err = results[name]
        assert got == code and needle in err, (name, got, out, err)
        assert len(err.strip().splitlines()) == 1, (name, err)
        return err

    one_sentence("unknown", cli.USAGE, "unknown component 'sofmax'; did you mean softmax")
    one_sentence("unknown_lesson", cli.USAGE, "unknown lesson '007'")
    one_sentence("run_unknown", cli.USAGE, "did you mean word_calculator")
    err = one_sentence("syntax_error", cli.FAILED, "syntax error")
    assert f"{tmp_path / 'impl_syntax' / '__init__.py'}:2" in err
    err = one_sentence("raises_on_import", cli.FAILED, "RuntimeError")
    assert "my package cannot start" in err
    assert f"{tmp_path / 'impl_raises' / '__init__.py'}:4" in err
    one_sentence("no_such_module", cli.USAGE, "no module 'impl_nowhere'")
    for name, needle in [("exercises_into_file", "is a file, not a folder"),
                         ("exercises_bad_name", "must be a Python identifier"),
                         ("exercises_keyword", "must be a Python identifier"),
                         ("exercises_shadows", "would hide the module")]:
        one_sentence(name, cli.USAGE, needle)
    assert not (tmp_path / "new").exists()

    code, out, _ = results["exercises_again"]
    assert code == cli.OK and "nothing written, nothing changed" in out, out
    code, out, _ = results["exercises_missing"]
    assert code == cli.OK and "+ layers/gelu.py" in out and "only the 1 missing" in out, out
    for path, content in filled.items():
        assert path.read_bytes() == content, f"{path} changed"

    code, _, err = results["run_negative_steps"]
    assert code == cli.USAGE and "argument --steps: must be > 0, got -5" in err, err

    code, out, _ = results["help_check"]
    assert code == 0 and "usage: llmspec check" in out
    for exit_code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130"):
        assert f"\n  {exit_code}" in out, exit_code
    for command in ("exercises", "run", "docs"):
        code, out, _ = results[f"help_{command}"]
        assert code == 0 and f"usage: llmspec {command}" in out


def test_skeleton_functions_come_forward_first_with_docstrings_and_contract(tmp_path):
    pkg = _skeleton(tmp_path, "mine")
    text = (pkg / "layers" / "softmax.py").read_text()
    assert text.index("def forward(") < text.index("def backward(")
    assert "dtype rule" in text and "Input contract" in text
    assert "x : float array" in text and "ValueError: a NaN element" in text
    for path in pkg.rglob("*.py"):
        for fn in _functions(path):
            assert fn["doc"].strip(), f"{path}: {fn['name']} has an empty docstring"


def _functions(path: Path) -> list:
    import ast
    tree = ast.parse(path.read_text())
    return [{"name": n.name, "doc": ast.get_docstring(n) or ""} for n in tree.body
            if isinstance(n, ast.FunctionDef)]


def _interrupt(argv, tmp_path, wait_for: str, timeout: float = 300):
    """Start ``llmspec ARGV``, send Ctrl-C (SIGINT) once ``wait_for`` is printed."""
    proc = subprocess.Popen([sys.executable, "-u", "-m", "llmref.cli", *argv], cwd=tmp_path,
                            env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen, deadline = "", time.monotonic() + timeout
    while wait_for not in seen and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    assert wait_for in seen, seen
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, seen + out, err


def test_ctrl_c_in_check_ends_with_one_line_and_130_and_no_partial_report(tmp_path):
    code, out, err = _interrupt(["check", "gpt", "block", "mha"], tmp_path, "llmspec check:")
    assert code == cli.INTERRUPTED, (out, err)
    assert "interrupted" in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "[x]" not in out and "done" not in out


def test_ctrl_c_in_run_ends_with_one_line_and_130(tmp_path):
    code, out, err = _interrupt(["run", "word_calculator", "--no-plot"], tmp_path, "training and")
    assert code == cli.INTERRUPTED, (out, err)
    assert "interrupted" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_run_writes_plots_under_the_documented_folder_and_says_so(tmp_path):
    pytest.importorskip("matplotlib")
    out = subprocess.run([sys.executable, "-m", "llmref.cli", "run", "cat_sat_mat",
                          "--epochs", "5"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, env=_env(tmp_path))
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "llmspec-output" / "cat_sat_mat"
    assert (folder / "cat_sat_mat.png").stat().st_size > 10_000
    assert f"plots are in {folder.resolve()}/" in out.stdout


@pytest.mark.slow
def test_everything_taken_from_the_reference_passes_with_exit_0(tmp_path):
    """A package whose every component is the reference's: each component done, exit 0
    (every math test of every component runs: a few minutes)."""
    pkg = tmp_path / "impl_ref"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from llmref import *  # noqa: F403\n"
                                     "from llmref import __all__  # noqa: F401\n")
    out = subprocess.run([sys.executable, "-m", "llmref.cli", "check", "--impl", "impl_ref"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=1800,
                         env=_env(tmp_path))
    assert out.returncode == cli.OK, out.stdout[-4000:] + out.stderr[-2000:]
    import llmref
    for name in llmref.__all__:
        assert f"[x] {name} " in out.stdout, name
    assert "[!]" not in out.stdout and "[ ]" not in out.stdout


@pytest.mark.slow
def test_exercise_skeleton_filled_with_the_reference_softmax_passes(tmp_path):
    """The path the "check your understanding" page walks: a fresh skeleton is 'to do', the
    reference's softmax copied in is 'done'."""
    made = subprocess.run([sys.executable, "-m", "llmref.cli", "exercises", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=_env(tmp_path))
    assert made.returncode == 0, made.stderr
    first = subprocess.run([sys.executable, "-m", "llmref.cli", "check", "softmax", "--impl",
                            "myimpl"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=600, env=_env(tmp_path))
    assert first.returncode == cli.NOTHING_YET and "[ ] softmax" in first.stdout
    import llmref
    shutil.copy(llmref.softmax.__file__, tmp_path / "myimpl" / "layers" / "softmax.py")
    second = subprocess.run([sys.executable, "-m", "llmref.cli", "check", "softmax", "--impl",
                             "myimpl"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env=_env(tmp_path))
    assert second.returncode == cli.OK and "[x] softmax" in second.stdout, second.stdout


# ---------------------------------------------------------------- failure blocks, in-process
# (fast: the report's functions on tests compiled the way pytest compiles them)

_BARE_ASSERTS = '''
import numpy as np
import pytest


@pytest.mark.claim("L003-softmax-example")
def test_close_scores_give_nearly_equal_weights(impl):
    w = np.array([0.328011, 0.336651, 0.331971])
    assert np.allclose(w, [0.329, 0.338, 0.333], atol=1e-3)


def test_probabilities_are_positive(impl):
    """Every probability is positive.  More words here."""
    p = np.array([0.5, -0.25, 0.75])
    assert np.all(p > 0)
'''


class _Item:
    """What the report reads of a pytest item."""

    def __init__(self, fn, path):
        self.function, self.path = fn, path
        self.name = self.originalname = fn.__name__
        self.fixturenames = ("impl",)
        self._llmspec_components = ("softmax",)

    def iter_markers(self, name):
        return [m for m in getattr(self.function, "pytestmark", []) if m.name == name]


def _rewritten_module(path: Path, source: str) -> dict:
    """``source`` compiled with pytest's assertion rewriting, as the suite's tests are."""
    import ast

    from _pytest.assertion.rewrite import rewrite_asserts
    path.write_text(source)
    tree = ast.parse(source)
    rewrite_asserts(tree, source.encode(), str(path))
    namespace = {"__name__": path.stem, "__file__": str(path)}
    exec(compile(tree, str(path), "exec"), namespace)  # noqa: S102  (our own test text)
    return namespace


def _details(namespace, name, path):
    from types import SimpleNamespace

    from llmref.spec import report
    fn = namespace[name]
    with pytest.raises(AssertionError) as info:
        fn(None)
    impl = SimpleNamespace(is_reference=False, name="mine", calls={"softmax.forward"})
    return report.failure_details(_Item(fn, path), info, impl)


def test_a_bare_assert_reads_as_plain_words_with_the_claim_and_its_link(tmp_path):
    """A claim test's bare ``assert np.allclose(...)`` and a bare ``assert np.all(...)``: the
    block shows the line that failed and the values it reads, never pytest's introspection
    (function reprs, addresses, np.False_); the property is the docstring's first sentence,
    or for a claim test without one what the registry says holds; a claim test's block names
    the claim and links its anchor in the lesson."""
    from llmref.spec import report
    path = tmp_path / "test_bare.py"
    namespace = _rewritten_module(path, _BARE_ASSERTS)
    claim = _details(namespace, "test_close_scores_give_nearly_equal_weights", path)
    positive = _details(namespace, "test_probabilities_are_positive", path)
    for d in (claim, positive):
        text = "\n".join(d["message"])
        for noise in ("<function", " at 0x", "np.False_", "+  where", "assert False"):
            assert noise not in text, text
    assert claim["message"][1].strip() == \
        "assert np.allclose(w, [0.329, 0.338, 0.333], atol=1e-3)", claim["message"]
    assert "line 9 of test_bare.py" in claim["message"][0]
    assert "w = [0.328011, 0.336651, 0.331971]" in "\n".join(claim["message"])
    assert positive["message"][1].strip() == "assert np.all(p > 0)"
    assert "where p = [0.5, -0.25, 0.75]" in "\n".join(positive["message"]), positive["message"]
    assert positive["property"] == "Every probability is positive."
    assert "(the test's name)" not in claim["property"]
    assert "nearly equal weights" in claim["property"]           # the registry's reason
    assert claim["claims"] == ["L003-softmax-example"]
    block = "\n".join(report.block(1, claim, base="https://docs.example/"))
    assert "  claim     L003-softmax-example (lesson 003" in block, block
    assert "https://docs.example/lessons/003/#claim-L003-softmax-example" in block
    assert "https://docs.example/components/softmax/#softmax.forward" in block
    assert len(block.splitlines()) <= 14, block


def test_a_components_own_gradient_blocks_come_before_its_claim_blocks():
    """With one block per component shown, the gradient check's block (it carries the
    forward-vs-backward hint) comes first; the claim test is among the "more"."""
    from llmref.spec import report
    rep = report.Report(["softmax"])
    rep.add("softmax", "failed", details={
        "test": "test_claims.py::test_a_claim", "function": "softmax.forward",
        "message": ["this check does not hold"], "claims": ["L003-softmax-example"]})
    rep.add("softmax", "failed", details={
        "test": "test_softmax.py::test_matches_torch[softmax]", "function": "softmax.backward",
        "message": ["wrong gradient(s): 'x'"], "hints": ["your backward is wrong"]})
    blocks = "\n".join(rep.blocks(limit_per_component=1))
    assert blocks.index("test_matches_torch") < blocks.index("test_a_claim"), blocks
    assert "your backward is wrong" in blocks
    assert "1 more failing test(s) of softmax: test_a_claim" in blocks


# ---------------------------------------------------------------- lessons: one map

def test_list_and_lesson_selection_read_one_map_of_lessons(capsys):
    """``--list`` prints each component's lessons from ``components.lessons``; ``NAME
    --lesson NNN`` accepts exactly those pairs; ``--lesson NNN`` alone selects exactly the
    components listed with NNN (so no listed component shows "no tests run" and "next:" names
    one of them); a pair --list does not show is refused naming the component's lessons."""
    from llmref.spec import report
    from llmref.spec.harness import components
    lessons = components.lessons()
    assert cli.main(["check", "--list"]) == cli.OK
    listed = {}
    for line in capsys.readouterr().out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[1] in components.names():
            listed[parts[1]] = tuple(p for p in parts[2:] if p.isdigit())
    assert listed == {c: lessons.get(c, ()) for c in components.names()}, listed
    assert listed["gelu"] == () and "001" not in listed["linear"]
    for lesson in cli.LESSONS:
        chosen, got, _ = cli.resolve_targets([], lesson)
        assert got == lesson
        assert chosen == [c for c in components.names() if lesson in listed[c]], lesson
        for name in components.names():
            if lesson in listed[name]:
                assert cli.resolve_targets([name], lesson)[0] == [name]
            else:
                with pytest.raises(cli.UsageFailure, match=f"belong to none of {name} "):
                    cli.resolve_targets([name], lesson)
        rep = report.Report(chosen)
        for name in chosen:
            rep.results[name].unwritten = [f"{name}.forward"]
        step = rep.next_step()
        assert step == f"next: write {chosen[0]}.forward", step
    with pytest.raises(cli.UsageFailure, match=r"linear: 003 004"):
        cli.resolve_targets(["linear"], "001")


def test_a_component_with_no_test_run_says_so_once_and_next_names_the_selection():
    from llmref.spec import report
    rep = report.Report(["linear", "sgd"])
    rep.results["sgd"].unwritten = ["embedding.init"]
    line = next(ln for ln in rep.checklist() if "linear" in ln)
    assert "no tests run" in line and "no test ran" not in line, line
    assert "none of its tests is in this selection" in line
    assert rep.next_step() == "next: write embedding.init (sgd's tests need it)"


def test_the_suite_flags_a_claim_test_whose_collected_owner_leaves_the_lesson_map():
    """The static lesson map is checked against collection in every run of the reference:
    a claim test collected for another owner than the map gives gets a failure saying so."""
    from types import SimpleNamespace

    from llmref.spec import plugin, session
    item = SimpleNamespace(path=plugin.SPEC_DIR / "test_claims.py",
                           originalname="test_softmax_of_close_scores_is_nearly_uniform",
                           name="test_softmax_of_close_scores_is_nearly_uniform",
                           _llmspec_components=("softmax",))
    assert session._lesson_map_problem(item) is None
    item._llmspec_components = ("softmax", "gpt")
    problem = session._lesson_map_problem(item)
    assert problem and "'softmax'" in problem and "'gpt'" in problem


# ---------------------------------------------------------------- the input line

def _raised(exc, notes):
    for note in notes:
        exc.add_note(note)
    with pytest.raises(type(exc)) as info:
        raise exc
    return info


def test_the_input_line_shows_only_a_real_shrunk_input():
    """A shrunk example is the component's input (``x``), without the test's own draws (the
    upstream's ``seed``, the contract test's ``index``); a module that does not import fails
    at every input, and a contract failure's draws are not an input: no input line then, and
    never the test's parameters (function reprs) in its place."""
    from types import SimpleNamespace

    from llmref.spec import report
    from llmref.spec.harness.impl import ImplementationError
    impl = SimpleNamespace(is_reference=False, name="mine", calls={"softmax.backward"})

    def example(*args):
        return ["Falsifying example: test_x(", "    impl=<Implementation mine>,",
                *(f"    {a}," for a in args), ")"]

    def details(exc, *args, **params):
        item = _Item(test_the_input_line_shows_only_a_real_shrunk_input, Path(__file__))
        item.callspec = SimpleNamespace(params=params)
        d = report.failure_details(item, _raised(exc, example(*args)), impl)
        return d, "\n".join(report.block(1, d))

    d, block = details(AssertionError("softmax.backward: gradient of 'x' is wrong"),
                       "x=array([0.5])", "seed=0")
    assert d["example"] == "x=array([0.5])"
    assert "  input     x=array([0.5])  (the smallest failing input found)" in block
    d, block = details(ImplementationError("cannot import mine.layers.softmax: syntax error "
                                           "at softmax.py:3: invalid syntax"),
                       "x=array([0.])", "seed=0")
    assert d["example"] is None and "  input" not in block, block
    assert "cannot import mine.layers.softmax" in block
    d, block = details(AssertionError("softmax.forward:\n    x = a NaN element (nan): accepted, "
                                      "expected ValueError"), "seed=0", "index=0",
                       name="softmax.forward", obj=print)
    assert d["example"] is None and "  input" not in block, block
    assert "<built-in" not in block and "seed=" not in block


def test_the_float32_check_names_the_backward_like_the_other_checks():
    """Every gradient check labels its message ``component.backward: gradient of ...``."""
    import numpy as np
    import torch

    from llmref import softmax
    from llmref.spec.harness import checks

    def mine(dotted):                   # (not named impl: this test grades no component)
        if dotted == "softmax.forward":
            return softmax.forward
        return lambda dout, cache: {"x": cache * dout}            # a wrong backward

    x = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)
    with pytest.raises(AssertionError) as info:
        checks.check_float32_forward(mine, "softmax", {"x": x}, lambda i: ((i["x"],), {}),
                                     lambda x: torch.softmax(x, dim=-1))
    assert "softmax.backward: gradient of 'x'" in str(info.value), str(info.value)


def test_with_nothing_written_the_report_is_what_the_docs_show(tmp_path, monkeypatch, capsys):
    """The "check your understanding" page shows the whole report for a fresh skeleton: the
    checklist and one sentence (exit 3), no counts."""
    from types import SimpleNamespace
    if cli.CHECKOUT is None:
        pytest.skip("the docs are part of a checkout, not of the installed package")
    page = (cli.CHECKOUT / "docs" / "check-your-understanding.md").read_text()
    shown = page.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    assert shown[0].startswith("llmspec check: myimpl: softmax; tier: math")
    skeleton.write(tmp_path, "impl_nothing_yet")
    monkeypatch.syspath_prepend(str(tmp_path))
    collector = cli.Collector()
    collector.results = [(f"spec/test_softmax.py::{t}[softmax]", "softmax", "skipped",
                          "Skipped: not implemented: softmax.forward", None, "math")
                         for t in ("test_matches_torch", "test_float32")]
    code = cli.print_report(SimpleNamespace(verbose=False, docs_url=None), ["softmax"],
                            collector, "impl_nothing_yet", True)
    assert code == cli.NOTHING_YET
    assert capsys.readouterr().out.strip("\n").splitlines() == shown[2:], shown


def test_a_selection_imports_only_the_modules_an_earlier_run_saw_it_own(monkeypatch):
    """Once a run has collected a module, ``llmspec check NAME`` imports it only if one of
    its tests (outside slow and parity) belongs to NAME; a module no run has seen yet is
    chosen by the text of its source, and test_contract always."""
    from llmref.spec.harness import components

    known = {"fingerprint": "x", "answers": {}, "new": False,
             "modules": {"llmref.spec.test_softmax": ["log_softmax", "softmax"],
                         "llmref.spec.test_generation": ["generate"]}}
    monkeypatch.setattr(components, "saved_answers", lambda: known)
    chosen = components.modules_for(["softmax"])
    assert "llmref.spec.test_softmax" in chosen and "llmref.spec.test_contract" in chosen
    assert "llmref.spec.test_generation" not in chosen      # its source names softmax
    assert "llmref.spec.test_claims_loss" in chosen          # not seen: chosen by its text
