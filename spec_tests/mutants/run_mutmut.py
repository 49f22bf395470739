"""Run mutmut over the reference's modules, a few modules at a time, each only against its
own test files (plus the tests that check every module: bad input, input contracts, caches).
Outside CI: every group's first pass and reruns take about two hours of two cores.

    python -m llmref.spec.mutants.run_mutmut [GROUP ...]       # default: every group
                                                               # (of the commit at HEAD)
    python -m llmref.spec.mutants.run_mutmut --verify GROUP ...  # rerun the tests on survivors
    python -m llmref.spec.mutants.run_mutmut --rerun GROUP ...   # mutmut again on survivors
                                                   # (--every-test: all of the group's tests)
    python -m llmref.spec.mutants.run_mutmut --reverify GROUP ...  # again, on those left
                    # (and on survivors a resumed pass added; --every-test: in mutmut with
                    # every test of the group, not as patches)
    python -m llmref.spec.mutants.run_mutmut --resume GROUP ...  # go on with a first pass
                                      # stopped before the end (--every-test: as for --rerun)
    python -m llmref.spec.mutants.run_mutmut --list GROUP ...    # survivors not judged
                                                                 # equivalent, one line each
    python -m llmref.spec.mutants.run_mutmut --record [GROUP ...]  # write mutmut_record.json
                                                                   # (the docs' table)
    python -m llmref.spec.mutants.run_mutmut --help               # this text

Each group runs in a scratch copy of the committed tree (``git archive HEAD``) with a
``[tool.mutmut]`` section naming its modules and test files, the deterministic ``catch``
hypothesis profile (8 examples, derandomized) and pytest on one process per mutant.  Two
changes to the copy make mutmut see the package as the tests import it:

- the folders are laid out as the wheel installs them (``reference/`` becomes ``llmref/``,
  ``spec_tests/`` becomes ``llmref/spec/``...; ``[tool.setuptools.package-dir]``), so the
  mutated ``llmref`` on mutmut's path is the one the tests import;
- mutmut leaves decorated functions alone, and every public function carries ``@contract``
  (which only attaches ``__contract__``); in the copy each decorator becomes a statement after
  its function (``forward = contract(...)(forward)``), which attaches the same object.
Results: ``.llmspec/mutmut/<group>.txt`` (every mutant's status and diff of the
survivors) and a summary line per group on stdout.  mutmut counts a mutant as killed when
the tests fail, survived when they pass, and times it out when they hang.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from llmref.spec.harness.impl import DEFAULT

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".llmspec" / "mutmut"

#: group -> (modules, test files); every module of the reference appears in one group (the
#: initialisers' tests live in test_initialisers.py)
GROUPS = {
    "activations": (["relu", "gelu", "gelu_tanh", "sigmoid", "tanh"], ["test_activations.py"]),
    "softmax": (["softmax", "log_softmax"], ["test_softmax.py"]),
    "linear": (["linear"], ["test_linear.py", "test_initialisers.py"]),
    "norms": (["layer_norm", "rms_norm"], ["test_norms.py", "test_initialisers.py"]),
    "embeddings": (["embedding", "positional", "sinusoidal"],
                   ["test_embedding.py", "test_initialisers.py"]),
    "attention": (["attention"], ["test_attention.py"]),
    "transformer": (["mha", "ffn", "block", "gpt"],
                    ["test_transformer.py", "test_transformer_properties.py",
                     "test_initialisers.py", "test_decoding.py", "test_llama.py"]),
    "generate": (["generate"], ["test_generation.py"]),
    "losses": (["cross_entropy", "mse"], ["test_losses.py"]),
    "optimizers": (["sgd", "adam", "adamw", "clip", "schedules"], ["test_optim.py"]),
    "training": (["accumulate", "checkpoint", "train", "memory"], ["test_training.py"]),
    "mixed_precision": (["mixed_precision"], ["test_mixed_precision.py"]),
    # the RLHF loop's batch check measures rows against a context only for the GPT's heads
    "rlhf": (["preference", "dpo", "reward_model", "kl", "gae", "ppo", "bigram_policy",
              "rlhf_loop"], ["test_rlhf.py", "test_initialisers.py", "test_rlhf_gpt.py"]),
    "accounting": (["flops"], ["test_flops.py"]),
    "tokenizers": (["bpe", "word_tokenizer"], ["test_tokenizers.py"]),
    "params": (["params"], ["test_params.py", "test_initialisers.py"]),
    "weights": (["weights", "convert", "convert_llama"], ["test_weights.py", "test_convert.py"]),
    "gpt2_tokenizer": (["gpt2_tokenizer"], ["test_gpt2_tokenizer.py"]),
    # SwiGLU's parameter checks are refused word for word through the GPT that holds them
    "llama": (["silu", "swiglu", "rope"], ["test_activations.py", "test_llama.py",
                                            "test_transformer.py"]),
    "rlhf_gpt": (["gpt_policy", "value_model"], ["test_rlhf_gpt.py"]),
}


#: test files that check every module, run with each group's own: error messages for bad
#: input, the declared input contracts (and each function's contract example), caches
COMMON = ["test_bad_input.py", "test_contract.py", "test_caches.py"]

#: where each package's folder lies in the repository (``[tool.setuptools.package-dir]``);
#: the scratch copy moves them to where the wheel puts them
PACKAGE_DIRS = {"llmref": "reference", "llmref/spec": "spec_tests",
                "llmref/examples": "examples", "llmref/cli": "cli"}


def module_path(name: str) -> str:
    """The module's file in the scratch copy's layout (``llmref/layers/softmax.py``)."""
    import importlib

    from llmref.spec.mutants.build import reference_module

    module = reference_module(name)
    package = Path(importlib.import_module(DEFAULT).__file__).resolve().parent
    return str(Path("llmref") / Path(module.__file__).resolve().relative_to(package))


def relayout(scratch: Path) -> None:
    """Move the repository's folders to the installed package's layout (``llmref/...``)."""
    for target, folder in PACKAGE_DIRS.items():          # llmref first, then inside it
        (scratch / folder).rename(scratch / target)


def undecorate(source: str) -> str:
    """``@contract(...)`` over a module-level function becomes ``name = contract(...)(name)``
    after it: the same object gets the same ``__contract__``, and mutmut, which skips
    decorated functions, mutates it."""
    lines = source.splitlines(keepends=True)
    moves = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and len(node.decorator_list) == 1:
            dec = node.decorator_list[0]
            if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "contract":
                moves.append((dec.lineno, dec.end_lineno, node.end_lineno, node.name,
                              ast.get_source_segment(source, dec)))
    for first, last, end, name, text in reversed(moves):
        lines.insert(end, f"{name} = {text}({name})\n")
        del lines[first - 1:last]
    return "".join(lines)


def config(modules, tests) -> str:
    paths = ", ".join(f'"{module_path(m)}"' for m in modules)
    tests = ", ".join(f'"llmref/spec/{t}"' for t in tests + COMMON)
    return (f"\n[tool.mutmut]\npaths_to_mutate = [{paths}]\ntests_dir = [{tests}]\n"
            f'pytest_add_cli_args = ["-n", "0", "-p", "no:cacheprovider", "-x"]\n'
            f'also_copy = ["llmref"]\n')


@contextlib.contextmanager
def _scratch(group: str, rev: str):
    """A scratch copy of commit ``rev`` set up for mutmut on ``group``: yields the folder and
    the environment to run mutmut in."""
    modules, tests = GROUPS[group]
    with tempfile.TemporaryDirectory(prefix=f"mutmut-{group}-") as scratch:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
        relayout(Path(scratch))
        for path in (module_path(m) for m in modules):
            source = Path(scratch, path)
            source.write_text(undecorate(source.read_text()))
        with open(Path(scratch) / "pyproject.toml", "a") as f:
            f.write(config(modules, tests))
        # the suite's status file and saved component map go to the scratch folder; one
        # thread for every math library: mutmut forks each mutant's run from a process that
        # has already used torch, and a forked child waits forever on a thread pool it did
        # not inherit (each such mutant was reported as a timeout)
        env = {**os.environ, "LLMSPEC_PROFILE": "catch", "PYTHONWARNINGS": "ignore",
               "XDG_CACHE_HOME": str(Path(scratch, ".cache")),
               **{f"{lib}_NUM_THREADS": "1" for lib in ("OMP", "MKL", "OPENBLAS")}}
        env.pop("LLMSPEC_IMPL", None)
        yield scratch, env


def _mutmut(scratch, env, *args, every_test: bool = False) -> str:
    """mutmut's output for ``args``; ``every_test``: each mutant runs every test of the
    group (fastest first), not only those that called its function in mutmut's clean run."""
    command = ["-c", _EVERY_TEST] if every_test else ["-m", "mutmut"]
    return subprocess.run([sys.executable, *command, *args], cwd=scratch, env=env,
                          capture_output=True, text=True).stdout


#: mutmut with every test of the group for every mutant.  mutmut picks a mutant's tests from
#: the functions each test called in its clean run, one run in one process, so a function
#: that a module-scoped fixture or a cache calls once is credited to the first test that
#: needed it; the mutant then runs that test alone, and a mutant the other tests would kill
#: survives.  This replaces the map from function to tests, after mutmut has built it, by
#: one that answers every test for every function.
_EVERY_TEST = """
import sys
import mutmut.__main__ as main

class _EveryTest(dict):
    def __init__(self, found, every):
        super().__init__(found)
        self.every = every
    def get(self, key, default=None):
        return set(self.every)
    def __getitem__(self, key):
        return set(self.every)

_collect = main.collect_or_load_stats

def _collect_then_widen(*args, **kwargs):
    _collect(*args, **kwargs)
    found = main.state()
    found.tests_by_mangled_function_name = _EveryTest(found.tests_by_mangled_function_name,
                                                      set(found.duration_by_test))

main.collect_or_load_stats = _collect_then_widen
sys.argv = ["mutmut", *sys.argv[1:]]
main.cli()
"""


def _statuses(scratch, env) -> dict:
    return dict(re.findall(r"^\s*(\S+__mutmut_\d+): (.+)$",
                           _mutmut(scratch, env, "results", "--all", "true"), re.M))


def run_group(group: str, rev: str = "HEAD") -> dict:
    with _scratch(group, rev) as (scratch, env):
        _mutmut(scratch, env, "run")
        return collect(group, scratch, rev, env, stopped=False)


def collect(group: str, scratch: str, rev: str, env: dict | None = None,
            stopped: bool = True) -> dict:
    """Write ``<group>.txt`` from a scratch folder after mutmut ran there (``stopped``: a run
    stopped before the end): every mutant's status, with the diff of each that was neither
    killed nor left unrun (``not checked``); returns the count of each status."""
    modules, tests = GROUPS[group]
    env = env or {**os.environ, "XDG_CACHE_HOME": str(Path(scratch, ".cache"))}
    statuses = _statuses(scratch, env)
    note = " (stopped before the end)" if stopped else ""
    header = (f"# mutmut, group {group}, commit {rev}{note}: modules {', '.join(modules)}; "
              f"tests {', '.join(tests)} + {', '.join(COMMON)}")
    return _write(group, header, statuses, _diffs(scratch, env, statuses))


def _diffs(scratch, env, statuses) -> dict:
    """``{name: mutmut's diff}`` for each mutant neither killed nor left unrun."""
    from concurrent.futures import ThreadPoolExecutor

    shown = [n for n, s in sorted(statuses.items()) if s not in ("killed", "not checked")]
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(shown, pool.map(lambda n: _mutmut(scratch, env, "show", n), shown),
                        strict=True))


def _write(group: str, header: str, statuses: dict, diffs: dict) -> dict:
    """Write ``<group>.txt``: the header, each mutant's status, then the diffs; returns the
    count of each status."""
    lines = [header, ""] + [f"{name}: {status}" for name, status in sorted(statuses.items())]
    for name in sorted(diffs):
        lines += ["", f"## {name} ({statuses[name]})", diffs[name].rstrip("\n")]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{group}.txt").write_text("\n".join(lines) + "\n")
    counts: dict = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    return counts


def _functions(source: str) -> dict:
    """``{function or method name: its code}`` for a module's source: the syntax tree without
    decorators or docstring, which mutmut's mutants of the function depend on (a changed
    comment or docstring leaves their numbers and edits as they were)."""
    out = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                body = body[1:]
            out[node.name] = ast.dump(ast.Module(body=body, type_ignores=[])) + ast.dump(node.args)
    return out


def _committed(rev: str, path: str) -> str:
    """The text of a scratch-layout path (``llmref/layers/ffn.py``) at commit ``rev``."""
    top, rest = path.split("/", 1)
    return subprocess.run(["git", "show", f"{rev}:{PACKAGE_DIRS[top]}/{rest}"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def resume(group: str, every_test: bool = False) -> dict:
    """Go on with a first pass that was stopped before the end: mutmut, at the committed HEAD,
    on the mutants it left unrun (``not checked``, or ``no tests`` when the group has gained
    test files since).  Mutant numbers hold only within an unchanged function, so every
    mutant of a function whose text changed since the first pass's commit is run anew and
    its old results are dropped.  ``<group>.txt`` keeps the first pass's other results and
    its header names both commits (and says when ``every_test`` ran each mutant against
    every test of the group)."""
    path = OUT / f"{group}.txt"
    text = path.read_text()
    header = text.splitlines()[0]
    first = re.search(r"commit (\w+)", header).group(1)
    old = dict(re.findall(r"^(\S+__mutmut_\d+): (.+)$", text, re.M))
    blocks = {b.split()[0]: b.split("\n", 1)[1] for b in text.split("\n## ")[1:]}
    head = _commit()
    patterns, changed = [], set()
    for module in GROUPS[group][0]:
        where = module_path(module)
        dotted = where[:-len(".py")].replace("/", ".")
        before, after = _functions(_committed(first, where)), _functions(_committed(head, where))
        for function in before.keys() | after.keys():
            if before.get(function) != after.get(function):
                changed.add((dotted, function))
                if function in after:
                    patterns += [f"{dotted}.x_{function}__mutmut_*",
                                 f"{dotted}.xǁ*ǁ{function}__mutmut_*"]
    kept = {n: s for n, s in old.items()
            if (n.rsplit(".", 1)[0], _function_of(n)) not in changed}
    unrun = {n for n, s in kept.items() if s in ("not checked", "no tests")}
    todo = [*sorted(unrun), *patterns]
    with _scratch(group, head) as (scratch, env):
        _mutmut(scratch, env, "run", *todo, every_test=every_test)
        statuses = _statuses(scratch, env)
        new = {n: s for n, s in statuses.items()
               if n in unrun or any(fnmatch.fnmatchcase(n, p) for p in patterns)}
        diffs = _diffs(scratch, env, new)
    merged = {**kept, **new}
    diffs = {**{n: b for n, b in blocks.items() if n in merged and n not in new}, **diffs}
    _forget_reruns(group, keep=set(diffs) - set(new))
    note = " (stopped before the end)" if "not checked" in merged.values() else ""
    tail = header.split(": modules", 1)[1]
    how = ", every test" if every_test else ""
    header = (f"# mutmut, group {group}, commit {first}, resumed at {head} ({len(todo)} "
              f"mutants or patterns{how}){note}: modules{tail}")
    return _write(group, header, merged, diffs)


def _forget_reruns(group: str, keep: set) -> None:
    """Drop from ``<group>.verify.json`` every rerun result not named in ``keep``: after a
    resumed first pass, a mutant of a changed function is a new mutant under an old name, and
    ``--reverify`` then reruns each survivor without a result."""
    path = OUT / f"{group}.verify.json"
    if path.is_file():
        data = json.loads(path.read_text())
        data["results"] = {n: s for n, s in data["results"].items() if n in keep}
        path.write_text(json.dumps(data, indent=1) + "\n")


def _changed_lines(diff: str) -> list:
    return [line for line in diff.splitlines() if line[:1] in ("-", "+")
            and not line.startswith(("---", "+++"))]


def rerun(group: str, every_test: bool = False, only: set | None = None,
          save: bool = True) -> dict:
    """Run mutmut again, at the committed HEAD, on the survivors of the group's first pass
    that no rule calls equivalent: mutmut picks each mutant's covering tests and runs two at
    a time, far faster than :func:`verify`.  A mutant counts only if mutmut shows the same
    edit as in the first pass (a module whose code changed numbers its mutants anew); the
    others are rerun by :func:`verify` as patches.  Saved like :func:`verify`'s results."""
    blocks = {b.split()[0]: b for b in (OUT / f"{group}.txt").read_text().split("\n## ")[1:]}
    results, todo = {}, []
    for name, _component, edits in survivors(group):
        if only is not None and name not in only:
            continue
        reason = equivalent_reason(edits, name)
        if edits is None:
            results[name] = "stale"
        elif reason:
            results[name] = f"equivalent: {reason}"
        else:
            todo.append(name)
    commit = _commit()                  # the scratch copy is HEAD (patches: see verify)
    changed = []
    if todo:
        with _scratch(group, "HEAD") as (scratch, env):
            _mutmut(scratch, env, "run", *todo, every_test=every_test)
            statuses = _statuses(scratch, env)
            for name in todo:
                shown = _mutmut(scratch, env, "show", name)
                if _changed_lines(shown) != _changed_lines(blocks[name]):
                    changed.append(name)
                else:
                    results[name] = statuses.get(name, "not checked")
                    print(f"RERUN {name} {results[name]}", flush=True)
    if changed:
        results.update(verify(group, only=set(changed), save=False))
    if not save:
        return results
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{group}.verify.json").write_text(json.dumps(
        {"commit": commit, "method": f"mutmut rerun{', every test' if every_test else ''}, "
                                     f"{len(changed)} by patch",
         "results": results}, indent=1) + "\n")
    return results


def _calls(text: str, name: str):
    """``(start, end)`` of the argument list, parentheses included, of every call of
    ``name`` (``reshape(``, ``.astype(``) in ``text``."""
    for m in re.finditer(re.escape(name), text):
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        yield m.end() - 1, j


def _without_copy_flag(text: str) -> str:
    """``text`` without the ``copy=`` argument of any ``astype`` call (only astype's: the
    copy flag of ``np.array`` decides whether the result may share the caller's memory)."""
    out, i = [], 0
    for start, end in _calls(text, ".astype("):
        out += [text[i:start], re.sub(r",?\s*copy=\w+", "", text[start:end]).replace(", )", ")")]
        i = end
    return "".join(out) + text[i:]


def _without_out(text: str) -> str:
    """``text`` without any ``out=`` argument (a name, or ``np.empty_like(name)``)."""
    return re.sub(r",?\s*out=(?:np\.empty_like\(\w+\)|\w+)", "", text).replace(", )", ")")


def _infer_sizes(text: str) -> str:
    """``text`` with every negative size given to a ``reshape`` written as -1."""
    out, i = [], 0
    for start, end in _calls(text, "reshape("):
        out += [text[i:start], re.sub(r"(?<=[(,\s])-\d+(?=\s*[,)])", "-1", text[start:end])]
        i = end
    return "".join(out) + text[i:]


def _fewer_dtypes(old: str, new: str) -> bool:
    """Whether each ``np.result_type(...)`` of ``new`` takes some of the arguments of the
    one in ``old`` and nothing else (a None would bring in float64)."""
    def args(text):
        return [{a.strip() for a in m.split(",") if a.strip()}
                for m in re.findall(r"np\.result_type\(([^)]*)\)", text)]
    return all(n and n <= o for o, n in zip(args(old), args(new), strict=True))


def _float64_default(text: str) -> str:
    text = re.sub(r",?\s*dtype=(np\.float64|None)", "", text)
    return text.replace("astype(np.float64)", "astype(None)").replace(", )", ")")


#: calls that make float64 when given no dtype (or None), whatever their other arguments;
#: not np.arange or np.full (their arguments' type), np.asarray or np.array (the input's
#: dtype), nor a ufunc or a reduction, whose dtype= is the type it computes in
_FLOAT64_BY_DEFAULT = frozenset({"np.zeros", "np.ones", "np.empty", "np.eye", "np.identity"})


def _enclosing_call(text: str, index: int) -> str:
    """The name of the innermost call whose parentheses hold position ``index``."""
    depth = 0
    for i in range(index - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            if depth == 0:
                found = re.search(r"[\w.]+$", text[:i])
                return found.group(0) if found else ""
            depth -= 1
    return ""


def _dtype_keywords(text: str) -> Counter:
    return Counter((_enclosing_call(text, m.start()), m.group(1))
                   for m in re.finditer(r"dtype=(np\.float64|None)", text))


def _only_constructor_dtypes(old: str, new: str) -> bool:
    """Whether every float64/None ``dtype=`` the edit changes belongs to a call in
    :data:`_FLOAT64_BY_DEFAULT`."""
    before, after = _dtype_keywords(old), _dtype_keywords(new)
    return all(call in _FLOAT64_BY_DEFAULT for call, _ in (before - after) + (after - before))


#: survivors that cannot change any result the specification fixes, with the reason; each
#: rule sees the mutated statement's old and new text
EQUIVALENT = [
    (lambda old, new: _without_copy_flag(old) == _without_copy_flag(new),
     "only astype's copy flag changes: a copy or not, the values and dtype are the same"),
    # (astype(None) is float64 everywhere; a dtype= keyword only in the constructors of
    # _FLOAT64_BY_DEFAULT)
    (lambda old, new: _float64_default(old) == _float64_default(new)
     and _only_constructor_dtypes(old, new),
     "dtype None (or left out) means float64, as np.float64 does"),
    (lambda old, new: _infer_sizes(old) == _infer_sizes(new),
     "NumPy's reshape reads any negative size as 'infer', -2 as -1"),
    (lambda old, new: old.replace('order="C"', 'order="c"') == new,
     "NumPy reads an order code in either case: order=\"c\" is order=\"C\""),
    (lambda old, new: _without_out(old) == _without_out(new),
     "a ufunc's out= buffer left out or None: a new array with the same values instead of "
     "writing into a scratch array (for a 0-d input, a NumPy scalar of the same value, which "
     "the activations' docstrings allow)"),
    (lambda old, new: re.sub(r"np\.result_type\([^)]*\)", "R", old)
     == re.sub(r"np\.result_type\([^)]*\)", "R", new) and _fewer_dtypes(old, new),
     "the gradient's dtype when the upstream and the input have different float dtypes, "
     "which the specification leaves open where a docstring states none (same dtypes give "
     "the same result; gelu and embedding state the promoted dtype, and tests check it)"),
]


def equivalent_reason(edits, name: str = "") -> str | None:
    """The reason a survivor is equivalent, or None: the rules above, applied to the text of
    its edit (and to its mutmut name: a function that builds a contract's example)."""
    if re.search(r"\.x__\w*example\w*__mutmut_\d+$", name):
        return ("a contract's example call changed to another valid call (the example is the "
                "contract test's input, not behaviour the specification fixes)")
    if edits is None:
        return None
    old, new = edits[0][0], edits[0][1]
    for rule, reason in EQUIVALENT:
        if rule(old, new):
            return reason
    changed = [(a.strip(), b.strip()) for a, b in zip(old.splitlines(), new.splitlines(),
                                                       strict=False) if a != b]
    if len(changed) != 1:
        return None
    judged = specific()
    return judged.get((_function_of(name), *changed[0])) or judged.get(changed[0])


def specific() -> dict:
    """Single survivors judged equivalent one by one, ``{(old line, new line): reason}``
    (or ``{(function, old line, new line): reason}`` where the same line appears in another
    function that a test can tell apart):
    the ``SPECIFIC`` dicts of the modules in ``llmref.spec.mutants.equivalent`` (one module
    per group, so each group's judgements are kept apart)."""
    import importlib
    import pkgutil

    from llmref.spec.mutants import equivalent

    found = {}
    for info in pkgutil.iter_modules(equivalent.__path__):
        found.update(importlib.import_module(f"{equivalent.__name__}.{info.name}").SPECIFIC)
    return found


def survivors(group: str) -> list:
    """``[(mutmut name, component, edits)]`` for every mutant of the group's last run that
    was not killed, with its diff turned into one exact text edit of the module's source
    (context lines from the diff are added until the text to find is unique); edits is None
    when the mutated function no longer holds that text (the mutant is stale)."""
    from llmref.spec.mutants.build import reference_module

    text = (OUT / f"{group}.txt").read_text()
    out = []
    for block in text.split("\n## ")[1:]:
        name = block.split()[0]
        component = name.rsplit(".", 1)[0].split(".")[-1]      # llmref.layers.gelu.x_f...
        body = [line for line in block.splitlines() if line[:1] in (" ", "-", "+")
                and not line.startswith(("---", "+++"))]
        first = next(i for i, line in enumerate(body) if line[0] in "-+")
        last = max(i for i, line in enumerate(body) if line[0] in "-+")
        old = [line[1:] for line in body[first:last + 1] if line[0] in " -"]
        new = [line[1:] for line in body[first:last + 1] if line[0] in " +"]
        before = [line[1:] for line in body[:first]]
        source = Path(reference_module(component).__file__).read_text()
        while source.count("\n".join(old)) != 1 and before:
            old.insert(0, before[-1])
            new.insert(0, before.pop())
        found = source.find("\n".join(old))
        lines = _function_lines(source, _function_of(name))
        if found < 0 or lines is None or not (
                lines[0] <= source.count("\n", 0, found) + 1 <= lines[1]):
            out.append((name, component, None))       # its function no longer has that text
            continue
        out.append((name, component, (("\n".join(old), "\n".join(new)),)))
    return out


def _function_of(name: str) -> str:
    """The mutated function's name in mutmut's name for a mutant:
    ``llmref.training.adam.x_step__mutmut_3`` -> ``step``, ``x__moments`` -> ``_moments``,
    a method ``xǁClassǁmethod`` -> ``method``."""
    mangled = name.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    return mangled.split("ǁ")[-1] if "ǁ" in mangled else mangled[len("x_"):]


def _function_lines(source: str, function: str):
    """``(first, last)`` line of the function (or method) named ``function`` in ``source``,
    decorators included; None if there is none."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return first, node.end_lineno
    return None


#: seconds a patch mutant's tests may run in --verify before it counts as caught (timeout)
VERIFY_LIMIT = 180

def _verify_child() -> None:
    """The child process of :func:`_verify_one`: one survivor, described on stdin, as a patch
    mutant; the group's own tests, then the common files on the group's modules, then all of
    them.  The first that fails kills the mutant (a survivor runs all three); the exit status
    is pytest's last."""
    import pytest

    from llmref.spec.mutants import Mutant
    from llmref.spec.mutants.build import TESTS, install

    a = json.load(sys.stdin)
    impl = install(a["name"].replace(".", "_"),
                   Mutant(family=a["group"], bug=a["name"], test="", component=a["component"],
                          edits=tuple(tuple(e) for e in a["edits"])))
    modules, tests = GROUPS[a["group"]]
    code = 5
    for paths, select in ((tests, []), (COMMON, ["-k", " or ".join(modules)]), (COMMON, [])):
        code = int(pytest.main([*(str(TESTS / t) for t in paths), *select,
                                f"--llmspec-impl={impl}", "-x", "-q", "-m", "", "-n", "0",
                                "-p", "no:cacheprovider", "-W", "ignore", "--no-header", "-rN",
                                "--tb=no"]))
        if code not in (0, 5):                 # 5: the selection held no test
            break
    sys.exit(code)


def _verify_one(group: str, name: str, component: str, edits) -> str:
    """killed, survived, timeout or error for one survivor installed as a patch mutant, in a
    new interpreter: in one process the runs pile up state, and after a dozen of them the
    contract tests hit a RecursionError that counted as a kill."""
    spec = json.dumps({"group": group, "name": name, "component": component,
                       "edits": [list(e) for e in edits]})
    env = {**os.environ, "LLMSPEC_PROFILE": "catch"}
    env.pop("LLMSPEC_IMPL", None)
    try:
        proc = subprocess.run([sys.executable, "-c", "from llmref.spec.mutants.run_mutmut "
                               "import _verify_child; _verify_child()"], input=spec, text=True,
                              capture_output=True, env=env, timeout=VERIFY_LIMIT, cwd=ROOT)
    except subprocess.TimeoutExpired:              # a mutant that loops forever is caught
        return "timeout"
    return {0: "survived", 5: "survived", 1: "killed"}.get(
        proc.returncode, f"error (pytest exit {proc.returncode})")


def verify(group: str, only: set | None = None, save: bool = True) -> dict:
    """Rerun the group's test files against each survivor of its last mutmut run, installed
    as a catalogue-style patch mutant (the tests may have grown since), each in a new
    interpreter: ``{name: status}`` with status killed, survived, timeout, or stale (its
    text is no longer in the source)."""
    from llmref.spec.mutants import Mutant
    from llmref.spec.mutants.build import StaleMutant, mutated_source

    results = {}
    at = _head()                            # the working tree the patches and tests come from
    for name, component, edits in survivors(group):
        if only is not None and name not in only:
            continue
        reason = equivalent_reason(edits, name)
        if reason:                                  # nothing a test could observe: not run
            results[name] = f"equivalent: {reason}"
            print(f"VERIFY {name} {results[name]}", flush=True)
            continue
        if edits is None:
            results[name] = "stale"
            continue
        try:
            mutated_source(name, Mutant(family=group, bug=name, test="", component=component,
                                        edits=edits))
        except StaleMutant:
            results[name] = "stale"
            continue
        results[name] = _verify_one(group, name, component, edits)
        print(f"VERIFY {name} {results[name]}", flush=True)
    if save:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{group}.verify.json").write_text(json.dumps(
            {"commit": at, "method": "patch", "results": results}, indent=1) + "\n")
    return results


def _commit() -> str:
    """The short name of the commit at HEAD."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def _head() -> str:
    """The commit at HEAD, with ``+`` when the working tree differs from it."""
    rev = _commit()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return rev + ("+" if dirty else "")


#: rerun statuses that count as caught
CAUGHT = ("killed", "timeout")

#: the committed record of the last run, which the docs' mutation page is built from
RECORD = Path(__file__).with_name("mutmut_record.json")


def record(groups) -> dict:
    """Gather each group's first pass (``<group>.txt``) and rerun (``<group>.verify.json``)
    into :data:`RECORD`; the other groups keep their rows."""
    from importlib.metadata import version

    # a group without results here keeps its row of the committed record (results live on
    # the machine that ran them)
    kept = ({row["group"]: row for row in json.loads(RECORD.read_text())["groups"]}
            if RECORD.is_file() else {})
    rows = []
    for group in GROUPS:
        if group not in groups or not (OUT / f"{group}.txt").is_file():
            rows.append(kept.get(group) or {"group": group, "modules": GROUPS[group][0],
                                            "first_pass": None})
            continue
        text = (OUT / f"{group}.txt").read_text()
        commit = re.search(r"commit (\w+)", text.splitlines()[0])
        resumed = re.search(r"resumed at (\w+)", text.splitlines()[0])
        statuses = re.findall(r"^\S+__mutmut_\d+: (.+)$", text, re.M)
        first = {status: statuses.count(status) for status in sorted(set(statuses))}
        row = {"group": group, "modules": GROUPS[group][0],
               "tests": GROUPS[group][1] + COMMON,
               "first_pass": {"commit": commit.group(1) if commit else None,
                              **({"resumed_at": resumed.group(1)} if resumed else {}),
                              "mutants": len(statuses), **first}}
        verified = OUT / f"{group}.verify.json"
        if verified.is_file():
            data = json.loads(verified.read_text())
            results = data["results"]
            reasons: dict = {}
            for status in results.values():
                if status.startswith("equivalent: "):
                    reason = status[len("equivalent: "):]
                    reasons[reason] = reasons.get(reason, 0) + 1
            row["rerun"] = {"commit": data["commit"], "method": data.get("method", "patch"),
                            "survivors": len(results),
                            # a timeout is caught: the tests never passed on it
                            "killed": sum(s in CAUGHT for s in results.values()),
                            "equivalent": sum(reasons.values()), "equivalent_reasons": reasons,
                            "stale": sum(s == "stale" for s in results.values()),
                            "left": {n: s for n, s in sorted(results.items())
                                     if s not in CAUGHT + ("stale",)
                                     and not s.startswith("equivalent")}}
        rows.append(row)
    data = {"tool": f"mutmut {version('mutmut')}", "groups": rows}
    RECORD.write_text(json.dumps(data, indent=1) + "\n")
    return data


def listing(group: str) -> list:
    """``[(mutmut name, old line, new line)]`` for the survivors of the group's last run that
    no rule calls equivalent (the first changed line of each)."""
    out = []
    for name, _component, edits in survivors(group):
        if edits is None:
            out.append((name, "(stale: the function no longer holds this text)", ""))
            continue
        if equivalent_reason(edits, name):
            continue
        old, new = edits[0]
        changed = [(a.strip(), b.strip()) for a, b in zip(old.splitlines(), new.splitlines(),
                                                           strict=False) if a != b]
        out.append((name, *(changed[0] if changed else (old, new))))
    return out


#: the modes and the one flag main() understands
OPTIONS = ("--record", "--reverify", "--rerun", "--resume", "--list", "--verify", "--every-test")


def main(argv) -> int:
    if argv[:1] in (["--help"], ["-h"]):
        print(__doc__)
        return 0
    unknown = [a for a in argv if a not in GROUPS and a not in OPTIONS]
    if unknown:
        print(f"run_mutmut: unknown {'option' if unknown[0].startswith('-') else 'group'} "
              f"{unknown[0]!r}; modes: {', '.join(OPTIONS)}; groups: {', '.join(GROUPS)} "
              "(--help for usage)", file=sys.stderr)
        return 2
    if argv[:1] == ["--record"]:
        data = record(argv[1:] or [g for g in GROUPS if (OUT / f"{g}.txt").is_file()])
        print(f"{RECORD}: {len(data['groups'])} groups")
        return 0
    if argv[:1] == ["--reverify"]:               # once more, only those a rerun left
        every_test = "--every-test" in argv      # in mutmut (every test), not as patches
        for group in [a for a in argv[1:] if a != "--every-test"]:
            path = OUT / f"{group}.verify.json"
            data = json.loads(path.read_text())
            left = {n for n, s in data["results"].items()
                    if s not in CAUGHT + ("stale",) and not s.startswith("equivalent")}
            # an equivalent verdict is judged again by today's rules and judgements: a new
            # reason replaces the old one, and a survivor none of them covers is rerun
            for name, _component, edits in survivors(group):
                if data["results"].get(name, "").startswith("equivalent: "):
                    reason = equivalent_reason(edits, name)
                    if reason:
                        data["results"][name] = f"equivalent: {reason}"
                    else:
                        left.add(name)
            left |= {n for n, _, _ in survivors(group)} - set(data["results"])  # never rerun
            if left:
                # the commit the mutants run against: mutmut's scratch copy is HEAD as it is
                # now (later commits do not reach it); a patch run reads the working tree
                at = _commit() if every_test else _head()
                data["results"].update(rerun(group, True, only=left, save=False) if every_test
                                       else verify(group, only=left, save=False))
                data["commit"] = f"{data['commit']}; the {len(left)} left then at {at}"
            path.write_text(json.dumps(data, indent=1) + "\n")
            print(f"{group}: {len(left)} rerun again", flush=True)
        return 0
    if argv[:1] == ["--rerun"]:
        every_test = "--every-test" in argv
        for group in [a for a in argv[1:] if a != "--every-test"]:
            results = rerun(group, every_test)
            left = sorted(n for n, s in results.items() if s not in CAUGHT + ("stale",)
                          and not s.startswith("equivalent"))
            print(f"{group}: {len(results)} survivors rerun, "
                  f"{sum(s in CAUGHT for s in results.values())} now killed or timed out, "
                  f"{sum(s == 'stale' for s in results.values())} stale, "
                  f"{sum(s.startswith('equivalent') for s in results.values())} equivalent, "
                  f"{len(left)} left: {', '.join(left)}", flush=True)
        return 0
    if argv[:1] == ["--resume"]:
        every_test = "--every-test" in argv
        for group in [a for a in argv[1:] if a != "--every-test"]:
            counts = resume(group, every_test)
            print(f"{group}: {sum(counts.values())} mutants after the resumed run, "
                  + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), flush=True)
        return 0
    if argv[:1] == ["--list"]:
        for group in argv[1:]:
            for name, old, new in listing(group):
                print(f"{name}\n  - {old}\n  + {new}")
        return 0
    if argv[:1] == ["--verify"]:
        for group in argv[1:]:
            results = verify(group)
            equivalent = [n for n, s in results.items() if s.startswith("equivalent")]
            left = sorted(n for n, s in results.items() if s == "survived")
            print(f"{group}: {len(results)} survivors rerun, "
                  f"{sum(s == 'killed' for s in results.values())} now killed, "
                  f"{len(equivalent)} equivalent, {len(left)} left: {', '.join(left)}")
        return 0
    # every group of one run mutates the same commit, whatever is committed meanwhile
    rev = _commit()
    for group in argv or list(GROUPS):
        counts = run_group(group, rev)
        total = sum(counts.values())
        print(f"{group}: {total} mutants, " + ", ".join(f"{n} {s}" for s, n in
                                                       sorted(counts.items())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
