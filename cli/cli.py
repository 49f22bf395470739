"""``llmspec``: check an implementation against the spec, write exercise skeletons, run the
examples, build the docs.  ``llmspec COMMAND --help`` explains each command."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import io
import keyword
import os
import re
import subprocess
import sys
from pathlib import Path

#: the repository checkout this package runs from, if any (None when installed from a wheel)
CHECKOUT = next((p for p in Path(__file__).resolve().parents[:2]
                 if (p / "mkdocs.yml").is_file() and (p / "spec_tests").is_dir()), None)
EXAMPLES = {"cat_sat_mat": "the cat sat on the mat (lesson 001)",
            "word_calculator": "the word calculator, a tiny GPT doing arithmetic (lesson 002)",
            "rlhf_pipeline": "RLHF on a tiny GPT: SFT, reward model, PPO, DPO (lesson 003)",
            "benchmark_step": "one training step: our NumPy vs PyTorch eager",
            "benchmark_tokenizer": "GPT-2 tokenizer encode speed: ours vs tokenizers",
            "benchmark_decode": "generation tokens/s: KV cache, no cache, Hugging Face"}
LESSONS = ("000", "001", "002", "003", "004")
#: where ``llmspec run NAME`` saves plots unless --out says otherwise (relative to the
#: current folder; printed at the end of the run)
RUN_OUT = Path("llmspec-output")

# ---------------------------------------------------------------- exit codes (one table)
OK, FAILED, USAGE, NOTHING_YET, SUITE_BROKEN, INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = """\
exit codes:
  0    every component that is written passes (components not written yet are fine)
  1    something fails: a test, or your package cannot be imported
  2    usage error: unknown name, bad option, no such module or folder
  3    nothing implemented yet: every function the selected tests need still raises
       NotImplementedError (or is missing)
  4    the suite itself broke (a bug in llm-reference-spec; please report it)
  130  interrupted (Ctrl-C); a partial run prints no report
  (never 5: pytest's "no tests collected", which CI reads as a missing suite)"""


class UsageFailure(Exception):
    """A mistake in how the command was called: one sentence, exit code 2."""


def _suggest(name: str, valid) -> str:
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


# ---------------------------------------------------------------- check

def _components():
    from llmref.spec.harness import components
    return components


def _stages() -> dict:
    import llmref
    return dict(llmref.STAGES)


def resolve_targets(names, lesson) -> tuple:
    """The components to grade and the lesson filter, from the command line.

    Names may be components (``softmax``), stages (``layers``) or lessons (``002``, the same
    as ``--lesson 002``).  Unknown names raise :class:`UsageFailure` naming the closest."""
    components = _components()
    valid = components.names()
    stages = _stages()
    chosen, lessons = [], [lesson] if lesson else []
    for name in names:
        if name in valid:
            chosen.append(name)
        elif name in stages:
            chosen += stages[name]
        elif name in LESSONS:
            lessons.append(name)
        else:
            raise UsageFailure(
                f"unknown component {name!r}{_suggest(name, [*valid, *stages])} "
                f"(llmspec check --list shows all {len(valid)})")
    for le in lessons:
        if le not in LESSONS:
            raise UsageFailure(f"unknown lesson {le!r}; the lessons are {', '.join(LESSONS)}")
    if len(set(lessons)) > 1:
        raise UsageFailure("give one lesson at a time")
    selected = sorted(set(chosen), key=components.position) if chosen else list(valid)
    lesson = lessons[0] if lessons else None
    if lesson:
        # the same map --list prints: a component belongs to a lesson when it owns one of
        # the tests behind the lesson's claims
        of_lesson = [c for c in selected if lesson in components.lessons().get(c, ())]
        if not of_lesson:
            theirs = "; ".join(f"{c}: {' '.join(components.lessons().get(c, ())) or 'none'}"
                               for c in selected)
            raise UsageFailure(
                f"lesson {lesson}'s claim tests belong to none of {', '.join(selected)} "
                f"(their lessons, as llmspec check --list shows them: {theirs})")
        selected = of_lesson
    return selected, lesson, bool(chosen)


def list_components() -> int:
    """``llmspec check --list``: every component with its stage and lessons."""
    components = _components()
    lessons = components.lessons()
    print(f"{'stage':<13}{'component':<17}lessons (whose claim tests it owns: --lesson NNN "
          f"runs them)")
    for name in components.names():
        stage = components.stage_of(name)
        note = " ".join(lessons.get(name, ())) or "-"
        if stage == "helpers":
            note += "   (provided in the exercises)"
        print(f"{stage:<13}{name:<17}{note}")
    print(f"\n{len(components.names())} components.  llmspec check NAME [NAME ...] grades some "
          f"(a stage name such as 'layers' grades its components), --lesson NNN the tests "
          f"behind a lesson's claims.")
    return OK


def import_implementation(name: str) -> None:
    """Import the implementation before the suite does, so that its errors get one sentence
    (not a pytest INTERNALERROR)."""
    from llmref.spec.harness.impl import describe_import_error
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", name):
        raise UsageFailure(f"--impl {name!r} is not a module name (letters, digits, _ and "
                           f"dots, e.g. myimpl)")
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageFailure(f"there is no module {name!r} to import from {os.getcwd()}: "
                               f"run llmspec from the folder that contains it (llmspec "
                               f"exercises writes DIR/myimpl: cd DIR first)") from None
        raise _BrokenImplementation(describe_import_error(name, exc)) from None
    except Exception as exc:           # noqa: BLE001  (any error in the user's package)
        raise _BrokenImplementation(describe_import_error(name, exc)) from None


class _BrokenImplementation(Exception):
    """The user's package raises on import: one sentence, exit code 1."""


class Collector:
    """A pytest plugin that keeps what the report needs from every test."""

    def __init__(self):
        self.results = []            # (nodeid, owner, outcome, reason, details, tier)
        self.collect_errors = []
        self.interrupted = False
        self.items = []

    def pytest_runtest_logreport(self, report):
        if report.when != "call" and report.outcome == "passed":
            return
        from llmref.spec import report as rep
        props = dict(report.user_properties)
        owner = _components().owner(props.get(rep.COMPONENTS, ()))
        reason = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2])
        outcome = "failed" if report.failed else report.outcome
        self.results.append((report.nodeid, owner, outcome, reason, props.get(rep.DETAILS),
                             props.get(rep.TIER)))

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append((report.nodeid, report.longreprtext))

    def pytest_keyboard_interrupt(self, excinfo):
        self.interrupted = True

    def pytest_collection_finish(self, session):
        self.items = list(session.items)


def _pytest_args(args, selected, lesson, impl_name) -> list:
    from llmref.spec import plugin
    components = _components()
    named = len(selected) < len(components.names())
    if lesson:
        modules = components.lesson_modules(lesson)
    else:
        modules = components.modules_for(selected) if named else [plugin.PACKAGE]
    markers = ["not slow", "not parity"]
    if not args.contract:
        markers.append("not contract")
    if impl_name != "llmref":
        markers.append("not reference_only")
    if lesson:
        markers.append(f"lesson_{lesson}")
    jobs = args.jobs if args.jobs is not None else ("0" if named or lesson else "auto")
    # the suite's parent as rootdir: node ids keep their file name ("spec/test_x.py::...")
    # wherever the suite is installed and however few of its modules are chosen
    out = ["--pyargs", *modules, f"--rootdir={plugin.SPEC_DIR.parent}",
           f"--llmspec-component={','.join(selected)}",
           "-m", " and ".join(markers), f"--llmspec-impl={impl_name}",
           f"--hypothesis-profile={args.profile}", "-p", "no:cacheprovider", "-n", str(jobs),
           "--no-header", "-o", "console_output_style=classic"]
    if str(jobs) != "0":
        out += ["--dist", "worksteal"]          # idle workers take tests from busy ones
    if args.contract:
        out.append("--llmspec-contract")
    out += ["-v", "--tb=short"] if args.verbose else ["-q"]
    if args.dry_run:
        out.append("--collect-only")
    return out


def check(args) -> int:
    if args.list:
        return list_components()
    # like "python -m", make packages in the current folder importable (--impl myimpl)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    selected, lesson, named = resolve_targets(args.names, args.lesson)
    impl_name = args.impl or os.environ.get("LLMSPEC_IMPL") or "llmref"
    try:
        import_implementation(impl_name)
    except _BrokenImplementation as exc:
        print(f"llmspec check: {exc}", file=sys.stderr)
        return FAILED
    what = ", ".join(selected) if named else f"all {len(selected)} components"
    if lesson and named:
        what += f": the tests behind lesson {lesson}'s claims"
    elif lesson:
        what = (f"the tests behind lesson {lesson}'s claims ({len(selected)} components own "
                f"them)")
    tier = "math and input contract" if args.contract else \
        "math (--contract adds the input contract)"
    reference = " (the reference; --impl PACKAGE grades yours)" if impl_name == "llmref" else ""
    print(f"llmspec check: {impl_name}{reference}: {what}; tier: {tier}", flush=True)

    import pytest

    collector = Collector()
    argv = _pytest_args(args, selected, lesson, impl_name)
    captured = io.StringIO()
    quiet = contextlib.ExitStack()
    if not args.verbose:
        quiet.enter_context(contextlib.redirect_stdout(captured))
        quiet.enter_context(contextlib.redirect_stderr(captured))
    with quiet:
        code = pytest.main(argv, plugins=[collector])
    if collector.interrupted or (code == pytest.ExitCode.INTERRUPTED
                                 and not collector.collect_errors):
        raise KeyboardInterrupt
    if code == pytest.ExitCode.USAGE_ERROR:
        text = captured.getvalue().strip().splitlines()
        raise UsageFailure(text[-1].removeprefix("ERROR: ") if text else "pytest usage error")
    if collector.collect_errors or code == pytest.ExitCode.INTERNAL_ERROR:
        detail = collector.collect_errors[0][1] if collector.collect_errors \
            else captured.getvalue()
        print("llmspec check: the suite itself could not run (a bug in llm-reference-spec; "
              "please report it with this output):\n" + detail[-3000:], file=sys.stderr)
        return SUITE_BROKEN
    if args.dry_run:
        for item in collector.items:
            owner = _components().owner(getattr(item, "_llmspec_components", ()))
            print(f"{owner:<16} {item.nodeid.split('/')[-1]}")
        print(f"{len(collector.items)} tests would run")
        return OK
    if code == pytest.ExitCode.NO_TESTS_COLLECTED or not collector.results:
        raise UsageFailure("no test matches this selection")
    return print_report(args, selected, collector, impl_name, named or bool(lesson))


def _raises_not_implemented(fn) -> bool:
    """Whether a function's body (after its docstring) is only ``raise NotImplementedError``."""
    import ast
    import inspect
    import textwrap
    try:
        node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return False
    body = [n for n in getattr(node, "body", []) if not (
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def unwritten(impl_name: str, selected) -> dict:
    """``{component: [functions]}`` the implementation has not written yet: missing, or whose
    body is still the skeleton's ``raise NotImplementedError`` (read from the source)."""
    if impl_name == "llmref":
        return {}
    import llmref
    from llmref.cli.skeleton import functions
    from llmref.spec.harness.impl import Implementation
    try:
        impl = Implementation(impl_name)
    except Exception:                  # noqa: BLE001  (the tests report it)
        return {}
    out = {}
    for name in selected:
        try:
            mine = impl._component(name)
        except Exception:              # noqa: BLE001  (a module that does not import)
            continue
        todo = []
        for fname, _ in functions(getattr(llmref, name)):
            fn = getattr(mine, fname, None) if mine is not None else None
            if not callable(fn) or _raises_not_implemented(fn):
                todo.append(f"{name}.{fname}")
        if todo:
            out[name] = todo
    return out


def print_report(args, selected, collector, impl_name, named) -> int:
    from llmref.spec.report import Report
    report = Report(selected)
    for name, todo in unwritten(impl_name, selected).items():
        report.results[name].unwritten = todo
    for nodeid, owner, outcome, reason, details, _tier in collector.results:
        if details is None and outcome == "failed":
            details = {"test": nodeid.split("/")[-1], "message": [reason or "(error)"],
                       "links": []}
        report.add(owner, outcome, reason, details)
    if not named:
        print("\nprogress through the lessons (teaching order):")
    else:
        print()
    print("\n".join(report.checklist()))
    blocks = report.blocks(limit_per_component=10**6 if args.verbose else 3,
                           base=args.docs_url)
    if blocks:
        print("\nfailures (one block each; -v shows every failure and pytest's own output):\n")
        print("\n".join(blocks))
    if not report.any_failed and not report.any_passed:
        # nothing written: the checklist above and one sentence (no counts)
        first = report.next_function()
        print("\nNothing is implemented yet: every function these tests need still raises "
              "NotImplementedError (or is missing); fill one in and run this again"
              + (f", starting with {first}" if first else "") + ".")
        return NOTHING_YET
    counts = {s: sum(1 for r in report.results.values() if r.status == s)
              for s in ("done", "failing", "started", "to do")}
    print("\n" + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ".")
    if report.any_failed:
        hint = report.next_step()
        if hint:
            print(hint)
        return FAILED
    step = report.next_step()
    if step:
        print(step)
    return OK


# ---------------------------------------------------------------- exercises

def _package_problem(package: str, directory: Path) -> str | None:
    if not package.isidentifier() or keyword.iskeyword(package):
        return (f"the package name must be a Python identifier (letters, digits and _, not "
                f"starting with a digit, not a keyword), got {package!r}")
    if package in sys.stdlib_module_names or package in ("llmref", "numpy", "torch",
                                                          "pytest", "hypothesis"):
        return f"{package!r} would hide the module of that name; choose another --package"
    import importlib.util
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        origin = Path(spec.origin).resolve()
        if (directory.resolve() / package) not in origin.parents:
            return (f"{package!r} is already an importable module ({origin}); choose another "
                    f"--package so that llmspec check grades yours")
    return None


def exercises(args) -> int:
    from llmref.cli import skeleton

    directory = Path(args.directory)
    if directory.exists() and not directory.is_dir():
        raise UsageFailure(f"{directory} is a file, not a folder; give a folder name (it is "
                           f"created if missing)")
    problem = _package_problem(args.package, directory)
    if problem:
        raise UsageFailure(problem)
    root = directory / args.package
    if root.exists() and not root.is_dir():
        raise UsageFailure(f"{root} is a file, not a folder; choose another --package")
    try:
        result = skeleton.write(directory, args.package)
    except OSError as exc:
        raise UsageFailure(f"cannot write under {directory}: "
                           f"{exc.strerror or exc} ({exc.filename or directory})") from None
    if result.written and not result.kept:
        print(f"wrote {len(result.written)} files to {result.root}/ (one module per "
              f"component, in stage folders)")
    elif result.written:
        print(f"{result.root}/ already holds work: kept its {len(result.kept)} files "
              f"unchanged and wrote only the {len(result.written)} missing:")
        for rel in result.written:
            print(f"  + {rel}")
    else:
        print(f"{result.root}/ already holds every file: nothing written, nothing changed")
    print(f"grade them with:  cd {directory} && llmspec check --impl {args.package}")
    return OK


# ---------------------------------------------------------------- run

def run(args) -> int:
    if args.example not in EXAMPLES:
        raise UsageFailure(f"unknown example {args.example!r}{_suggest(args.example, EXAMPLES)}"
                           f"; the examples are: {', '.join(sorted(EXAMPLES))}")
    rest = list(args.rest)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    module = importlib.import_module(f"llmref.examples.{args.example}")
    makes_plots = not args.example.startswith("benchmark_")
    out = None
    if makes_plots and not any(a == "--out" or a.startswith("--out=") for a in rest):
        out = RUN_OUT / args.example
        rest += ["--out", str(out)]
    argv0, sys.argv[0] = sys.argv[0], f"llmspec run {args.example}"
    try:
        module.main(rest)
    except SystemExit as exc:            # the example's own option parser refused
        return USAGE if exc.code not in (0, None) else OK
    finally:
        sys.argv[0] = argv0
    if out is not None and "--no-plot" not in rest:
        print(f"llmspec run: plots are in {out.resolve()}/ (--out DIR to choose)")
    return OK


# ---------------------------------------------------------------- docs

def docs(args) -> int:
    if CHECKOUT is None:
        raise UsageFailure("the site is built from a checkout of the repository (its docs/ "
                           "and mkdocs.yml are not part of the installed package)")
    command = [sys.executable, "-m", "mkdocs", "serve" if args.serve else "build", "-f",
               str(CHECKOUT / "mkdocs.yml")]
    try:
        return subprocess.call(command, cwd=CHECKOUT)
    except FileNotFoundError as exc:
        raise UsageFailure(f"{exc}; install the docs extra: pip install -e '.[docs]'") from None


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmspec", description=__doc__,
                                     epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "check", help="grade an implementation, one component, a stage or a lesson",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES,
        description="Run the spec tests of the named components (all when none is named) "
        "against an implementation and report, per component: done, failing, or still to "
        "write; then one block per failure (the function, the property, the smallest "
        "failing input, expected and got, a hint, links to the docs and the lesson).\n\n"
        "Two tiers: the math (every forward, every gradient, the invariants and the "
        "lessons' claims) is graded by default; the input contract (which exception, which "
        "argument named, for bad input) with --contract.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="components (softmax), stages (layers) or a lesson (002); "
                        "--list shows them")
    p.add_argument("--impl", metavar="PACKAGE",
                   help="the package to grade, importable from the current folder (default: "
                        "$LLMSPEC_IMPL, else the reference llmref)")
    p.add_argument("--lesson", metavar="NNN", help="only the tests behind this lesson's "
                   "claims (000-004)")
    p.add_argument("--contract", action="store_true",
                   help="also grade the input contract (passes --llmspec-contract)")
    p.add_argument("--list", action="store_true",
                   help="list the components with their stage and lessons, and exit")
    p.add_argument("--dry-run", action="store_true",
                   help="list the tests that would run (and the component each belongs to)")
    p.add_argument("--profile", default="dev", choices=["dev", "ci", "thorough"],
                   help="hypothesis profile (default: dev, a few examples per test)")
    p.add_argument("--jobs", metavar="N", default=None,
                   help="processes for the tests (pytest-xdist -n; default: 1 for named "
                        "components, all cores for everything)")
    p.add_argument("--docs-url", metavar="URL", default=None,
                   help="base address of the docs site for the links (default: "
                        "$LLMSPEC_DOCS_URL, else the published site)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show pytest's full output and every failure block")
    p.set_defaults(func=check)

    p = sub.add_parser(
        "exercises", help="write a skeleton implementation to fill in",
        description="Write DIR/PACKAGE/: every public function of the reference, stage by "
        "stage in the order the lessons teach them, with its signature and docstring "
        "(equation, shapes, dtype rule, input contract) and a body that raises "
        "NotImplementedError.  Into a folder that already holds work it writes only the "
        "missing files and never changes an existing one.  Then, from DIR: llmspec check "
        "--impl PACKAGE.")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--package", default="myimpl", help="package name (default: myimpl)")
    p.set_defaults(func=exercises)

    p = sub.add_parser(
        "run", help="run an example and save its plots",
        description="Run an example; its plots go to ./llmspec-output/NAME/ unless "
        "--out DIR is given (the folder is printed at the end).  Examples: "
        + "; ".join(f"{k}: {v}" for k, v in EXAMPLES.items())
        + ".  Options after the name go to the example: llmspec run NAME -- --help.")
    p.add_argument("example", help=" | ".join(EXAMPLES))
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to the example")
    p.set_defaults(func=run)

    p = sub.add_parser("docs", help="build (or serve) the documentation site")
    p.add_argument("--serve", action="store_true", help="serve on 127.0.0.1:8000 instead")
    p.set_defaults(func=docs)
    return parser


def main(argv=None) -> int:
    command = "llmspec"
    try:
        args = build_parser().parse_args(argv)
        command = f"llmspec {args.command}"
        return args.func(args)
    except UsageFailure as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        print(f"{command}: interrupted (Ctrl-C); stopped before the end, so nothing is "
              f"reported", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:              # llmspec check | head
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return OK
