"""Benchmarks: plain scripts with a `main()`, run together by `python -m bench` (speed is measured here, never asserted in tests)."""
