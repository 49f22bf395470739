"""Component pages (mkdocstrings renders each module from its own docstrings), the overview
of the stages with the order in which components build on each other, and the short heading
ids the CLI links to.

The stages and their components come from ``llmref.STAGES``; which component uses which is
read from each module's imports (``from llmref.layers import softmax``), so a new module
lands on the site, in its stage, with its dependencies, without editing anything here.
"""

from __future__ import annotations

import ast
import inspect
import re
from functools import cache
from pathlib import Path

from . import common
from .lessons import anchors

STAGE_TITLES = {"layers": "Layers", "losses": "Losses", "text": "Text", "transformer":
                "Transformer", "accounting": "Accounting", "training": "Training",
                "rlhf": "RLHF", "helpers": "Helpers"}


def stages() -> dict:
    """``{stage: [components]}`` in teaching order, helpers (``params``) last."""
    import llmref
    out = {stage: list(names) for stage, names in llmref.STAGES.items()}
    rest = [n for n in llmref.__all__ if not any(n in v for v in out.values())]
    if rest:
        out["helpers"] = rest
    return out


@cache
def dependencies() -> dict:
    """``{component: sorted components it imports}``, read from the modules' source."""
    import llmref
    names = set(llmref.__all__)
    out = {}
    for name in llmref.__all__:
        module = getattr(llmref, name)
        tree = ast.parse(Path(inspect.getsourcefile(module)).read_text())
        used = set()
        # module-level imports only: an import inside a function (a contract's example that
        # builds a policy, say) is not a dependency of the component
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split(".")[0] == "llmref":
                parts = node.module.split(".")
                if parts[-1] in names:                   # from llmref.transformer.gpt import X
                    used.add(parts[-1])
                used |= {a.name for a in node.names if a.name in names}
            elif isinstance(node, ast.Import):
                for a in node.names:
                    used |= {p for p in a.name.split(".")[1:] if p in names}
        used.discard(name)
        out[name] = sorted(used, key=llmref.__all__.index)
    return out


def users() -> dict:
    out: dict = {}
    for name, used in dependencies().items():
        for u in used:
            out.setdefault(u, []).append(name)
    return out


def levels() -> dict:
    """``{component: level}``: 0 for a component that uses no other, else one more than the
    highest level among those it uses (the order in which they can be built)."""
    deps, out = dependencies(), {}

    def level(name, seen=()):
        if name not in out:
            if name in seen:
                raise ValueError(f"import cycle through {name}")
            out[name] = 1 + max((level(d, seen + (name,)) for d in deps[name]), default=-1)
        return out[name]

    for name in deps:
        level(name)
    return out


@cache
def test_files() -> dict:
    """``{component: [test files]}``: the spec test files with a test that grades the
    component (the learner loop's static map, ``llmref.spec.harness.components``), and the
    component's own file ``test_<name>.py``."""
    import llmref
    from llmref.spec.harness import components as graded

    out: dict = {name: set() for name in llmref.__all__}
    for path in sorted((common.ROOT / "spec_tests").glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                for c in graded.inferred(str(path), node.name, {}):
                    out.setdefault(c, set()).add(path.name)
        stem = path.stem[len("test_"):]
        if stem in out:
            out[stem].add(path.name)
    return {name: sorted(files) for name, files in out.items()}


def summary(name: str) -> str:
    import llmref
    return common.first_sentence(inspect.getdoc(getattr(llmref, name)))


def link(name: str, prefix: str = "") -> str:
    return f"[`{name}`]({prefix}{name}.md)"


def component_page(name: str, claims: dict, annotated: dict) -> None:
    module = common.module_path(name)
    path = Path(inspect.getsourcefile(common.resolve(module))).resolve()
    rel = path.relative_to(common.ROOT).as_posix()
    stage = common.stage_of(name)
    deps, used_by = dependencies()[name], users().get(name, [])
    meta = [f"Stage: [{STAGE_TITLES.get(stage, stage)}](index.md#{stage})",
            f"source: [{rel}]({common.repo_link(rel)})"]
    meta.append("uses: " + (", ".join(link(d) for d in deps) if deps else "no other component"))
    if used_by:
        meta.append("used by: " + ", ".join(link(u) for u in used_by))
    meta.append(f"check your own: [`llmspec check {name}`](#test-your-own)")
    out = ["---", "search:", "  boost: 3", "---", "", f"# `{name}`", "",
           '<p class="component-meta" markdown="1">' + " · ".join(meta) + "</p>", ""]
    if name in annotated:
        out += ['!!! tip "Read it beside the maths"', "",
                f"    [{annotated[name][1]}](../annotated/{annotated[name][0]}.md) walks "
                f"through this component's code line by line, next to its equations.", ""]
    out += [f"::: {module}", ""]
    out += [f"## Check your own {name} {{ #test-your-own }}", "",
            f"Write your own `{name}` as `myimpl/{name}.py` (`llmspec exercises work` "
            f"writes a skeleton of every component, docstrings included), then grade it "
            f"from the folder that holds `myimpl/`:", "",
            "```bash", f"llmspec check {name} --impl myimpl", "```", "",
            "The report names each failing property with the smallest input that breaks it "
            "and links back to the function on this page; see "
            "[Check your understanding](../check-your-understanding.md).", ""]
    files = test_files()[name]
    if files:
        out += ["The tests it runs live in " + ", ".join(
            f"[`spec_tests/{f}`]({common.repo_link('spec_tests/' + f)})" for f in files)
            + ".", ""]
    backed = [c for c, e in claims.items() if name in e["components"]]
    if backed:
        from .lessons import badge
        out += ["## Claims it backs", "", "| claim | verdict | lesson says |",
                "| --- | --- | --- |"]
        for c in backed:
            out.append(f"| [{c}](../{anchors().claim_page(c)}) | "
                       f"{badge(c, claims[c], '../')} | {claims[c]['claim']} |")
        out.append("")
    (common.DOCS / "components" / f"{name}.md").write_text("\n".join(out))


def overview_page() -> None:
    lv = levels()
    out = ["# Components", "",
           "Every piece of the reference is a module of plain NumPy with a `forward` that "
           "returns its output and a cache, and a `backward` that turns the gradient of the "
           "output into gradients of the inputs and parameters. The modules sit in stages, in "
           "the order the lessons teach them; a module imports only from its own stage or an "
           "earlier one. Each page below is generated from the module's own docstrings.", "",
           "## The order they build on each other { #order }", "",
           "Level 0 components use no other component; each later level uses only components "
           "of lower levels (read from the modules' imports). Reading the levels from the top "
           "is one way through the code that never meets a name it has not seen.", "",
           "| level | components |", "| --- | --- |"]
    for n in range(max(lv.values()) + 1):
        names = [c for c in lv if lv[c] == n]
        out.append(f"| {n} | " + ", ".join(link(c) for c in names) + " |")
    out.append("")
    for stage, names in stages().items():
        out += [f"## {STAGE_TITLES.get(stage, stage)} {{ #{stage} }}", "",
                "| component | what it is | uses |", "| --- | --- | --- |"]
        for c in names:
            used = dependencies()[c]
            out.append(f"| {link(c)} | {summary(c)} | "
                       + (", ".join(link(d) for d in used) if used else "–") + " |")
        out.append("")
    (common.DOCS / "components" / "index.md").write_text("\n".join(out))


def nav() -> list:
    """The "Components" section of the navigation: the overview, then one part per stage."""
    out: list = [{"Overview": "components/index.md"}]
    for stage, names in stages().items():
        out.append({STAGE_TITLES.get(stage, stage): [{n: f"components/{n}.md"} for n in names]})
    return out


def short_ids(html: str) -> str:
    """Give each documented function or class heading the id the CLI links to
    (``softmax.forward``, ``gpt.GPTConfig``; :mod:`llmref.spec.anchors`), in place of
    mkdocstrings' full dotted path, which stays on the page as an inner anchor for
    cross-references."""
    import llmref

    def swap(m):
        tag, full, rest = m.group(1), m.group(2), m.group(3)
        parts = full.split(".")
        for i, p in enumerate(parts):
            if p in llmref.__all__ and i + 1 < len(parts):
                short = anchors().function_id(".".join(parts[i:]))
                return (f'<{tag} id="{short}"{rest}><a id="{full}" class="full-id" '
                        f'aria-hidden="true"></a>')
        return m.group(0)

    return re.sub(r'<(h[2-6]) id="(llmref\.[\w.]+)"([^>]*class="doc doc-heading"[^>]*)>',
                  swap, html)
