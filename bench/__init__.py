"""Benchmarks and evaluations of seedworker (not tests): ``python -m bench.run``."""
