"""Immutable vocabulary shared by every layer: units, limits, verdicts, events.

Imports nothing from the rest of ate.
"""
