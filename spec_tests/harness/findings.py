"""What a claim test measured, gathered while it runs, for the status file and the docs.

While a claim test runs (the plugin opens :func:`gathering` around it), every comparison that
passes (:func:`~llmref.spec.harness.tolerances.compare`, so also ``assert_close`` and the
checks of :mod:`~llmref.spec.harness.checks`) is noted: how many arrays and values agreed and
the largest relative difference among them, per tolerance.  A test that records no figures of
its own through the ``claim_figures`` fixture gets these as its figures.

A test run by hypothesis cannot take the (function-scoped) ``claim_figures`` fixture, since
its examples share one test item; it notes what it measured with :func:`largest`,
:func:`smallest` and :func:`total`, which combine the values of all its examples.  Outside a
claim test (nothing gathering) every function here does nothing.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

_active: list = []


class Findings:
    """The figures of one claim test: comparisons per tolerance, and named values."""

    def __init__(self):
        self.comparisons: dict = {}      # tolerance label -> [arrays, values, worst, rtol]
        self.values: dict = {}

    def note_comparison(self, label: str, rtol: float, values: int, worst: float) -> None:
        row = self.comparisons.setdefault(label, [0, 0, 0.0, rtol])
        row[0] += 1
        row[1] += values
        row[2] = max(row[2], worst)

    def combine(self, name: str, value, how) -> None:
        value = value.item() if hasattr(value, "item") else value
        self.values[name] = value if name not in self.values else how(self.values[name], value)

    def comparison_figures(self) -> dict:
        """``arrays_compared``, ``values_compared``, ``largest_relative_difference`` and
        ``relative_tolerance``, with the tolerance's label in brackets when the test compared
        under more than one."""
        out = {}
        for label, (arrays, values, worst, rtol) in self.comparisons.items():
            tag = f"_({label})" if len(self.comparisons) > 1 else ""
            out.update({f"arrays_compared{tag}": arrays, f"values_compared{tag}": values,
                        f"largest_relative_difference{tag}": worst,
                        f"relative_tolerance{tag}": rtol})
        return out


@contextmanager
def gathering():
    """Gather the findings of the code run inside (the plugin's wrapper around a claim
    test)."""
    found = Findings()
    _active.append(found)
    try:
        yield found
    finally:
        _active.remove(found)


def note_comparison(tol, actual, expected, allowed) -> None:
    """A comparison under ``tol`` passed: note its size and its largest relative difference,
    ``|actual - expected| * rtol / allowed`` (``allowed = rtol |expected| + floor``): the
    plain relative difference ``|actual - expected| / |expected|`` for values well above the
    tolerance's floor, and at most ``rtol`` for every comparison that passes."""
    if not _active:
        return
    err = np.abs(np.asarray(actual, dtype=np.float64) - expected)
    allowed = np.broadcast_to(allowed, err.shape)
    rel = np.divide(err * tol.rtol, allowed, out=np.zeros(err.shape), where=allowed > 0)
    _active[-1].note_comparison(tol.label or f"rtol {tol.rtol:g}", tol.rtol, int(err.size),
                                float(np.max(rel, initial=0.0)))


def largest(name: str, value) -> None:
    """Note ``value`` under ``name``, keeping the largest over the test's examples."""
    if _active:
        _active[-1].combine(name, value, max)


def smallest(name: str, value) -> None:
    """Note ``value`` under ``name``, keeping the smallest over the test's examples."""
    if _active:
        _active[-1].combine(name, value, min)


def total(name: str, value) -> None:
    """Add ``value`` to the total under ``name`` (a count over the test's examples)."""
    if _active:
        _active[-1].combine(name, value, lambda a, b: a + b)
