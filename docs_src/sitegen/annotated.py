"""Annotated walk-throughs: the code of a function beside the maths it computes, generated from
the source at every build (so the code shown is always the code that runs).

A walk-through (``docs_src/annotated/NAME.md``) starts with a title, an optional line
``component: NAME`` (the component page links back to it) and an introduction, then one block
per function::

    {{walk llmref.layers.layer_norm._forward}}
    Text and $$ maths $$ for the lines before the first marker (the signature).
    @@ mean_of =
    The maths for the code from the first line containing ``mean_of =`` ...
    @@ var =
    ... and so on.
    {{end}}

Each ``@@ TEXT`` names the first source line, after the previous marker, that contains TEXT;
the code is cut there, and each piece is shown beside the note that follows its marker.  A
marker that no longer matches the source stops the build, so a walk-through cannot drift away
from the code it explains.
"""

from __future__ import annotations

import re

from . import common

BLOCK = re.compile(r"^\{\{walk ([\w.]+)\}\}\n(.*?)^\{\{end\}\}[ \t]*$", re.M | re.S)
COMPONENT = re.compile(r"^component:[ \t]*(\w+)[ \t]*\n", re.M)


def _display_maths(note: str) -> str:
    """A ``$$ ... $$`` line is display maths: give it the blank lines a block needs."""
    return re.sub(r"^[ \t]*(\$\$.*\$\$)[ \t]*$", r"\n\1\n", note, flags=re.M)


def split(dotted: str, body: str, page: str) -> tuple:
    """([(note, code)] pairs for one function, its file, its first line)."""
    source, path, start = common.source_of(dotted)
    lines = source.splitlines()
    chunks = re.split(r"^@@ (.+)$", body, flags=re.M)
    notes, markers = [chunks[0]], []
    for marker, note in zip(chunks[1::2], chunks[2::2], strict=True):
        markers.append(marker.strip())
        notes.append(note)
    cuts, at = [0], 1
    for marker in markers:
        hit = next((i for i in range(at, len(lines)) if marker in lines[i]), None)
        if hit is None:
            raise ValueError(f"docs_src/annotated/{page}.md: marker {marker!r} matches no line "
                             f"of {dotted} ({path}) after line {start + at - 1}; the code "
                             f"changed, update the walk-through")
        cuts.append(hit)
        at = hit + 1
    cuts.append(len(lines))
    return [(_display_maths(note.strip()), "\n".join(lines[a:b]).rstrip())
            for note, a, b in zip(notes, cuts[:-1], cuts[1:], strict=True)], path, start


def render(page: str, text: str) -> str:
    def block(m):
        dotted, body = m.group(1), m.group(2)
        pairs, path, start = split(dotted, body, page)
        name = dotted.rsplit(".", 1)[-1]
        out = [f'<p class="code-caption"><code>{name}</code> from '
               f'<a href="{common.repo_link(path, start)}">{path}</a>, line {start}, read from '
               f'the source when the site is built.</p>', "",
               '<div class="annotated" markdown="1">']
        for note, code in pairs:
            out += ['<div class="annotated-row" markdown="1">',
                    '<div class="annotated-note" markdown="1">',
                    "", note or "&nbsp;", "", "</div>",
                    '<div class="annotated-code" data-search-exclude markdown="1">', "",
                    "```python", code, "```", "", "</div>", "</div>"]
        out.append("</div>")
        return "\n".join(out)

    return BLOCK.sub(block, COMPONENT.sub("", text, count=1))


def pages() -> dict:
    """Render every walk-through into docs/annotated/; ``{component: (page, title)}``."""
    out, nav = {}, []
    target = common.DOCS / "annotated"
    target.mkdir(parents=True, exist_ok=True)
    for src in sorted((common.SRC / "annotated").glob("*.md")):
        text = src.read_text()
        title = text.splitlines()[0].lstrip("# ").strip()
        m = COMPONENT.search(text)
        if m:
            out[m.group(1)] = (src.stem, title)
        (target / src.name).write_text(render(src.stem, text))
        nav.append({title: f"annotated/{src.name}"})
    return out, nav
