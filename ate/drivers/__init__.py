"""Drivers: the host side of every hardware link (DUT test firmware, fixture controller).

May import ate.protocol, ate.config, ate.model. Never the scheduler, CLI or simulators:
a simulated twin is reached through the same transport a real device is.
"""
