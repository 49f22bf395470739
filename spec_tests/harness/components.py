"""Which components a spec test grades: the map behind ``llmspec check softmax``.

A test grades the components whose functions it reaches through the ``impl`` fixture
(``impl("softmax.forward")``).  The map is read from the test's source, statically, so that a
selection can be made before anything runs:

- a string given to ``impl(...)``: ``"softmax.forward"`` -> ``softmax``;
- a string given, as a positional argument, to a call that also receives ``impl`` (the shared
  checks: ``check_against_torch(impl, "linear", ...)``); the component is the part before the
  first dot (``"ppo.policy"`` -> ``ppo``); keyword arguments (``activation="gelu"``) are
  options, not components;
- a name in those places resolves through the test's parameters
  (``@pytest.mark.parametrize("name", ["softmax", "log_softmax"])``: each parametrized test
  grades its own), and through the arguments of the module's own helpers that receive
  ``impl`` (``_run_both(impl, "sgd", ...)`` follows into ``impl(f"{module}.init")``), their
  string defaults included;
- a name the test takes from its data resolves too: a loop over literal strings
  (``for fn in ("weights.load", "weights.read_safetensors")``) and a row of a module-level
  table of cases picked by a parameter (``function, args = CASES[case]``);
- the implementation as a library, ``impl.lib``: ``impl.lib.softmax.forward(...)``, and a
  function of another module called with ``lib=impl.lib`` (an example's ``train``), whose
  ``lib.<component>`` uses are read, following that module's own functions;
- a fixture of the module that the test uses is read the same way;
- ``@pytest.mark.component("a", "b")`` (also on a ``pytest.param``) states the set by hand
  where the source cannot tell (a table of cases), and replaces the inferred one.

Every run against the reference checks the map against what each passing test really called
(``session.Summary``), so a test the map gets wrong fails loudly in the suite's own runs, never
silently in a learner's selection.

A test that grades several components belongs, for selection and for the report, to the one
the lessons teach last (its *owner*): a generation test calls ``gpt`` and ``generate`` and is
``generate``'s; the earlier components have tests of their own.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from pathlib import Path

MARKER = "component"
IMPL = "impl"


@functools.cache
def names() -> tuple:
    """Every component, in teaching order (``llmref.__all__``: the stages, then helpers)."""
    import llmref
    return tuple(llmref.__all__)


def position(name: str) -> int:
    return names().index(name)


def stage_of(name: str) -> str:
    """``"softmax"`` -> ``"layers"``; helpers outside the stages (``params``) -> ``"helpers"``."""
    import llmref
    for stage, members in llmref.STAGES.items():
        if name in members:
            return stage
    return "helpers"


def component_of(text: str) -> str | None:
    """``"softmax.forward"``, ``"ppo.policy"`` or ``"softmax"`` -> the component, else None."""
    head = text.split(".", 1)[0]
    return head if head in names() else None


def owner(components) -> str | None:
    """The component a test belongs to: of those it grades, the one taught last."""
    ordered = sorted(components, key=position)
    return ordered[-1] if ordered else None


@functools.cache
def _module_functions(path: str) -> dict:
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return {}
    return {node.name: node for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _values(expr, env: dict) -> set:
    """The strings an expression can be: a literal, a bound name, an f-string's head."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.Name):
        return set(env.get(expr.id, ()))
    if isinstance(expr, ast.JoinedStr) and expr.values:
        first = expr.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return {first.value}
        if isinstance(first, ast.FormattedValue):
            return _values(first.value, env)
    return set()


def _params(fn: ast.FunctionDef) -> list:
    a = fn.args
    return [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]


def _defaults(fn) -> dict:
    """A helper's string defaults (``optimizer="adam"``), used where a call leaves them out."""
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults, strict=True))
    pairs += [(p, d) for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None]
    return {p.arg: {d.value} for p, d in pairs
            if isinstance(d, ast.Constant) and isinstance(d.value, str)}


def _strings(fn, env: dict, functions: dict, callers: frozenset, seen: frozenset) -> set:
    """Component-like strings reaching the implementation from ``fn`` (and the module's
    helpers it passes ``impl`` to)."""
    found = set()
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        calls_impl = isinstance(node.func, ast.Name) and node.func.id in callers
        passes_impl = any(isinstance(a, ast.Name) and a.id == IMPL for a in node.args)
        if not (calls_impl or passes_impl):
            continue
        for a in node.args:                 # keywords (activation="gelu") are options
            found |= _values(a, env)
        helper = functions.get(node.func.id) if isinstance(node.func, ast.Name) else None
        if passes_impl and helper is not None and helper.name not in seen:
            bound = _defaults(helper)
            params = _params(helper)
            for name, a in zip(params, node.args, strict=False):
                bound[name] = _values(a, env)
            for k in node.keywords:
                if k.arg:
                    bound[k.arg] = _values(k.value, env)
            found |= _strings(helper, bound, functions, frozenset({IMPL}),
                              seen | {helper.name})
    return found


LIB = "lib"


def _is_impl_lib(expr) -> bool:
    """``impl.lib``: the implementation as a module of components (examples take it)."""
    return isinstance(expr, ast.Attribute) and expr.attr == LIB \
        and isinstance(expr.value, ast.Name) and expr.value.id == IMPL


@functools.cache
def _lib_uses(path: str, function: str) -> frozenset:
    """Components a function reaches as ``lib.<component>`` (the parameter the examples take
    the implementation by), following the module's own functions it calls."""
    functions = _module_functions(path)
    found, todo, seen = set(), [function], set()
    while todo:
        name = todo.pop()
        node = functions.get(name)
        if node is None or name in seen:
            continue
        seen.add(name)
        for n in ast.walk(node):
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) \
                    and n.value.id == LIB:
                found.add(n.attr)
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) \
                    and n.func.id in functions:
                todo.append(n.func.id)
    return frozenset(found)


def _module_named(name: str, fn, module):
    """The module a test refers to as ``name``: from its module's globals, or imported in the
    test function itself (``from llmref.examples import word_calculator``)."""
    import importlib
    import types
    found = getattr(module, name, None) if module is not None else None
    if isinstance(found, types.ModuleType):
        return found
    for n in ast.walk(fn):
        if isinstance(n, ast.ImportFrom) and n.module:
            for alias in n.names:
                if (alias.asname or alias.name) == name:
                    try:
                        return importlib.import_module(f"{n.module}.{alias.name}")
                    except ImportError:
                        return None
    return None


def _through_lib(fn, module) -> set:
    """Components a test reaches through ``impl.lib``: ``impl.lib.softmax.forward(...)``, and
    a function of another module given ``lib=impl.lib`` (read as :func:`_lib_uses`)."""
    import inspect
    found = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute) and _is_impl_lib(node.value):
            found.add(node.attr)
        if not isinstance(node, ast.Call):
            continue
        if not any(_is_impl_lib(a) for a in [*node.args, *(k.value for k in node.keywords)]):
            continue
        callee = node.func
        if isinstance(callee, ast.Attribute) and isinstance(callee.value, ast.Name):
            target = _module_named(callee.value.id, fn, module)
            if target is not None:
                try:
                    found |= _lib_uses(inspect.getsourcefile(target), callee.attr)
                except TypeError:
                    pass
    return found


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _table_value(expr, raw: dict, module):
    """``TABLE[param]`` or ``TABLE[param][0]``: the module's table entry for this test's
    parameter value (None when the expression is not of that form)."""
    if not isinstance(expr, ast.Subscript):
        return None
    if isinstance(expr.slice, ast.Constant) and isinstance(expr.value, ast.Subscript):
        row = _table_value(expr.value, raw, module)
        try:
            return None if row is None else row[expr.slice.value]
        except (IndexError, KeyError, TypeError):
            return None
    if isinstance(expr.value, ast.Name) and isinstance(expr.slice, ast.Name) \
            and expr.slice.id in raw and module is not None:
        table = getattr(module, expr.value.id, None)
        try:
            return table[raw[expr.slice.id]]
        except (IndexError, KeyError, TypeError):
            return None
    return None


def _strings_of(value) -> set:
    return {value} if isinstance(value, str) else set()


def _bind(fn, env: dict, raw: dict, module) -> None:
    """Bind names a test takes from its data: ``for fn in ("a.f", "a.g")`` and rows of a
    module-level table of cases, ``function, args = CASES[case]``."""
    for node in ast.walk(fn):
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            it = node.iter
            items = it.elts if isinstance(it, (ast.Tuple, ast.List)) else []
            values = {e.value for e in items if isinstance(e, ast.Constant)
                      and isinstance(e.value, str)}
            if isinstance(it, ast.Name) and module is not None:
                seq = getattr(module, it.id, None)
                if isinstance(seq, (tuple, list)):
                    values |= {v for v in seq if isinstance(v, str)}
            if values:
                env.setdefault(node.target.id, set()).update(values)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            row = _table_value(node.value, raw, module)
            if row is None:
                continue
            target = node.targets[0]
            if isinstance(target, ast.Name):
                env.setdefault(target.id, set()).update(_strings_of(row))
            elif isinstance(target, ast.Tuple) and isinstance(row, (tuple, list)):
                for t, v in zip(target.elts, row, strict=False):
                    if isinstance(t, ast.Name):
                        env.setdefault(t.id, set()).update(_strings_of(v))


def inferred(path: str, function: str, params: dict, fixtures=(), module=None) -> tuple:
    """The components a test function grades, read from its source (teaching order).

    ``params`` are the test's parametrized values; ``fixtures`` the names of the fixtures it
    uses (those defined in its module are read too); ``module``, the test's module, lets a
    row of a table of cases be looked up (``CASES[case]``).  Answers are kept on disk
    (:func:`saved_answers`), so a run whose sources have not changed reads no syntax tree."""
    raw = tuple(sorted(((k, v) for k, v in params.items() if _hashable(v)), key=lambda kv: kv[0]))
    module_name = getattr(module, "__name__", None)
    # the key holds no memory address (a parameter that is a function or an object), so a
    # later run with the same sources finds it
    key = re.sub(r" at 0x[0-9a-f]+", "",
                 f"{path}::{function}::{raw!r}::{tuple(fixtures)!r}::{module_name}")
    saved = saved_answers()
    if key not in saved["answers"]:
        saved["answers"][key] = list(_inferred(path, function, raw, tuple(fixtures),
                                               module_name))
        saved["new"] = True
    return tuple(saved["answers"][key])


def _sources_fingerprint() -> str:
    """Name, size and modification time of every source file the map reads (the suite, the
    reference, the examples): any edit gives a new fingerprint and a fresh map."""
    import hashlib

    import llmref
    roots = {Path(llmref.__file__).parent, Path(__file__).parents[1]}
    try:
        import llmref.examples
        roots.add(Path(llmref.examples.__file__).parent)
    except ImportError:
        pass
    digest = hashlib.sha256()
    for root in sorted(roots):
        for file in sorted(root.rglob("*.py")):
            stat = file.stat()
            digest.update(f"{file}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _answers_file() -> Path:
    from llmref.spec import plugin
    return plugin.status_dir() / "component-map.json"


@functools.cache
def saved_answers() -> dict:
    """The map's answers saved by an earlier run with the same sources (the user cache's
    ``component-map.json``; ``LLMSPEC_CACHE`` moves it), or an empty map."""
    import json
    fingerprint = _sources_fingerprint()
    try:
        data = json.loads(_answers_file().read_text())
        if data.get("fingerprint") == fingerprint and isinstance(data.get("answers"), dict) \
                and isinstance(data.get("modules"), dict):
            return {**data, "new": False}
    except (OSError, ValueError):
        pass
    return {"fingerprint": fingerprint, "answers": {}, "modules": {}, "new": False}


def save_answers() -> None:
    """Write the map's answers if this run added any (atomically: parallel workers may
    write at once; a cache that cannot be written is only slower next time)."""
    import json
    import os
    import tempfile
    saved = saved_answers()
    if not saved["new"]:
        return
    target = _answers_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".component-map-")
        with os.fdopen(fd, "w") as f:
            json.dump({k: v for k, v in saved.items() if k != "new"}, f)
        os.replace(tmp, target)
        saved["new"] = False
    except OSError:
        pass


@functools.cache
def _inferred(path: str, function: str, raw: tuple, fixtures: tuple,
              module_name: str | None) -> tuple:
    import sys
    functions = _module_functions(path)
    node = functions.get(function)
    if node is None:
        return ()
    raw = dict(raw)
    params = {k: v for k, v in raw.items() if isinstance(v, str)}
    env = {k: {v} for k, v in params.items()}
    _bind(node, env, raw, sys.modules.get(module_name) if module_name else None)
    # the test's own fixture arguments may be called like impl (a fixture returning impl)
    callers = frozenset({IMPL, *(p for p in _params(node) if p not in raw)})
    found = _strings(node, env, functions, callers, frozenset({function}))
    module = sys.modules.get(module_name) if module_name else None
    for helper in [node, *_helpers_given_impl(node, functions)]:
        found |= _through_lib(helper, module)
    for name in fixtures:
        fixture = functions.get(name)
        if fixture is not None and name != function and _is_fixture(fixture):
            found |= _strings(fixture, {}, functions, frozenset({IMPL}), frozenset({name}))
    return tuple(sorted({c for s in found if (c := component_of(s))}, key=position))


def _helpers_given_impl(fn, functions: dict, seen=None) -> list:
    """The module's helpers a test passes ``impl`` to, and theirs in turn."""
    seen = set() if seen is None else seen
    out = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in functions and node.func.id not in seen \
                and any(isinstance(a, ast.Name) and a.id == IMPL
                        for a in [*node.args, *(k.value for k in node.keywords)]):
            seen.add(node.func.id)
            helper = functions[node.func.id]
            out += [helper, *_helpers_given_impl(helper, functions, seen)]
    return out


def _is_fixture(node) -> bool:
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


def of_item(item) -> tuple:
    """The components a collected pytest item grades (its ``component`` markers, if any, else
    what its source passes to the implementation)."""
    marked = [name for m in item.iter_markers(MARKER) for name in m.args]
    if marked:
        unknown = [n for n in marked if n not in names()]
        if unknown:
            raise ValueError(f"{item.nodeid}: @pytest.mark.component names unknown "
                             f"component(s) {unknown}; known: {', '.join(names())}")
        return tuple(sorted(set(marked), key=position))
    function = getattr(item, "function", None)
    if function is None:
        return ()
    try:
        path = inspect.getsourcefile(item.module)
    except (TypeError, AttributeError):
        return ()
    callspec = getattr(item, "callspec", None)
    return inferred(path, getattr(item, "originalname", function.__name__),
                    dict(callspec.params) if callspec else {}, item.fixturenames,
                    getattr(item, "module", None))


#: test modules whose tests are generated for every component from ``llmref`` itself (so
#: their source names none): always candidates
EVERY_COMPONENT = ("test_contract",)


def modules_for(selected) -> list:
    """Test modules (``llmref.spec.test_x``) whose source names one of ``selected`` in a
    string, plus :data:`EVERY_COMPONENT`: a cheap pre-selection (no import) before the exact
    one at collection."""
    from llmref.spec import plugin
    known = saved_answers()["modules"]           # an earlier run's exact owners per module
    out = []
    for path in sorted(plugin.SPEC_DIR.glob("test_*.py")):
        name = plugin.module_name(path)
        if path.stem in EVERY_COMPONENT:
            out.append(name)
        elif name in known:
            if set(known[name]) & set(selected):
                out.append(name)
        else:
            text = path.read_text()
            if any(f'"{n}' in text or f"'{n}" in text for n in selected):
                out.append(name)
    return out


def note_module_owners(items) -> None:
    """Remember, per test module, the components that own its tests outside the ``slow``
    and ``parity`` markers (which a check never runs), so the next selection imports only
    the modules that hold a selected component's tests (:func:`modules_for`)."""
    found: dict = {}
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", None)
        if module is None:
            continue
        owners = found.setdefault(module, set())
        if item.get_closest_marker("slow") or item.get_closest_marker("parity"):
            continue
        who = owner(getattr(item, "_llmspec_components", ()))
        if who is not None:
            owners.add(who)
    saved = saved_answers()
    for module, owners in found.items():
        if saved["modules"].get(module) != sorted(owners):
            saved["modules"][module] = sorted(owners)
            saved["new"] = True


@functools.cache
def raises_checked(path: str, function: str) -> bool:
    """Whether a test function's own source asserts that something raises
    (``pytest.raises``)."""
    node = _module_functions(path).get(function)
    return node is not None and any(
        isinstance(n, ast.Attribute) and n.attr == "raises" and isinstance(n.value, ast.Name)
        and n.value.id == "pytest" for n in ast.walk(node))


# ---------------------------------------------------------------- lessons per component

def _marked_components(node) -> tuple:
    """``@pytest.mark.component("a", "b")`` on a test function, read from its source."""
    out = []
    for deco in node.decorator_list:
        if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) \
                and deco.func.attr == MARKER:
            out += [a.value for a in deco.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return tuple(out)


def static_owner(path: str, function: str) -> str | None:
    """The owner of a test function, read from its source alone (no import, no collection):
    its ``component`` marker, else what it passes to the implementation."""
    node = _module_functions(path).get(function)
    if node is None:
        return None
    marked = [n for n in _marked_components(node) if n in names()]
    graded = marked or inferred(path, function, {}, _params(node), None)
    return owner(graded)


@functools.cache
def claim_tests() -> dict:
    """``{(test file name, test function): (owner, lessons)}`` for every test that decides a
    lesson's claim (``@pytest.mark.claim``), read statically (and kept with the component
    map's saved answers: the same sources give the same table)."""
    saved = saved_answers()
    if "claim_tests" in saved:
        return {(f, fn): (o, tuple(ls)) for f, fn, o, ls in saved["claim_tests"]}
    from llmref.spec import plugin
    from llmref.spec.harness import registry
    found: dict = {}
    for claim, nodes in registry.marked_tests().items():
        for node_id, _ in nodes:
            file, _, function = node_id.rpartition("/")[2].partition("::")
            key = (file, function)
            if key not in found:
                found[key] = (static_owner(str(plugin.SPEC_DIR / file), function), set())
            found[key][1].add(claim[1:4])
    table = {k: (o, tuple(sorted(ls))) for k, (o, ls) in found.items()}
    saved["claim_tests"] = [[f, fn, o, list(ls)] for (f, fn), (o, ls) in table.items()]
    saved["new"] = True
    save_answers()
    return table


@functools.cache
def lessons() -> dict:
    """``{component: ("001", "003")}``: the lessons whose claim tests the component owns.

    The one source of truth for "the lessons a component belongs to": ``llmspec check
    --list`` prints it, the checklist shows it, and ``llmspec check NAME --lesson NNN`` runs
    exactly the claim tests of lesson NNN that NAME owns (a test belongs to the component its
    lessons teach last; a claim about a linear layer decided by training a GPT is ``gpt``'s or
    ``sgd``'s).  Every run of the suite checks it against the collected tests
    (``session.Summary``)."""
    found: dict = {}
    for owner_, lessons_ in claim_tests().values():
        if owner_ is not None:
            found.setdefault(owner_, set()).update(lessons_)
    return {c: tuple(sorted(found[c])) for c in names() if c in found}


def lesson_modules(lesson: str) -> list:
    """The test modules that hold lesson ``lesson``'s claim tests (``llmref.spec.test_x``)."""
    from llmref.spec import plugin
    files = sorted({file for (file, _), (_, ls) in claim_tests().items() if lesson in ls})
    return [plugin.module_name(plugin.SPEC_DIR / f) for f in files]
