"""Bench instruments behind small interfaces (labgrid's way): power supplies, DMMs, relay
multiplexers and RF shield boxes, each a protocol in ate.instruments.base, implemented by
drivers chosen by name in the fixture file's `instruments:` section (ate.instruments.registry)
and reached by steps through their role (`ctx.instrument("supply", PowerSupply)`).

Built in: SCPI drivers over pyvisa (ate.instruments.scpi_drivers), the fixture controller
MCU's current sense and DMM re-expressed as the same protocols (ate.instruments.fixture_mcu),
and simulated SCPI instruments on 127.0.0.1 sockets (ate.instruments.twins).

Imports ate.config.common and ate.drivers.fixture (the fixture controller) only; pyvisa
loads when a SCPI instrument is opened.
"""
