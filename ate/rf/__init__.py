"""RF through the golden board: the path-loss calibration file and the rules a panel
applies to it (calibration.py). The golden check that makes one runs as a panel
(ate/station/golden_check.py); the golden board's driver is ate/drivers/golden.py, the
RF steps ate/sequence/rf_steps.py, the simulated shield box ate/sim/rf_space.py."""
