"""The documentation site's stable anchors, written down once.

``llmspec check`` links each failure to the docs, and the docs build (``docs_src/hooks.py``)
puts these ids on its pages, so both read this module.  The scheme:

=====================  =============================================  ======================
what                   docs source path and anchor                     id on the page
=====================  =============================================  ======================
a claim (its entry)    ``claims.md#claim-L002-loss-042``              ``claim-L002-loss-042``
a claim in its lesson  ``lessons/002.md#claim-L002-loss-042``         the claim's badge,
                                                                       inside the paragraph
a component            ``components/softmax.md``                      (the page)
a component function   ``components/softmax.md#softmax.forward``      the function heading
=====================  =============================================  ======================

Claim ids keep their case (``L002``); a function id is ``component.function`` exactly as the
implementation is called (``impl("softmax.forward")``; a class: ``gpt.GPTConfig``).  These ids
are a public interface: links in old reports and elsewhere point at them, so change them only
with a redirect.

:func:`url` turns a source path into an address on the published site (mkdocs' directory
URLs: ``components/softmax.md#softmax.forward`` -> ``<base>components/softmax/#softmax.forward``).
The base is ``$LLMSPEC_DOCS_URL`` when set (a local ``mkdocs serve``:
``http://127.0.0.1:8000/``), else :data:`DEFAULT_BASE`.
"""

from __future__ import annotations

import os

ENV_VAR = "LLMSPEC_DOCS_URL"
#: the published site (pyproject's Documentation URL)
DEFAULT_BASE = "https://llm-reference-spec.github.io/llm-reference-spec/"


def claim_id(claim: str) -> str:
    """``"L002-loss-042"`` -> ``"claim-L002-loss-042"``."""
    return f"claim-{claim}"


def function_id(dotted: str) -> str:
    """``"softmax.forward"`` -> ``"softmax.forward"`` (the id of the function's heading)."""
    return dotted


def lesson_of(claim: str) -> str:
    """``"L002-loss-042"`` -> ``"002"``."""
    return claim[1:4]


def claim_page(claim: str) -> str:
    return f"claims.md#{claim_id(claim)}"


def lesson_page(claim: str) -> str:
    """Where the claim sits in the retold lesson (its badge in the paragraph it comes from)."""
    return f"lessons/{lesson_of(claim)}.md#{claim_id(claim)}"


def component_page(component: str) -> str:
    return f"components/{component}.md"


def function_page(dotted: str) -> str:
    """``"softmax.forward"`` -> ``"components/softmax.md#softmax.forward"``."""
    component = dotted.split(".", 1)[0]
    return f"{component_page(component)}#{function_id(dotted)}"


def base_url() -> str:
    base = os.environ.get(ENV_VAR) or DEFAULT_BASE
    return base if base.endswith("/") else base + "/"


def url(path: str, base: str | None = None) -> str:
    """A docs source path (``page.md#anchor``) as an address on the site."""
    page, _, anchor = path.partition("#")
    if page.endswith("index.md"):
        page = page[: -len("index.md")]
    elif page.endswith(".md"):
        page = page[: -len(".md")] + "/"
    base = base_url() if base is None else (base if base.endswith("/") else base + "/")
    return base + page + (f"#{anchor}" if anchor else "")
