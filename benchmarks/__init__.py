"""Lab benchmarks (not installed): each prints a table and writes JSON; docs/BENCHMARKS.md is generated from it."""
