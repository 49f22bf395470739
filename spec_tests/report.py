"""The learner's report: what each failure means, per component, in one screen.

:func:`failure_details` runs inside the test process (the plugin calls it for every failed
test) and reduces a failure to plain data: the function that failed, the property in words,
the smallest failing input hypothesis found, expected and got, hints, links to the docs.
:class:`Report` gathers those per component and renders the checklist and the failure blocks
that ``llmspec check`` prints.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from llmref.spec import anchors, plugin
from llmref.spec.harness import components as comp
from llmref.spec.harness.impl import NOT_IMPLEMENTED, RAISED_IN, ImplementationError, where

DETAILS = "llmspec"          # the report's user_properties key
COMPONENTS = "components"    # ditto: the components a test grades (teaching order)
TIER = "tier"

#: lines a message may take in a failure block (the rest is cut, with a note)
MESSAGE_LINES = 14
#: claims a failure block names with their links (a test deciding more lists the rest by id)
CLAIMS_SHOWN = 2


def sentence(doc: str | None) -> str | None:
    """The first sentence of a docstring's first paragraph, on one line."""
    if not doc:
        return None
    paragraph = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    m = re.match(r"(.+?[.!?])(\s|$)", paragraph)
    text = m.group(1) if m else paragraph
    return text if len(text) <= 240 else text[:237] + "..."


def _humanise(name: str) -> str:
    return name.removeprefix("test_").replace("_", " ") + " (the test's name)"


def _property(item, excinfo) -> str:
    """The property in words: the test's docstring, else the shared check it failed in,
    else the test's name."""
    text = sentence(getattr(item, "function", None).__doc__ if getattr(item, "function", None)
                    else None)
    if text:
        return text
    if excinfo is not None:
        from llmref.spec.harness import checks
        source = str(Path(inspect.getsourcefile(checks)).resolve())
        for entry in reversed(excinfo.traceback):
            if str(Path(str(entry.frame.code.path)).resolve()) == source:
                doc = sentence(getattr(checks, entry.frame.code.name, None).__doc__
                               if hasattr(checks, entry.frame.code.name) else None)
                if doc:
                    return doc
    claims = [m.args[0] for m in item.iter_markers("claim")]
    if claims:
        text = _claim_property(claims[0])
        if text:
            return text
    return _humanise(getattr(item, "originalname", item.name))


def _claim_property(claim: str) -> str | None:
    """What a claim's test checks, from the registry: the claim where it holds, else what
    holds instead (None if the registry cannot be read)."""
    try:
        from llmref.spec.harness import registry
        entry = registry.claims()[claim]
    except Exception:                  # noqa: BLE001  (the report works without it)
        return None
    if entry.get("verdict") == "holds":
        return sentence(entry.get("claim"))
    if entry.get("verdict") == "holds with caveat":
        text = sentence(entry.get("claim"))
        return f"{text} (the lesson's claim; it holds with a caveat)" if text else None
    instead = sentence(entry.get("reason"))
    return f"{instead} (what holds instead of the lesson's claim)" if instead else None


_EXAMPLE_HEAD = re.compile(r"^(Falsifying example|Failing test case)\b")
_ARG = re.compile(r"^    ([A-Za-z_]\w*)=(.*)$")


def shrunk_example(exc: BaseException, hidden=()) -> str | None:
    """Hypothesis' smallest failing example from the exception's notes, without the fixtures
    (``impl``) and the arguments in ``hidden``: ``"x=array([0.1]), seed=0"``."""
    notes = getattr(exc, "__notes__", None) or []
    lines = "\n".join(notes).splitlines()
    start = next((i for i, line in enumerate(lines) if _EXAMPLE_HEAD.match(line)), None)
    if start is None:
        return None
    args, current = [], None
    for line in lines[start + 1:]:
        if line.startswith(")"):
            break
        m = _ARG.match(line)
        if m:
            current = [m.group(1), m.group(2)]
            args.append(current)
        elif current is not None and line.startswith("     "):
            current[1] += " " + line.strip()
    out = []
    for name, value in args:
        if name in hidden:
            continue
        value = re.sub(r"\s*#.*$", "", value).rstrip(",").strip()
        out.append(f"{name}={value}")
    return ", ".join(out) if out else None


#: pytest's reprs of functions and objects (``<function allclose at 0x7f...>``): noise
_OBJECT_REPR = re.compile(r"<(?:built-in )?(?:function|method|bound method|class) ([\w.]+)[^>]*>")


def _short_value(value, width: int = 200) -> str | None:
    """A local's value on one line (arrays by their elements, long ones summarised); None for
    what is not data (modules, functions, classes, fixtures)."""
    import numpy as np
    if inspect.ismodule(value) or inspect.isroutine(value) or inspect.isclass(value):
        return None
    if isinstance(value, np.ndarray) and value.ndim == 0:
        text = format(value.item(), ".6g") if value.dtype.kind == "f" else repr(value.item())
    elif isinstance(value, np.ndarray) and value.ndim == 1 and value.size <= 12:
        text = "[" + ", ".join(format(v, ".6g") if isinstance(v, float) else repr(v)
                               for v in value.reshape(-1).tolist()) + "]"
    elif isinstance(value, np.ndarray):
        with np.printoptions(precision=6, threshold=12, edgeitems=3, linewidth=10**6):
            text = np.array2string(value, separator=", ")
        text = " ".join(text.split())
        if value.ndim > 1 or value.size > 12:
            text += f"  (shape {value.shape}, dtype {value.dtype})"
    elif isinstance(value, (bool, int, float, complex, str, bytes, np.generic, tuple, list,
                            dict, set, type(None))):
        text = " ".join(repr(value).split())
        text = re.sub(r"np\.(?:float|int|bool)\w*\((.*?)\)", r"\1", text)
    else:
        return None
    return text if len(text) <= width else text[: width - 3] + "..."


def plain_assertion(item, excinfo) -> list:
    """A bare ``assert`` (no message of its own) in plain words: the line that failed, where,
    and the values of the names it reads; instead of pytest's introspection with function
    reprs and addresses (``+ where np.False_ = <function all at 0x7f...>(...)``)."""
    import ast
    test_file = str(Path(str(item.path)).resolve())
    entry = next((e for e in reversed(excinfo.traceback)
                  if str(Path(str(e.path)).resolve()) == test_file), None)
    if entry is None:
        return []
    try:
        statement = "\n".join(str(entry.statement).splitlines()).strip()
    except Exception:                  # noqa: BLE001  (no source: keep pytest's text)
        return []
    code = " ".join(ln.strip() for ln in statement.splitlines())
    code = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", code))
    out = [f"this check does not hold (line {entry.lineno + 1} of {Path(test_file).name}):",
           f"    {code}"]
    try:
        tree = ast.parse(textwrap.dedent(statement))
    except SyntaxError:
        tree = None
    names = []
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) \
                and node.id not in names:
            names.append(node.id)
    local = entry.frame.f_locals
    shown = []
    for name in names:
        if name in local and name not in ("impl", "claim", "claim_values", "claim_figures"):
            text = _short_value(local[name])
            if text is not None:
                shown.append(f"{name} = {text}")
    if shown:
        out.append("  where " + shown[0])
        out += ["        " + s for s in shown[1:]]
    return out


def _unclutter(lines: list) -> list:
    """pytest's assertion explanation without function reprs and addresses."""
    out = []
    for line in lines:
        if re.match(r"^\s*\+\s+where <", line):       # "+ where <function f at 0x..> = np.f"
            continue
        line = _OBJECT_REPR.sub(r"\1", line)
        out.append(re.sub(r"np\.(False|True)_", r"\1", line))
    return out


#: hypothesis arguments that are the test's own draws (the random upstream's seed, which bad
#: variant a contract test picks), not the component's input: never shown as "input"
INTERNAL_DRAWS = ("seed", "index")


def _example(exc, hidden) -> str | None:
    """The input line: hypothesis' shrunk example, only where it is the component's input and
    the failure can depend on it (a module that does not import fails at every input)."""
    if exc is None or isinstance(exc, ImplementationError):
        return None
    return shrunk_example(exc, {*hidden, *INTERNAL_DRAWS})


_FUNCTION_AT_START = re.compile(r"^([A-Za-z_]\w*\.[A-Za-z_]\w*)[: ]")


def failure_details(item, excinfo, impl) -> dict:
    """Everything the report shows about one failed test, as plain (serialisable) data."""
    exc = excinfo.value if excinfo is not None else None
    graded = list(getattr(item, "_llmspec_components", ()))
    params = getattr(getattr(item, "callspec", None), "params", {})
    hidden = {"impl", "graded", *params, *getattr(item, "fixturenames", ())}
    raised_in = getattr(exc, RAISED_IN, None)
    if isinstance(exc, (AssertionError, ImplementationError)):
        message = str(exc)             # an import failure's sentence names file and line
    elif exc is not None:
        place = where(exc, None if impl.is_reference else impl.name)
        message = f"{type(exc).__name__}: {exc}"
        if not plugin.in_spec(place.rpartition(":")[0]):      # not inside the suite's own code
            message += f"\n  raised at {place}"
        if raised_in:
            message = f"{raised_in} raised {message}"
    else:
        message = ""
    lines = message.splitlines()
    # pytest appends its own "assert ..." explanation to an assert's message: the message is
    # what the test's author wrote for the reader, the rest repeats it
    cut = next((i for i, ln in enumerate(lines) if i and ln.startswith("assert ")), None)
    if cut is not None and isinstance(exc, AssertionError):
        lines = lines[:cut]
    elif isinstance(exc, AssertionError) and (not lines or lines[0].startswith("assert ")):
        # a bare assert: the line in plain words, not pytest's introspection
        lines = plain_assertion(item, excinfo) or _unclutter(lines)
    hints = [ln[len("hint: "):] for ln in lines if ln.startswith("hint: ")]
    body = [ln for ln in lines if not ln.startswith("hint: ")]
    function = raised_in
    if function is None and body:
        m = _FUNCTION_AT_START.match(body[0]) or _FUNCTION_AT_START.match(
            body[1] if len(body) > 1 else "")
        if m and comp.component_of(m.group(1)):
            function = m.group(1)
    if function is None:
        # the one function of the test's component it called, or, of several, the backward
        # for a gradient's failure and the forward otherwise
        owner = comp.owner(graded)
        mine = sorted(c for c in getattr(impl, "calls", ()) if owner and c.startswith(owner + "."))
        wants = "backward" if "gradient" in message.lower() else "forward"
        pick = mine if len(mine) == 1 else [c for c in mine if c.endswith(wants)]
        function = pick[0] if len(pick) == 1 else None
    owner = comp.owner(graded)
    claims = [m.args[0] for m in item.iter_markers("claim")]
    links = [anchors.function_page(function) if function else
             anchors.component_page(owner) if owner else None]
    return {
        "test": f"{Path(str(item.path)).name}::{item.name}",
        "function": function,
        "component": owner,
        "property": ("Your module imports: every test of the component needs it."
                     if isinstance(exc, ImplementationError) else _property(item, excinfo)),
        "example": _example(exc, hidden),
        "message": body,
        "hints": hints,
        "claims": claims,
        "import_error": isinstance(exc, ImplementationError),
        "links": [link for link in links if link],
    }


# ---------------------------------------------------------------- aggregation and rendering

@dataclass
class ComponentResult:
    name: str
    passed: int = 0
    failed: list = field(default_factory=list)          # failure details
    missing: dict = field(default_factory=dict)         # function -> tests skipped for it
    other_skips: int = 0
    unwritten: list = field(default_factory=list)      # functions still raising (by source)

    @property
    def to_write(self) -> list:
        return [*self.unwritten, *(m for m in sorted(self.missing) if m not in self.unwritten)]

    @property
    def status(self) -> str:
        if self.failed:
            return "failing"
        if self.passed and self.to_write:
            return "started"
        if self.passed:
            return "done"
        if self.to_write:
            return "to do"
        return "no tests run"


MARKS = {"done": "[x]", "failing": "[!]", "started": "[~]", "to do": "[ ]",
         "no tests run": "[-]"}


def missing_function(reason: str) -> str | None:
    """``"not implemented: softmax.backward (called by ...)"`` -> ``"softmax.backward"``."""
    reason = reason.removeprefix("Skipped: ")
    if not reason.startswith(NOT_IMPLEMENTED):
        return None
    rest = reason[len(NOT_IMPLEMENTED):].strip()
    return rest.split()[0] if rest else None


class Report:
    """Results per component (each test counts for the component it belongs to)."""

    def __init__(self, selected):
        self.selected = list(selected)
        self.results = {name: ComponentResult(name) for name in self.selected}
        self.unowned_failures = []

    def add(self, owner, outcome: str, reason: str = "", details: dict | None = None):
        if owner is None or owner not in self.results:
            if outcome == "failed" and details:
                self.unowned_failures.append(details)
            return
        result = self.results[owner]
        if outcome == "passed":
            result.passed += 1
        elif outcome == "failed":
            result.failed.append(details or {"test": "?", "message": [reason]})
        else:
            missing = missing_function(reason)
            if missing:
                result.missing[missing] = result.missing.get(missing, 0) + 1
            else:
                result.other_skips += 1

    @property
    def any_failed(self) -> bool:
        return any(r.failed for r in self.results.values()) or bool(self.unowned_failures)

    @property
    def any_passed(self) -> bool:
        return any(r.passed for r in self.results.values())

    def lessons(self) -> dict:
        """``{component: "001 003"}``: the lessons whose claim tests it owns
        (:func:`components.lessons`, the map ``--list`` and ``--lesson`` read)."""
        try:
            found = comp.lessons()
        except Exception:              # noqa: BLE001  (the report works without it)
            return {}
        return {c: " ".join(v) for c, v in found.items()}

    def checklist(self) -> list:
        """One line per selected component, grouped by stage, in teaching order."""
        lessons = self.lessons()
        out, stage = [], None
        for name in sorted(self.selected, key=comp.position):
            r = self.results[name]
            if comp.stage_of(name) != stage:
                stage = comp.stage_of(name)
                out.append(f"{stage}/")
            status = r.status
            if status == "failing":
                what = f"{len(r.failed)} of {len(r.failed) + r.passed} tests fail"
            elif status == "started":
                what = f"{r.passed} pass; {_todo(name, r.to_write)}"
            elif status == "done":
                what = f"{r.passed} tests pass" if r.passed != 1 else "1 test passes"
            elif status == "to do":
                what = _todo(name, r.to_write)
            elif r.other_skips:
                what = f"all {r.other_skips} of its tests skipped"
            else:
                what = "none of its tests is in this selection"
            lesson = (f"  (lesson{'s' if ' ' in lessons[name] else ''} {lessons[name]})"
                      if name in lessons else "")
            out.append(f"  {MARKS[status]} {name:<16} {status:<8} {what}{lesson}")
        return out

    def next_function(self) -> str | None:
        """The first function to write, in teaching order: ``"softmax.forward"``, or
        ``"embedding.init (sgd's tests need it)"`` for another component's function that a
        selected component's tests need."""
        for name in sorted(self.selected, key=comp.position):
            r = self.results[name]
            if r.status == "failing":
                return None
            if r.status in ("to do", "started"):
                first = r.to_write[0]
                return first if first.startswith(name + ".") else \
                    f"{first} ({name}'s tests need it)"
        return None

    def next_step(self) -> str | None:
        for name in sorted(self.selected, key=comp.position):
            r = self.results[name]
            if r.status in ("failing",):
                return f"next: make {name} pass (its failures are shown above)"
            if r.status in ("to do", "started"):
                return f"next: write {self.next_function()}"
        return None

    def blocks(self, limit_per_component: int = 3, base: str | None = None) -> list:
        """One screen-sized block per failure (a few per component; -v shows all)."""
        out = []
        n = 0
        for name in sorted(self.selected, key=comp.position):
            # one block per distinct failure (a module that does not import fails every test
            # the same way: one block says it)
            groups: dict = {}
            # (a claim test last within each group too: the block shows the first)
            for details in sorted(self.results[name].failed,
                                  key=lambda d: bool(d.get("claims"))):
                key = (details.get("function"), tuple(details.get("message") or ()))
                groups.setdefault(key, []).append(details)
            # the component's own checks (forward, gradients: they carry the hints) before
            # the claim tests that use it
            ordered = sorted(groups.values(), key=lambda same: bool(same[0].get("claims")))
            shown = ordered[:limit_per_component]
            for same in shown:
                n += 1
                out += block(n, same[0], base)
                if len(same) > 1:
                    out[-1:] = [*_wrap_line(
                        f"  (the same failure in {len(same) - 1} more test(s): "
                        + ", ".join(d["test"].split("::")[-1] for d in same[1:4])
                        + (", ..." if len(same) > 4 else "") + ")"), ""]
            rest = [d for same in ordered[limit_per_component:] for d in same]
            if rest:
                out += [f"  ... and {len(rest)} more failing test(s) of {name}: "
                        + ", ".join(d["test"].split("::")[-1] for d in rest), ""]
        for details in self.unowned_failures:
            n += 1
            out += block(n, details, base)
        return out


def _todo(name: str, functions: list, shown: int = 3) -> str:
    """``to write: a, b, c +2 more; needs x.y`` (its own functions, then what its tests need
    from other components)."""
    own = [f for f in functions if f.startswith(name + ".")]
    other = [f for f in functions if not f.startswith(name + ".")]
    text = ""
    if own:
        text = "to write: " + ", ".join(own[:shown]) + (
            f" +{len(own) - shown} more" if len(own) > shown else "")
    if other:
        text += ("; " if text else "") + "needs " + ", ".join(other[:shown]) + (
            f" +{len(other) - shown} more" if len(other) > shown else "")
    return text


def _wrap(label: str, text: str, width: int = 100) -> list:
    pad = " " * 12
    return textwrap.wrap(text, width, initial_indent=f"  {label:<10}", subsequent_indent=pad,
                         break_long_words=False, break_on_hyphens=False) or [f"  {label}"]


def _wrap_line(line: str, width: int = 96) -> list:
    indent = " " * (len(line) - len(line.lstrip()))
    return textwrap.wrap(line, width, subsequent_indent=indent + "    ",
                         break_long_words=False, break_on_hyphens=False) or [line]


def block(n: int, d: dict, base: str | None = None) -> list:
    """The failure block: function, property, input, expected/got, hints, links."""
    title = d.get("function") or d.get("component") or "?"
    out = [f"--- {n}. {title} " + "-" * max(3, 86 - len(title)),
           f"  test      {d['test']}"]
    out += _wrap("property", d.get("property") or "")
    if d.get("example"):
        out += _wrap("input", d["example"] + "  (the smallest failing input found)")
    message = [part for ln in d.get("message") or [] for part in _wrap_line(ln)]
    if message:
        out.append("  expected vs got:")
        shown = message[:MESSAGE_LINES]
        out += ["    " + ln for ln in shown]
        if len(message) > MESSAGE_LINES:
            out.append(f"    ... ({len(message) - MESSAGE_LINES} more lines with -v)")
    for hint in d.get("hints") or []:
        out += _wrap("hint", hint)
    for i, link in enumerate(d.get("links") or []):
        out += _wrap("docs" if i == 0 else "lesson", anchors.url(link, base))
    claims = [] if d.get("import_error") else d.get("claims") or []
    for claim in claims[:CLAIMS_SHOWN]:
        # the claim's id, and its badge in the lesson paragraph it comes from
        out.append(f"  {'claim':<10}{claim} (lesson {anchors.lesson_of(claim)}: the "
                   f"paragraph it comes from)")
        out.append(" " * 12 + anchors.url(anchors.lesson_page(claim), base))
    if len(claims) > CLAIMS_SHOWN:
        out += _wrap("", f"(and {len(claims) - CLAIMS_SHOWN} more claim(s) this test decides: "
                     + ", ".join(claims[CLAIMS_SHOWN:]) + ")")
    out.append("")
    return out
