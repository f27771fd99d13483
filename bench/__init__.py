"""Benchmarks: one module per figure, each runnable as `python -m bench.<name>`."""
