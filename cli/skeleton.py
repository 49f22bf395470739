"""Write an exercise skeleton: every public function of ``llmref`` with its signature and
docstring and a body that raises NotImplementedError, in the reference's stage folders.

Layout (``impl`` finds ``<package>.<stage>.<component>``)::

    work/myimpl/__init__.py          the order to work in, as a checklist
    work/myimpl/params.py            provided: the reference's parameter-tree helpers
    work/myimpl/layers/linear.py     one module per component, stage by stage
    ...

Within a module the functions keep the reference's order, forward before backward.  Each
docstring is the reference's (equation, shapes, dtype rule), followed by the input contract
generated from the function's ``@contract`` declaration and the catalogue of bad variants
(:data:`llmref._contract.VARIANTS`): per argument, which bad inputs raise which exception.

Writing never overwrites: into a folder that already holds work, only the files that are
missing are written, and :func:`write` says which were written and which kept.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import llmref
from llmref._contract import ACCEPTED, VARIANTS, kind_of

#: helpers a learner uses rather than writes; the skeleton re-exports the reference's
PROVIDED = {"params"}
#: the marker the skeleton's top docstring carries (``llmspec check`` recognises it)
MARK = "My implementation of the llm-reference-spec components."
DTYPE_RULE = ("dtype rule: compute in the input's floating dtype (float32 in, float32 out; "
              "float64 in, float64 out).")


def _default(value) -> str:
    if isinstance(value, type) and value.__module__ == "numpy":
        return f"np.{value.__name__}"
    if value is print:
        return "print"
    return repr(value)


def _annotation(annotation) -> str:
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or repr(annotation)


def _signature(fn) -> str:
    parts, seen_kw_only = [], False
    params = list(inspect.signature(fn).parameters.values())
    for i, p in enumerate(params):
        if p.kind is p.KEYWORD_ONLY and not seen_kw_only:
            parts.append("*")
            seen_kw_only = True
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
            continue
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            seen_kw_only = True
            continue
        text = p.name
        if p.annotation is not inspect.Parameter.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not inspect.Parameter.empty:
            text += f" = {_default(p.default)}" if ":" in text else f"={_default(p.default)}"
        parts.append(text)
        if p.kind is p.POSITIONAL_ONLY and (i + 1 == len(params)
                                            or params[i + 1].kind is not p.POSITIONAL_ONLY):
            parts.append("/")
    result = ""
    sig = inspect.signature(fn)
    if sig.return_annotation is not inspect.Signature.empty:
        result = f" -> {_annotation(sig.return_annotation)}"
    return f"({', '.join(parts)}){result}"


def functions(module) -> list:
    """``(name, function)`` for the module's public functions: the reference's order, with
    every ``*backward`` right after its ``*forward``."""
    found = [(name, fn) for name, fn in vars(module).items()
             if inspect.isfunction(fn) and fn.__module__ == module.__name__
             and not name.startswith("_")]
    found.sort(key=lambda item: inspect.getsourcelines(item[1])[1])
    names = [n for n, _ in found]
    for name in list(names):
        if name.endswith("backward"):
            partner = name[: -len("backward")] + "forward"
            if partner in names and names.index(partner) > names.index(name):
                names.remove(name)
                names.insert(names.index(partner) + 1, name)
    by_name = dict(found)
    return [(n, by_name[n]) for n in names]


def classes(module) -> list:
    """Public classes defined in the module (shared types the skeleton re-exports)."""
    return [name for name, obj in vars(module).items()
            if inspect.isclass(obj) and obj.__module__ == module.__name__
            and not name.startswith("_")]


def _fill(text: str, indent: str = "", width: int = 88, hang: bool = True) -> list:
    return textwrap.wrap(text, width, initial_indent=indent,
                         subsequent_indent=indent + ("    " if hang else ""),
                         break_long_words=False, break_on_hyphens=False)


def contract_section(component: str, name: str, fn) -> str:
    """The input contract of ``component.name`` in words, from its ``@contract``."""
    declared = getattr(fn, "__contract__", None)
    title = "Input contract (graded by `llmspec check --contract`)"
    lines = [title, "-" * len(title)]
    if declared is None:
        return "\n".join(lines + ["Not declared for this function."])
    label = f"{component}.{name}"
    lines += [*_fill(f"Raise `TypeError` or `ValueError` as listed, with a message that names "
                     f"`{label}` and the argument (`'arg'`, or `arg[...]` for a part of it)."),
              ""]
    try:
        example = declared.example(np.random.default_rng(0))
    except Exception as exc:            # noqa: BLE001  (the skeleton is written regardless)
        return "\n".join(lines + [f"(the declared example could not be built: {exc})"])
    for argument, value in example.items():
        kind = kind_of(value)
        if argument in declared.opaque:
            lines += [f"{argument}", "    Not checked by kind (the forward made it)."]
            continue
        if kind is None:
            lines += [f"{argument}", "    Not varied by the contract test."]
            continue
        by_error: dict = {}
        accepted = []
        for variant, (error, meaning) in VARIANTS[kind].items():
            if declared.allows(argument, variant):
                accepted.append(meaning)
            else:
                by_error.setdefault(error, []).append(meaning)
        lines.append(f"{argument} : {kind}")
        for error in ("TypeError", "ValueError"):
            if error in by_error:
                lines += _fill(f"{error}: " + "; ".join(by_error[error]) + ".", "    ")
        extra = ["NumPy scalars (np.int64, np.float64) where Python ones are accepted"] \
            if ACCEPTED.get(kind) else []
        if accepted or extra:
            lines += _fill("Accepted: " + "; ".join(accepted + extra) + ".", "    ")
        if argument in declared.mutates:
            lines.append("    Updated in place (as documented above).")
    lines += ["", "A valid call must leave every other array argument unchanged."]
    return "\n".join(lines)


def docstring(component: str, name: str, fn) -> str:
    """The exercise's docstring: the reference's, the dtype rule for forwards and backwards
    (unless it states one), and the input contract."""
    doc = inspect.getdoc(fn) or f"`{component}.{name}`: see the module docstring."
    parts = [doc]
    if (name.endswith("forward") or name.endswith("backward")) and "dtype" not in doc:
        parts.append("\n".join(_fill(DTYPE_RULE, hang=False)))
    if "Input contract" not in doc:
        parts.append(contract_section(component, name, fn))
    return "\n\n".join(parts)


def _quoted(text: str, indent: str) -> str:
    """``text`` as an r-string docstring at ``indent`` (a triple quote inside escaped)."""
    body = textwrap.indent(text.replace('"""', '\\"\\"\\"'), indent).lstrip()
    return f'{indent}r"""{body}\n{indent}"""'


def _def_line(name: str, signature: str, width: int = 100) -> str:
    line = f"def {name}{signature}:"
    if len(line) <= width:
        return line
    inner, _, result = signature[1:].rpartition(")")
    params = [p.strip() for p in _split_params(inner)]
    return f"def {name}(\n" + "".join(f"    {p},\n" for p in params) + f"){result}:"


def _split_params(inner: str) -> list:
    """Split a parameter list at top-level commas (defaults may hold tuples)."""
    out, depth, current = [], 0, ""
    for ch in inner:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    return out + ([current] if current.strip() else [])


def module_source(name: str) -> str:
    """The source of the exercise module for component ``name``."""
    module = getattr(llmref, name)
    lines = [_quoted(inspect.getdoc(module) or name, "").rstrip(), "",
             "from __future__ import annotations", "", "import numpy as np"]
    if name in PROVIDED:
        return "\n".join(lines + ["", f"from {module.__name__} import *  # noqa: F401,F403  "
                                  f"(provided: use it, no need to write it)", ""])
    shared = classes(module)
    imports = []
    for cls in shared:
        imports.append(f"from {module.__name__} import {cls}  # noqa: F401  (a shared type: "
                       f"use it as it is)")
    source = inspect.getsource(module)
    if "GPTConfig" in source and "GPTConfig" not in shared:
        imports.append("from llmref.transformer.gpt import GPTConfig  # noqa: F401  (shared type)")
    if imports:
        lines += ["", *imports]
    for fname, fn in functions(module):
        lines += ["", "", _def_line(fname, _signature(fn)),
                  _quoted(docstring(name, fname, fn), "    "),
                  "    raise NotImplementedError"]
    return "\n".join(lines) + "\n"


def package_init(package: str) -> str:
    """The package's docstring: what to do, in which order, how to grade it."""
    rows = []
    for stage, names in llmref.STAGES.items():
        rows += _fill(f"{stage}/: " + ", ".join(names), "    ", width=92)
    return (f'"""{MARK}\n\nWork through the components in the order the lessons teach them '
            f"(stage by stage, each\nfolder's modules in the order listed):\n\n"
            + "\n".join(rows)
            + "\n\nparams.py is provided.  Fill in one function at a time (forward, then "
            "backward) and grade\nit from the folder that holds this package:\n\n"
            f"    llmspec check COMPONENT --impl {package}     # e.g. softmax\n"
            f"    llmspec check --impl {package}               # everything: the progress map\n"
            "\nYour modules may import each other, e.g. "
            f"``from {package}.layers import linear``.\n" + '"""\n')


def stage_init(stage: str) -> str:
    names = llmref.STAGES[stage]
    text = "\n".join(_fill(f"Stage {stage}: {', '.join(names)} (in this order).", hang=False))
    return f'"""{text}\n"""\n'


@dataclass
class Written:
    root: Path
    written: list = field(default_factory=list)
    kept: list = field(default_factory=list)


def files(package: str) -> dict:
    """``{relative path: source}`` for the whole skeleton, in teaching order."""
    out = {"__init__.py": package_init(package)}
    for stage, names in llmref.STAGES.items():
        out[f"{stage}/__init__.py"] = stage_init(stage)
        for name in names:
            out[f"{stage}/{name}.py"] = module_source(name)
    for name in llmref.__all__:
        if not any(name in names for names in llmref.STAGES.values()):
            out[f"{name}.py"] = module_source(name)
    return out


def write(directory: Path, package: str = "myimpl") -> Written:
    """Create ``directory/package/``; write every missing file and keep every existing one
    byte for byte.  The caller validates ``package`` (see ``llmref.cli.cli``)."""
    root = Path(directory) / package
    result = Written(root)
    for relative, text in files(package).items():
        path = root / relative
        if path.exists():
            result.kept.append(relative)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        result.written.append(relative)
    return result
