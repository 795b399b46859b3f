"""`ate nightly`: a seeded fault matrix over simulated panels that proves no false PASS.

faults.py (the library: every fault the simulators can make, each with the verdict class
it must produce) -> draw.py (which unit and which fault in each slot of each panel, from
the seed) -> bench.py (runs drawn panels through the station's own code on simulated
fixtures, reruns what must recover) -> invariants.py (what must hold over the whole
run) -> report.py (confusion matrix, JUnit, one HTML page). The command line is
ate/cli/nightly_cmd.py. May import ate.config, ate.model, ate.sim, ate.station, ate.store
and ate.records; nothing imports it but the command line and the pytest plugin.
"""
