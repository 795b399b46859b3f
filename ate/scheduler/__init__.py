"""The panel scheduler: one task per slot, shared resources, abort, the event stream.

May import ate.sequence, ate.drivers (interfaces only), ate.model. Knows nothing of
serial ports or YAML: the station layer hands it ready bindings.
"""
