"""The reference with one function deliberately wrong, chosen by ``$LLMSPEC_PERTURB``.

``LLMSPEC_PERTURB=NAME pytest --llmspec-impl=llmref.spec.perturbed ...`` runs the suite
against the reference in which the function named by the perturbation ``NAME``
(:data:`llmref.spec.harness.perturbations.PERTURBATIONS`) is replaced by a perturbed
version; every other component is the reference's.  The claim meta-test uses it to show that
each claim test fails against a wrong implementation of what it judges.  With the variable
unset (or naming a registry value, ``value:<claim id>``), this module is the reference.

The variable is read at every attribute access, so one process can run the suite against
several perturbations in turn.
"""

from __future__ import annotations

import os

import llmref
from llmref.spec.harness.perturbations import PERTURBATIONS

ENV_VAR = "LLMSPEC_PERTURB"


class _Patched:
    """``component`` with its function ``name`` replaced by ``replacement``."""

    def __init__(self, component, name: str, replacement):
        self._component, self._name, self._replacement = component, name, replacement

    def __getattr__(self, attr):
        if attr == self._name:
            return self._replacement
        return getattr(self._component, attr)


def __getattr__(component: str):
    if component.startswith("__"):
        raise AttributeError(component)
    real = getattr(llmref, component)
    chosen = PERTURBATIONS.get(os.environ.get(ENV_VAR, ""))
    if chosen is not None:
        owner, _, function = chosen.target.rpartition(".")
        if owner == component:
            return _Patched(real, function, chosen.make(getattr(real, function)))
    return real
