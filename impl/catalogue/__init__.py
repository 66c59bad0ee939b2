"""The catalogue of flawed delivery strategies: real agents' bugs, one flaw per module.

Each `bN_*.py` module holds one generator function `deliver(request) -> Outcome`: the correct
algorithm of `impl/deliver.py` with exactly one flaw taken from a real delivery agent (bug
classes B1-B11 of the agents fact sheet), so that a counterexample found by the checker is
about that flaw alone. Its docstring names the bug class, the real source, the properties it
is expected to break and the conditions (persistence profile, fault) that break them.
Every entry is `impl.deliver.run` with the `Steps` of its one flaw replaced.
The registry that names them is `maildircheck.impl.strategies`.
"""
