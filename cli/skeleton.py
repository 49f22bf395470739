"""Write an exercise skeleton: every public function of ``llmref`` with its signature and
docstring, its body raising NotImplementedError, one module per component."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import llmref

#: helpers a learner uses rather than writes; the skeleton re-exports the reference's
PROVIDED = {"params"}


def _default(value) -> str:
    if isinstance(value, type) and value.__module__ == "numpy":
        return f"np.{value.__name__}"
    if value is print:
        return "print"
    return repr(value)


def _signature(fn) -> str:
    parts, seen_kw_only = [], False
    for p in inspect.signature(fn).parameters.values():
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
            text += f": {p.annotation if isinstance(p.annotation, str) else p.annotation.__name__}"
        if p.default is not inspect.Parameter.empty:
            text += f" = {_default(p.default)}" if ":" in text else f"={_default(p.default)}"
        parts.append(text)
    return f"({', '.join(parts)})"


def module_source(name: str) -> str:
    module = getattr(llmref, name)
    lines = [f'r"""{inspect.getdoc(module) or name}"""', "", "from __future__ import annotations",
             "", "import numpy as np", ""]
    if name in PROVIDED:
        return "\n".join(lines + [f"from llmref.{name} import *  # noqa: F403", ""])
    if "GPTConfig" in inspect.getsource(module):
        lines.append("from llmref.transformer.gpt import GPTConfig  # noqa: F401  (shared type)")
    for fname, fn in inspect.getmembers(module, inspect.isfunction):
        if fn.__module__ != module.__name__ or fname.startswith("_"):
            continue
        doc = textwrap.indent(f'r"""{inspect.getdoc(fn) or ""}"""', "    ")
        lines += ["", "", f"def {fname}{_signature(fn)}:", doc, "    raise NotImplementedError"]
    return "\n".join(lines) + "\n"


def write(directory: Path, package: str = "myimpl") -> Path:
    """Create ``directory/package/`` with a module per component; returns the package path."""
    if not package.isidentifier():
        raise ValueError(f"llmspec exercises: the package name must be a Python identifier, "
                         f"got {package!r}")
    root = Path(directory) / package
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"llmspec exercises: {root} exists and is not empty; choose "
                              f"another directory or --package name")
    root.mkdir(parents=True, exist_ok=True)
    (root / "__init__.py").write_text(
        '"""My implementation of the llm-reference-spec components.\n\nFill in one function '
        'at a time and grade it with:\n\n    llmspec check COMPONENT --impl '
        f'{package}\n"""\n')
    for name in llmref.__all__:
        (root / f"{name}.py").write_text(module_source(name))
    return root

