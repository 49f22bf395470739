"""Survivors of ``run_mutmut`` judged equivalent one by one, a module per group: each holds
``SPECIFIC = {(old line, new line): reason}``, the changed line as mutmut showed it
(stripped) before and after."""
