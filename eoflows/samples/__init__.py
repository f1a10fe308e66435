"""Synthetic products for the demo, the tests and the benchmarks (no network needed)."""
