"""Shared ground for every package: settings, database, errors, clock, invariants."""
