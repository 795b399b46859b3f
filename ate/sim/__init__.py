"""Simulated twins of the DUT test firmware and the fixture controller, on real ptys/sockets.

May import ate.protocol, ate.config and ate.model only (never drivers, scheduler or cli).
"""
