"""Regenerate the example plots the site shows (docs/assets/*.png).

    python docs_src/make_plots.py            # about 5 minutes: the calculator trains fully
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples import cat_sat_mat, reward_hacking, word_calculator  # noqa: E402

ASSETS = ROOT / "docs" / "assets"

if __name__ == "__main__":
    cat_sat_mat.plot(cat_sat_mat.train(epochs=400, log=None), ASSETS / "cat_sat_mat.png")
    reward_hacking.plot(reward_hacking.run(log=lambda s: None), ASSETS / "reward_hacking.png")
    result = word_calculator.train(steps=4000, log=None)
    word_calculator.plot(result, ASSETS / "word_calculator.png")
    print("held-out accuracy", result["test_acc"])
