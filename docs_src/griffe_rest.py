"""griffe extension for the docs build: docstrings still written in the old reST dialect
(``.. math::`` blocks, ````code````, ``:func:`x```) are shown as the Markdown the docstring
format asks for (``$$`` blocks, single backticks), so no raw reST reaches a page or the search
index.  It rewrites nothing that is already Markdown; once every docstring follows the format
(issue 13) it changes nothing and can go.  The objects it had to convert are listed in
``CONVERTED`` (the build prints their number).
"""

from __future__ import annotations

import re

import griffe

CONVERTED: list = []

_MATH = re.compile(r"^(\s*)\.\. math::[ \t]*(.*)$")
_ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|obj):`~?([^`]+)`")
_DOUBLE = re.compile(r"``([^`]+)``")


def rest_to_markdown(text: str) -> str:
    """``.. math::`` blocks as ``$$`` blocks, double backticks and roles as single backticks."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        m = _MATH.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, body = m.group(1), [m.group(2)] if m.group(2).strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip()
                                  or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            if lines[i].strip():
                body.append(lines[i].strip())
            i += 1
        out += ["", f"{indent}$$", *(indent + b for b in body), f"{indent}$$", ""]
    return _DOUBLE.sub(r"`\1`", _ROLE.sub(r"`\1`", "\n".join(out)))


class RestToMarkdown(griffe.Extension):
    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is None:
            return
        new = rest_to_markdown(obj.docstring.value)
        if new != obj.docstring.value:
            CONVERTED.append(obj.path)
            obj.docstring.value = new
