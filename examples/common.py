"""What every example's command line shares: the common options and saving a figure."""

from __future__ import annotations

import argparse
from pathlib import Path


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with --seed, --no-plot and --out already added."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plot", action="store_true", help="skip the plot (no matplotlib)")
    p.add_argument("--out", type=Path, default=Path("examples/output"),
                   help="folder for the plots (default: examples/output)")
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
    try:
        print("plot:", plot(result, args.out / name))
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[examples]'): no plot")
