"""Simulated SCPI instruments served on 127.0.0.1 sockets, as a LAN instrument speaks SCPI
on its raw port (5025): newline-terminated commands and replies, `*IDN?`, `SYST:ERR?`.
The real drivers reach them through pyvisa-py's TCPIP::127.0.0.1::PORT::SOCKET resources.

Imports nothing from ate outside this package.
"""
