"""Benchmarks: `python -m benchmarks` prints the tables and writes benchmarks/results.json."""
