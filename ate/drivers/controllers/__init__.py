"""Fixture controller drivers, one module each, registered by name in pyproject.toml's
`ate.fixture_drivers` entry point group (see ate.drivers.registry)."""
