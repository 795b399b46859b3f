"""Outputs built from the event stream: unit records, JUnit XML, per-slot JSON logs.

May import ate.model only: records subscribe to events, they never drive a test.
"""
