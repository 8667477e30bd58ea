"""Benchmarks that start the real service on loopback and print figures (`make bench`)."""
