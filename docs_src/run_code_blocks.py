"""Run every ```bash block of the site's hand-written pages, in page order, each in a fresh
shell started at the repository root, and fail on the first one that fails.

    python docs_src/run_code_blocks.py

The folder the exercise pages create (work/) is removed before and after.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["docs/check-your-understanding.md"]


def blocks(page: Path) -> list:
    return re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S)


def main() -> int:
    shutil.rmtree(ROOT / "work", ignore_errors=True)
    passed = failed = 0
    try:
        for page in PAGES:
            for i, code in enumerate(blocks(ROOT / page), 1):
                run = subprocess.run(["bash", "-e", "-c", code], cwd=ROOT, text=True,
                                     capture_output=True, timeout=900)
                ok = run.returncode == 0
                print(f"{'PASS' if ok else 'FAIL'} {page} block {i}: {code.strip()!r}")
                if not ok:
                    print(run.stdout[-3000:], run.stderr[-3000:])
                    failed += 1
                    break
                passed += 1
    finally:
        shutil.rmtree(ROOT / "work", ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
