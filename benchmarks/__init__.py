"""Timing workloads for tinygen; run with ``python -m benchmarks``. Not part of the tests."""
