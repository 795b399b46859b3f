"""Turn a fixture's port description into something pyserial opens.

Stable names only: a by-path/by-id link or a USB serial number is resolved here, at the
moment of use, so a re-plugged adapter is found again under its new /dev/ttyUSBn.
"""

from __future__ import annotations

import os

from serial.tools import list_ports

from ate.config.fixture import PortSpec
from ate.drivers.line_client import DeviceGone


class PortNotFound(DeviceGone):
    """The port a slot names is not there (unplugged adapter, wrong serial number)."""


def resolve_port(spec: PortSpec, sim_endpoint: str | None = None) -> str:
    """Path or URL for pyserial; `sim_endpoint` is what a simulated twin made for `sim`."""
    if spec.sim:
        if sim_endpoint is None:
            raise PortNotFound("port 'sim' but no simulated fixture is running")
        return sim_endpoint
    if spec.url:
        return spec.url
    link = spec.by_path or spec.by_id
    if link:
        if not os.path.exists(link):
            raise PortNotFound(f"{link} does not exist (adapter unplugged?)")
        return link
    assert spec.usb_serial is not None
    matches = [p.device for p in list_ports.comports() if p.serial_number == spec.usb_serial]
    if not matches:
        raise PortNotFound(f"no USB serial adapter with serial number {spec.usb_serial!r}")
    if len(matches) > 1:
        raise PortNotFound(f"serial number {spec.usb_serial!r} matches {', '.join(matches)}")
    return str(matches[0])
