"""The spec-test harness: which implementation is under test, strategies, tolerances, oracles."""
