"""The package works wherever it is installed: one import root, and a pytest plugin that is
inert in other projects.  (CI repeats these against a wheel installed outside the checkout.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _reference_only(impl):
    if not impl.is_reference:
        pytest.skip("tests of the packaging, not of an implementation")


def _python(code: str, cwd, tmp_path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; its ``sys.argv[1]`` is a status file path in
    ``tmp_path`` (a run from the repository root must not write into the checkout)."""
    env = {"PATH": "/usr/bin:/bin", "LLMSPEC_CACHE": str(tmp_path / "cache"),
           "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code),
                           str(tmp_path / "status.json")], cwd=cwd, env=env,
                          text=True, capture_output=True, timeout=600)


RUN_AND_LIST = """
    import json, sys, pytest
    code = pytest.main(["--pyargs", "llmref.spec.test_softmax", "-q", "-p", "no:cacheprovider",
                        "-n", "0", "--llmspec-status=" + sys.argv[1]])
    from llmref.spec.plugin import foreign_modules
    print(json.dumps({"code": int(code), "foreign": foreign_modules(),
                      "bare": [m for m in ("reference", "spec_tests", "examples", "cli")
                               if m in sys.modules]}))
"""


@pytest.mark.parametrize("where", ["empty folder", "repository root"])
def test_a_run_imports_every_file_under_the_one_root(tmp_path, where):
    """After a ``--pyargs`` run, no module of ours is in ``sys.modules`` under a second
    name (``spec_tests.test_softmax``, a bare ``reference``)."""
    from pathlib import Path

    import llmref.spec
    checkout = Path(llmref.spec.__file__).resolve().parents[1]
    cwd = tmp_path if where == "empty folder" else checkout
    if where == "repository root" and not (checkout / "pyproject.toml").is_file():
        pytest.skip("installed from a wheel: there is no repository root")
    run = _python(RUN_AND_LIST, cwd, tmp_path)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, run.stdout[-3000:]
    assert result["foreign"] == [] and result["bare"] == [], result


def test_the_plugin_is_inert_in_an_unrelated_project(tmp_path):
    """A project that merely has the package installed sees pytest unchanged: the same
    output and exit code as with the plugin disabled, no new files, and no hypothesis,
    yaml or torch imported by our plugin."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_thing.py").write_text(
        "def test_one():\n    assert 1 + 1 == 2\n\n"
        "def test_two():\n    assert 'a' < 'b'\n")
    code = """
        import sys, pytest
        args = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist"]
        code = pytest.main(args + sys.argv[1:])
        print("IMPORTED", sorted(m for m in ("yaml", "torch", "llmref.spec.session")
                                 if m in sys.modules))
        print("CODE", int(code))
    """
    runs = {}
    for name, extra in (("with", []), ("without", ["-p", "no:llmref"])):
        full = textwrap.dedent(code).replace("sys.argv[1:]", repr(extra))
        runs[name] = _python(full, project, tmp_path)
    strip = [ln for ln in runs["with"].stdout.splitlines() if " in " not in ln]
    base = [ln for ln in runs["without"].stdout.splitlines() if " in " not in ln]
    assert strip == base, (runs["with"].stdout, runs["without"].stdout)
    assert "IMPORTED []" in runs["with"].stdout
    assert sorted(p.name for p in project.iterdir()) == ["__pycache__", "test_thing.py"]
    assert not (tmp_path / "cache").exists()
