"""The simulated 4-slot bench of the scheduler tests, for the verdict tests."""

from tests.scheduler.conftest import make_bench

__all__ = ["make_bench"]
