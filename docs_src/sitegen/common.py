"""What every generated page shares: paths, the merged status of the last test runs, the
formatting of the figures the tests recorded, links to the repository and source excerpts."""

from __future__ import annotations

import ast
import html
import importlib
import inspect
import json
import math
import re
import textwrap
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SRC = ROOT / "docs_src"
ARTEFACTS = ROOT / ".llmspec" / "artefacts"
REPO_URL = "https://github.com/llm-reference-spec/llm-reference-spec"   # mkdocs.yml: repo_url

#: verdict -> CSS class; the colours (docs/stylesheets/claims.css) keep white text at
#: 4.5:1 or more (WCAG AA), which docs_src/browser_check.py measures in the browser
VERDICT_CLASS = {"holds": "holds", "holds with caveat": "caveat",
                 "does not hold": "fails", "not testable": "untestable"}
NO_FIGURE = "(figure not recorded yet)"


def set_repo_url(url: str | None) -> None:
    global REPO_URL
    if url:
        REPO_URL = url.rstrip("/")


def status() -> dict:
    """The last runs' status, merged over every status file in .llmspec/ (the default run
    writes status.json, ``-m slow`` status-slow.json, ...): a test's outcome and figures come
    from the run that ran it (a skip is overridden by a run that did not skip it)."""
    from llmref.spec.harness import registry

    files = sorted((ROOT / ".llmspec").glob("status*.json"))
    if not files:
        return {"claims": {}, "tests": {}, "runs": []}
    runs = [json.loads(f.read_text()) for f in files]
    merged = dict(runs[0])
    tests: dict = {}
    for run in runs:
        for node, result in run["tests"].items():
            if node not in tests or tests[node]["outcome"] == "skipped":
                tests[node] = result
    merged["tests"] = tests
    merged["claims"] = registry.claim_statuses(tests)
    merged["runs"] = [{"file": f.name, "date": r.get("date", ""), "commit": r.get("commit", ""),
                       "markers": r.get("markers", "")} for f, r in zip(files, runs, strict=False)]
    return merged


def results_of(status: dict, node: str) -> list:
    """``[(test id, result)]`` of a registry node id: the test, or each of its parametrized
    instances (``node[pre-norm]``, ...)."""
    return [(key, r) for key, r in status["tests"].items()
            if key == node or (key.startswith(node + "[") and key.endswith("]"))]


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt(value) -> str:
    """A recorded figure as text: integers with thousands separators, floats with four
    significant digits (powers of ten written out), short lists in full, long ones cut."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        if 1e-3 <= abs(value) < 1e6:
            text = f"{value:.4g}"
            return text if "e" not in text else f"{value:,.0f}"
        mantissa, exponent = f"{value:.3e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPT)}"
    if isinstance(value, list):
        if len(value) <= 8:
            return "[" + ", ".join(fmt(v) for v in value) + "]"
        return ("[" + ", ".join(fmt(v) for v in value[:4]) + ", …, "
                + ", ".join(fmt(v) for v in value[-2:]) + f"] ({len(value)} values)")
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def figure_name(name: str) -> str:
    """``"loss_at_p_050"`` -> ``"loss at p 050"``."""
    return name.replace("_", " ")


def figures_table(figures: dict) -> list:
    """Markdown rows of a test's recorded figures."""
    rows = ["| figure | value |", "| --- | --- |"]
    for name, value in figures.items():
        text = html.escape(fmt(value)).replace("|", "\\|")
        label = html.escape(figure_name(name)).replace("|", "\\|")
        rows.append(f"| {label} | {text} |")
    return rows


@cache
def _test_nodes(path: str) -> dict:
    text = (ROOT / path).read_text()
    return {node.name: node for node in ast.parse(text).body
            if isinstance(node, ast.FunctionDef)}


def test_source(node_id: str) -> tuple:
    """(source lines, first line number) of a test given as ``spec_tests/file.py::name``."""
    path, name = node_id.split("::")
    node = _test_nodes(path).get(name.split("[")[0])
    if node is None:
        return [f"# {node_id} not found"], 1
    start = min([d.lineno for d in node.decorator_list] + [node.lineno])
    lines = (ROOT / path).read_text().splitlines()[start - 1:node.end_lineno]
    return lines, start


def repo_link(path: str, line: int | None = None) -> str:
    """The file in the repository (``spec_tests/x.py``, line 12) as a URL."""
    return f"{REPO_URL}/blob/main/{path}" + (f"#L{line}" if line else "")


def test_link(node_id: str) -> str:
    path, _ = node_id.split("::")
    _, line = test_source(node_id)
    return repo_link(path, line)


def test_name(node_id: str) -> str:
    return node_id.split("::")[1]


def resolve(dotted: str):
    """``"llmref.layers.softmax._forward"`` -> the object (module attribute chain)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot resolve {dotted!r}")


def source_of(dotted: str) -> tuple:
    """(source text, repository path, first line) of a function or class: from its ``def``
    line (decorators left out) to the end of its body, dedented, without its docstring (the
    component's page shows that)."""
    obj = inspect.unwrap(resolve(dotted))
    lines, start = inspect.getsourcelines(obj)
    text = textwrap.dedent("".join(lines))
    node = ast.parse(text).body[0]
    keep = text.splitlines()
    body = node.body[0] if node.body else None
    if isinstance(body, ast.Expr) and isinstance(body.value, ast.Constant) \
            and isinstance(body.value.value, str) and len(node.body) > 1:
        del keep[body.lineno - 1:body.end_lineno]
    skip = node.lineno - 1                     # decorator lines before ``def``
    path = Path(inspect.getsourcefile(obj)).resolve().relative_to(ROOT).as_posix()
    return "\n".join(keep[skip:]).rstrip("\n"), path, start + skip


def code_block(dotted: str, prefix: str = "") -> list:
    """A Markdown code block with the source of ``dotted`` and a caption linking to it."""
    text, path, start = source_of(dotted)
    name = dotted.rsplit(".", 1)[-1]
    return [f'<p class="code-caption"><code>{name}</code> in '
            f'<a href="{repo_link(path, start)}">{path}</a> (line {start})</p>', "",
            '<div class="code-excerpt" data-search-exclude markdown="1">', "",
            "```python", *text.splitlines(), "```", "", "</div>", ""]


def component_of_module(module_name: str) -> str | None:
    """``"llmref.layers.softmax"`` -> ``"softmax"`` when that is a component."""
    import llmref
    last = module_name.rsplit(".", 1)[-1]
    return last if last in llmref.__all__ else None


def stage_of(component: str) -> str:
    import llmref
    for stage, members in llmref.STAGES.items():
        if component in members:
            return stage
    return "helpers"


def module_path(component: str) -> str:
    """``"softmax"`` -> ``"llmref.layers.softmax"``."""
    import llmref
    return getattr(llmref, component).__name__


def first_sentence(doc: str | None) -> str:
    text = " ".join((doc or "").strip().split("\n\n")[0].split())
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    m = re.match(r"(.+?\.)(\s|$)", text)
    return m.group(1) if m else text
