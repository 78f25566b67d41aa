"""Quern benchmarks: `make bench` / `make bench-pg` (see README "Performance")."""
