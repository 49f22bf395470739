"""mkdocs hooks: generate the site's pages before every build from the claims registry, the
last test runs' status files (``.llmspec/status*.json``, with the figures claim tests
record), the examples' saved artefacts (``.llmspec/artefacts/``) and the reference's own
source and docstrings (rendered by mkdocstrings); vendor MathJax.

Generated (not committed): docs/index.md, docs/install.md, docs/claims.md, docs/mutation.md,
docs/lessons/,
docs/components/, docs/annotated/, docs/examples/, docs/artefacts/,
docs/javascripts/mathjax/.  Hand-written sources live in docs_src/ (see sitegen/*.py for
the directives each kind of page understands).
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sitegen import annotated, common, components, examples, lessons  # noqa: E402

log = logging.getLogger("mkdocs.plugins.llmref")
_state: dict = {}


def vendor_mathjax() -> None:
    source = common.SRC / "node_modules" / "mathjax" / "es5"
    target = common.DOCS / "javascripts" / "mathjax"
    if not source.exists():
        raise RuntimeError("MathJax is missing: run  npm install --prefix docs_src "
                           "mathjax@3.2.2  (the site works offline, so it is vendored)")
    if not target.exists():
        shutil.copytree(source, target)


def install_page() -> None:
    """docs/install.md: the README's setup commands, quoted from it (one source)."""
    readme = (common.ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    quick = next((b for b in blocks if "venv" in b and "pip install" in b), None)
    wheel = next((b for b in blocks if "python -m build" in b), None)
    if quick is None:
        raise ValueError("README.md has no ```bash block that creates a venv and installs")
    text = (common.SRC / "install.md").read_text()
    text = text.replace("{{readme:quick-start}}", quick.strip())
    text = text.replace("{{readme:wheel}}", (wheel or "").strip())
    (common.DOCS / "install.md").write_text(text)


def mutmut_tables() -> dict:
    """The record of the last mutmut run (``spec_tests/mutants/mutmut_record.json``, written
    by ``run_mutmut --record``) as Markdown: ``{"{{mutmut_table}}": ..., ...}``."""
    import json

    from llmref.spec.mutants.run_mutmut import RECORD

    data = json.loads(RECORD.read_text())
    rows = ["| group (modules) | mutants | first pass: not run | first pass: killed "
            "| first pass: survived | rerun: killed | rerun: equivalent | left | rerun at (how) |",
            "| --- | " + "--- | " * 8]
    totals = dict.fromkeys(("mutants", "unchecked", "killed", "survived", "rerun_killed",
                            "equivalent", "left"), 0)
    reasons: dict = {}
    commits = set()
    for g in data["groups"]:
        first, rerun = g["first_pass"], g.get("rerun")
        if first is None:
            rows.append(f"| {g['group']} ({', '.join(g['modules'])}) | not run in this "
                        f"session |" + " |" * 7)
            continue
        commits.add(first["commit"])
        unchecked = first.get("not checked", 0)
        survived = first["mutants"] - first.get("killed", 0) - unchecked
        other = {k: v for k, v in first.items()
                 if k not in ("commit", "resumed_at", "mutants", "killed", "not checked",
                              "survived")}
        detail = ", ".join(f"{v} {k}" for k, v in other.items())
        resumed = (f"; first pass at {first['commit']}, resumed at {first['resumed_at']}"
                   if "resumed_at" in first else "")
        cells = [f"{g['group']} ({', '.join(g['modules'])}{resumed})", str(first["mutants"]),
                 str(unchecked), str(first.get("killed", 0)),
                 str(survived) + (f" ({detail})" if detail else "")]
        totals["unchecked"] += unchecked
        if rerun:
            stale = f" ({rerun['stale']} stale)" if rerun.get("stale") else ""
            cells += [str(rerun["killed"]) + stale, str(rerun["equivalent"]),
                      ", ".join(f"`{n.rsplit('.', 2)[-2]}.{n.rsplit('.', 1)[-1]}` ({s})"
                                for n, s in rerun["left"].items()) or "0",
                      f"{rerun['commit']} ({rerun.get('method', 'patch')})"]
            for reason, n in rerun["equivalent_reasons"].items():
                reasons[reason] = reasons.get(reason, 0) + n
            totals["rerun_killed"] += rerun["killed"]
            totals["equivalent"] += rerun["equivalent"]
            totals["left"] += len(rerun["left"])
        else:
            cells += ["not rerun", "", "", ""]
        totals["mutants"] += first["mutants"]
        totals["killed"] += first.get("killed", 0)
        totals["survived"] += survived
        rows.append("| " + " | ".join(cells) + " |")
    ran = sum(g["first_pass"] is not None for g in data["groups"])
    rows.append(f"| all ({ran} groups run) | {totals['mutants']} | "
                f"{totals['unchecked']} | {totals['killed']} | {totals['survived']} | "
                f"{totals['rerun_killed']} | {totals['equivalent']} | {totals['left']} | |")
    kinds = ["| why the survivor cannot be observed | mutants |", "| --- | --- |"]
    kinds += [f"| {reason} | {n} |" for reason, n in
              sorted(reasons.items(), key=lambda kv: -kv[1])]
    share = 100.0 * totals["killed"] / max(totals["mutants"] - totals["unchecked"], 1)
    return {"{{mutmut_table}}": "\n".join(rows), "{{mutmut_equivalent}}": "\n".join(kinds),
            "{{mutmut_tool}}": data["tool"],
            "{{mutmut_first_commit}}": ", ".join(sorted(c for c in commits if c)),
            "{{mutmut_first_share}}": f"{share:.1f}%",
            "{{mutmut_mutants}}": str(totals["mutants"]),
            "{{mutmut_left}}": str(totals["left"])}


def mutation_page() -> None:
    """docs/mutation.md: the hand-written account of the mutation runs, with the current
    catalogue of mutants (and the test that catches each) and the record of the last mutmut
    run filled in."""
    from llmref.spec.mutants.__main__ import table

    text = (common.SRC / "mutation.md").read_text().replace("{{mutant_catalogue}}", table())
    for key, value in mutmut_tables().items():
        text = text.replace(key, value)
    if "{{mutmut" in text:
        raise ValueError("docs_src/mutation.md: unknown directive "
                         + re.search(r"\{\{mutmut\w*\}\}", text).group(0))
    (common.DOCS / "mutation.md").write_text(text)


def on_config(config, **kwargs):
    """Complete the navigation: components by stage, one page per example and per
    annotated walk-through."""
    common.set_repo_url(config.get("repo_url"))
    for sub in ("lessons", "components", "annotated", "examples"):
        (common.DOCS / sub).mkdir(parents=True, exist_ok=True)
    examples.copy_artefacts()
    _state["annotated"], annotated_nav = annotated.pages()
    sections = {"Components": components.nav(), "Examples": examples.pages(),
                "Annotated code": annotated_nav}
    for item in config["nav"]:
        if isinstance(item, dict):
            for key, value in sections.items():
                if key in item:
                    item[key] = value
    return config


def on_pre_build(config, **kwargs):
    from llmref.spec.harness import registry

    claims = registry.claims()
    status = common.status()
    vendor_mathjax()
    install_page()
    lessons.lesson_pages(claims, status)
    lessons.claims_page(claims, status)
    lessons.index_page(claims, status)
    import llmref
    for name in llmref.__all__:
        components.component_page(name, claims, _state.get("annotated", {}))
    components.overview_page()
    mutation_page()


def on_page_content(html, page, config, files, **kwargs):
    """Short heading ids on component pages (``softmax.forward``), and collapsed source kept
    out of the search index."""
    if page.file.src_uri.startswith("components/"):
        html = components.short_ids(html)
    # every <details> holds source code (mkdocstrings' "Source code in ...", the tests'
    # source on the claims page, an example's printed output): searchable text is the prose
    return html.replace("<details", "<details data-search-exclude", -1)
