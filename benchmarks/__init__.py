"""Benchmarks: throughput and memory, each reported next to a baseline from the same run."""
