"""The examples save what the docs site shows: a run with ``--save-artefacts`` writes
``results.json`` (the command, what it printed, its numbers) and one labelled PNG per plot
panel.  Run against the reference from the repository, these tests write into the
repository's ``.llmspec/artefacts/`` (next to the status files), which is where the site's
build reads them; it never reruns an example itself."""

import importlib
import json
from pathlib import Path

import pytest

#: the examples that draw plots, with the arguments of the run the site shows
PLOTTED = {"cat_sat_mat": [], "word_calculator": [], "rlhf_pipeline": []}
#: examples whose run for the site is saved by the claim test that runs them anyway
#: (test_examples.py: the calculator's held-out accuracy, the RLHF pipeline's exploit), so CI
#: trains each once
SAVED_BY_CLAIM_TESTS = {"word_calculator", "rlhf_pipeline"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def artefacts_root(config, tmp_path: Path | None = None) -> Path:
    """The repository's .llmspec/artefacts when the suite runs from the checkout (its
    pyproject names the docs' status file), else a temporary folder."""
    name = config.getini("llmspec_docs_status")
    if name and config.inipath is not None:
        return Path(config.inipath).parent / Path(name).parent / "artefacts"
    if tmp_path is None:
        import tempfile
        return Path(tempfile.mkdtemp(prefix="llmref-artefacts-"))
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(PLOTTED) - SAVED_BY_CLAIM_TESTS))
def test_example_saves_the_results_and_plots_the_site_shows(name, impl, request, tmp_path):
    pytest.importorskip("matplotlib")
    if not impl.is_reference:
        pytest.skip("the site shows the reference's runs")
    root = artefacts_root(request.config, tmp_path)
    module = importlib.import_module(f"llmref.examples.{name}")
    module.main([*PLOTTED[name], "--no-plot", "--save-artefacts", str(root)])
    check_saved(root, name, PLOTTED[name])


def check_saved(root: Path, name: str, args) -> None:
    """What a run with ``--save-artefacts`` left in ROOT/NAME: the command that reruns it
    (without the saving), what it printed, its numbers and one labelled PNG per panel."""
    saved = json.loads((root / name / "results.json").read_text())
    assert saved["example"] == name
    assert saved["command"] == " ".join(["python", "-m", f"llmref.examples.{name}", *args,
                                        "--no-plot"])
    assert saved["printed"].strip() and saved["results"] and saved["seconds"] > 0
    assert saved["figures"], "an example that plots saves its panels"
    for figure in saved["figures"]:
        data = (root / name / figure["file"]).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, figure["file"]
        assert figure["caption"].strip()


def test_a_panel_without_axis_labels_is_refused(tmp_path):
    """The site's plots state what they show: a panel without a title or an axis label
    stops the run that would save it."""
    pytest.importorskip("matplotlib")
    from llmref.examples import common

    def unlabelled(ax, result):
        ax.plot([0, 1], [1, 0])
        ax.set(title="loss", xlabel="step")

    with pytest.raises(ValueError, match="no y label"):
        common.save_panels([("loss", "caption", unlabelled)], None, tmp_path)
