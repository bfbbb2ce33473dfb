"""Benchmarks: Mail Relay beside Home Assistant's own mail integrations."""
