"""``python -m llmref.spec.mutants``: run the spec tests against every mutant and report.

Each mutant is run, in this one process, against the test file of the component it breaks,
stopping at the first failure.  Prints one line per mutant, ``<name> <pytest exit code>``,
after pytest's own output; exits 0 when every mutant was caught (exit code 1: tests failed).
"""

import os
import sys

import pytest

from llmref.spec.mutants import MUTANTS


def main() -> int:
    os.environ["LLMSPEC_PROFILE"] = "catch"
    os.environ.pop("LLMSPEC_IMPL", None)
    codes = {}
    for name, test_file in MUTANTS.items():
        codes[name] = int(pytest.main(
            ["--pyargs", test_file, f"--llmspec-impl=llmref.spec.mutants.{name}", "-q", "-x",
             "-p", "no:cacheprovider", "-n", "0", "-W", "ignore"]))
    print("\nmutant results (pytest exit code; 1 = caught):")
    for name, code in codes.items():
        print(f"MUTANT {name} {code}")
    return 0 if all(code == 1 for code in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
