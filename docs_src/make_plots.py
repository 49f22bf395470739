"""Regenerate the example plots the site shows (docs/assets/*.png).

    python docs_src/make_plots.py            # about 5 minutes: the calculator trains fully
"""

import json
from pathlib import Path

from llmref.examples import cat_sat_mat, rlhf_pipeline, word_calculator

ROOT = Path(__file__).resolve().parents[1]

ASSETS = ROOT / "docs" / "assets"

#: the slow test of the RLHF pipeline leaves one run's results and plots here; the docs reuse
#: them instead of paying for the pipeline again
ARTEFACTS = ROOT / ".llmspec" / "artefacts" / "rlhf_pipeline"


def rlhf_plots() -> None:
    """The RLHF page's plots from the saved run (run the pipeline first if there is none:
    ``python -m pytest -m slow --pyargs llmref.spec.test_examples -k rlhf``).  The page's
    table is rlhf_pipeline_table.md of the same run, pasted in."""
    saved = ARTEFACTS / "rlhf_pipeline.json"
    if not saved.is_file():
        print(f"no saved RLHF run at {saved}: run the slow test first; RLHF plots not updated")
        return
    results = json.loads(saved.read_text())
    rlhf_pipeline.plot_overoptimisation(results, ASSETS / "rlhf_overoptimisation.png")
    rlhf_pipeline.plot_reward_model(results, ASSETS / "rlhf_reward_model.png")


if __name__ == "__main__":
    cat_sat_mat.plot(cat_sat_mat.train(epochs=400, log=None), ASSETS / "cat_sat_mat.png")
    rlhf_plots()
    result = word_calculator.train(steps=4000, log=None)
    word_calculator.plot(result, ASSETS / "word_calculator.png")
    print("held-out accuracy", result["test_acc"])
