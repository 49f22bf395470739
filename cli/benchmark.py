"""How long a learner waits for ``llmspec check COMPONENT``, against the unavoidable start-up.

    python -m llmref.cli.benchmark                    # softmax, 5 runs each
    python -m llmref.cli.benchmark --component linear --runs 9

The floor is a bare ``python -c "import torch, pytest, hypothesis"``: every check pays it.
Measured, each in a fresh process (median of ``--runs``, after one warm-up that fills the
bytecode caches): the floor; ``llmspec check NAME`` on a skeleton where NAME is written
correctly (its tests run and pass); the same with nothing written (its tests skip); and
``llmspec check --list`` (no torch at all).  Printed: wall-clock and CPU seconds (user + system
of the child), and each check's time above the floor, the figure the goal is about (about one
second).  ``--no-bytecode`` measures as with ``PYTHONDONTWRITEBYTECODE=1`` (every module
compiled and assertion-rewritten on every run).

    python -m llmref.cli.benchmark --suite            # the default run of the whole suite

``--suite`` times the README's test command (``python -m pytest``: the default markers, every
core) instead, median of ``--runs`` after a warm-up, with its status file in a temporary
folder; the goal is under 20 s on two cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llmref


def _timed(argv, cwd, env) -> tuple:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def _median(argv, cwd, env, runs: int, expect: int) -> tuple:
    _timed(argv, cwd, env)                          # warm-up: bytecode caches, disk cache
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu, code = _timed(argv, cwd, env)
        if code != expect:
            raise SystemExit(f"{' '.join(argv)} exited {code}, expected {expect}")
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def _written_package(root: Path, component: str) -> None:
    """A package whose ``component`` is the reference's own (correct) module."""
    pkg = root / "bench_written"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"from llmref import {component}  # noqa: F401\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--component", default="softmax", choices=list(llmref.__all__))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-bytecode", action="store_true",
                        help="as with PYTHONDONTWRITEBYTECODE=1")
    parser.add_argument("--suite", action="store_true",
                        help="time the default run of the whole suite instead")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if args.suite:
        return suite(args.runs)

    from llmref.cli import skeleton

    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMSPEC_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env["LLMSPEC_CACHE"] = str(root / "cache")
        skeleton.write(root, "bench_empty")
        _written_package(root, args.component)
        rows = [
            ("floor: import torch, pytest, hypothesis",
             [py, "-c", "import torch, pytest, hypothesis"], 0),
            (f"check {args.component} (written, tests pass)",
             [py, "-m", "llmref.cli", "check", args.component, "--impl", "bench_written"], 0),
            (f"check {args.component} (nothing written)",
             [py, "-m", "llmref.cli", "check", args.component, "--impl", "bench_empty"], 3),
            ("check --list", [py, "-m", "llmref.cli", "check", "--list"], 0),
        ]
        print(f"median of {args.runs} runs each; {os.cpu_count()} cores; load average "
              f"{os.getloadavg()[0]:.1f}; bytecode caches {'off' if args.no_bytecode else 'on'}")
        floor = None
        for label, command, expect in rows:
            wall, cpu = _median(command, root, env, args.runs, expect)
            if floor is None:
                floor = (wall, cpu)
                extra = ""
            else:
                extra = f"   above the floor: {wall - floor[0]:+.2f} s wall, " \
                        f"{cpu - floor[1]:+.2f} s CPU"
            print(f"{label:<44} {wall:6.2f} s wall {cpu:6.2f} s CPU{extra}", flush=True)


def suite(runs: int) -> None:
    """Wall and CPU seconds of ``python -m pytest -q`` (the default selection) from the
    current folder, which must be where the suite runs (a checkout, or any folder for the
    installed suite)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMSPEC_")}
    with tempfile.TemporaryDirectory() as tmp:
        env["LLMSPEC_CACHE"] = str(Path(tmp) / "cache")
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "--pyargs", "llmref.spec", f"--llmspec-status={Path(tmp) / 'status.json'}"]
        print(f"median of {runs} runs; {os.cpu_count()} cores; load average "
              f"{os.getloadavg()[0]:.1f}")
        wall, cpu = _median(argv, Path.cwd(), env, runs, 0)
        print(f"{'default run of the suite':<44} {wall:6.2f} s wall {cpu:6.2f} s CPU")


if __name__ == "__main__":
    main()
