"""What every example's command line shares: the common options and saving a figure."""

from __future__ import annotations

import argparse
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """Refuses sizes and rates that cannot be meant: every int or float option except
    ``--seed`` must be > 0 (``--steps -5`` would otherwise run nothing and report 0.0%)."""

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            if action.type not in (int, float) or value is None:
                continue
            if action.dest == "seed":
                if value < 0:
                    self.error(f"argument {action.option_strings[0]}: must be >= 0, got {value}")
            elif not value > 0:
                self.error(f"argument {action.option_strings[0]}: must be > 0, got {value}")
        return parsed


#: where plots go unless --out says otherwise: a folder named after the example under
#: ./llmspec-output/ (``llmspec run`` passes the same default and prints it at the end)
OUTPUT = Path("llmspec-output")


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with --seed, --no-plot, --out and --save-artefacts already added."""
    p = Parser(description=description)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plot", action="store_true", help="skip the plot (no matplotlib)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the plots (default: ./llmspec-output/EXAMPLE/)")
    return add_artefacts_option(p)


def blas_threads(threads: int | None):
    """A context in which NumPy's BLAS uses ``threads`` threads (None: leave it alone), by
    threadpoolctl (the ``examples`` extra); without it, says so and changes nothing."""
    import contextlib
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("threadpoolctl is not installed (pip install -e '.[examples]'): "
              "NumPy's BLAS keeps its own thread count")
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def blas_thread_count() -> str:
    """How many threads NumPy's BLAS uses now (threadpoolctl), or "unknown"."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    counts = {str(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"}
    return ", ".join(sorted(counts)) or "unknown"


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path


def maybe_plot(args, plot, result, name: str) -> None:
    """Call ``plot(result, path)`` unless --no-plot; say so if matplotlib is missing."""
    if args.no_plot:
        return
    out = args.out if args.out is not None else OUTPUT / Path(name).stem
    try:
        print("plot:", plot(result, out / name))
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[examples]'): no plot")


# ---------------------------------------------------------------- artefacts for the docs site
# An example run with --save-artefacts writes DIR/<example>/results.json and one PNG per plot
# panel; the docs build shows them and never reruns an example.  results.json holds:
#   example, command (how to rerun it), date (UTC), seconds (wall time of the run),
#   printed (everything the run printed), results ({name: number or text}: the figures the
#   page quotes) and figures ([{"file": "loss.png", "caption": "..."}], in order).
# The slow test llmref.spec.test_example_artefacts writes them into the repository's
# .llmspec/artefacts/ (next to the status files the docs read).

ARTEFACTS = Path(".llmspec") / "artefacts"
#: one panel as drawn for the site: wide enough for its labels at a phone's 390 px
PANEL_SIZE, PANEL_DPI, PANEL_FONT = (5.2, 3.6), 150, 12


def add_artefacts_option(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--save-artefacts", nargs="?", const=ARTEFACTS, default=None, type=Path,
                   metavar="DIR", help="also save results.json and one PNG per plot panel to "
                   f"DIR/<example>/ for the docs site (default DIR: {ARTEFACTS})")
    return p


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self):
        for s in self.streams:
            s.flush()


class Run:
    """One run of an example: records what it prints and how long it takes, and with
    --save-artefacts saves its plot panels and results for the docs (see above).

        record = common.Run("cat_sat_mat", args, argv)
        ...                                    # train, print
        record.finish(result, PANELS, {"parameters": 101})
    """

    def __init__(self, name: str, args, argv=None):
        import io
        import sys
        import time
        self.name, self.started = name, time.perf_counter()
        root = getattr(args, "save_artefacts", None)
        self.folder = None if root is None else Path(root) / name
        argv = list(sys.argv[1:] if argv is None else argv)
        if "--save-artefacts" in argv:              # the command shown does not save
            i = argv.index("--save-artefacts")
            del argv[i:i + (2 if i + 1 < len(argv) and not argv[i + 1].startswith("-") else 1)]
        self.command = " ".join(["python", "-m", f"llmref.examples.{name}", *argv])
        self._printed = io.StringIO()
        self._stdout = sys.stdout
        sys.stdout = _Tee(sys.stdout, self._printed)

    def finish(self, result=None, panels=(), results=None) -> Path | None:
        """Stop recording; with --save-artefacts write the panels and results.json."""
        import datetime
        import json
        import sys
        import time
        seconds = time.perf_counter() - self.started
        sys.stdout = self._stdout
        if self.folder is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        figures = save_panels(panels, result, self.folder) if panels else []
        record = {"example": self.name, "command": self.command,
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  "seconds": round(seconds, 1), "printed": self._printed.getvalue(),
                  "results": _plain(results or {}), "figures": figures}
        path = self.folder / "results.json"
        path.write_text(json.dumps(record, indent=1))
        print("artefacts:", self.folder)
        return path


def _plain(value):
    """NumPy scalars and arrays as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_labelled(ax, what: str) -> None:
    """A panel for the site states what it shows: a title and both axis labels."""
    missing = [k for k, v in (("title", ax.get_title()), ("x label", ax.get_xlabel()),
                              ("y label", ax.get_ylabel())) if not v]
    if missing:
        raise ValueError(f"plot panel {what!r} has no {', '.join(missing)}")


def save_panels(panels, result, folder: Path) -> list:
    """Draw each panel ``(file stem, caption, draw(ax, result))`` into a figure of its own
    and save it as FOLDER/<stem>.png; returns ``[{"file", "caption"}]``."""
    plt = pyplot()
    out = []
    for stem, caption, draw in panels:
        with plt.rc_context({"font.size": PANEL_FONT}):
            fig, ax = plt.subplots(figsize=PANEL_SIZE)
            draw(ax, result)
            _check_labelled(ax, stem)
            fig.savefig(folder / f"{stem}.png", dpi=PANEL_DPI, bbox_inches="tight")
        plt.close(fig)
        out.append({"file": f"{stem}.png", "caption": caption})
    return out


def plot_panels(panels, result, path: Path, ncols: int = 2) -> Path:
    """All panels in one figure (the command line's single PNG)."""
    plt = pyplot()
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(PANEL_SIZE[0] * ncols,
                                                    PANEL_SIZE[1] * nrows), squeeze=False)
    for ax, (_, _, draw) in zip(axes.flat, panels, strict=False):
        draw(ax, result)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return save(fig, path)
