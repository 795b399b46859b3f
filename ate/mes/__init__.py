"""The MES interlock: the line's word on a unit before it is tested (check-in) and what
the line is told after (completion), behind one small interface (gate.py) with drivers
chosen by name in the station file: `linedb` (the line database's retest policy) and
`cfx` (IPC-CFX messages over AMQP 1.0)."""
