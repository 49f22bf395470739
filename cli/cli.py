"""``llmspec``: check an implementation against the spec, write exercise skeletons, run the
examples, build the docs.  ``llmspec COMMAND --help`` explains each command."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

#: the repository checkout this package runs from, if any (None when installed from a wheel)
CHECKOUT = next((p for p in Path(__file__).resolve().parents[:2]
                 if (p / "mkdocs.yml").is_file() and (p / "spec_tests").is_dir()), None)
EXAMPLES = {"cat_sat_mat": "the cat sat on the mat (lesson 001)",
            "word_calculator": "the word calculator, a tiny GPT doing arithmetic (lesson 002)",
            "reward_hacking": "reward hacking with and without a KL penalty (lesson 003)",
            "benchmark_step": "one training step: our NumPy vs PyTorch eager",
            "benchmark_tokenizer": "GPT-2 tokenizer encode speed: ours vs tokenizers",
            "benchmark_decode": "generation tokens/s: KV cache, no cache, Hugging Face"}


def components() -> list:
    import llmref
    return list(llmref.__all__)


def _not_found(kind: str, name: str, valid) -> SystemExit:
    return SystemExit(f"llmspec: unknown {kind} {name!r}; valid {kind}s are: "
                      f"{', '.join(sorted(valid))}")


class _Collector:
    """A pytest plugin that keeps each test's outcome, first failure line and claim id."""

    def __init__(self):
        self.results = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            claim = ", ".join(dict(report.user_properties).get("claims", [])) or None
            self.results.append((report.nodeid, report.outcome, report.longreprtext, claim))


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("E   "):
            return line[4:].strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def check(args) -> int:
    import pytest

    # like "python -m", make modules in the current folder importable (--impl mypackage)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())

    # the meta-tests and tool tests check the suite itself, not an implementation
    from llmref.spec import plugin
    selection, target = ["--pyargs", plugin.PACKAGE,
                         f"--ignore={plugin.SPEC_DIR / 'test_meta.py'}",
                         f"--ignore={plugin.SPEC_DIR / 'test_cli.py'}"], args.target
    if target:
        if target in components():
            selection += ["-k", target]
        elif target in ("000", "001", "002", "003", "004"):
            selection += ["-m", f"lesson_{target} and not slow"]
        else:
            raise _not_found("component or lesson", target,
                             components() + ["000", "001", "002", "003", "004"])
    if args.impl:
        selection.append(f"--llmspec-impl={args.impl}")
    collector = _Collector()
    code = pytest.main(selection + ["-q", "-n", "0", "-p", "no:cacheprovider",
                                    f"--hypothesis-profile={args.profile}", "--no-header",
                                    "-o", "console_output_style=classic"],
                       plugins=[collector])
    by_section = defaultdict(lambda: {"passed": 0, "failed": [], "skipped": []})
    for nodeid, outcome, text, claim in collector.results:
        section = Path(nodeid.split("::")[0]).stem.removeprefix("test_")
        if outcome == "passed":
            by_section[section]["passed"] += 1
        elif outcome == "failed":
            by_section[section]["failed"].append((nodeid.split("::", 1)[1], text, claim))
        else:
            by_section[section]["skipped"].append(text)
    print("\n=== llmspec report " + "=" * 50)
    for section, r in sorted(by_section.items()):
        missing = sorted({m.group(1) for t in r["skipped"]
                          for m in [re.search(r"not implemented: ([\w.]+)", t)] if m})
        status = "OK  " if not r["failed"] and r["passed"] else "FAIL" if r["failed"] else "TODO"
        print(f"{status} {section:<24} passed {r['passed']:3d}  failed {len(r['failed']):3d}"
              f"  not implemented {len(r['skipped']):3d}")
        for name, text, claim in r["failed"][:3]:
            tag = f" [claim {claim}]" if claim else ""
            print(f"       x {name}{tag}: {_first_line(text)[:150]}")
        if missing:
            print(f"       to write: {', '.join(missing)}")
    return int(code)


def exercises(args) -> int:
    from llmref.cli import skeleton

    root = skeleton.write(Path(args.directory), args.package)
    print(f"wrote {len(list(root.glob('*.py')))} modules to {root}")
    print(f"grade them with:  cd {Path(args.directory)} && llmspec check --impl {args.package}")
    return 0


def run(args) -> int:
    if args.example not in EXAMPLES:
        raise _not_found("example", args.example, EXAMPLES)
    module = importlib.import_module(f"llmref.examples.{args.example}")
    module.main(args.rest)
    return 0


def docs(args) -> int:
    if CHECKOUT is None:
        raise SystemExit("llmspec docs: the site is built from a checkout of the repository "
                         "(its docs/ and mkdocs.yml are not part of the installed package)")
    command = [sys.executable, "-m", "mkdocs", "serve" if args.serve else "build", "-f",
               str(CHECKOUT / "mkdocs.yml")]
    try:
        return subprocess.call(command, cwd=CHECKOUT)
    except FileNotFoundError as exc:
        raise SystemExit(f"llmspec docs: {exc}; install the docs extra: "
                         f"pip install -e '.[docs]'") from exc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="llmspec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="run the spec tests for a lesson or component and report",
                       description="Run the spec tests (all, one component such as softmax, "
                       "or one lesson such as 002) against an implementation and print what "
                       "passes, what fails (with the first failing example and the claim it "
                       "backs) and what is not implemented yet.")
    p.add_argument("target", nargs="?", help="component (e.g. softmax) or lesson (e.g. 002)")
    p.add_argument("--impl", metavar="MODULE", help="module to test instead of 'reference'")
    p.add_argument("--profile", default="dev", choices=["dev", "ci", "thorough"],
                   help="hypothesis profile (default: dev)")
    p.set_defaults(func=check)

    p = sub.add_parser("exercises", help="write a skeleton implementation to fill in",
                       description="Write DIR/PACKAGE/: every public function of the reference "
                       "with its signature and docstring and a body that raises "
                       "NotImplementedError.  Then: llmspec check --impl PACKAGE (from DIR).")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--package", default="myimpl", help="package name (default: myimpl)")
    p.set_defaults(func=exercises)

    p = sub.add_parser("run", help="run an example and save its plots",
                       description="Examples: " + "; ".join(f"{k}: {v}"
                                                            for k, v in EXAMPLES.items()))
    p.add_argument("example", help=" | ".join(EXAMPLES))
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to the example")
    p.set_defaults(func=run)

    p = sub.add_parser("docs", help="build (or serve) the documentation site")
    p.add_argument("--serve", action="store_true", help="serve on 127.0.0.1:8000 instead")
    p.set_defaults(func=docs)

    args = parser.parse_args(argv)
    return args.func(args)
