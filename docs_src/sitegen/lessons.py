"""The lesson chapters, the index of claims and the home page.

A chapter's source (``docs_src/lessons/NNN.md``) is Markdown with directives:

``{{claim:ID}}`` (alone on its line, or inside the sentence that states the claim)
    the claim's finding, placed right after the paragraph that states the claim: its verdict
    badge (linking to the claim's entry in the index, with the test's source), the test
    outcome as a separate smaller mark, the claim as the registry words it, the finding with
    the figures the claim's tests recorded in the last run (``tests[node]["figures"]`` of
    ``.llmspec/status*.json``; never typed here), links to each test and to the reference
    functions the test called.  The block carries the id ``claim-ID``
    (:mod:`llmref.spec.anchors`), so ``lessons/NNN.md#claim-ID`` lands on it.
``{{code:llmref.module.function}}``
    that function's source, read at build time (so it cannot go stale).
``{{figure:example/file.png}}``
    a plot an example saved under ``.llmspec/artefacts/`` (see ``sitegen.examples``).

A claim of the lesson that the text does not place is added at the end of the chapter, so a
claim added to the registry shows up without anyone editing the chapter.
"""

from __future__ import annotations

import re
from collections import Counter

from . import common, examples

DIRECTIVE = re.compile(r"[ \t]*\{\{(claim|code|figure):([^}]+)\}\}")
LESSON_TITLES = {"000": "How networks learn from their mistakes",
                 "001": "The cat sat on the mat", "002": "How the word calculator learns",
                 "003": "Backpropagation at scale, RLHF, attention and feed-forward",
                 "004": "The magic box with dials"}
#: how a count of claims with each verdict reads: (one, several)
VERDICT_PHRASE = {"holds": ("holds", "hold"),
                  "holds with caveat": ("holds with a caveat", "hold with a caveat"),
                  "does not hold": ("does not hold", "do not hold"),
                  "not testable": ("is not testable", "are not testable")}
OUTCOME_TEXT = {"passed": "test passed", "failed": "test failed", "partly run": "partly run",
                "skipped": "test skipped", "not run": "test not run yet"}


def anchors():
    """The anchor scheme the CLI links to (``llmref.spec.anchors``)."""
    from llmref.spec import anchors as a
    return a


def verdict_summary(verdicts) -> str:
    """``"15 hold, 3 hold with a caveat, 2 do not hold and 2 are not testable"``."""
    counts = Counter(verdicts)
    parts = [f"{n} {VERDICT_PHRASE[v][n != 1]}" for v in common.VERDICT_CLASS
             for n in [counts[v]] if n]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def badge(cid: str, entry: dict, prefix: str) -> str:
    """The verdict badge: the verdict alone, linking to the claim's entry in the index (which
    shows the tests that decide it)."""
    cls = common.VERDICT_CLASS[entry["verdict"]]
    return (f'[{entry["verdict"]}]({prefix}{anchors().claim_page(cid)})'
            f'{{ .claim-badge .verdict-{cls} title="Verdict on claim {cid}: '
            f'{entry["verdict"]}" }}')


def outcome_mark(cid: str, entry: dict, status: dict) -> str:
    if entry["verdict"] == "not testable":
        return ""
    state = status["claims"].get(cid, {}).get("status", "not run")
    return (f'<span class="test-mark status-{state.replace(" ", "-")}">'
            f'{OUTCOME_TEXT.get(state, state)}</span>')


def reference_links(nodes: list, entry: dict, status: dict, prefix: str) -> list:
    """Links to the reference functions the claim's tests called (recorded in the status
    file as ``uses``), else to the components the registry names."""
    import llmref
    used = sorted({u for n in nodes for _, r in common.results_of(status, n)
                   for u in r.get("uses", [])
                   if u.split(".")[0] in llmref.__all__
                   and not any(p.startswith("_") for p in u.split(".")[1:])})
    if used:
        return [f"[`{u}`]({prefix}{anchors().function_page(u)})" for u in used]
    return [f"[`{c}`]({prefix}{anchors().component_page(c)})" for c in entry["components"]
            if c in llmref.__all__]


def test_figures(node: str, status: dict) -> list:
    """What one of the claim's tests computed in the last run (each parametrized instance
    on its own), or the placeholder."""
    results = common.results_of(status, node)
    name = common.test_name(node)
    link = f"[`{name}`]({common.test_link(node)})"
    if not results:
        return [f"Test {link} has not run yet, so its figures are not here "
                f"{common.NO_FIGURE}.", ""]
    out = []
    for key, result in results:
        which = key[len(node):]                  # "" or "[pre-norm]"
        figures = result.get("figures")
        if figures:
            out += [f"Computed by {link}{which} ({result['outcome']} in the last run):", "",
                    *common.figures_table(figures), ""]
        else:              # recorded none (the browser check fails a claim left so)
            out += [f"Checked by {link}{which} ({result['outcome']} in the last run).", ""]
    return out


def claim_block(cid: str, entry: dict, status: dict, prefix: str) -> list:
    """The finding of one claim on its lesson page (id ``claim-ID``)."""
    out = [f'<div class="claim-finding verdict-{common.VERDICT_CLASS[entry["verdict"]]}" '
           f'id="{anchors().claim_id(cid)}" markdown="1">', "",
           f'{badge(cid, entry, prefix)} {outcome_mark(cid, entry, status)} '
           f'<span class="claim-ref">{cid}</span>', "",
           f'**The lesson says:** {entry["claim"]}', "",
           f'**What we found:** {entry["reason"]}', ""]
    if "value" in entry:
        out += [f'The test checks the value {common.fmt(entry["value"])} '
                f'(tolerance {common.fmt(entry["tolerance"])}).', ""]
    for node in entry["tests"]:
        out += test_figures(node, status)
    refs = reference_links(entry["tests"], entry, status, prefix)
    if refs:
        out += ["Reference: " + ", ".join(refs), ""]
    out += ["</div>", ""]
    return out


def expand_paragraph(paragraph: str, block) -> str:
    """A paragraph with its directives taken out and their blocks placed after it (a
    directive may stand on its own line or sit inside the sentence that states the claim)."""
    if paragraph.lstrip().startswith("```"):
        return paragraph
    found = DIRECTIVE.findall(paragraph)
    if not found:
        return paragraph
    text = DIRECTIVE.sub("", paragraph).strip()
    return "\n\n".join([t for t in [text] if t] + [block(k, a.strip()) for k, a in found])


def lesson_pages(claims: dict, status: dict) -> list:
    pages = []
    for src in sorted((common.SRC / "lessons").glob("*.md")):
        lesson = src.stem
        text = src.read_text()
        mine = [c for c, e in claims.items() if e["lesson"].startswith(lesson)]
        placed = []

        def block(kind, arg, lesson=lesson, placed=placed):
            if kind == "claim":
                if arg not in claims:
                    raise ValueError(f"docs_src/lessons/{lesson}.md places claim {arg}, "
                                     f"which is not in the registry")
                if not claims[arg]["lesson"].startswith(lesson):
                    raise ValueError(f"docs_src/lessons/{lesson}.md places {arg}, a claim "
                                     f"of lesson {claims[arg]['lesson'][:3]}")
                placed.append(arg)
                return "\n".join(claim_block(arg, claims[arg], status, "../"))
            if kind == "code":
                return "\n".join(common.code_block(arg))
            return "\n".join(examples.figure_markdown(arg, "../"))

        body = "\n\n".join(expand_paragraph(p, block) for p in re.split(r"\n{2,}", text))
        twice = [c for c, n in Counter(placed).items() if n > 1]
        if twice:
            raise ValueError(f"docs_src/lessons/{src.name} places {twice} more than once")
        rest = [c for c in mine if c not in placed]
        if rest:
            body += ("\n\n## More claims from this lesson\n\nThe chapter above does not "
                     "discuss these yet; each is stated with what its test found.\n\n")
            for cid in rest:
                body += f"### {claims[cid]['where']}\n\n"
                body += "\n".join(claim_block(cid, claims[cid], status, "../")) + "\n"
        title, _, after = body.partition("\n")
        summary = (f'<p class="lesson-summary">Of this lesson\'s {len(mine)} claims, '
                   f'{verdict_summary(claims[c]["verdict"] for c in mine)}. Each is stated '
                   f'below with what its test computed; the coloured mark is our verdict, the '
                   f'grey one the outcome of the test in the last run.</p>\n')
        (common.DOCS / "lessons" / f"{lesson}.md").write_text(
            title + "\n\n" + summary + after)
        pages.append(lesson)
    return pages


def claims_page(claims: dict, status: dict) -> None:
    lessons = sorted({e["lesson"][:3] for e in claims.values()})
    components = sorted({c for e in claims.values() for c in e["components"]})
    out = ["# All claims", "",
           "Every testable statement of the five lessons, in our own words, with our verdict, "
           "the reason, the figures its tests computed and the tests' source. Filter by "
           "lesson, verdict or component:", "",
           '<div class="claim-filters" markdown="0">',
           '<label>lesson <select id="f-lesson"><option value="">all</option>'
           + "".join(f'<option value="{le}">{le}</option>' for le in lessons) + "</select></label>",
           '<label>verdict <select id="f-verdict"><option value="">all</option>'
           + "".join(f'<option value="{v}">{v}</option>' for v in common.VERDICT_CLASS)
           + "</select></label>",
           '<label>component <select id="f-component"><option value="">all</option>'
           + "".join(f'<option value="{c}">{c}</option>' for c in components)
           + "</select></label>", '<span id="f-count"></span>', "</div>", ""]
    for cid, e in claims.items():
        lesson = e["lesson"][:3]
        out += [f'<div class="claim" markdown="1" data-lesson="{lesson}" '
                f'data-verdict="{e["verdict"]}" data-components="{" ".join(e["components"])}">',
                "", f"### {cid} {{ #{anchors().claim_id(cid)} }}", "",
                f"{badge(cid, e, '')} {outcome_mark(cid, e, status)}", "",
                f"**Lesson** [{lesson}]({anchors().lesson_page(cid)}), {e['where']}.", "",
                f"**Claim.** {e['claim']}", "",
                f"**Verdict: {e['verdict']}.** {e['reason']}", ""]
        if "value" in e:
            out += [f"**Value tested:** {common.fmt(e['value'])} "
                    f"(tolerance {common.fmt(e['tolerance'])})", ""]
        if e["components"]:
            out += ["**Components:** " + ", ".join(
                f"[{c}]({anchors().component_page(c)})" for c in e["components"]), ""]
        for node in e["tests"]:
            results = common.results_of(status, node)
            outcomes = sorted({r["outcome"] for _, r in results}) or ["not run"]
            lines, start = common.test_source(node)
            out += ['<div class="claim-test" markdown="1">', "",
                    f"Test [`{common.test_name(node)}`]({common.test_link(node)}): "
                    f"{', '.join(outcomes)}.", ""]
            figures = [(key[len(node):], r["figures"]) for key, r in results
                       if r.get("figures")]
            if not figures:
                out += [common.NO_FIGURE, ""]
            for which, found in figures:
                out += ([f"Instance `{which}`:", ""] if which else []) + \
                    common.figures_table(found) + [""]
            out += [f'??? note "Source of `{common.test_name(node)}` '
                    f'({node.split("::")[0]}, line {start})"', "", "    ```python",
                    *["    " + ln for ln in lines], "    ```", "", "</div>", ""]
        out += ["</div>", ""]
    (common.DOCS / "claims.md").write_text("\n".join(out))


def index_page(claims: dict, status: dict) -> None:
    lessons = sorted({e["lesson"][:3] for e in claims.values()})
    head = "| lesson | " + " | ".join(common.VERDICT_CLASS) + " | total |"
    rows = [head, "|" + " --- |" * (len(common.VERDICT_CLASS) + 2)]
    for le in lessons:
        c = Counter(e["verdict"] for e in claims.values() if e["lesson"].startswith(le))
        rows.append(f"| [{le}: {LESSON_TITLES.get(le, le)}](lessons/{le}.md) | "
                    + " | ".join(str(c[v]) for v in common.VERDICT_CLASS)
                    + f" | {sum(c.values())} |")
    c = Counter(e["verdict"] for e in claims.values())
    rows.append("| **all** | " + " | ".join(f"**{c[v]}**" for v in common.VERDICT_CLASS)
                + f" | **{len(claims)}** |")
    states = Counter(s["status"] for s in status["claims"].values())
    if status.get("runs"):
        runs = "; ".join(f"`{r['file']}` (commit `{r['commit'][:10]}`, {r['date'][:16]} UTC)"
                         for r in status["runs"])
        run = (f"Test outcomes come from the last recorded runs: {runs}. Claims by outcome: "
               + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + ".")
    else:
        run = "No test run has been recorded yet: run `python -m pytest` first."
    text = (common.SRC / "index.md").read_text().replace("{{verdict_table}}", "\n".join(rows))
    (common.DOCS / "index.md").write_text(text.replace("{{last_run}}", run))
