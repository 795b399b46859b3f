"""The step library: what each step type does on a DUT, and the compiled run plan.

May import ate.drivers (DUT and fixture interfaces), ate.config, ate.model.
"""
