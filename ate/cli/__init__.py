"""Command line: `ate run`, `ate demo`, `ate validate`, `ate schema`, `ate sim`.

Top of the stack; may import anything in ate.
"""
