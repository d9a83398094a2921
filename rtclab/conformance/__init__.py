"""Conformance suite (package docstring written below)."""
