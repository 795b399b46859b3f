"""Sans-IO protocol cores: bytes in, events out; events in, bytes out. No I/O, no clocks.

May import ate.model only.
"""
