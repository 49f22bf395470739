"""Open the built site in headless Chromium and check what a reader would see.

    python docs_src/browser_check.py [SITE_DIR]      # default: site/

Serves SITE_DIR on 127.0.0.1, drives Debian's Chromium (/usr/bin/chromium, or $CHROMIUM)
with Playwright, and checks: every lesson page renders with its claim badges; math is
typeset by the vendored MathJax (no raw TeX left); every badge's link resolves to an entry
on the claims page; the claims filters work; search returns results; and no request fails
and no console error appears anywhere.  Prints one line per check and a closing
"N passed, N failed" line; exits 1 if anything failed.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import sys
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LESSONS = ["000", "001", "002", "003", "004"]


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


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    site = Path(argv[0] if argv else "site").resolve()
    status_file = Path(__file__).resolve().parents[1] / ".llmspec" / "status.json"
    claims_json = json.loads(status_file.read_text()) if status_file.exists() else {}
    server, base = serve(site)
    c = Checks()
    problems = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("CHROMIUM",
                                                                    "/usr/bin/chromium"),
                                     args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        # a request cut short by navigating to the next page (net::ERR_ABORTED) is no failure
        page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} "
                                                           f"({r.failure})")
                if "ERR_ABORTED" not in (r.failure or "") else None)
        page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
                if r.status >= 400 else None)

        # every lesson page renders, with its badges, and every badge target exists
        targets = set()
        for lesson in LESSONS:
            page.goto(f"{base}/lessons/{lesson}/")
            h1 = page.locator("article h1").first.inner_text()
            c.check(h1.startswith(f"Lesson {lesson}"), f"lesson {lesson} renders ({h1!r})")
            badges = page.locator("a.claim-badge")
            c.check(badges.count() > 0, f"lesson {lesson} shows {badges.count()} claim badges")
            for i in range(badges.count()):
                targets.add(badges.nth(i).get_attribute("href").split("#")[1])
        page.goto(f"{base}/claims/")
        missing = [t for t in sorted(targets) if page.locator(f"[id='{t}']").count() == 0]
        c.check(not missing and len(targets) > 40,
                f"all {len(targets)} badge links resolve on the claims page (missing {missing})")

        # the anchors llmspec check links to (llmref.spec.anchors): a claim inside its lesson
        # paragraph and a component function's heading
        page.goto(f"{base}/lessons/001/")
        c.check(page.locator("[id='claim-L001-five-words']").count() == 1,
                "lessons/001/#claim-L001-five-words marks the claim in its paragraph")
        page.goto(f"{base}/components/softmax/")
        c.check(page.locator("[id='softmax.forward']").count() == 1
                and page.locator("[id='softmax.backward']").count() == 1,
                "components/softmax/ has the anchors #softmax.forward and #softmax.backward")

        # filters on the claims page
        page.goto(f"{base}/claims/")
        page.select_option("#f-verdict", "does not hold")
        shown = page.locator("div.claim:visible").count()
        expected = sum(1 for v in claims_json.get("claims", {}).values()
                       if v["verdict"] == "does not hold")
        c.check(shown > 0 and (not expected or shown == expected),
                f"verdict filter shows {shown} 'does not hold' claims (expected {expected})")
        page.select_option("#f-verdict", "")

        # math is typeset, no raw TeX left visible
        for path in ("", "components/layer_norm/", "components/attention/"):
            page.goto(f"{base}/{path}")
            page.wait_for_selector("mjx-container", timeout=15000)
            text = page.locator("article").inner_text()
            raw = [s for s in ("\\frac", "\\(", "$$", "\\sqrt") if s in text]
            c.check(page.locator("mjx-container").count() > 0 and not raw,
                    f"math typeset on /{path} ({page.locator('mjx-container').count()} "
                    f"formulas, raw TeX {raw})")

        # search returns a result
        page.goto(f"{base}/")
        page.keyboard.press("s")                 # material's shortcut opens the search box
        page.locator("input.md-search__input").fill("cross-entropy")
        page.wait_for_selector(".md-search-result__item", timeout=15000)
        hits = page.locator(".md-search-result__item").count()
        c.check(hits > 0, f"search for 'cross-entropy' returns {hits} results")

        # the other pages load too
        for path in ("examples/", "check-your-understanding/", "components/gpt/"):
            response = page.goto(f"{base}/{path}")
            c.check(response is not None and response.ok, f"/{path} loads")
        page.goto(f"{base}/examples/")
        broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || "
                               "i.naturalWidth === 0).map(i => i.src)")
        c.check(not broken, f"example plots load (broken: {broken})")
        if os.environ.get("SCREENSHOT_DIR"):
            page.goto(f"{base}/lessons/003/")
            page.screenshot(path=str(Path(os.environ["SCREENSHOT_DIR"]) / "lesson003.png"))
        browser.close()
    server.shutdown()
    c.check(not problems, "no failed requests or console errors"
            + ("" if not problems else ": " + "; ".join(problems[:10])))
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
