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
    """An argument parser with --seed, --no-plot and --out already added."""
    p = Parser(description=description)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plot", action="store_true", help="skip the plot (no matplotlib)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the plots (default: ./llmspec-output/EXAMPLE/)")
    return p


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
