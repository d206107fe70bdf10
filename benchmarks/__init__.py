"""The project's scoreboard: latency (pytest-benchmark) and accuracy-under-tolerance of every
exported artifact, run on purpose with ``python -m benchmarks`` (never by the default ``pytest``).

Beside the suite, every other measurement is a module run the same way,
``python -m benchmarks.NAME`` from the repository root (e.g. ``benchmarks.parity``,
``benchmarks.edge_latency``); none edits ``sys.path``.
"""
