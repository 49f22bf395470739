"""The claims registry (``llmref/spec/claims.yaml``; ``spec_tests/claims.yaml`` in the
repository): loading, and the static check that the
registry and the tests' ``@pytest.mark.claim`` markers agree."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parents[1]
REGISTRY = HERE / "claims.yaml"
VERDICTS = ("holds", "holds with caveat", "does not hold", "not testable")
REQUIRED = ("id", "lesson", "where", "claim", "verdict", "reason", "components", "tests")


@cache
def claims() -> dict:
    """``{id: entry}`` in file order."""
    # libyaml's loader when present: the pure-Python one takes a quarter of a second here
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    entries = yaml.load(REGISTRY.read_text(), Loader=loader)  # noqa: S506  (a safe loader)
    return {entry["id"]: entry for entry in entries}


def marked_tests() -> dict:
    """``{claim id: [node ids]}`` from the claim markers in the test files (read statically,
    so the check does not depend on which tests a run collects).  Each node id also records
    whether the test asks for the ``claim`` or ``claim_values`` fixture, as
    ``(node_id, uses_fixture)``."""
    found: dict = {}
    for path in sorted(HERE.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            uses_fixture = any(a.arg in ("claim", "claim_values") for a in node.args.args)
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)
                        and deco.func.attr == "claim"):
                    for arg in deco.args:
                        node_id = f"spec_tests/{path.name}::{node.name}"
                        found.setdefault(arg.value, []).append((node_id, uses_fixture))
    return found


def _component_names() -> list:
    import llmref
    return llmref.__all__


def problems() -> list:
    """Every way the registry and the tests disagree, as sentences."""
    out = []
    entries = claims()
    marks = marked_tests()
    for cid, entry in entries.items():
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            out.append(f"claim {cid}: missing field(s) {missing}")
            continue
        if entry["verdict"] not in VERDICTS:
            out.append(f"claim {cid}: verdict {entry['verdict']!r} is not one of {VERDICTS}")
        unknown = sorted(set(entry["components"]) - set(_component_names()))
        if unknown:
            out.append(f"claim {cid}: unknown component(s) {unknown}")
        if not (HERE.parent.parent / "shared" / "lessons" / entry["lesson"]).exists() and \
                not entry["lesson"][:3].isdigit():
            out.append(f"claim {cid}: unknown lesson file {entry['lesson']!r}")
        tests = {node for node, _ in marks.get(cid, [])}
        if entry["verdict"] == "not testable":
            if tests or entry["tests"]:
                out.append(f"claim {cid}: 'not testable' but tests carry it: {sorted(tests)}")
            continue
        if not tests:
            out.append(f"claim {cid}: no test carries @pytest.mark.claim({cid!r})")
        if set(entry["tests"]) != tests:
            out.append(f"claim {cid}: registry lists tests {sorted(entry['tests'])} but the "
                       f"markers are on {sorted(tests)}")
        if "value" in entry:
            if "tolerance" not in entry:
                out.append(f"claim {cid}: numeric claim without a tolerance")
            readers = [node for node, uses in marks.get(cid, []) if uses]
            if not readers:
                out.append(f"claim {cid}: numeric claim, but none of its tests reads the "
                           f"value from the registry (the 'claim' fixture)")
    for cid, nodes in marks.items():
        if cid not in entries:
            out.append(f"tests {[n for n, _ in nodes]} name unknown claim {cid!r}")
    return out


def test_results(tests: dict, node: str) -> list:
    """The results ``tests[...]`` of registry node id ``node``: the test itself, or each of
    its parametrized instances (``node[pre-norm]``, ...)."""
    return [result for key, result in tests.items()
            if key == node or (key.startswith(node + "[") and key.endswith("]"))]


def _combined(outcomes: list) -> str:
    if not outcomes:
        return "not run"
    if any(o in ("failed", "error") for o in outcomes):
        return "failed"
    if all(o == "passed" for o in outcomes):
        return "passed"
    return "skipped" if all(o == "skipped" for o in outcomes) else "partly run"


def claim_statuses(tests: dict) -> dict:
    """Each claim's status from test outcomes ``{node id: {"outcome": ...}}``: passed (all
    its tests passed), failed (any failed or errored), partly run, skipped, not run, or not
    testable.  A parametrized test counts through all its instances."""
    out = {}
    for cid, entry in claims().items():
        per_test = {t: _combined([r["outcome"] for r in test_results(tests, t)])
                    for t in entry["tests"]}
        outcomes = [o for o in per_test.values() if o != "not run"]
        if entry["verdict"] == "not testable":
            status = "not testable"
        elif not outcomes:
            status = "not run"
        elif any(o == "failed" for o in outcomes):
            status = "failed"
        elif all(o == "passed" for o in outcomes) and len(outcomes) == len(entry["tests"]):
            status = "passed"
        elif any(o in ("passed", "partly run") for o in outcomes):
            status = "partly run"
        else:
            status = "skipped"
        out[cid] = {"status": status, "verdict": entry["verdict"], "tests": per_test}
    return out
