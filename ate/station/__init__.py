"""The station: wires a fixture description, a sequence and the hardware (or its simulated
twin) into panels, with outputs subscribed to the event stream.

Top of the stack: may import everything below (scheduler, sequence, drivers, sim, records).
"""
