"""Benchmarks: one module per subsystem, each with ``run(...) -> dict`` and ``main(argv) -> int``.

Every benchmark prints progress to stderr and one JSON object on its last stdout line: the figures,
the goals and whether each was met, and a ratio against a baseline measured in the same run. The
figures seen on the reference machine, with the command that reproduces them, are in
``docs/benchmarks.md``. Speed targets live here, not in timed tests.
"""
