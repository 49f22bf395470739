"""mkdocs hook: generate the site's pages from the claims registry, the last test run's status
file and the reference's own docstrings, and vendor MathJax, before every build.

Generated (not committed): docs/index.md, docs/claims.md, docs/lessons/*.md,
docs/components/*.md, docs/mutation.md, docs/javascripts/mathjax/.  Hand-written sources
live in docs_src/.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import shutil
from collections import Counter
from pathlib import Path

from llmref.spec import anchors  # the ids llmspec check links to: one scheme for both

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "docs_src"

LESSON_TITLES = {"000": "How networks learn from their mistakes",
                 "001": "The cat sat on the mat", "002": "How the word calculator learns",
                 "003": "Backpropagation at scale, RLHF, attention and feed-forward",
                 "004": "The magic box with dials"}
VERDICT_CLASS = {"holds": "holds", "holds with caveat": "caveat",
                 "does not hold": "fails", "not testable": "untestable"}


def _status() -> dict:
    """The last run's status, merged over every status file in .llmspec/ (the default run
    writes status.json, the slow run status-slow.json): a test's outcome comes from the run
    that ran it."""
    from llmref.spec.harness import registry

    files = sorted((ROOT / ".llmspec").glob("status*.json"))
    if not files:
        return {"claims": {}, "tests": {}}
    runs = [json.loads(f.read_text()) for f in files]
    merged = dict(runs[0])
    tests = {}
    for run in runs:
        for node, result in run["tests"].items():
            if node not in tests or tests[node]["outcome"] == "skipped":
                tests[node] = result
    merged["tests"] = tests
    merged["claims"] = registry.claim_statuses(tests)
    return merged


def badge(cid: str, entry: dict, status: dict, prefix: str, anchor: bool = False) -> str:
    """A claim's badge, linking to its entry in the index; ``anchor``: the badge carries the
    claim's id (on a lesson page, where ``lessons/NNN.md#claim-ID`` points at it)."""
    state = status["claims"].get(cid, {}).get("status", "not run")
    own_id = f"#{anchors.claim_id(cid)} " if anchor else ""
    return (f'[{cid}: {entry["verdict"]}, test {state}]({prefix}{anchors.claim_page(cid)})'
            f'{{ {own_id}.claim-badge .verdict-{VERDICT_CLASS[entry["verdict"]]} '
            f'.status-{state.replace(" ", "-")} }}')


def _number(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _figure(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_figure(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_figure(v) for v in value) + "]"
    return _number(value)


def _figures(status: dict, node: str) -> str:
    """The figures the last run's test recorded (claim_figures), as one Markdown line."""
    from llmref.spec.harness import registry

    parts = []
    for result in registry.test_results(status.get("tests", {}), node):
        for name, value in (result.get("figures") or {}).items():
            parts.append(f"{name.replace('_', ' ')} = `{_figure(value)}`")
    return "; ".join(parts)


def _test_source(node_id: str) -> str:
    path, name = node_id.split("::")
    text = (ROOT / path).read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            start = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
            return "\n".join(text.splitlines()[start:node.end_lineno])
    return f"# {node_id} not found"


def rst_to_md(doc: str) -> str:
    """The docstrings' light reST (``code``, .. math:: blocks) as Markdown with $$ math."""
    lines, out, i = doc.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)\.\. math::\s*(.*)$", line)
        if m:
            body = [m.group(2)] if m.group(2).strip() else []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                if lines[i].strip():
                    body.append(lines[i].strip())
                i += 1
            out += ["", "$$", "\n".join(body), "$$", ""]
            continue
        out.append(line)
        i += 1
    text = "\n".join(out)
    text = re.sub(r":(?:func|mod):`([^`]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def lesson_pages(claims: dict, status: dict) -> list:
    pages = []
    for src in sorted((SRC / "lessons").glob("*.md")):
        lesson = src.stem
        text = src.read_text()
        used = re.findall(r"\{\{claim:([\w-]+)\}\}", text)
        missing = [c for c, e in claims.items() if e["lesson"].startswith(lesson)
                   and c not in used]
        unknown = [c for c in used if c not in claims]
        if unknown:
            raise ValueError(f"docs_src/lessons/{src.name}: unknown claims {unknown}")
        if missing:                   # registered but not yet placed in the retelling
            text += "\n\n## More claims from this lesson\n\n" + "\n\n".join(
                f"{claims[c]['claim']} {{{{claim:{c}}}}}" for c in missing)
            used += missing
        text = re.sub(r"\{\{claim:([\w-]+)\}\}",
                      lambda m: badge(m.group(1), claims[m.group(1)], status, "../",
                                      anchor=True), text)
        counts = Counter(claims[c]["verdict"] for c in used)
        summary = ", ".join(f"{n} {v}" for v, n in counts.items())
        text += (f"\n\n---\n\nThis page retells lesson `{claims[used[0]]['lesson']}` in our own "
                 f"words. Its {len(used)} claims: {summary}. Every badge links to the "
                 f"claim's entry in the [index of claims](../claims.md).\n")
        (DOCS / "lessons" / f"{lesson}.md").write_text(text)
        pages.append(lesson)
    return pages


def claims_page(claims: dict, status: dict) -> None:
    lessons = sorted({e["lesson"][:3] for e in claims.values()})
    components = sorted({c for e in claims.values() for c in e["components"]})
    out = ["# All claims", "",
           "Every testable statement of the five lessons, in our own words, with our verdict, "
           "the reason, and the tests that decide it. Filter by lesson, verdict or "
           "component:", "",
           '<div class="claim-filters" markdown="0">',
           '<label>lesson <select id="f-lesson"><option value="">all</option>'
           + "".join(f'<option value="{le}">{le}</option>' for le in lessons) + "</select></label>",
           '<label>verdict <select id="f-verdict"><option value="">all</option>'
           + "".join(f'<option value="{v}">{v}</option>' for v in VERDICT_CLASS)
           + "</select></label>",
           '<label>component <select id="f-component"><option value="">all</option>'
           + "".join(f'<option value="{c}">{c}</option>' for c in components)
           + "</select></label>", '<span id="f-count"></span>', "</div>", ""]
    for cid, e in claims.items():
        st = status["claims"].get(cid, {})
        out += [f'<div class="claim" markdown="1" data-lesson="{e["lesson"][:3]}" '
                f'data-verdict="{e["verdict"]}" data-components="{" ".join(e["components"])}">',
                "", f"### {cid} {{ #{anchors.claim_id(cid)} }}", "",
                f"{badge(cid, e, status, '')}", "",
                f"**Lesson** [{e['lesson'][:3]}](lessons/{e['lesson'][:3]}.md), "
                f"{e['where']}.", "", f"**Claim.** {e['claim']}", "",
                f"**Verdict: {e['verdict']}.** {e['reason']}", ""]
        if "value" in e:
            out += [f"**Value tested:** {e['value']} (tolerance {e['tolerance']})", ""]
        if e["components"]:
            out += ["**Components:** " + ", ".join(
                f"[{c}](components/{c}.md)" for c in e["components"]), ""]
        for node in e["tests"]:
            outcome = st.get("tests", {}).get(node, "not run")
            found = _figures(status, node)
            if found:
                out += [f"**Found by `{node.split('::')[1]}`:** {found}", ""]
            out += [f'??? note "Test `{node.split("::")[1]}`: {outcome}"', "",
                    f"    `{node}`", "", "    ```python",
                    *["    " + ln for ln in _test_source(node).splitlines()], "    ```", ""]
        out += ["</div>", ""]
    (DOCS / "claims.md").write_text("\n".join(out))


def component_pages(claims: dict) -> list:
    import llmref

    tests_text = {p.name: p.read_text() for p in (ROOT / "spec_tests").glob("test_*.py")}
    names = []
    for name in llmref.__all__:
        module = getattr(llmref, name)
        doc = rst_to_md(inspect.getdoc(module) or "")
        out = [f"# `{name}`", "", doc, "", "## Functions", ""]
        for fname, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ != module.__name__ or fname.startswith("_"):
                continue
            out += [f"### `{fname}{inspect.signature(fn)}` "
                    f"{{ #{anchors.function_id(f'{name}.{fname}')} }}", "",
                    rst_to_md(inspect.getdoc(fn) or ""), ""]
        users = sorted(f for f, text in tests_text.items()
                       if f'impl("{name}.' in text or f'"{name}"' in text)
        backed = [c for c, e in claims.items() if name in e["components"]]
        out += ["## Tests", "", *(f"- `spec_tests/{f}`" for f in users), ""]
        if backed:
            out += ["## Claims it backs", "",
                    *(f"- [{c}](../{anchors.claim_page(c)}): {claims[c]['verdict']}"
                      for c in backed), ""]
        out += ["## Source", "", '??? note "reference/' + name + '.py"', "", "    ```python",
                *["    " + ln for ln in inspect.getsource(module).splitlines()], "    ```", ""]
        (DOCS / "components" / f"{name}.md").write_text("\n".join(out))
        names.append(name)
    return names


def index_page(claims: dict, status: dict) -> None:
    lessons = sorted({e["lesson"][:3] for e in claims.values()})
    head = "| lesson | " + " | ".join(VERDICT_CLASS) + " | total |"
    rows = [head, "|" + " --- |" * (len(VERDICT_CLASS) + 2)]
    for le in lessons:
        c = Counter(e["verdict"] for e in claims.values() if e["lesson"].startswith(le))
        rows.append(f"| [{le}: {LESSON_TITLES[le]}](lessons/{le}.md) | "
                    + " | ".join(str(c[v]) for v in VERDICT_CLASS) + f" | {sum(c.values())} |")
    c = Counter(e["verdict"] for e in claims.values())
    rows.append("| **all** | " + " | ".join(f"**{c[v]}**" for v in VERDICT_CLASS)
                + f" | **{len(claims)}** |")
    states = Counter(s["status"] for s in status["claims"].values())
    run = (f"Last test run: commit `{status.get('commit', 'none')[:10]}`, "
           f"{status.get('date', 'never')[:19]}, implementation "
           f"`{status.get('implementation', '?')}`; claims "
           + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + "."
           if status.get("claims") else "No test run has been recorded yet.")
    text = (SRC / "index.md").read_text().replace("{{verdict_table}}", "\n".join(rows))
    (DOCS / "index.md").write_text(text.replace("{{last_run}}", run))


def mutation_page() -> None:
    """docs/mutation.md: the hand-written record of the last mutation run, with the current
    catalogue of mutants (and the test that catches each) filled in."""
    from llmref.spec.mutants.__main__ import table

    text = (SRC / "mutation.md").read_text()
    (DOCS / "mutation.md").write_text(text.replace("{{mutant_catalogue}}", table()))


def vendor_mathjax() -> None:
    source = SRC / "node_modules" / "mathjax" / "es5"
    target = DOCS / "javascripts" / "mathjax"
    if not source.exists():
        raise RuntimeError("MathJax is missing: run  npm install --prefix docs_src "
                           "mathjax@3.2.2  (the site works offline, so it is vendored)")
    if not target.exists():
        shutil.copytree(source, target)


def on_config(config, **kwargs):
    """One navigation entry per reference module, under "Components"."""
    import llmref

    for item in config["nav"]:
        if isinstance(item, dict) and "Components" in item:
            item["Components"] = [{name: f"components/{name}.md"} for name in llmref.__all__]
    return config


def on_pre_build(config, **kwargs):
    from llmref.spec.harness import registry

    claims = registry.claims()
    status = _status()
    for sub in ("lessons", "components"):
        (DOCS / sub).mkdir(parents=True, exist_ok=True)
    vendor_mathjax()
    lesson_pages(claims, status)
    component_pages(claims)
    claims_page(claims, status)
    index_page(claims, status)
    mutation_page()
