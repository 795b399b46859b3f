"""Declarative inputs: sequences, fixtures, and loading them from YAML with positions.

May import ate.model only. Models are pydantic (validation + JSON Schema from one place);
the executive converts them to plain runtime objects once, outside the hot path.
"""
