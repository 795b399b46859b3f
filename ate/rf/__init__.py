"""RF through the golden board: the path-loss calibration (calibration.py) and the
golden check that makes it (golden_check.py)."""
