#!/usr/bin/env bash
# The distribution as a user gets it: build the wheel and the sdist, install the wheel (not
# editable) into a fresh virtual environment outside the checkout, and use it from an empty
# folder.  Fails if anything but bytecode caches appears inside site-packages, or if pytest in
# an unrelated project behaves differently with the package installed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python -m build --outdir "$work/dist" "$repo" >/dev/null
wheel=$(ls "$work"/dist/*.whl)
sdist=$(ls "$work"/dist/*.tar.gz)
echo "built $(basename "$wheel") and $(basename "$sdist")"

# the wheel's top-level names: exactly llmref and its .dist-info
tops=$(python - "$wheel" <<'PY'
import sys, zipfile
names = {n.split("/")[0] for n in zipfile.ZipFile(sys.argv[1]).namelist()}
print(" ".join(sorted(n if not n.endswith(".dist-info") else "DIST-INFO" for n in names)))
PY
)
[ "$tops" = "DIST-INFO llmref" ] || { echo "wheel top-level names: $tops" >&2; exit 1; }
# the sdist carries what the docs and the suite read
listing=$(tar -tzf "$sdist")
for f in LICENSE CHANGELOG.md mkdocs.yml spec_tests/claims.yaml docs_src/hooks.py; do
    grep -q "/$f$" <<<"$listing" || { echo "sdist lacks $f" >&2; exit 1; }
done

python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --upgrade pip
"$py" -m pip install --quiet torch==2.13.0
"$py" -m pip install --quiet "$wheel[test,examples]"
site=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
"$py" -c "import torch; assert torch.version.cuda is None, torch.version.cuda"
find "$site" -type f ! -name '*.pyc' | sort > "$work/before.txt"

export PATH="$work/venv/bin:$PATH" LLMSPEC_CACHE="$work/cache" MPLBACKEND=Agg
empty="$work/empty"
mkdir -p "$empty"
cd "$empty"
llmspec check softmax
llmspec exercises work
cp "$("$py" -c 'import llmref; print(llmref.softmax.__file__)')" work/myimpl/layers/softmax.py
(cd work && llmspec check softmax --impl myimpl)
(cd work && PYTHONPATH=. python -m pytest -q -p no:cacheprovider --pyargs llmref.spec.test_softmax \
    --llmspec-impl=myimpl --llmspec-status "$work/status.json")
test -s "$work/status.json"
llmspec run cat_sat_mat --epochs 50 --out "$work/plots"
# one import root after an installed --pyargs run
python - <<'PY'
import sys, pytest
code = pytest.main(["--pyargs", "llmref.spec.test_softmax", "-q", "-p", "no:cacheprovider"])
from llmref.spec.plugin import foreign_modules
bare = [m for m in ("reference", "spec_tests", "examples", "cli") if m in sys.modules]
assert code == 0 and not foreign_modules() and not bare, (code, foreign_modules(), bare)
PY
find "$site" -type f ! -name '*.pyc' | sort > "$work/after.txt"
if ! diff "$work/before.txt" "$work/after.txt"; then
    echo "files appeared inside site-packages" >&2
    exit 1
fi
[ "$(ls "$empty")" = "work" ] || { echo "files left in the empty folder: $(ls "$empty")" >&2; exit 1; }

# an unrelated project, in a venv with only the wheel (no extras) and pytest
python3 -m venv "$work/bare"
"$work/bare/bin/python" -m pip install --quiet "$wheel" pytest
proj="$work/project"
mkdir -p "$proj"
printf 'def test_one():\n    assert 1 + 1 == 2\n' > "$proj/test_thing.py"
cd "$proj"
with=$("$work/bare/bin/python" -m pytest -q -p no:cacheprovider 2>&1 | grep -v ' in ') || true
without=$("$work/bare/bin/python" -m pytest -q -p no:cacheprovider -p no:llmref 2>&1 | grep -v ' in ') || true
[ "$with" = "$without" ] || { echo "the plugin changed pytest's output:"; echo "$with"; echo "$without"; exit 1; } >&2
"$work/bare/bin/python" -m pytest -q -p no:cacheprovider >/dev/null
[ "$(ls "$proj")" = "test_thing.py" ] || [ "$(ls "$proj" | tr '\n' ' ')" = "__pycache__ test_thing.py " ] \
    || { echo "files appeared in the unrelated project: $(ls "$proj")" >&2; exit 1; }
echo "wheel check passed"
