"""Save every plotted example's run for the site (.llmspec/artefacts/<example>/), without
pytest: the same runs the slow tests make (test_example_artefacts, and the RLHF pipeline's
claim test).

    python docs_src/make_plots.py            # a few minutes: the calculator trains fully
"""

import importlib

from llmref.spec.test_example_artefacts import PLOTTED

if __name__ == "__main__":
    for name, args in PLOTTED.items():
        importlib.import_module(f"llmref.examples.{name}").main(
            [*args, "--no-plot", "--save-artefacts"])
