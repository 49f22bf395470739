"""Regenerate the example plots the site shows (docs/assets/*.png).

    python docs_src/make_plots.py            # about 5 minutes: the calculator trains fully
"""

from pathlib import Path

from llmref.examples import cat_sat_mat, reward_hacking, word_calculator

ROOT = Path(__file__).resolve().parents[1]

ASSETS = ROOT / "docs" / "assets"

if __name__ == "__main__":
    cat_sat_mat.plot(cat_sat_mat.train(epochs=400, log=None), ASSETS / "cat_sat_mat.png")
    reward_hacking.plot(reward_hacking.run(log=lambda s: None), ASSETS / "reward_hacking.png")
    result = word_calculator.train(steps=4000, log=None)
    word_calculator.plot(result, ASSETS / "word_calculator.png")
    print("held-out accuracy", result["test_acc"])
