"""``python -m llmref.spec.mutants [NAME ...]``: run each mutant's named test against it.

Each mutant is installed as an implementation (:mod:`llmref.spec.mutants.build`) and its test
is run with ``--llmspec-impl`` in this one process (torch is imported once), stopping at the first
failure, with the deterministic ``catch`` hypothesis profile.  Prints one line per mutant,
``MUTANT <name> <pytest exit code>`` (1 = the test failed = the bug was caught), and exits 0
only when every mutant run was caught.

``--check``: only check that the catalogue still fits the source (every edit finds its text,
every named test exists) and exit.  ``--table``: print the catalogue as a Markdown table.
"""

import contextlib
import io
import os
import sys

from llmref.spec.mutants import CATALOGUE
from llmref.spec.mutants.build import TESTS, install, problems


def run(names, quiet: bool = True) -> dict:
    import pytest

    os.environ["LLMSPEC_PROFILE"] = "catch"
    os.environ.pop("LLMSPEC_IMPL", None)
    codes = {}
    for name in names:
        mutant = CATALOGUE[name]
        args = [str(TESTS / mutant.test), f"--llmspec-impl={install(name, mutant)}", "-x", "-q",
                "-m", "", "-n", "0", "-p", "no:cacheprovider", "-W", "ignore",
                "--no-header", "-rN", "--tb=no"]
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
            codes[name] = int(pytest.main(args))
        print(f"MUTANT {name} {codes[name]}", flush=True)
    return codes


def table() -> str:
    rows = ["| mutant | family | bug | killed by |", "| --- | --- | --- | --- |"]
    for name, m in CATALOGUE.items():
        rows.append(f"| `{name}` | {m.family} | {m.bug} | `{m.test}` |")
    return "\n".join(rows)


def main(argv) -> int:
    if "--table" in argv:
        print(table())
        return 0
    names = [a for a in argv if not a.startswith("-")]
    found = problems()
    if "--check" in argv or (found and not names):
        print("\n".join(found) or "catalogue OK")
        return 1 if found else 0
    names = names or list(CATALOGUE)
    codes = run(names, quiet="-v" not in argv)
    survivors = [n for n, c in codes.items() if c != 1]
    print(f"\n{len(codes) - len(survivors)} of {len(codes)} mutants caught"
          + (f"; survivors: {', '.join(survivors)}" if survivors else ""))
    return 0 if not survivors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
