"""Simulators and helpers for tests and benchmarks: not part of the product pipeline."""
