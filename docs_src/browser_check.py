"""Open the built site in headless Chromium and check what a reader would see.

    python docs_src/browser_check.py [SITE_DIR]      # default: site/

Serves SITE_DIR on 127.0.0.1, drives Debian's Chromium (/usr/bin/chromium, or $CHROMIUM)
with Playwright, and checks:

- every lesson page renders and states the finding of each of its claims (an element with
  the claim's anchor, ``claim-ID``, holding the claim, what the test found and the figures
  the test recorded or the placeholder saying they are not recorded yet);
- every verdict badge links to the claim's entry in the index, and that entry shows the
  source of a test (a claim that is not testable: the reason instead);
- every link ``llmspec check`` prints resolves (``llmref.spec.anchors``: each claim in the
  index and in its lesson, each component page, each public function's heading);
- the badge colours keep white text at a contrast of 4.5:1 or more (WCAG AA), measured from
  the computed styles;
- no page body scrolls sideways at a phone's 390 px (wide tables and equations scroll inside
  their own box);
- maths is typeset by the vendored MathJax (no raw TeX left); the claims filters work;
- search finds the softmax component first for "softmax", and neither its results nor the
  search index show raw reST (``.. math::``, double backticks, ``:func:`` roles);
- example pages show their plots; no request fails and no console error appears anywhere.

Prints one line per check and a closing "N passed, N failed" line; exits 1 if anything failed.
"""

from __future__ import annotations

import functools
import http.server
import inspect
import json
import os
import re
import sys
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs_src"))

from sitegen.lessons import anchors as _anchors  # noqa: E402

anchors = _anchors()                 # llmref.spec.anchors: the scheme the CLI links with

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
RAW_REST = (".. math::", "``", ":func:`", ":mod:`", ":class:`")
PHONE = {"width": 390, "height": 844}


class Checks:
    def __init__(self):
        self.passed, self.failed = 0, 0

    def check(self, ok: bool, what: str) -> bool:
        print(("PASS " if ok else "FAIL ") + what, flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory: Path):
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def luminance(rgb) -> float:
    def channel(c):
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(float(x)) for x in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def rgb(css: str) -> tuple:
    return tuple(int(float(x)) for x in re.findall(r"[\d.]+", css)[:3])


def public_functions() -> dict:
    """``{component: ["component.function", ...]}``: what the CLI can link to."""
    import llmref
    out = {}
    for name in llmref.__all__:
        module = getattr(llmref, name)
        out[name] = [f"{name}.{n}" for n, obj in vars(module).items()
                     if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
                     and getattr(obj, "__module__", None) == module.__name__]
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    site = Path(argv[0] if argv else "site").resolve()
    from llmref.spec.harness import registry
    claims = registry.claims()
    lessons = sorted({e["lesson"][:3] for e in claims.values()})
    server, base = serve(site)
    c = Checks()
    problems = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("CHROMIUM",
                                                                    "/usr/bin/chromium"),
                                     args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        # a request cut short by navigating to the next page (net::ERR_ABORTED) is no failure
        page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} "
                                                           f"({r.failure})")
                if "ERR_ABORTED" not in (r.failure or "") else None)
        page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
                if r.status >= 400 else None)

        # each lesson states every one of its claims with the finding of its test
        badge_targets = set()
        for lesson in lessons:
            page.goto(f"{base}/lessons/{lesson}/")
            h1 = page.locator("article h1").first.inner_text()
            c.check(h1.startswith(f"Lesson {lesson}"), f"lesson {lesson} renders ({h1!r})")
            mine = [cid for cid, e in claims.items() if e["lesson"].startswith(lesson)]
            found = page.evaluate("""ids => ids.map(id => {
                const el = document.getElementById(id);
                if (!el) return [id, "missing"];
                const text = el.innerText;
                if (!text.includes("The lesson says")) return [id, "no claim"];
                if (!text.includes("What we found")) return [id, "no finding"];
                return [id, el.querySelector("table") ? "figures" :
                            (text.includes("not recorded yet") || text.includes("has not run")
                             ? "placeholder" : "no figures")];
            })""", [anchors.claim_id(cid) for cid in mine])
            bad = [f"{i}: {s}" for i, s in found
                   if s in ("missing", "no claim", "no finding")
                   or (s == "no figures" and claims[i[len("claim-"):]]["verdict"]
                       != "not testable")]
            n_fig = sum(s == "figures" for _, s in found)
            c.check(not bad, f"lesson {lesson} states all {len(mine)} claims with their "
                    f"findings ({n_fig} with recorded figures){'; ' if bad else ''}"
                    + "; ".join(bad[:5]))
            hrefs = page.eval_on_selector_all("a.claim-badge",
                                              "els => els.map(e => e.getAttribute('href'))")
            c.check(len(hrefs) == len(mine), f"lesson {lesson}: one verdict badge per claim "
                    f"({len(hrefs)} badges, {len(mine)} claims)")
            badge_targets |= {h.split("#", 1)[1] for h in hrefs}

        # each badge's target: the claim's entry in the index, with its tests' source
        page.goto(f"{base}/claims/")
        entries = page.evaluate("""ids => ids.map(id => {
            const h = document.getElementById(id);
            if (!h) return [id, -1];
            const box = h.closest("div.claim");
            return [id, box ? box.querySelectorAll(".claim-test details").length : -1];
        })""", sorted(badge_targets))
        untestable = {anchors.claim_id(cid) for cid, e in claims.items()
                      if e["verdict"] == "not testable"}
        bad = [i for i, n in entries if n < 0 or (n == 0 and i not in untestable)]
        c.check(not bad and len(entries) == len(claims),
                f"all {len(entries)} badges link to a claim entry showing its test's source "
                f"(bad: {bad[:5]})")

        # filters on the claims page
        page.goto(f"{base}/claims/")
        page.select_option("#f-verdict", "does not hold")
        shown = page.locator("div.claim:visible").count()
        expected = sum(1 for e in claims.values() if e["verdict"] == "does not hold")
        c.check(shown == expected,
                f"verdict filter shows {shown} 'does not hold' claims (expected {expected})")
        page.select_option("#f-verdict", "")

        # badge colours: white text at 4.5:1 or more on every verdict colour
        page.goto(f"{base}/lessons/{lessons[0]}/")
        colours = page.evaluate("""() => {
            const out = {};
            for (const cls of ["holds", "caveat", "fails", "untestable"]) {
                const a = document.createElement("a");
                a.className = "claim-badge verdict-" + cls; a.textContent = cls;
                document.querySelector("article").appendChild(a);
                const s = getComputedStyle(a);
                out[cls] = [s.color, s.backgroundColor, s.fontSize];
                a.remove();
            }
            return out;
        }""")
        ratios = {k: round(contrast(rgb(fg), rgb(bg)), 2) for k, (fg, bg, _) in colours.items()}
        c.check(all(r >= 4.5 for r in ratios.values()),
                f"verdict badge contrast >= 4.5:1 (WCAG AA): {ratios}")

        # every link the CLI prints: claims (index and lesson), components, functions
        functions = public_functions()
        by_page: dict = {}
        for cid in claims:
            for path in (anchors.claim_page(cid), anchors.lesson_page(cid)):
                p, _, a = path.partition("#")
                by_page.setdefault(p, set()).add(a)
        for name, dotted in functions.items():
            by_page.setdefault(anchors.component_page(name), set()).update(
                anchors.function_id(d) for d in dotted)
        missing = []
        for path, ids in sorted(by_page.items()):
            url = anchors.url(path, base + "/")
            response = page.goto(url)
            if response is None or not response.ok:
                missing.append(f"{url} ({response.status if response else 'no response'})")
                continue
            absent = page.evaluate("ids => ids.filter(i => !document.getElementById(i))",
                                   sorted(ids))
            missing += [f"{path}#{i}" for i in absent]
        n_links = sum(len(v) for v in by_page.values())
        c.check(not missing, f"all {n_links} anchors on {len(by_page)} pages that llmspec "
                f"links to resolve (missing: {missing[:6]})")

        # math is typeset, no raw TeX left visible
        for path in ("", "components/layer_norm/", "components/attention/",
                     "annotated/attention/", "lessons/002/"):
            page.goto(f"{base}/{path}")
            page.wait_for_selector("mjx-container", timeout=60000)
            text = page.evaluate("""() => {
                const a = document.querySelector("article").cloneNode(true);
                a.querySelectorAll("pre, code").forEach(e => e.remove());   // code is code
                document.body.appendChild(a);
                const t = a.innerText; a.remove(); return t; }""")
            raw = [s for s in ("\\frac", "\\(", "$$", "\\sqrt", ".. math::") if s in text]
            c.check(page.locator("mjx-container").count() > 0 and not raw,
                    f"math typeset on /{path} ({page.locator('mjx-container').count()} "
                    f"formulas, raw TeX {raw})")

        # search: the component first, no raw reST in results or in the index
        for query in ("softmax", "check softmax"):
            page.goto(f"{base}/")
            page.wait_for_load_state("load")
            box = page.locator("input.md-search__input")
            box.click()
            page.wait_for_timeout(500)
            box.press_sequentially(query, delay=50)
            try:                                 # the index is built in the browser: slow
                page.wait_for_selector(".md-search-result__item", timeout=120000)
            except Exception:
                meta = page.locator(".md-search-result__meta").inner_text()
                c.check(False, f"search for {query!r} shows results ({meta!r})")
                continue
            first = page.locator(".md-search-result__item a").first.get_attribute("href") or ""
            c.check("components/softmax/" in first,
                    f"search for {query!r} lists the softmax component first ({first})")
            results = page.locator(".md-search-result").inner_text()
            c.check(not [r for r in RAW_REST if r in results],
                    f"search results for {query!r} show no raw reST")
        index = json.loads((site / "search" / "search_index.json").read_text())
        raw_docs = [d["location"] for d in index["docs"] if any(r in d["text"] for r in RAW_REST)]
        c.check(not raw_docs, f"no raw reST in the search index ({len(index['docs'])} "
                f"entries; with reST: {raw_docs[:5]})")
        source_docs = [d["location"] for d in index["docs"] if "def " in d["text"]]
        c.check(not source_docs, f"source code (collapsed or shown) is not indexed "
                f"({source_docs[:3]})")

        # example pages show their plots
        page.goto(f"{base}/examples/")
        links = page.eval_on_selector_all("article table a", "els => els.map(e => e.href)")
        n_images = 0
        for href in links:
            page.goto(href)
            page.wait_for_load_state("load")
            broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || "
                                   "i.naturalWidth === 0).map(i => i.src)")
            n_images += page.locator("figure.plot img").count()
            c.check(not broken, f"{href.split('/examples/')[1]} plots load (broken: {broken})")

        # a phone: no page scrolls sideways
        phone = browser.new_page(viewport=PHONE)
        phone.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        wide = []
        pages = ["", "install/", "claims/", "components/", "components/softmax/",
                 "components/gpt/", "annotated/attention/", "annotated/gpt_backward/",
                 "examples/", *(f"lessons/{le}/" for le in lessons),
                 *(h.split(base)[1].lstrip("/") for h in links)]
        for path in pages:
            phone.goto(f"{base}/{path}")
            phone.wait_for_timeout(300)
            try:
                phone.wait_for_selector("mjx-container", timeout=3000)
            except Exception:                     # a page without maths
                pass
            width = phone.evaluate("document.documentElement.scrollWidth")
            if width > PHONE["width"]:
                wide.append(f"/{path} ({width} px)")
        c.check(not wide, f"no horizontal overflow at 390 px on {len(pages)} pages "
                f"(wider: {wide})")
        if os.environ.get("SCREENSHOT_DIR"):
            out = Path(os.environ["SCREENSHOT_DIR"])
            for path, name in (("lessons/003/", "lesson003"), ("components/softmax/", "softmax")):
                phone.goto(f"{base}/{path}")
                phone.screenshot(path=str(out / f"{name}-390.png"))
                page.goto(f"{base}/{path}")
                page.screenshot(path=str(out / f"{name}-1280.png"))
        browser.close()
    server.shutdown()
    c.check(not problems, "no failed requests or console errors"
            + ("" if not problems else ": " + "; ".join(problems[:10])))
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
