"""One page per example, built from what the example's last run saved, never by running it.

An example run with ``--save-artefacts`` (the slow test ``test_example_artefacts`` does it
for every example that draws plots) leaves ``.llmspec/artefacts/<example>/results.json`` and
one PNG per plot panel (format: ``llmref.examples.common``).  The build copies them to
``docs/artefacts/`` and writes ``docs/examples/<example>.md``: the example's own description
(its module docstring), the command, the key lines of its code (read from the source), the
plots with their captions, the numbers it reported and everything it printed.

``docs_src/examples/<example>.md``, if present, replaces the generated description and may
use the directives ``{{code:llmref.examples.x.function}}``, ``{{figure:x/file.png}}``,
``{{result:x/name}}`` (one number from results.json), ``{{results:x}}`` (the table of them),
``{{printed:x}}`` and ``{{command:x}}``.  Examples are found in the ``llmref.examples``
package, so a new one gets its page without editing anything here.
"""

from __future__ import annotations

import html
import inspect
import json
import pkgutil
import re
import shutil
import textwrap
from functools import cache

from . import common

NOT_EXAMPLES = {"common"}
DIRECTIVE = re.compile(r"\{\{(code|figure|result|results|printed|command):([^}]+)\}\}")
#: the functions whose code an example page shows by default (the first that exists)
KEY_FUNCTIONS = ("loss_and_grads", "train", "run", "main")


def names() -> list:
    import llmref.examples
    found = [m.name for m in pkgutil.iter_modules(llmref.examples.__path__)
             if m.name not in NOT_EXAMPLES and not m.name.startswith("_")]
    try:
        from llmref.cli.cli import EXAMPLES
        order = list(EXAMPLES)
    except ImportError:
        order = []
    return sorted(found, key=lambda n: (order.index(n) if n in order else len(order), n))


@cache
def record(name: str) -> dict | None:
    path = common.ARTEFACTS / name / "results.json"
    return json.loads(path.read_text()) if path.exists() else None


def copy_artefacts() -> None:
    target = common.DOCS / "artefacts"
    shutil.rmtree(target, ignore_errors=True)
    record.cache_clear()
    if common.ARTEFACTS.exists():
        shutil.copytree(common.ARTEFACTS, target,
                        ignore=shutil.ignore_patterns("*.npz", "*.npy", "*.pkl"))


def figure_markdown(spec: str, prefix: str) -> list:
    """``{{figure:example/file.png}}`` as an image with its caption, or a note that the
    example has not saved it yet."""
    name, _, file = spec.strip().partition("/")
    saved = record(name)
    entry = next((f for f in (saved or {}).get("figures", []) if f["file"] == file), None)
    if entry is None:
        return [f'<p class="missing-artefact">(plot not produced yet: run '
                f'<code>python -m llmref.examples.{name} --save-artefacts</code>)</p>', ""]
    return ['<figure class="plot" markdown="1">', "",
            f"![{entry['caption']}]({prefix}artefacts/{name}/{file})", "",
            f"<figcaption>{html.escape(entry['caption'])}</figcaption>", "</figure>", ""]


def results_table(name: str) -> list:
    """The example's numbers as a table; text of several lines (a Markdown table the run
    made) is left to the page's own ``{{result:...}}``."""
    saved = record(name)
    if saved is None or not saved.get("results"):
        return []
    numbers = {k: v for k, v in saved["results"].items()
               if not (isinstance(v, str) and "\n" in v)}
    return [*common.figures_table(numbers), ""]


def printed(name: str) -> list:
    saved = record(name)
    if saved is None:
        return []
    return ['??? abstract "Everything the run printed"', "", "    ```text",
            *("    " + ln for ln in saved["printed"].rstrip().splitlines()), "    ```", ""]


def run_line(name: str) -> str:
    saved = record(name)
    if saved is None:
        return (f"This example has not saved a run yet, so its results are not shown here: "
                f"run `python -m llmref.examples.{name} --save-artefacts` (or the slow "
                f"tests, `python -m pytest -m slow`) and rebuild the site.")
    return (f"Results of the run saved on {saved['date'][:16].replace('T', ' ')} UTC, "
            f"which took {saved['seconds']:.0f} s, with `{saved['command']}`.")


def expand(name: str, text: str, prefix: str) -> str:
    def one(m):
        kind, arg = m.group(1), m.group(2).strip()
        if kind == "code":
            return "\n".join(common.code_block(arg))
        if kind == "figure":
            return "\n".join(figure_markdown(arg, prefix))
        if kind == "result":
            ex, _, key = arg.partition("/")
            saved = record(ex)
            if saved is None or key not in saved.get("results", {}):
                return common.NO_FIGURE
            return common.fmt(saved["results"][key])
        if kind == "results":
            return "\n".join(results_table(arg))
        if kind == "printed":
            return "\n".join(printed(arg))
        return f"`{(record(arg) or {}).get('command', f'python -m llmref.examples.{arg}')}`"
    return DIRECTIVE.sub(one, text)


def description(module) -> tuple:
    """(title, body) from the module docstring: its first line and the rest, with the
    indented command lines shown as a code block."""
    doc = inspect.getdoc(module) or module.__name__
    first, _, rest = doc.partition("\n")
    body = re.sub(r"``([^`]+)``", r"`\1`", rest)
    # the docstrings show commands as an indented block: make it a fenced one
    blocks, out = body.split("\n\n"), []
    for b in blocks:
        if b and all(ln.startswith("    ") for ln in b.splitlines() if ln.strip()):
            out.append("```bash\n" + textwrap.dedent(b).strip() + "\n```")
        else:
            out.append(b)
    return first.strip().rstrip("."), "\n\n".join(out).strip()


def page(name: str) -> str:
    import importlib
    module = importlib.import_module(f"llmref.examples.{name}")
    title, body = description(module)
    template = common.SRC / "examples" / f"{name}.md"
    out = [f"# {title}", ""]
    if template.exists():
        out += [expand(name, template.read_text(), "../"), ""]
    else:
        out += [body, ""]
        key = next((f for f in KEY_FUNCTIONS if hasattr(module, f)), None)
        if key:
            out += ["## The code that does the work", "",
                    *common.code_block(f"llmref.examples.{name}.{key}")]
    out += ["## Run it", "", "```bash", f"llmspec run {name}", "```", "",
            f"(or `python -m llmref.examples.{name}`; `--help` lists its options, "
            f"`--save-artefacts` saves what this page shows).", "",
            "## Results", "", run_line(name), ""]
    saved = record(name)
    placed = set(re.findall(r"\{\{figure:\s*" + name + r"/([^}\s]+)\s*\}\}",
                            template.read_text())) if template.exists() else set()
    if saved:
        for fig in saved.get("figures", []):
            if fig["file"] not in placed:
                out += figure_markdown(f"{name}/{fig['file']}", "../")
        out += results_table(name) + printed(name)
    return "\n".join(out)


def pages() -> list:
    """Write docs/examples/*.md; the navigation entries."""
    target = common.DOCS / "examples"
    target.mkdir(parents=True, exist_ok=True)
    nav = [{"Overview": "examples/index.md"}]
    index = ["# Examples", "",
             "Small programs that run the reference on a laptop CPU. Each page shows the "
             "example's code, the command, and the plots and numbers of its last saved run "
             "(saved by the slow tests, so the site never reruns an example).", "",
             "| example | what it shows | last run |", "| --- | --- | --- |"]
    for name in names():
        text = page(name)
        (target / f"{name}.md").write_text(text)
        title = text.splitlines()[0].lstrip("# ")
        short = title if len(title) < 40 else name.replace("_", " ")
        nav.append({short: f"examples/{name}.md"})
        saved = record(name)
        when = f"{saved['date'][:10]}, {saved['seconds']:.0f} s" if saved else "not saved yet"
        index.append(f"| [{name}]({name}.md) | {title} | {when} |")
    (target / "index.md").write_text("\n".join(index) + "\n")
    return nav
