"""The project's scoreboard: latency (pytest-benchmark) and accuracy-under-tolerance of every
exported artifact, run on purpose with ``python -m benchmarks`` (never by the default ``pytest``).

``parity.py`` and ``edge_latency.py`` are standalone scripts kept beside the suite.
"""
