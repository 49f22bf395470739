"""The learner's command line: exercise skeletons graded by ``llmspec check``, clear errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _reference_only(impl):
    if not impl.is_reference:
        pytest.skip("tests of the tooling, not of an implementation")


def _llmspec(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "llmref.cli", *args], cwd=cwd or Path.cwd(),
                          text=True, capture_output=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_exercise_skeleton_is_graded_then_passes_once_filled_in(tmp_path):
    """A fresh skeleton: softmax's tests are all 'not implemented'.  With the reference's
    softmax copied in, they pass.  (Slow: two full pytest sessions; CI also walks the same
    path through the commands on the "check your understanding" page.)"""
    made = _llmspec("exercises", str(tmp_path))
    assert made.returncode == 0, made.stderr
    pkg = tmp_path / "myimpl"
    assert (pkg / "softmax.py").exists() and (pkg / "gpt.py").exists()
    first = _llmspec("check", "softmax", "--impl", "myimpl", cwd=tmp_path)
    assert "TODO softmax" in first.stdout
    assert "softmax.forward" in first.stdout.split("to write:")[1]
    import llmref
    shutil.copy(llmref.softmax.__file__, pkg / "softmax.py")
    second = _llmspec("check", "softmax", "--impl", "myimpl", cwd=tmp_path)
    assert "OK   softmax" in second.stdout, second.stdout[-2000:]


def test_unknown_names_get_a_list_of_valid_ones():
    run = _llmspec("run", "no_such_example")
    assert run.returncode != 0
    assert "valid examples are: benchmark_decode, benchmark_step, benchmark_tokenizer" \
        in run.stderr
    check = _llmspec("check", "no_such_component")
    assert check.returncode != 0 and "softmax" in check.stderr


def test_every_command_has_help():
    for command in ("check", "exercises", "run", "docs"):
        out = _llmspec(command, "--help")
        assert out.returncode == 0 and "usage: llmspec" in out.stdout
